//! Conversion of field values to and from the wire format (`docs/protocol.md`, "Row
//! serialization").
//!
//! Every field type of a master or replica model implements [`CqrsValue`]: the derive calls
//! [`CqrsValue::to_cqrs`] to serialize a row and [`CqrsValue::from_cqrs`] to read a message.
//! The forms are django-cqrs's: dates `YYYY-MM-DD`, datetimes as Python's `str()` of an aware
//! datetime (`2026-11-22 06:20:48.557649+00:00`), decimals as JSON numbers, UUIDs as hyphenated
//! strings. Reading is lenient where Django is (RFC 3339 with `T`, decimals as strings).

use std::fmt;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Timelike, Utc,
};
use serde_json::{Map, Number, Value};

/// A value that has the wrong JSON type or cannot be parsed.
///
/// Always a permanent error: the same payload fails the same way on every retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found}")]
pub struct ValueError {
    /// What the field accepts, e.g. "a date `YYYY-MM-DD`".
    pub expected: &'static str,
    /// A short rendering of what was received.
    pub found: String,
}

impl ValueError {
    /// Builds the error for `value`, which is not `expected`.
    pub fn new(expected: &'static str, value: &Value) -> Self {
        Self {
            expected,
            found: describe(value),
        }
    }
}

/// A short human description of a JSON value for error messages (truncated).
pub fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut text = value.to_string();
    if text.len() > 60 {
        let mut cut = 57;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{kind} {text}")
}

/// A Rust type that can travel in `instance_data`.
///
/// Implemented for the common diesel field types; implement it for your own newtypes to use
/// them in a model.
///
/// ```
/// use cqrs_core::value::{CqrsValue, ValueError};
/// use serde_json::{json, Value};
///
/// struct Cents(i64);
/// impl CqrsValue for Cents {
///     fn to_cqrs(&self) -> Value { json!(self.0) }
///     fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
///         i64::from_cqrs(value).map(Cents)
///     }
/// }
/// assert_eq!(Cents(5).to_cqrs(), json!(5));
/// ```
pub trait CqrsValue: Sized {
    /// The wire form of this value.
    fn to_cqrs(&self) -> Value;
    /// Reads the wire form.
    fn from_cqrs(value: &Value) -> Result<Self, ValueError>;
    /// The value a missing key stands for, if the field may be absent (`None` for `Option`).
    fn when_missing() -> Option<Self> {
        None
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl CqrsValue for $t {
            fn to_cqrs(&self) -> Value {
                Value::from(*self)
            }
            fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
                const EXPECTED: &str = concat!("an integer that fits `", stringify!($t), "`");
                let parsed = match value {
                    Value::Number(n) => n
                        .as_i64()
                        .and_then(|v| <$t>::try_from(v).ok())
                        .or_else(|| n.as_u64().and_then(|v| <$t>::try_from(v).ok())),
                    // Django sometimes sends integer primary keys as strings (str(pk)).
                    Value::String(s) => s.trim().parse::<$t>().ok(),
                    _ => None,
                };
                parsed.ok_or_else(|| ValueError::new(EXPECTED, value))
            }
        }
    )*};
}
int_value!(i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! float_value {
    ($($t:ty),*) => {$(
        impl CqrsValue for $t {
            fn to_cqrs(&self) -> Value {
                Number::from_f64(f64::from(*self)).map_or(Value::Null, Value::Number)
            }
            #[allow(clippy::cast_possible_truncation, reason = "f32 fields accept f64 JSON numbers")]
            fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
                match value {
                    Value::Number(n) => n.as_f64().map(|v| v as $t),
                    Value::String(s) => s.trim().parse::<$t>().ok(),
                    _ => None,
                }
                .ok_or_else(|| ValueError::new("a number", value))
            }
        }
    )*};
}
float_value!(f32, f64);

impl CqrsValue for bool {
    fn to_cqrs(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        value
            .as_bool()
            .ok_or_else(|| ValueError::new("a boolean", value))
    }
}

impl CqrsValue for String {
    fn to_cqrs(&self) -> Value {
        Value::String(self.clone())
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            // A CharField on a Django replica stores str(value) for numbers; do the same.
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(ValueError::new("a string", value)),
        }
    }
}

