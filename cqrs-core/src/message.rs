//! The message body and routing keys (`docs/protocol.md`, "Message body" and "Broker
//! topology").

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::value::{describe, format_expires, parse_datetime};

/// What happened to the master row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SignalType {
    /// The row was created or updated.
    Save,
    /// The row was deleted; `instance_data` is the delete stub.
    Delete,
    /// A manual re-send of the current row (broadcast or to one replica queue).
    Sync,
}

impl SignalType {
    /// The wire spelling: `SAVE`, `DELETE`, `SYNC`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Save => "SAVE",
            Self::Delete => "DELETE",
            Self::Sync => "SYNC",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "SAVE" => Some(Self::Save),
            "DELETE" => Some(Self::Delete),
            "SYNC" => Some(Self::Sync),
            _ => None,
        }
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One CQRS message, as published by django-cqrs and by this framework.
///
/// Serializing it writes the keys in django-cqrs's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// `SAVE`, `DELETE` or `SYNC`.
    pub signal_type: SignalType,
    /// The model's stream id.
    pub cqrs_id: String,
    /// The serialized row, or the delete stub.
    pub instance_data: Map<String, Value>,
    /// Old values of tracked fields (`docs/protocol.md`, "Tracked fields").
    pub previous_data: Option<Map<String, Value>>,
    /// The row's primary key.
    pub instance_pk: Value,
    /// Set by the master's correlation function; used in logs.
    pub correlation_id: Option<String>,
    /// How many times a replica retried this message.
    pub retries: u32,
    /// When the message expires; `None` never.
    #[serde(serialize_with = "serialize_expires")]
    pub expires: Option<DateTime<Utc>>,
    /// Metadata from the master's meta function.
    pub meta: Option<Value>,
    /// The master never restarts a row's revisions (`"monotonic_revisions": true`, written by
    /// this framework's masters, ignored by django-cqrs): replicas order the row's versions,
    /// across deletes and re-creations, by revision alone. Without it (django-cqrs masters,
    /// whose re-created rows start again at 0), the order across a delete compares
    /// `cqrs_updated` (`cqrs_core::rules`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub monotonic_revisions: bool,
}

#[allow(
    clippy::ref_option,
    reason = "the signature serde's serialize_with requires"
)]
fn serialize_expires<S: Serializer>(
    expires: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match expires {
        Some(dt) => serializer.serialize_str(&format_expires(dt)),
        None => serializer.serialize_none(),
    }
}

/// Why a body cannot be read as a message. Such a message is never applied or retried: the
/// consumer moves it to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is empty.
    #[error("empty body")]
    Empty,
    /// The body is not JSON (or not UTF-8).
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("body is not a JSON object: {0}")]
    NotObject(String),
    /// A required key is absent.
    #[error("required key `{0}` is missing")]
    MissingKey(&'static str),
    /// A key has the wrong JSON type.
    #[error("key `{key}`: expected {expected}, found {found}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it must hold.
        expected: &'static str,
        /// What it held.
        found: String,
    },
}

