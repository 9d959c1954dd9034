//! A received event, command or call, as handlers see it.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::HandlerKind;
use super::case::underscoreize;
use crate::error::HandlerError;

/// A delivery: where it came from and its body, underscoreized as the Python package's router
/// does before any handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// The JSON body, keys in snake case.
    pub body: Value,
    /// The AMQP `correlation_id`, if any.
    pub correlation_id: Option<String>,
}

impl Incoming {
    /// Reads a delivery's body: JSON, keys underscoreized.
    pub fn parse(
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        correlation_id: Option<String>,
    ) -> Result<Self, HandlerError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| HandlerError::Malformed(format!("the body is not JSON: {e}")))?;
        Ok(Self {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            body: underscoreize(value),
            correlation_id,
        })
    }

    fn object(&self) -> Result<&Map<String, Value>, HandlerError> {
        self.body
            .as_object()
            .ok_or_else(|| HandlerError::Malformed("the body is not a JSON object".into()))
    }

    fn field<T: DeserializeOwned>(&self, name: &str, value: Value) -> Result<T, HandlerError> {
        serde_json::from_value(value).map_err(|e| {
            HandlerError::Malformed(format!(
                "{} / {}: `{name}`: {e}",
                self.exchange, self.routing_key
            ))
        })
    }

    /// The event id (envelope `eventId`), for the inbox; `None` when it has none.
    pub fn event_id(&self) -> Option<String> {
        match self.body.get("event_id").or_else(|| self.body.get("id"))? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// `meta.expired_time` of a command or call, if it has one.
    pub fn expires(&self) -> Result<Option<DateTime<Utc>>, HandlerError> {
        match self.body.get("meta").and_then(|m| m.get("expired_time")) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_time(s).map(Some).ok_or_else(|| {
                HandlerError::Malformed(format!("meta.expiredTime {s:?} is not a time"))
            }),
            Some(other) => Err(HandlerError::Malformed(format!(
                "meta.expiredTime {other} is not a time"
            ))),
        }
    }
}

/// A time as Django's JSON encoder writes it (`2026-12-02T10:00:00.123Z`), or any RFC 3339.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// What a handler function takes as its message argument: [`Event`], [`Command`], [`Call`],
/// or the raw [`Incoming`].
pub trait FromIncoming: Sized {
    /// Which kind of handler takes it.
    const KIND: HandlerKind;
    /// Reads the message.
    fn from_incoming(incoming: &Incoming) -> Result<Self, HandlerError>;
}

impl FromIncoming for Incoming {
    const KIND: HandlerKind = HandlerKind::Raw;
    fn from_incoming(incoming: &Incoming) -> Result<Self, HandlerError> {
        Ok(incoming.clone())
    }
}

/// A domain event (what `@event_consumer` gives a Python handler).
#[derive(Debug, Clone, PartialEq)]
pub struct Event<P> {
    /// The event id.
    pub event_id: Option<String>,
    /// When it happened, if the envelope says.
    pub event_time: Option<DateTime<Utc>>,
    /// The aggregate (the exchange).
    pub aggregate: String,
    /// The event type (the routing key).
    pub event_type: String,
    /// The payload, keys in snake case.
    pub payload: P,
}

impl<P: DeserializeOwned> FromIncoming for Event<P> {
    const KIND: HandlerKind = HandlerKind::Event;
    fn from_incoming(incoming: &Incoming) -> Result<Self, HandlerError> {
        let body = incoming.object()?;
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
        let payload = body
            .get("payload")
            .cloned()
            .ok_or_else(|| HandlerError::Malformed("the event has no `payload`".into()))?;
        Ok(Self {
            event_id: incoming.event_id(),
            event_time: text("event_time").as_deref().and_then(parse_time),
            aggregate: text("aggregate").unwrap_or_else(|| incoming.exchange.clone()),
            event_type: text("event_type").unwrap_or_else(|| incoming.routing_key.clone()),
            payload: incoming.field("payload", payload)?,
        })
    }
}

/// A command (what `@command_consumer` gives a Python handler): an expired one never reaches
/// the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Command<A> {
    /// The command name (the routing key).
    pub name: String,
    /// The arguments, keys in snake case, without `meta`.
    pub arguments: A,
    /// When it expires.
    pub expires: Option<DateTime<Utc>>,
}

impl<A: DeserializeOwned> FromIncoming for Command<A> {
    const KIND: HandlerKind = HandlerKind::Command;
    fn from_incoming(incoming: &Incoming) -> Result<Self, HandlerError> {
        let mut body = incoming.object()?.clone();
        let expires = incoming.expires()?;
        body.remove("meta");
        Ok(Self {
            name: incoming.routing_key.clone(),
            arguments: incoming.field("arguments", Value::Object(body))?,
            expires,
        })
    }
}

