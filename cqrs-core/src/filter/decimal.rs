//! Lookups on decimal columns that compare numbers, whatever the column stores: on SQLite a
//! `Numeric` column holds a double and a [`crate::types::DecimalText`] column text, so both are
//! compared as `CAST(column AS REAL)`; on PostgreSQL a `DecimalText` column is compared as
//! `CAST(column AS NUMERIC)`, exactly. The column name comes from the model's derive (an
//! identifier of its `table!`), every value is a bound parameter: no filter text reaches SQL.

use diesel::dsl::sql;
use diesel::sql_types::Bool;

use super::{BoxedFilter, FilterError, Lookup, LookupOp, isnull_operand, not_text, operand};

/// `"column"` as SQL (an identifier of the model's `table!`, quoted).
fn quoted(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

/// The comparison operator of a lookup, `None` for the other kinds.
fn operator(op: LookupOp) -> Option<&'static str> {
    match op {
        LookupOp::Exact => Some("="),
        LookupOp::Gt => Some(">"),
        LookupOp::Gte => Some(">="),
        LookupOp::Lt => Some("<"),
        LookupOp::Lte => Some("<="),
        _ => None,
    }
}

macro_rules! decimal_lookup {
    ($name:ident, $backend:ty, $cast:literal, $bind_ty:ty, $value:ty, $convert:expr) => {
        /// A lookup on the decimal column `column` as a predicate comparing numbers.
        pub fn $name<Tab: 'static>(
            lookup: &Lookup,
            column: &str,
        ) -> Result<BoxedFilter<Tab, $backend>, FilterError> {
            let col = quoted(column);
            let convert = $convert;
            let compare = |op: &str, value: $value| -> BoxedFilter<Tab, $backend> {
                Box::new(
                    sql::<Bool>(&format!(concat!("CAST({} AS ", $cast, ") {} "), col, op))
                        .bind::<$bind_ty, _>(value),
                )
            };
            let null = |is: bool| -> BoxedFilter<Tab, $backend> {
                Box::new(sql::<Bool>(&format!(
                    "{col} IS {}NULL",
                    if is { "" } else { "NOT " }
                )))
            };
            Ok(match lookup.op {
                LookupOp::Exact if lookup.value.is_null() => null(true),
                LookupOp::IsNull => null(isnull_operand(lookup)?),
                LookupOp::In => {
                    let values: Vec<bigdecimal::BigDecimal> = operand(lookup)?;
                    let mut any: BoxedFilter<Tab, $backend> = Box::new(sql::<Bool>("1 = 0"));
                    for value in values {
                        any = Box::new(diesel::BoolExpressionMethods::or(
                            any,
                            compare("=", convert(&value)),
                        ));
                    }
                    any
                }
                op => match operator(op) {
                    Some(sql_op) => {
                        let value: bigdecimal::BigDecimal = operand(lookup)?;
                        compare(sql_op, convert(&value))
                    }
                    None => return Err(not_text(lookup)),
                },
            })
        }
    };
}

#[cfg(feature = "sqlite")]
decimal_lookup!(
    sqlite,
    diesel::sqlite::Sqlite,
    "REAL",
    diesel::sql_types::Double,
    f64,
    |d: &bigdecimal::BigDecimal| bigdecimal::ToPrimitive::to_f64(d).unwrap_or(f64::NAN)
);

#[cfg(feature = "postgres")]
decimal_lookup!(
    postgres,
    diesel::pg::Pg,
    "NUMERIC",
    diesel::sql_types::Numeric,
    bigdecimal::BigDecimal,
    |d: &bigdecimal::BigDecimal| d.clone()
);
