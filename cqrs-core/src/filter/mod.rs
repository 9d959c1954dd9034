//! Django-style lookup filters (`{"price__gt": 10, "id__in": [1, 2]}`) turned into diesel
//! expressions, never SQL text.
//!
//! [`parse_lookups`] checks the shape; each model's derive-generated `db_lookup` turns one
//! [`Lookup`] on one of its fields into a typed diesel predicate ([`BoxedFilter`]).

use std::fmt;

use serde_json::Value;

use crate::value::ValueError;

pub mod decimal;

/// A boxed diesel predicate on one table.
pub type BoxedFilter<Tab, DB> =
    Box<dyn diesel::BoxableExpression<Tab, DB, SqlType = diesel::sql_types::Bool>>;

/// One Django lookup operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupOp {
    /// `field` or `field__exact` (`null` means IS NULL).
    Exact,
    /// `field__in`: a JSON array.
    In,
    /// `field__gt`.
    Gt,
    /// `field__gte`.
    Gte,
    /// `field__lt`.
    Lt,
    /// `field__lte`.
    Lte,
    /// `field__isnull`: `true` or `false`.
    IsNull,
    /// `field__contains` (text fields).
    Contains,
    /// `field__startswith` (text fields).
    StartsWith,
    /// `field__endswith` (text fields).
    EndsWith,
}

impl LookupOp {
    /// Every lookup, in the order they are listed in errors.
    pub const ALL: &'static [LookupOp] = &[
        Self::Exact,
        Self::In,
        Self::Gt,
        Self::Gte,
        Self::Lt,
        Self::Lte,
        Self::IsNull,
        Self::Contains,
        Self::StartsWith,
        Self::EndsWith,
    ];

    /// The Django suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::In => "in",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::IsNull => "isnull",
            Self::Contains => "contains",
            Self::StartsWith => "startswith",
            Self::EndsWith => "endswith",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|op| op.as_str() == text)
    }

    /// Whether the lookup only applies to text fields.
    pub fn is_text_only(self) -> bool {
        matches!(self, Self::Contains | Self::StartsWith | Self::EndsWith)
    }
}

impl fmt::Display for LookupOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `field__lookup: value` pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// The field name (`pk` is resolved to the primary key by the model).
    pub field: String,
    /// The operator.
    pub op: LookupOp,
    /// The operand.
    pub value: Value,
}

/// An invalid filter. The message lists what is valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The filter is not valid JSON.
    #[error("filter is not valid JSON: {0}")]
    NotJson(String),
    /// The filter is not a JSON object.
    #[error("filter must be a JSON object of Django lookups, like {{\"id__in\": [1, 2]}}")]
    NotObject,
    /// The field does not exist on the model.
    #[error("unknown field `{field}` in filter; valid fields: {valid}")]
    UnknownField {
        /// The field given.
        field: String,
        /// The model's fields, comma-separated.
        valid: String,
    },
    /// The lookup suffix is unknown.
    #[error("unknown lookup `{lookup}` in `{key}`; valid lookups: {valid}")]
    UnknownLookup {
        /// The whole key.
        key: String,
        /// The suffix given.
        lookup: String,
        /// The valid suffixes.
        valid: String,
    },
    /// The lookup does not apply to this field's type.
    #[error("lookup `{op}` does not apply to field `{field}` ({reason})")]
    Unsupported {
        /// The field.
        field: String,
        /// The lookup.
        op: LookupOp,
        /// Why.
        reason: &'static str,
    },
    /// The operand has the wrong type.
    #[error("filter `{field}__{op}`: {source}")]
    BadValue {
        /// The field.
        field: String,
        /// The lookup.
        op: LookupOp,
        /// What was wrong.
        #[source]
        source: ValueError,
    },
}

impl FilterError {
    /// An unknown-field error listing `valid`.
    pub fn unknown_field(field: &str, valid: &[&str]) -> Self {
        Self::UnknownField {
            field: field.to_owned(),
            valid: valid.join(", "),
        }
    }
}

