//! The key case conversions of django-microservices-communication, which uses
//! `djangorestframework-camel-case` 1.4 with its default options: payloads are camelized when
//! published and whole bodies underscoreized when received. The patterns below are that
//! package's, so keys round-trip exactly as they do between two Django services.

use std::sync::LazyLock;

use fancy_regex::{Captures, Regex};
use serde_json::{Map, Value};

/// `camelize_re` of `djangorestframework_camel_case.util`.
static CAMELIZE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"[a-z0-9]?_[a-z0-9]").ok());

/// `get_underscoreize_re` with `no_underscore_before_number` unset (the default).
static UNDERSCOREIZE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"([a-z0-9]|[A-Z]?(?=[A-Z0-9](?=[a-z0-9]|(?<![A-Z])$)))([A-Z]|(?<=[a-z])[0-9](?=[0-9A-Z]|$)|(?<=[A-Z])[0-9](?=[0-9]|$))",
    )
    .ok()
});

/// `snake_case` keys, at every depth, to `camelCase` (`user_id` → `userId`, `a_1` → `a1`).
///
/// ```
/// use cqrs_core::event::case::camelize;
/// let v = camelize(serde_json::json!({"book_id": 1, "tags": [{"tag_name": "x"}]}));
/// assert_eq!(v, serde_json::json!({"bookId": 1, "tags": [{"tagName": "x"}]}));
/// ```
pub fn camelize(value: Value) -> Value {
    map_keys(value, &|key| {
        if !key.contains('_') {
            return key.to_owned();
        }
        match CAMELIZE.as_ref() {
            Some(re) => re
                .replace_all(key, |c: &Captures<'_>| {
                    let group: Vec<char> = c[0].chars().collect();
                    match group.as_slice() {
                        [first, '_', last] => format!("{first}{}", last.to_ascii_uppercase()),
                        [_, last] => last.to_ascii_uppercase().to_string(),
                        _ => c[0].to_owned(),
                    }
                })
                .into_owned(),
            None => key.to_owned(),
        }
    })
}

/// `camelCase` keys, at every depth, to `snake_case` (`userId` → `user_id`, `eventId` →
/// `event_id`); keys already in snake case are kept.
///
/// ```
/// use cqrs_core::event::case::underscoreize;
/// let v = underscoreize(serde_json::json!({"eventId": 7, "payload": {"bookId": 1}}));
/// assert_eq!(v, serde_json::json!({"event_id": 7, "payload": {"book_id": 1}}));
/// ```
pub fn underscoreize(value: Value) -> Value {
    map_keys(value, &|key| match UNDERSCOREIZE.as_ref() {
        Some(re) => re.replace_all(key, "${1}_${2}").to_lowercase(),
        None => key.to_owned(),
    })
}

fn map_keys(value: Value, f: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (f(&k), map_keys(v, f)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| map_keys(v, f)).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Pairs computed with `djangorestframework_camel_case.util` 1.4.2 (Python 3.11).
    #[test]
    fn keys_convert_as_the_python_package_does() {
        for (snake, camel) in [
            ("user_id", "userId"),
            ("a_1", "a1"),
            ("event_type", "eventType"),
            ("_private", "Private"),
            ("already", "already"),
            ("two__under", "two_Under"),
            ("html_2_pdf", "html2Pdf"),
        ] {
            assert_eq!(
                camelize(json!({ snake: 0 })),
                json!({ camel: 0 }),
                "{snake}"
            );
        }
        for (camel, snake) in [
            ("userId", "user_id"),
            ("eventId", "event_id"),
            ("event_time", "event_time"),
            ("HTTPResponse", "http_response"),
            ("a1", "a_1"),
            ("html2Pdf", "html_2_pdf"),
            ("expiredTime", "expired_time"),
        ] {
            assert_eq!(
                underscoreize(json!({ camel: 0 })),
                json!({ snake: 0 }),
                "{camel}"
            );
        }
    }

    #[test]
    fn values_are_left_alone() {
        let v = json!({"a_b": "c_d", "list": ["x_y", {"e_f": null}]});
        assert_eq!(
            camelize(v),
            json!({"aB": "c_d", "list": ["x_y", {"eF": null}]})
        );
    }
}