impl Message {
    /// The master's `cqrs_updated` of this version (when the master committed it), if the
    /// message carries a readable one: the start of the replication lag.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        use crate::value::CqrsValue;
        DateTime::<Utc>::from_cqrs(self.instance_data.get("cqrs_updated")?).ok()
    }

    /// Builds a message with django-cqrs's defaults: no correlation id, 0 retries, the given
    /// expiry and `meta` = `{}`.
    pub fn new(
        signal_type: SignalType,
        cqrs_id: impl Into<String>,
        instance_data: Map<String, Value>,
        instance_pk: Value,
    ) -> Self {
        Self {
            signal_type,
            cqrs_id: cqrs_id.into(),
            instance_data,
            previous_data: None,
            instance_pk,
            correlation_id: None,
            retries: 0,
            expires: None,
            meta: Some(Value::Object(Map::new())),
            monotonic_revisions: false,
        }
    }

    /// Parses a body. `default_ttl` is the lifetime of a message without an `expires` key
    /// (django-cqrs treats such old messages as expiring one TTL from now); `expires: null`
    /// means never.
    pub fn parse(body: &[u8], default_ttl: Option<Duration>) -> Result<Self, MessageError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(MessageError::Empty);
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| MessageError::NotJson(e.to_string()))?;
        Self::from_value(value, default_ttl)
    }

    /// Reads a message from an already parsed body; see [`Message::parse`].
    pub fn from_value(value: Value, default_ttl: Option<Duration>) -> Result<Self, MessageError> {
        let Value::Object(mut map) = value else {
            return Err(MessageError::NotObject(describe(&value)));
        };
        let signal = take(&mut map, "signal_type")?;
        let signal_type = signal
            .as_str()
            .and_then(SignalType::parse)
            .ok_or_else(|| wrong("signal_type", "\"SAVE\", \"DELETE\" or \"SYNC\"", &signal))?;
        let cqrs_id = match take(&mut map, "cqrs_id")? {
            Value::String(s) if !s.is_empty() => s,
            other => return Err(wrong("cqrs_id", "a non-empty string", &other)),
        };
        let instance_data = match take(&mut map, "instance_data")? {
            Value::Object(m) => m,
            other => return Err(wrong("instance_data", "an object", &other)),
        };
        let instance_pk = take(&mut map, "instance_pk")?;
        if !matches!(instance_pk, Value::Number(_) | Value::String(_)) {
            return Err(wrong("instance_pk", "a number or a string", &instance_pk));
        }
        let previous_data = match map.remove("previous_data") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => return Err(wrong("previous_data", "an object or null", &other)),
        };
        let correlation_id = match map.remove("correlation_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => return Err(wrong("correlation_id", "a string or null", &other)),
        };
        let retries = match map.remove("retries") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|r| u32::try_from(r).ok())
                .ok_or_else(|| wrong("retries", "an integer >= 0", &v))?,
        };
        let expires = match map.remove("expires") {
            None => default_ttl.and_then(|ttl| {
                chrono::Duration::from_std(ttl)
                    .ok()
                    .and_then(|d| Utc::now().checked_add_signed(d))
            }),
            Some(Value::Null) => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(parse_datetime)
                    .map(|dt| dt.with_timezone(&Utc))
                    .ok_or_else(|| wrong("expires", "an ISO-8601 datetime or null", &v))?,
            ),
        };
        let meta = map.remove("meta");
        let monotonic_revisions = match map.remove("monotonic_revisions") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(other) => return Err(wrong("monotonic_revisions", "a boolean", &other)),
        };
        Ok(Self {
            signal_type,
            cqrs_id,
            instance_data,
            previous_data,
            instance_pk,
            correlation_id,
            retries,
            expires,
            meta,
            monotonic_revisions,
        })
    }

    /// The body as django-cqrs writes it (keys in its order).
    pub fn to_json(&self) -> String {
        // A Message holds only JSON-representable data; serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether the message has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// The text of the row's primary key: `instance_pk`, or the `id` of a DELETE stub that
    /// has none; `None` when the message names no row.
    pub fn row_pk(&self) -> Option<String> {
        if self.instance_pk.is_null() {
            self.instance_data.get("id").map(crate::value::pk_key)
        } else {
            Some(crate::value::pk_key(&self.instance_pk))
        }
    }
}

fn take(map: &mut Map<String, Value>, key: &'static str) -> Result<Value, MessageError> {
    map.remove(key).ok_or(MessageError::MissingKey(key))
}

fn wrong(key: &'static str, expected: &'static str, found: &Value) -> MessageError {
    MessageError::WrongType {
        key,
        expected,
        found: describe(found),
    }
}

/// The routing key of a message: `<cqrs_id>` for SAVE, DELETE and broadcast SYNC, and
/// `cqrs.<queue>.<cqrs_id>` for a message aimed at one queue (direct SYNC, retry, dead letter).
pub fn routing_key(cqrs_id: &str, queue: Option<&str>) -> String {
    match queue {
        Some(queue) => format!("cqrs.{queue}.{cqrs_id}"),
        None => cqrs_id.to_owned(),
    }
}