/// Parses a filter given as JSON text (the CLI's `--filter`).
pub fn parse_filter_text(text: &str) -> Result<Vec<Lookup>, FilterError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FilterError::NotJson(e.to_string()))?;
    parse_lookups(&value)
}

/// Splits a JSON object of Django lookups into [`Lookup`]s. Field names are not checked here;
/// the model does that.
pub fn parse_lookups(filter: &Value) -> Result<Vec<Lookup>, FilterError> {
    let object = filter.as_object().ok_or(FilterError::NotObject)?;
    object
        .iter()
        .map(|(key, value)| {
            let (field, op) = match key.rsplit_once("__") {
                Some((field, suffix)) => match LookupOp::parse(suffix) {
                    Some(op) => (field, op),
                    None => {
                        return Err(FilterError::UnknownLookup {
                            key: key.clone(),
                            lookup: suffix.to_owned(),
                            valid: LookupOp::ALL
                                .iter()
                                .map(|op| op.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                },
                None => (key.as_str(), LookupOp::Exact),
            };
            Ok(Lookup {
                field: field.to_owned(),
                op,
                value: value.clone(),
            })
        })
        .collect()
}

/// The `LIKE` pattern for a text lookup, with `%`, `_` and `\` escaped (use `ESCAPE '\'`).
pub fn like_pattern(op: LookupOp, text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    match op {
        LookupOp::StartsWith => format!("{escaped}%"),
        LookupOp::EndsWith => format!("%{escaped}"),
        _ => format!("%{escaped}%"),
    }
}

/// Reads a lookup operand as `T`, or an array of `T` for `__in`.
pub fn operand<T: crate::value::CqrsValue>(lookup: &Lookup) -> Result<T, FilterError> {
    T::from_cqrs(&lookup.value).map_err(|source| FilterError::BadValue {
        field: lookup.field.clone(),
        op: lookup.op,
        source,
    })
}

/// Reads the boolean operand of `__isnull`.
pub fn isnull_operand(lookup: &Lookup) -> Result<bool, FilterError> {
    operand::<bool>(lookup)
}

/// The error for a text-only lookup on a non-text field.
pub fn not_text(lookup: &Lookup) -> FilterError {
    FilterError::Unsupported {
        field: lookup.field.clone(),
        op: lookup.op,
        reason: "only text fields support it",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_lookups() {
        let lookups =
            parse_lookups(&json!({"id__in": [1, 2], "title": "x", "a__b__gt": 3})).unwrap();
        assert_eq!(lookups.len(), 3);
        assert!(
            lookups
                .iter()
                .any(|l| l.field == "a__b" && l.op == LookupOp::Gt)
        );
        assert!(
            lookups
                .iter()
                .any(|l| l.field == "title" && l.op == LookupOp::Exact)
        );
    }

    #[test]
    fn errors_list_the_valid_choices() {
        let err = parse_lookups(&json!({"id__near": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown lookup `near`"), "{err}");
        assert!(err.contains("exact, in, gt, gte, lt, lte, isnull, contains, startswith"));
        assert_eq!(
            parse_lookups(&json!([1])).unwrap_err(),
            FilterError::NotObject
        );
        assert!(matches!(
            parse_filter_text("{"),
            Err(FilterError::NotJson(_))
        ));
        let err = FilterError::unknown_field("nope", &["id", "title"]).to_string();
        assert_eq!(
            err,
            "unknown field `nope` in filter; valid fields: id, title"
        );
    }

    #[test]
    fn like_patterns_escape() {
        assert_eq!(
            like_pattern(LookupOp::Contains, "50%_a\\"),
            "%50\\%\\_a\\\\%"
        );
        assert_eq!(like_pattern(LookupOp::StartsWith, "ab"), "ab%");
        assert_eq!(like_pattern(LookupOp::EndsWith, "ab"), "%ab");
    }
}
