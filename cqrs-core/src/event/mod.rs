//! Domain events, commands and calls, in django-microservices-communication's wire format,
//! through the same transactional outbox as row messages.
//!
//! Publishing writes an outbox row in the caller's transaction ([`publish`],
//! [`publish_aggregate_event`], [`publish_future_aggregate_event`], [`send_command`],
//! [`send_call`]): a rollback sends nothing, a commit cannot lose the message, and the relay
//! publishes it with publisher confirms to the exchange the message names (the aggregate for
//! an event, the service for a command or call).
//!
//! Consuming: functions marked `#[cqrs_core::handler(exchange = "...", routing_key = "...")]`
//! register a [`HandlerEntry`]; `cqrs_rabbit::EventConsumer` runs them, each in a database
//! transaction with [`dispatch`], and acknowledges after the commit.
//!
//! ```
//! # cqrs_core::__doc_fixtures!();
//! use cqrs_core::event::{self, DomainEvent};
//! #[derive(serde::Serialize)]
//! struct BookPublished { book_id: i32, title: String }
//! impl DomainEvent for BookPublished {
//!     const AGGREGATE: &'static str = "book";
//!     const EVENT_TYPE: &'static str = "published";
//! }
//! let conn = &mut connection();
//! let id = cqrs_core::transaction(conn, |conn| {
//!     event::publish(conn, &BookPublished { book_id: 1, title: "Dune".into() })
//! })?;
//! assert!(!id.is_empty());
//! # Ok::<_, cqrs_core::event::EventError>(())
//! ```

pub mod case;
mod dispatch;
mod handling;
mod incoming;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::db::{CqrsConnection, OutboxMessage};

pub use crate::error::{EventError, HandlerError};
#[doc(hidden)]
pub use dispatch::__private;
pub use dispatch::{DEFAULT_EXCHANGE, HandlerEntry, HandlerKind, Router};
pub use handling::{BatchItem, Handled, dispatch, dispatch_batch};
pub use incoming::{Call, CallResponse, CallRoute, Command, Event, FromIncoming, Incoming};

/// A typed domain event: its aggregate (the exchange) and event type (the routing key) are
/// declared once, with the payload's type.
pub trait DomainEvent: Serialize {
    /// The aggregate: the exchange the event is published to.
    const AGGREGATE: &'static str;
    /// The event type: the routing key.
    const EVENT_TYPE: &'static str;
}

/// When a command or call stops being worth executing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// Never.
    #[default]
    Never,
    /// This long after it is sent.
    After(std::time::Duration),
    /// At this time.
    At(DateTime<Utc>),
}

impl Expiry {
    fn time(self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, EventError> {
        match self {
            Self::Never => Ok(None),
            Self::After(d) => chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .map(Some)
                .ok_or(EventError::TimeoutOutOfRange),
            Self::At(t) if t <= now => Err(EventError::ExpiryInPast { at: t }),
            Self::At(t) => Ok(Some(t)),
        }
    }
}

/// The AMQP `app_id` of this process's messages: `CQRS_APP_ID`, else `anonymous` (the Python
/// package's default when `APP_ID` is unset).
fn app_id() -> &'static str {
    static APP_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        std::env::var("CQRS_APP_ID").unwrap_or_else(|_| "anonymous".to_owned())
    });
    &APP_ID
}

/// A time as Django's `DjangoJSONEncoder` writes it, always with milliseconds (the package's
/// command consumer parses `%Y-%m-%dT%H:%M:%S.%fZ`, so the fraction may not be left out).
pub fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn properties(message_id: &str, correlation_id: Option<&str>) -> String {
    let mut p = json!({
        "content_type": "text/json",
        "app_id": app_id(),
        "message_id": message_id,
        "headers": { crate::trace::HEADER: crate::trace::for_message().to_string() },
    });
    if let (Some(id), Some(map)) = (correlation_id, p.as_object_mut()) {
        map.insert("correlation_id".into(), Value::String(id.to_owned()));
    }
    p.to_string()
}

fn to_value(what: &'static str, payload: &impl Serialize) -> Result<Value, EventError> {
    serde_json::to_value(payload).map_err(|source| EventError::Serialize { what, source })
}