/// The queue where a replica service consuming `queue` keeps the retries of `cqrs_id` while
/// they wait out their delay: `cqrs.<queue>.delay.<cqrs_id>`.
pub fn delay_queue(queue: &str, cqrs_id: &str) -> String {
    format!("cqrs.{queue}.delay.{cqrs_id}")
}

/// Whether `routing_key` addresses `queue` directly (`cqrs.<queue>.<cqrs_id>`).
pub fn is_direct_to(routing_key: &str, queue: &str, cqrs_id: &str) -> bool {
    routing_key
        .strip_prefix("cqrs.")
        .and_then(|rest| rest.strip_prefix(queue))
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|rest| rest == cqrs_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SAMPLE: &str = r#"{"signal_type":"SAVE","cqrs_id":"book","instance_data":{"id":1,"title":"Dune","cqrs_revision":0,"cqrs_updated":"2026-11-22 06:20:48.557582+00:00"},"previous_data":{"title":null},"instance_pk":1,"correlation_id":null,"retries":0,"expires":"2026-11-23T06:20:48+00:00","meta":{}}"#;

    #[test]
    fn round_trips_key_order_and_forms() {
        let msg = Message::parse(SAMPLE.as_bytes(), None).unwrap();
        assert_eq!(msg.signal_type, SignalType::Save);
        assert_eq!(msg.to_json(), SAMPLE);
    }

    #[test]
    fn defaults_for_optional_keys() {
        let body = br#"{"signal_type":"SYNC","cqrs_id":"a","instance_data":{},"instance_pk":"x"}"#;
        let msg = Message::parse(body, Some(Duration::from_mins(1))).unwrap();
        assert_eq!(msg.retries, 0);
        assert!(msg.expires.is_some());
        assert!(!msg.is_expired(Utc::now()));
        let body = br#"{"signal_type":"SYNC","cqrs_id":"a","instance_data":{},"instance_pk":"x","expires":null,"extra":1}"#;
        assert_eq!(
            Message::parse(body, Some(Duration::from_secs(1)))
                .unwrap()
                .expires,
            None
        );
    }

    #[test]
    fn rejects_bad_bodies_with_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty body"),
            (b"not json", "body is not JSON"),
            (b"[1]", "not a JSON object"),
            (br#"{"cqrs_id":"a","instance_data":{},"instance_pk":1}"#, "`signal_type` is missing"),
            (br#"{"signal_type":"X","cqrs_id":"a","instance_data":{},"instance_pk":1}"#, "key `signal_type`"),
            (br#"{"signal_type":"SAVE","cqrs_id":"a","instance_data":[],"instance_pk":1}"#, "key `instance_data`"),
            (br#"{"signal_type":"SAVE","cqrs_id":"a","instance_data":{}}"#, "`instance_pk` is missing"),
            (br#"{"signal_type":"SAVE","cqrs_id":"a","instance_data":{},"instance_pk":1,"retries":-1}"#, "key `retries`"),
            (br#"{"signal_type":"SAVE","cqrs_id":"a","instance_data":{},"instance_pk":1,"expires":"soon"}"#, "key `expires`"),
            (b"\xff\xfe", "body is not JSON"),
            (br#"{"signal_type":"SAVE","cqrs_id":"a","instance_data":{},"instance_pk":1,"monotonic_revisions":1}"#, "key `monotonic_revisions`"),
        ];
        for (body, reason) in cases {
            let err = Message::parse(body, None).unwrap_err().to_string();
            assert!(err.contains(reason), "{err} should contain {reason}");
        }
    }

    #[test]
    fn routing_keys() {
        assert_eq!(routing_key("book", None), "book");
        assert_eq!(routing_key("book", Some("svc")), "cqrs.svc.book");
        assert_eq!(delay_queue("svc", "book"), "cqrs.svc.delay.book");
        assert!(is_direct_to("cqrs.svc.book", "svc", "book"));
        assert!(!is_direct_to("book", "svc", "book"));
        assert!(!is_direct_to("cqrs.other.book", "svc", "book"));
        assert!(!is_direct_to("cqrs.svc.author", "svc", "book"));
        let m = Message::new(SignalType::Delete, "x", Map::new(), json!(1));
        assert_eq!(m.meta, Some(json!({})));
    }
}
