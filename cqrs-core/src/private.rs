//! Support for the code `#[derive(CqrsMaster)]` and `#[derive(CqrsReplica)]` generate. Not a
//! public API: names and signatures change without notice.

pub use ::chrono;
pub use ::diesel;
pub use ::inventory;
pub use ::serde_json;

#[cfg(feature = "postgres")]
pub use ::diesel::pg::PgConnection;
#[cfg(feature = "sqlite")]
pub use ::diesel::sqlite::SqliteConnection;

pub use crate::__cqrs_if_postgres as if_postgres;
pub use crate::__cqrs_if_sqlite as if_sqlite;
pub use crate::__cqrs_lookup as lookup;
pub use crate::__cqrs_with_postgres as with_postgres;
pub use crate::__cqrs_with_sqlite as with_sqlite;
pub use crate::column_type::{ColumnType, assert_column_type};
pub use crate::db::KEY_CHUNK;
pub use crate::db::cached::Cached;
pub use crate::fallback::{InvalidMaster, InvalidReplica, InvalidReplicaHooks};

use serde_json::{Map, Value};

use crate::error::{ApplyError, Error};
use crate::value::CqrsValue;

/// Reads field `key` of a new row: a missing key takes the type's missing value (`None`) or
/// is an error.
pub fn field_required<T: CqrsValue>(
    cqrs_id: &'static str,
    data: &Map<String, Value>,
    key: &str,
    pk: &str,
) -> Result<T, ApplyError> {
    match data.get(key) {
        Some(value) => parse(cqrs_id, value, key, pk),
        None => T::when_missing().ok_or_else(|| ApplyError::MissingField {
            cqrs_id,
            pk: pk.to_owned(),
            field: key.to_owned(),
        }),
    }
}

/// Reads field `key` of a new row; a missing key takes `Default::default()`.
pub fn field_or_default<T: CqrsValue + Default>(
    cqrs_id: &'static str,
    data: &Map<String, Value>,
    key: &str,
    pk: &str,
) -> Result<T, ApplyError> {
    data.get(key)
        .map_or_else(|| Ok(T::default()), |value| parse(cqrs_id, value, key, pk))
}

/// Overwrites `slot` with field `key` when the data has it.
pub fn field_update<T: CqrsValue>(
    cqrs_id: &'static str,
    slot: &mut T,
    data: &Map<String, Value>,
    key: &str,
    pk: &str,
) -> Result<(), ApplyError> {
    if let Some(value) = data.get(key) {
        *slot = parse(cqrs_id, value, key, pk)?;
    }
    Ok(())
}

fn parse<T: CqrsValue>(
    cqrs_id: &'static str,
    value: &Value,
    key: &str,
    pk: &str,
) -> Result<T, ApplyError> {
    T::from_cqrs(value).map_err(|source| ApplyError::BadValue {
        cqrs_id,
        pk: pk.to_owned(),
        field: key.to_owned(),
        source,
    })
}

/// What a custom serializer may return.
pub trait SerializerOutput {
    /// The object, or why there is none.
    fn into_object(self) -> Result<Map<String, Value>, String>;
}

impl SerializerOutput for Map<String, Value> {
    fn into_object(self) -> Result<Map<String, Value>, String> {
        Ok(self)
    }
}

impl SerializerOutput for Value {
    fn into_object(self) -> Result<Map<String, Value>, String> {
        match self {
            Value::Object(map) => Ok(map),
            other => Err(format!(
                "the serializer returned {}, not an object",
                crate::value::describe(&other)
            )),
        }
    }
}

impl<T: SerializerOutput, E: std::fmt::Display> SerializerOutput for Result<T, E> {
    fn into_object(self) -> Result<Map<String, Value>, String> {
        self.map_err(|e| e.to_string())?.into_object()
    }
}

/// Runs a custom serializer's output check.
pub fn custom_serialized<T: SerializerOutput>(
    model: &'static str,
    output: T,
) -> Result<Map<String, Value>, Error> {
    output
        .into_object()
        .map_err(|reason| Error::Serialize { model, reason })
}

/// Runs a `relate` function's error conversion.
pub fn related<R, E>(model: &'static str, output: Result<R, E>) -> Result<R, Error>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    output.map_err(|e| Error::Relate {
        model,
        source: e.into(),
    })
}

/// Wraps a meta function's output as the message's `meta`.
pub fn meta_value<T: Into<Value>>(meta: T) -> Option<Value> {
    Some(meta.into())
}

/// Wraps a correlation function's output.
pub fn correlation_value<T: Into<Option<String>>>(id: T) -> Option<String> {
    id.into()
}

/// Echoes its input when cqrs-core has the `sqlite` feature, else emits nothing.
#[cfg(feature = "sqlite")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_with_sqlite {
    ($($tokens:tt)*) => { $($tokens)* };
}

