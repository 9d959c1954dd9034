//! Column types the framework provides for values a backend cannot hold natively: an exact
//! decimal and a UUID, both stored as text. SQLite has neither type: diesel's `Numeric` goes
//! through a double there (`1234567.89` reads back as `1234567.889999999897...`, `12.00` is
//! stored as the integer 12), and a `uuid::Uuid` has no SQLite mapping at all. Declare the
//! column `Text` in `table!` (`TEXT` in the DDL) and the field with one of these types:
//!
//! ```
//! use cqrs_core::types::{DecimalText, UuidText};
//!
//! diesel::table! {
//!     slots (id) {
//!         id -> Text,           // UuidText
//!         price -> Text,        // DecimalText
//!         cqrs_revision -> Integer,
//!         cqrs_updated -> Timestamp,
//!     }
//! }
//!
//! let price: DecimalText = "1234567.89".parse().unwrap();
//! assert_eq!(price.to_string(), "1234567.89");
//! let id: UuidText = "6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f".parse().unwrap();
//! assert_eq!(id.to_string(), "6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f");
//! ```
//!
//! On the wire they are what django-cqrs sends: a decimal as a JSON number (a string is read
//! too), a UUID as its hyphenated text. Stored text keeps the value exactly (`12.00` stays
//! `12.00`). Filters compare decimals as numbers (`CAST(column AS REAL)` on SQLite, exact
//! `NUMERIC` on PostgreSQL), UUIDs as their text (which orders as the UUID does).

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, ToSql};
use diesel::sql_types::Text;
use serde_json::Value;

use crate::value::{CqrsValue, ValueError};

/// An exact decimal stored as its text (a `Text` column).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, diesel::AsExpression, diesel::FromSqlRow,
)]
#[diesel(sql_type = Text)]
pub struct DecimalText(pub BigDecimal);

/// A UUID stored as its hyphenated lower-case text (a `Text` column).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = Text)]
pub struct UuidText(pub uuid::Uuid);

macro_rules! text_column_type {
    ($name:ident, $inner:ty, $what:literal) => {
        impl Deref for $name {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }

        impl From<$name> for $inner {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ValueError;
            fn from_str(text: &str) -> Result<Self, ValueError> {
                <$inner as CqrsValue>::from_cqrs(&Value::String(text.to_owned())).map(Self)
            }
        }

        impl CqrsValue for $name {
            fn to_cqrs(&self) -> Value {
                self.0.to_cqrs()
            }
            fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
                <$inner as CqrsValue>::from_cqrs(value).map(Self)
            }
        }

        #[cfg(feature = "sqlite")]
        impl ToSql<Text, diesel::sqlite::Sqlite> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
            ) -> serialize::Result {
                out.set_value(self.0.to_string());
                Ok(serialize::IsNull::No)
            }
        }

        #[cfg(feature = "postgres")]
        impl ToSql<Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> serialize::Result {
                use std::io::Write as _;
                write!(out, "{}", self.0)?;
                Ok(serialize::IsNull::No)
            }
        }

        impl<DB> FromSql<Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, DB>>::from_sql(bytes)?;
                text.parse::<$name>()
                    .map_err(|e| format!(concat!("stored text is not ", $what, ": {}"), e).into())
            }
        }
    };
}

text_column_type!(DecimalText, BigDecimal, "a decimal");
text_column_type!(UuidText, uuid::Uuid, "a UUID");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_forms() {
        let d = DecimalText::from_cqrs(&json!(19.99)).unwrap();
        assert_eq!(d.to_string(), "19.99");
        assert_eq!(d.to_cqrs(), json!(19.99));
        assert!(DecimalText::from_cqrs(&json!("1e400")).is_err());
        let u = UuidText::from_cqrs(&json!("6F1E0C7A-3B2D-4C5E-9F80-1A2B3C4D5E6F")).unwrap();
        assert_eq!(u.to_cqrs(), json!("6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f"));
        assert!("nope".parse::<UuidText>().is_err());
    }
}
