//! The check that a model field's Rust type can hold its column's SQL type. The derives call
//! [`assert_column_type`] once per field and backend, spanned on the field's type, so that a
//! mismatch is reported on the field with what to use; diesel's own errors about the
//! generated queries follow it.

use diesel::backend::Backend;
use diesel::deserialize::FromSql;
use diesel::expression::AsExpression;
use diesel::expression::TypedExpressionType;
use diesel::serialize::ToSql;
use diesel::sql_types::SqlType;

/// A field type that diesel can load from and write to a column of SQL type `ST` on `DB`.
#[diagnostic::on_unimplemented(
    message = "a `{Self}` field cannot hold its column (SQL type `{ST}`) on {DB}",
    label = "this field's type does not match its column in `table!`",
    note = "diesel loads a `{ST}` column into a type implementing `FromSql<{ST}, {DB}>` and writes it from `ToSql<{ST}, {DB}>`; \
            see \"Column types\" in the README (exact decimals and UUIDs on SQLite: `cqrs_core::types`)"
)]
pub trait ColumnType<ST, DB> {}

impl<T, ST, DB> ColumnType<ST, DB> for T
where
    T: FromSql<ST, DB> + ToSql<ST, DB> + AsExpression<ST>,
    ST: SqlType + TypedExpressionType,
    DB: Backend,
{
}

/// Fails to compile, on the field's type, when `T` cannot hold a column of SQL type `ST`.
pub const fn assert_column_type<ST, DB, T: ColumnType<ST, DB>>() {}