impl<T: CqrsValue> CqrsValue for Option<T> {
    fn to_cqrs(&self) -> Value {
        self.as_ref().map_or(Value::Null, CqrsValue::to_cqrs)
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        if value.is_null() {
            Ok(None)
        } else {
            T::from_cqrs(value).map(Some)
        }
    }
    fn when_missing() -> Option<Self> {
        Some(None)
    }
}

impl<T: CqrsValue> CqrsValue for Vec<T> {
    fn to_cqrs(&self) -> Value {
        Value::Array(self.iter().map(CqrsValue::to_cqrs).collect())
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        value
            .as_array()
            .ok_or_else(|| ValueError::new("an array", value))?
            .iter()
            .map(T::from_cqrs)
            .collect()
    }
}

impl CqrsValue for Value {
    fn to_cqrs(&self) -> Value {
        self.clone()
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        Ok(value.clone())
    }
    fn when_missing() -> Option<Self> {
        Some(Value::Null)
    }
}

impl CqrsValue for Map<String, Value> {
    fn to_cqrs(&self) -> Value {
        Value::Object(self.clone())
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        value
            .as_object()
            .cloned()
            .ok_or_else(|| ValueError::new("an object", value))
    }
}

impl CqrsValue for uuid::Uuid {
    fn to_cqrs(&self) -> Value {
        Value::String(self.hyphenated().to_string())
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        value
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s.trim()).ok())
            .ok_or_else(|| ValueError::new("a UUID string", value))
    }
}

impl CqrsValue for BigDecimal {
    /// django-cqrs (ujson) sends `Decimal` as a JSON float: `Decimal('12.00')` becomes `12.0`.
    fn to_cqrs(&self) -> Value {
        self.to_string()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number)
    }
    /// Refuses a decimal beyond the range of a double (`"1e400"`): the wire format carries
    /// decimals as JSON floats, and SQLite stores `Numeric` as a double, where it would
    /// become infinity and make the row unreadable.
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        const EXPECTED: &str = "a decimal number within ±1.8e308";
        match value {
            // Display of a JSON number is its shortest exact text (`19.99`), not the f64 binary.
            Value::Number(n) => BigDecimal::from_str(&n.to_string()).ok(),
            // Django REST framework serializers send decimals as strings.
            Value::String(s) => BigDecimal::from_str(s.trim()).ok(),
            _ => None,
        }
        .filter(|d| bigdecimal::ToPrimitive::to_f64(d).is_some_and(f64::is_finite))
        .ok_or_else(|| ValueError::new(EXPECTED, value))
    }
}

impl CqrsValue for NaiveDate {
    fn to_cqrs(&self) -> Value {
        Value::String(self.format("%Y-%m-%d").to_string())
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        value
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok())
            .ok_or_else(|| ValueError::new("a date `YYYY-MM-DD`", value))
    }
}

impl CqrsValue for NaiveTime {
    fn to_cqrs(&self) -> Value {
        Value::String(format_time(*self))
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        value
            .as_str()
            .and_then(|s| {
                let s = s.trim();
                NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
                    .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
                    .ok()
            })
            .ok_or_else(|| ValueError::new("a time `HH:MM:SS[.ffffff]`", value))
    }
}

const DATETIME_EXPECTED: &str = "a datetime `YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]`";

impl CqrsValue for DateTime<Utc> {
    fn to_cqrs(&self) -> Value {
        Value::String(format_datetime(self))
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        DateTime::<FixedOffset>::from_cqrs(value).map(|dt| dt.with_timezone(&Utc))
    }
}

impl CqrsValue for DateTime<FixedOffset> {
    fn to_cqrs(&self) -> Value {
        Value::String(format_datetime(self))
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        value
            .as_str()
            .and_then(parse_datetime)
            .ok_or_else(|| ValueError::new(DATETIME_EXPECTED, value))
    }
}

/// A `NaiveDateTime` field holds UTC: it is sent with `+00:00` and an aware value is
/// converted to UTC on the way in.
impl CqrsValue for NaiveDateTime {
    fn to_cqrs(&self) -> Value {
        Value::String(format_datetime(&self.and_utc()))
    }
    fn from_cqrs(value: &Value) -> Result<Self, ValueError> {
        value
            .as_str()
            .and_then(parse_datetime)
            .map(|dt| dt.naive_utc())
            .ok_or_else(|| ValueError::new(DATETIME_EXPECTED, value))
    }
}