fn check_name(what: &'static str, name: &str) -> Result<(), EventError> {
    if name.is_empty() || name.len() > 255 {
        return Err(EventError::BadName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Writes one message to the outbox and wakes this process's relays.
fn enqueue<C: CqrsConnection>(
    conn: &mut C,
    exchange: &str,
    routing_key: &str,
    body: &Value,
    id: &str,
    not_before: Option<DateTime<Utc>>,
    tags: Option<String>,
) -> Result<(), EventError> {
    Outgoing::new(exchange, routing_key, body, id.to_owned()).write(conn, not_before, tags)?;
    Ok(())
}

fn event_body(
    id: &str,
    time: DateTime<Utc>,
    aggregate: &str,
    event_type: &str,
    payload: Value,
) -> Value {
    // keys and case exactly as `services_communication.publisher.events` writes them
    json!({
        "eventId": id,
        "event_time": format_time(time),
        "aggregate": aggregate,
        "event_type": event_type,
        "payload": case::camelize(payload),
    })
}

/// Publishes a typed event in the caller's transaction; returns its event id.
pub fn publish<C: CqrsConnection, E: DomainEvent>(
    conn: &mut C,
    event: &E,
) -> Result<String, EventError> {
    publish_aggregate_event(conn, E::AGGREGATE, E::EVENT_TYPE, event)
}

/// Publishes an event of `aggregate` (the exchange) with `event_type` (the routing key) in the
/// caller's transaction; returns its event id.
pub fn publish_aggregate_event<C: CqrsConnection>(
    conn: &mut C,
    aggregate: &str,
    event_type: &str,
    payload: &impl Serialize,
) -> Result<String, EventError> {
    add_event(conn, aggregate, event_type, payload, None, None)
}

/// Writes an event; a future one (`not_before`) has that `event_time` and waits until then.
fn add_event<C: CqrsConnection>(
    conn: &mut C,
    aggregate: &str,
    event_type: &str,
    payload: &impl Serialize,
    not_before: Option<DateTime<Utc>>,
    tags: Option<String>,
) -> Result<String, EventError> {
    check_name("the aggregate", aggregate)?;
    check_name("the event type", event_type)?;
    let id = uuid::Uuid::new_v4().to_string();
    let payload = to_value("the event payload", payload)?;
    let time = not_before.unwrap_or_else(Utc::now);
    let body = event_body(&id, time, aggregate, event_type, payload);
    enqueue(conn, aggregate, event_type, &body, &id, not_before, tags)?;
    Ok(id)
}

/// The tags column's form of a future event's tags: `|key=value|...|`, sorted.
fn tag_text(tags: &[(&str, &str)]) -> Result<Option<String>, EventError> {
    if tags.is_empty() {
        return Ok(None);
    }
    let mut parts: Vec<String> = Vec::with_capacity(tags.len());
    for (k, v) in tags {
        if k.contains(['|', '=']) || v.contains('|') {
            return Err(EventError::BadTag {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
            });
        }
        parts.push(format!("{k}={v}"));
    }
    parts.sort();
    Ok(Some(format!("|{}|", parts.join("|"))))
}

/// Publishes an event not before `at` (its `event_time`), cancellable until then by its tags
/// with [`cancel_future_aggregate_event`].
pub fn publish_future_aggregate_event<C: CqrsConnection>(
    conn: &mut C,
    aggregate: &str,
    event_type: &str,
    at: DateTime<Utc>,
    payload: &impl Serialize,
    tags: &[(&str, &str)],
) -> Result<String, EventError> {
    add_event(
        conn,
        aggregate,
        event_type,
        payload,
        Some(at),
        tag_text(tags)?,
    )
}

/// Removes the unsent future events of `aggregate` / `event_type` that carry all of `tags`;
/// returns how many. Empty tags are refused (they would cancel every future event).
pub fn cancel_future_aggregate_event<C: CqrsConnection>(
    conn: &mut C,
    aggregate: &str,
    event_type: &str,
    tags: &[(&str, &str)],
) -> Result<usize, EventError> {
    if tags.is_empty() {
        return Err(EventError::NoTags);
    }
    let mut each = Vec::with_capacity(tags.len());
    for tag in tags {
        let text = tag_text(std::slice::from_ref(tag))?.unwrap_or_default();
        each.push(text.trim_matches('|').to_owned());
    }
    let each: Vec<&str> = each.iter().map(String::as_str).collect();
    Ok(crate::master::transaction(conn, |conn| {
        conn.outbox_cancel(aggregate, event_type, &each)
    })?)
}

fn with_meta(
    what: &'static str,
    arguments: &impl Serialize,
    meta: Map<String, Value>,
) -> Result<Value, EventError> {
    let mut body = to_value(what, arguments)?;
    match body.as_object_mut() {
        Some(map) => {
            map.insert("meta".into(), Value::Object(meta));
        }
        None => {
            return Err(EventError::NotAnObject { what });
        }
    }
    Ok(body)
}

/// A message built for publishing: what [`send_command`] and [`send_call`] write to the
/// outbox, and what `cqrs_rabbit::Publisher` publishes at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The command's or call's id (the AMQP `message_id`; a call's answer carries it).
    pub id: String,
    /// The exchange (the service).
    pub exchange: String,
    /// The routing key (the command name or method).
    pub routing_key: String,
    /// The JSON body.
    pub body: String,
    /// The AMQP properties, as JSON (content type, app id, message id).
    pub properties: String,
}

impl Outgoing {
    fn new(exchange: &str, routing_key: &str, body: &Value, id: String) -> Self {
        Self {
            properties: properties(&id, None),
            id,
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            body: body.to_string(),
        }
    }

    /// Writes it to the outbox in the caller's transaction; returns its id.
    fn enqueue<C: CqrsConnection>(self, conn: &mut C) -> Result<String, EventError> {
        self.write(conn, None, None)
    }

    /// Writes it to the outbox, to be sent not before `not_before`; returns its id.
    fn write<C: CqrsConnection>(
        self,
        conn: &mut C,
        not_before: Option<DateTime<Utc>>,
        tags: Option<String>,
    ) -> Result<String, EventError> {
        let message = OutboxMessage {
            // an aggregate's messages stay in order
            ordering_key: Some(crate::db::ordering_key(&self.exchange, "*")),
            cqrs_id: self.exchange.clone(),
            routing_key: self.routing_key,
            body: self.body,
            exchange: Some(self.exchange),
            properties: Some(self.properties),
            not_before: not_before.map(|t| t.timestamp_micros()),
            tags,
        };
        // One statement, atomic by itself: in the caller's transaction, or committed alone.
        // A savepoint around it would cost two round trips and protect nothing.
        conn.outbox_insert(std::slice::from_ref(&message))?;
        crate::outbox::notify_local();
        Ok(self.id)
    }
}

/// A command to `service` (its exchange): `command_name` is the routing key, `arguments` (a
/// struct or map) the body, with `meta.expiredTime` when it expires. A consumer never
/// executes it after that time.
pub fn command(
    service: &str,
    command_name: &str,
    arguments: &impl Serialize,
    expiry: Expiry,
) -> Result<Outgoing, EventError> {
    check_name("the service", service)?;
    check_name("the command name", command_name)?;
    let mut meta = Map::new();
    if let Some(t) = expiry.time(Utc::now())? {
        meta.insert("expired_time".into(), Value::String(format_time(t)));
    }
    let body = case::camelize(with_meta("the command arguments", arguments, meta)?);
    Ok(Outgoing::new(
        service,
        command_name,
        &body,
        uuid::Uuid::new_v4().to_string(),
    ))
}

/// Sends a [`command`] through the outbox, in the caller's transaction; returns its id.
pub fn send_command<C: CqrsConnection>(
    conn: &mut C,
    service: &str,
    command_name: &str,
    arguments: &impl Serialize,
    expiry: Expiry,
) -> Result<String, EventError> {
    command(service, command_name, arguments, expiry)?.enqueue(conn)
}

/// A call of `method` of `service`; the answer comes to the exchange `reply_to` with routing
/// key `call-response.<service>.<method>` and the call's id.
pub fn call(
    service: &str,
    method: &str,
    data: &impl Serialize,
    reply_to: &str,
    expiry: Expiry,
) -> Result<Outgoing, EventError> {
    check_name("the service", service)?;
    check_name("the method", method)?;
    check_name("the reply exchange", reply_to)?;
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let mut meta = json!({ "reply_to": reply_to, "time": format_time(now) });
    if let (Some(t), Some(map)) = (expiry.time(now)?, meta.as_object_mut()) {
        map.insert("expired_time".into(), Value::String(format_time(t)));
    }
    let body =
        case::camelize(json!({ "id": id, "meta": meta, "data": to_value("the call data", data)? }));
    Ok(Outgoing::new(service, method, &body, id))
}

/// Sends a [`call`] through the outbox, in the caller's transaction; returns the call id.
pub fn send_call<C: CqrsConnection>(
    conn: &mut C,
    service: &str,
    method: &str,
    data: &impl Serialize,
    reply_to: &str,
    expiry: Expiry,
) -> Result<String, EventError> {
    call(service, method, data, reply_to, expiry)?.enqueue(conn)
}

/// The answer to a call, written in the handler's transaction.
pub(crate) fn send_call_response<C: CqrsConnection>(
    conn: &mut C,
    call: &incoming::CallRoute,
    response: &Value,
) -> Result<(), EventError> {
    let body = case::camelize(json!({
        "id": call.id,
        "data": response,
        "meta": { "time": format_time(Utc::now()) },
    }));
    let routing_key = format!("call-response.{}.{}", call.exchange, call.method);
    let id = uuid::Uuid::new_v4().to_string();
    enqueue(conn, &call.reply_to, &routing_key, &body, &id, None, None)
}