/// Where a call's answer goes.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRoute {
    /// The call id, as the caller sent it.
    pub id: Value,
    /// The caller's reply exchange (`meta.replyTo`).
    pub reply_to: String,
    /// The exchange the call came to (this service).
    pub exchange: String,
    /// The method (the routing key).
    pub method: String,
}

impl CallRoute {
    pub(crate) fn of(incoming: &Incoming) -> Result<Self, HandlerError> {
        let body = incoming.object()?;
        let id = body
            .get("id")
            .cloned()
            .ok_or_else(|| HandlerError::Malformed("the call has no `id`".into()))?;
        let reply_to = body
            .get("meta")
            .and_then(|m| m.get("reply_to"))
            .and_then(Value::as_str)
            .ok_or_else(|| HandlerError::Malformed("the call has no `meta.replyTo`".into()))?;
        Ok(Self {
            id,
            reply_to: reply_to.to_owned(),
            exchange: incoming.exchange.clone(),
            method: incoming.routing_key.clone(),
        })
    }
}

/// A call (what `@call_consumer` gives a Python handler): the handler's return value is sent
/// to the caller in the handler's transaction; an expired call never reaches the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Call<D> {
    /// The call id.
    pub id: Value,
    /// The method (the routing key).
    pub method: String,
    /// The request data.
    pub data: D,
    /// When it expires.
    pub expires: Option<DateTime<Utc>>,
}

impl<D: DeserializeOwned> FromIncoming for Call<D> {
    const KIND: HandlerKind = HandlerKind::Call;
    fn from_incoming(incoming: &Incoming) -> Result<Self, HandlerError> {
        let route = CallRoute::of(incoming)?;
        let data = incoming
            .object()?
            .get("data")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        Ok(Self {
            id: route.id,
            method: route.method,
            data: incoming.field("data", data)?,
            expires: incoming.expires()?,
        })
    }
}

/// A call's answer (what `@call_response_consumer` gives a Python handler).
#[derive(Debug, Clone, PartialEq)]
pub struct CallResponse<D> {
    /// The call id.
    pub id: Value,
    /// The service that answered.
    pub service: String,
    /// The method called.
    pub method: String,
    /// The answer.
    pub data: D,
}

impl<D: DeserializeOwned> FromIncoming for CallResponse<D> {
    const KIND: HandlerKind = HandlerKind::Event;
    fn from_incoming(incoming: &Incoming) -> Result<Self, HandlerError> {
        let body = incoming.object()?;
        let mut parts = incoming.routing_key.splitn(3, '.');
        let (Some(_), Some(service), Some(method)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(HandlerError::Malformed(format!(
                "routing key {:?} is not call-response.<service>.<method>",
                incoming.routing_key
            )));
        };
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        Ok(Self {
            id: body.get("id").cloned().unwrap_or(Value::Null),
            service: service.to_owned(),
            method: method.to_owned(),
            data: incoming.field("data", data)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn incoming(body: &str) -> Result<Incoming, HandlerError> {
        Incoming::parse("svc", "send_sms", body.as_bytes(), None)
    }

    #[test]
    fn times_as_django_writes_them() {
        let t = parse_time("2026-12-02T10:00:00.123Z").unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 123);
        assert!(parse_time("2026-12-02T10:00:00.123456").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn bad_bodies_are_malformed_never_a_panic() {
        assert!(matches!(
            incoming("not json"),
            Err(HandlerError::Malformed(_))
        ));
        let list = incoming("[1]").unwrap();
        assert!(matches!(
            Command::<Value>::from_incoming(&list),
            Err(HandlerError::Malformed(_))
        ));
        let no_payload = incoming(r#"{"eventId": 1}"#).unwrap();
        assert!(matches!(
            Event::<Value>::from_incoming(&no_payload),
            Err(HandlerError::Malformed(_))
        ));
        let bad_time = incoming(r#"{"meta": {"expiredTime": 12}}"#).unwrap();
        assert!(matches!(
            bad_time.expires(),
            Err(HandlerError::Malformed(_))
        ));
        let no_reply = incoming(r#"{"id": 1, "data": {}}"#).unwrap();
        assert!(matches!(
            Call::<Value>::from_incoming(&no_reply),
            Err(HandlerError::Malformed(_))
        ));
    }

    #[test]
    fn a_command_loses_its_meta_and_keeps_snake_case() {
        let m = incoming(
            r#"{"phoneNumber": "+1", "meta": {"expiredTime": "2030-01-01T00:00:00.000Z"}}"#,
        )
        .unwrap();
        let c = Command::<Value>::from_incoming(&m).unwrap();
        assert_eq!(c.arguments, json!({"phone_number": "+1"}));
        assert!(c.expires.is_some());
        assert_eq!(m.event_id(), None);
    }
}