/// Formats a datetime as Python's `str()` of an aware datetime: space separator, microseconds
/// only when non-zero, `+HH:MM` offset.
pub fn format_datetime<Tz: chrono::TimeZone>(dt: &DateTime<Tz>) -> String
where
    Tz::Offset: fmt::Display,
{
    let fixed = dt.fixed_offset();
    let micros = fixed.nanosecond() / 1_000;
    let offset = fixed.offset().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs();
    let base = fixed.format("%Y-%m-%d %H:%M:%S");
    if micros == 0 {
        format!("{base}{sign}{:02}:{:02}", offset / 3600, offset % 3600 / 60)
    } else {
        format!(
            "{base}.{micros:06}{sign}{:02}:{:02}",
            offset / 3600,
            offset % 3600 / 60
        )
    }
}

fn format_time(t: NaiveTime) -> String {
    let micros = t.nanosecond() / 1_000;
    if micros == 0 {
        t.format("%H:%M:%S").to_string()
    } else {
        format!("{}.{micros:06}", t.format("%H:%M:%S"))
    }
}

/// Formats an expiry as django-cqrs does: `isoformat()` with whole seconds.
pub fn format_expires(dt: &DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Parses a datetime in any form Django produces or accepts: Python's `str()` form, ISO 8601 /
/// RFC 3339 with `T` or a space, `Z` or `±HH:MM`/`±HHMM`/`±HH` offsets, 0 to 9 fractional
/// digits. A value without offset is taken as UTC.
pub fn parse_datetime(text: &str) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    if text.len() < 16 || !text.is_char_boundary(10) || !text.is_char_boundary(11) {
        return None;
    }
    let (date, rest) = text.split_at(10);
    let sep = rest.as_bytes()[0];
    if sep != b'T' && sep != b' ' && sep != b't' {
        return None;
    }
    let rest = &rest[1..];
    // Split the time from the offset: the offset starts at 'Z', '+' or the last '-'.
    let (time, offset) = match rest.find(['Z', 'z', '+']).or_else(|| rest.rfind('-')) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M"))
        .ok()?;
    let offset = parse_offset(offset)?;
    date.and_time(time).and_local_timezone(offset).single()
}

fn parse_offset(text: &str) -> Option<FixedOffset> {
    if text.is_empty() || text.eq_ignore_ascii_case("z") {
        return FixedOffset::east_opt(0);
    }
    let sign = match text.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// The current time truncated to microseconds, the precision of the wire format and of both
/// databases.
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    let micros = now.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(now)
}