/// Echoes its input when cqrs-core has the `sqlite` feature, else emits nothing.
#[cfg(not(feature = "sqlite"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_with_sqlite {
    ($($tokens:tt)*) => {};
}

/// Echoes its input when cqrs-core has the `postgres` feature, else emits nothing.
#[cfg(feature = "postgres")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_with_postgres {
    ($($tokens:tt)*) => { $($tokens)* };
}

/// Echoes its input when cqrs-core has the `postgres` feature, else emits nothing.
#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_with_postgres {
    ($($tokens:tt)*) => {};
}

// Each gate macro is defined twice, once per state of its feature (diesel's `expand_pg!`
// pattern): the pairs below are deliberate.
/// `{ yes }` when cqrs-core has the `sqlite` feature, else `{ no }`.
#[cfg(feature = "sqlite")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_if_sqlite {
    ({ $($yes:tt)* }, { $($no:tt)* }) => { { $($yes)* } };
}

/// `{ yes }` when cqrs-core has the `sqlite` feature, else `{ no }`.
#[cfg(not(feature = "sqlite"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_if_sqlite {
    ({ $($yes:tt)* }, { $($no:tt)* }) => { { $($no)* } };
}

/// `{ yes }` when cqrs-core has the `postgres` feature, else `{ no }`.
#[cfg(feature = "postgres")]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_if_postgres {
    ({ $($yes:tt)* }, { $($no:tt)* }) => { { $($yes)* } };
}

/// `{ yes }` when cqrs-core has the `postgres` feature, else `{ no }`.
#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_if_postgres {
    ({ $($yes:tt)* }, { $($no:tt)* }) => { { $($no)* } };
}

/// One arm of a model's lookup match: turns a lookup on `$column` (Rust type `$ty`, nullable
/// or not, text or not) into a boxed diesel predicate.
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_lookup {
    (@cmp $lookup:ident, $col:expr, $ty:ty, $op:ident) => {{
        let value: $ty = $crate::filter::operand::<$ty>($lookup)?;
        ::std::boxed::Box::new($crate::__private::diesel::ExpressionMethods::$op($col, value))
    }};
    (@ops $lookup:ident, $col:expr, $nullable:expr, $ty:ty, $text:tt) => {{
        use $crate::filter::LookupOp;
        match $lookup.op {
            LookupOp::Exact if $lookup.value.is_null() => {
                ::std::boxed::Box::new($crate::__private::diesel::ExpressionMethods::is_null($nullable))
            }
            LookupOp::Exact => $crate::__cqrs_lookup!(@cmp $lookup, $col, $ty, eq),
            LookupOp::Gt => $crate::__cqrs_lookup!(@cmp $lookup, $col, $ty, gt),
            LookupOp::Gte => $crate::__cqrs_lookup!(@cmp $lookup, $col, $ty, ge),
            LookupOp::Lt => $crate::__cqrs_lookup!(@cmp $lookup, $col, $ty, lt),
            LookupOp::Lte => $crate::__cqrs_lookup!(@cmp $lookup, $col, $ty, le),
            LookupOp::In => {
                let values: ::std::vec::Vec<$ty> =
                    $crate::filter::operand::<::std::vec::Vec<$ty>>($lookup)?;
                ::std::boxed::Box::new($crate::__private::diesel::ExpressionMethods::eq_any($col, values))
            }
            LookupOp::IsNull => {
                if $crate::filter::isnull_operand($lookup)? {
                    ::std::boxed::Box::new($crate::__private::diesel::ExpressionMethods::is_null($nullable))
                } else {
                    ::std::boxed::Box::new($crate::__private::diesel::ExpressionMethods::is_not_null($nullable))
                }
            }
            _ => $crate::__cqrs_lookup!(@text $lookup, $col, $text),
        }
    }};
    (@text $lookup:ident, $col:expr, text) => {{
        let text: ::std::string::String = $crate::filter::operand::<::std::string::String>($lookup)?;
        ::std::boxed::Box::new($crate::__private::diesel::EscapeExpressionMethods::escape(
            $crate::__private::diesel::TextExpressionMethods::like(
                $col,
                $crate::filter::like_pattern($lookup.op, &text),
            ),
            '\\',
        ))
    }};
    (@text $lookup:ident, $col:expr, plain) => {
        return ::std::result::Result::Err($crate::filter::not_text($lookup))
    };
    // A NOT NULL column.
    ($lookup:ident, $col:expr, $ty:ty, $text:tt) => {
        $crate::__cqrs_lookup!(@ops $lookup, $col, $col, $ty, $text)
    };
    // A nullable column: comparisons see the value type (NULL never matches them).
    (nullable $lookup:ident, $col:expr, $ty:ty, $text:tt) => {
        $crate::__cqrs_lookup!(
            @ops $lookup,
            $crate::__private::diesel::NullableExpressionMethods::assume_not_null($col),
            $col,
            $ty,
            $text
        )
    };
}