/// The text key of a primary key value, used for tombstones, per-row routing and logs:
/// strings as they are, anything else as its JSON text.
pub fn pk_key(pk: &Value) -> String {
    match pk {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Bridges a timestamp column type to and from UTC; implemented for the two types a
/// `cqrs_updated` field may have.
pub trait CqrsTimestamp: Sized {
    /// This timestamp as UTC.
    fn to_utc(&self) -> DateTime<Utc>;
    /// The timestamp for a UTC instant.
    fn from_utc(utc: DateTime<Utc>) -> Self;
}

impl CqrsTimestamp for DateTime<Utc> {
    fn to_utc(&self) -> DateTime<Utc> {
        *self
    }
    fn from_utc(utc: DateTime<Utc>) -> Self {
        utc
    }
}

impl CqrsTimestamp for NaiveDateTime {
    fn to_utc(&self) -> DateTime<Utc> {
        self.and_utc()
    }
    fn from_utc(utc: DateTime<Utc>) -> Self {
        utc.naive_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn datetimes_round_trip_in_python_str_form() {
        let text = "2026-11-22 06:20:48.557649+00:00";
        let dt = DateTime::<Utc>::from_cqrs(&json!(text)).unwrap();
        assert_eq!(dt.to_cqrs(), json!(text));
        let whole = DateTime::<Utc>::from_cqrs(&json!("2026-11-22T06:20:48Z")).unwrap();
        assert_eq!(whole.to_cqrs(), json!("2026-11-22 06:20:48+00:00"));
    }

    #[test]
    fn datetimes_accept_every_django_form() {
        let expected = DateTime::<Utc>::from_cqrs(&json!("2026-11-22 06:20:48.5+00:00")).unwrap();
        for form in [
            "2026-11-22T06:20:48.500000+00:00",
            "2026-11-22T06:20:48.5Z",
            "2026-11-22 08:20:48.5+02:00",
            "2026-11-22 08:20:48.5+0200",
            "2026-11-22T03:20:48.500-03",
            "2026-11-22 06:20:48.500000",
            "2026-11-22T06:20:48.500000000Z",
        ] {
            assert_eq!(
                DateTime::<Utc>::from_cqrs(&json!(form)).unwrap(),
                expected,
                "{form}"
            );
        }
        for bad in [
            "2026-13-22 06:20:48",
            "yesterday",
            "2026-11-22",
            "",
            "2026-11-22X06:20",
        ] {
            assert!(DateTime::<Utc>::from_cqrs(&json!(bad)).is_err(), "{bad}");
        }
        let err = DateTime::<Utc>::from_cqrs(&json!(5)).unwrap_err();
        assert_eq!(err.found, "number 5");
    }

    #[test]
    fn negative_offsets_format_like_python() {
        let dt = parse_datetime("2026-11-22 01:20:48-05:30").unwrap();
        assert_eq!(format_datetime(&dt), "2026-11-22 01:20:48-05:30");
    }

    #[test]
    fn decimals_are_numbers_like_ujson() {
        let d = BigDecimal::from_str("12.00").unwrap();
        assert_eq!(serde_json::to_string(&d.to_cqrs()).unwrap(), "12.0");
        let d = BigDecimal::from_str("19.99").unwrap();
        assert_eq!(serde_json::to_string(&d.to_cqrs()).unwrap(), "19.99");
        assert_eq!(
            BigDecimal::from_cqrs(&json!(19.99)).unwrap(),
            BigDecimal::from_str("19.99").unwrap()
        );
        assert_eq!(
            BigDecimal::from_cqrs(&json!("7.50")).unwrap(),
            BigDecimal::from_str("7.5").unwrap()
        );
        assert!(BigDecimal::from_cqrs(&json!(true)).is_err());
        // beyond a double: refused, never stored as infinity
        for huge in [json!("1e400"), json!("-1e400"), json!("NaN"), json!("inf")] {
            assert!(BigDecimal::from_cqrs(&huge).is_err(), "{huge}");
        }
        assert!(BigDecimal::from_cqrs(&json!("1e300")).is_ok());
    }

    #[test]
    fn integers_check_range_and_type() {
        assert_eq!(i32::from_cqrs(&json!(7)).unwrap(), 7);
        assert_eq!(i32::from_cqrs(&json!("7")).unwrap(), 7);
        assert!(i32::from_cqrs(&json!(1_i64 << 40)).is_err());
        assert!(i32::from_cqrs(&json!(1.5)).is_err());
        assert!(i16::from_cqrs(&json!(null)).is_err());
        assert_eq!(Option::<i16>::from_cqrs(&json!(null)).unwrap(), None);
        assert_eq!(Option::<i16>::when_missing(), Some(None));
        assert_eq!(i16::when_missing(), None);
    }

    #[test]
    fn other_scalars() {
        let u = uuid::Uuid::parse_str("6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f").unwrap();
        assert_eq!(u.to_cqrs(), json!("6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f"));
        assert!(uuid::Uuid::from_cqrs(&json!("nope")).is_err());
        let d = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        assert_eq!(d.to_cqrs(), json!("2026-01-02"));
        assert!(NaiveDate::from_cqrs(&json!("2026-02-30")).is_err());
        assert_eq!(String::from_cqrs(&json!(12)).unwrap(), "12");
        assert!(String::from_cqrs(&json!([1])).is_err());
        assert!(bool::from_cqrs(&json!("true")).is_err());
        let t = NaiveTime::from_hms_micro_opt(1, 2, 3, 4).unwrap();
        assert_eq!(t.to_cqrs(), json!("01:02:03.000004"));
        assert_eq!(f64::NAN.to_cqrs(), Value::Null);
    }

    #[test]
    fn expires_is_isoformat_seconds() {
        let dt = DateTime::<Utc>::from_cqrs(&json!("2026-11-23 06:20:48.9+00:00")).unwrap();
        assert_eq!(format_expires(&dt), "2026-11-23T06:20:48+00:00");
    }

    #[test]
    fn describe_truncates() {
        let long = json!("x".repeat(500));
        assert!(describe(&long).len() < 80);
        assert_eq!(describe(&json!(null)), "null");
    }
}
