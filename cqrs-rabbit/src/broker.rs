//! Connections and confirmed publishing. Public: [`inspect_queue`] and [`publish_confirmed`],
//! for tools and tests; the rest serves the relay and the consumer. What is declared on the
//! broker is in `topology.rs`.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lapin::{Confirmation, PublisherConfirm};

use crate::broker_url::BrokerUrl;
use crate::error::{Error, Result};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The heartbeat asked for when the URL sets none (`?heartbeat=N` sets it). RabbitMQ's own
/// default is 60 s: a frozen broker (a stopped process, a partitioned host) would go unseen for
/// two minutes. With 10 s, lapin closes the connection after 20 s of silence, and the relay and
/// the consumer log it and reconnect.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// The largest AMQP frame asked for when the URL sets none (`?frame_max=N` sets it). lapin
/// keeps a receive and a send buffer of 32 frames per connection, zero-filled: at RabbitMQ's
/// default of 128 KiB that is 8 MiB of resident memory per connection, most of a relay's or a
/// consumer's heap. At 32 KiB the buffers take 2 MiB; a larger message is carried in several
/// body frames, as the protocol does for any message above the frame size.
pub const DEFAULT_FRAME_MAX: u32 = 32 * 1024;

/// The URL lapin connects to: the broker URL with the default heartbeat and frame size where
/// it sets none.
fn connect_uri(url: &BrokerUrl) -> String {
    let mut uri = url.expose().to_owned();
    for (key, value) in [
        ("heartbeat", DEFAULT_HEARTBEAT_SECS.to_string()),
        ("frame_max", DEFAULT_FRAME_MAX.to_string()),
    ] {
        let set = uri.split_once('?').is_some_and(|(_, query)| {
            query
                .split('&')
                .any(|p| p.split_once('=').is_some_and(|(k, _)| k == key))
        });
        if !set {
            let sep = if uri.contains('?') { '&' } else { '?' };
            uri = format!("{uri}{sep}{key}={value}");
        }
    }
    uri
}

/// How long a connection attempt to one node of a cluster may take before the next is tried.
const CLUSTER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection, or fails at once (the callers retry with their backoff). A cluster's
/// nodes are tried in turn, from the one that answered last; the error is the last node's.
pub(crate) async fn connect(url: &BrokerUrl, name: &str) -> Result<Connection> {
    let nodes: Vec<&BrokerUrl> = url.nodes().collect();
    let timeout = if nodes.len() > 1 {
        CLUSTER_CONNECT_TIMEOUT
    } else {
        CONNECT_TIMEOUT
    };
    let start = url.preferred();
    let mut last = None;
    for k in 0..nodes.len() {
        let index = (start + k) % nodes.len();
        let node = nodes[index];
        match connect_node(node, name, timeout).await {
            Ok(connection) => {
                if index != start {
                    tracing::info!(node = %node, "connected to another node of the cluster");
                }
                url.set_preferred(index);
                return Ok(connection);
            }
            Err(error) => {
                if nodes.len() > 1 {
                    tracing::debug!(node = %node, %error, "node unreachable; trying the next");
                }
                last = Some(error);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Input("the broker URL names no node".to_owned())))
}

async fn connect_node(node: &BrokerUrl, name: &str, timeout: Duration) -> Result<Connection> {
    let properties =
        ConnectionProperties::default().with_connection_name(LongString::from(name.to_owned()));
    match tokio::time::timeout(timeout, Connection::connect(&connect_uri(node), properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(node.error("connect", e)),
        Err(_) => Err(Error::BrokerTimeout {
            url: node.to_string(),
            action: "connect",
            seconds: timeout.as_secs(),
        }),
    }
}

/// A channel in confirm mode.
pub(crate) async fn confirm_channel(connection: &Connection, url: &BrokerUrl) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| url.error("open a channel", e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| url.error("enable publisher confirms", e))?;
    Ok(channel)
}

/// Looks at an existing queue without declaring it (a passive declare): its message and
/// consumer counts. A missing queue is an error, and the broker then closes `channel`.
///
/// ```no_run
/// # async fn f(channel: &lapin::Channel) -> lapin::Result<()> {
/// let queue = cqrs_rabbit::broker::inspect_queue(channel, "dead_letter_books").await?;
/// println!("{} dead letters", queue.message_count());
/// # Ok(()) }
/// ```
pub async fn inspect_queue(channel: &Channel, queue: &str) -> lapin::Result<lapin::Queue> {
    channel
        .queue_declare(
            ShortString::from(queue),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// django-cqrs's message properties: `text/plain`, persistent, and an `expiration` in
/// milliseconds when given.
pub(crate) fn properties(expiration: Option<Duration>) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_content_type(ShortString::from("text/plain"))
        .with_delivery_mode(2);
    match expiration {
        Some(ttl) => properties.with_expiration(ShortString::from(ttl.as_millis().to_string())),
        None => properties,
    }
}

/// Starts a mandatory, persistent publish; await the returned confirm.
pub(crate) async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    expiration: Option<Duration>,
) -> Result<PublisherConfirm> {
    publish_with(
        channel,
        exchange,
        routing_key,
        body,
        properties(expiration),
        true,
    )
    .await
}

/// The AMQP properties an outbox record names (a domain event's, as
/// django-microservices-communication sets them): persistent, with its content type, app id,
/// message id and correlation id. Unknown or ill-typed keys are left out.
pub(crate) fn record_properties(json: &str) -> BasicProperties {
    let mut properties = BasicProperties::default().with_delivery_mode(2);
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(json) else {
        return properties;
    };
    let text = |key: &str| {
        map.get(key)
            .and_then(serde_json::Value::as_str)
            .map(|v| ShortString::from(v.to_owned()))
    };
    if let Some(v) = text("content_type") {
        properties = properties.with_content_type(v);
    }
    if let Some(v) = text("app_id") {
        properties = properties.with_app_id(v);
    }
    if let Some(v) = text("message_id") {
        properties = properties.with_message_id(v);
    }
    if let Some(v) = text("correlation_id") {
        properties = properties.with_correlation_id(v);
    }
    if let Some(headers) = map.get("headers").and_then(headers_of) {
        properties = properties.with_headers(headers);
    }
    properties
}

/// The string-valued `headers` of a record's properties JSON (a row message's trace context),
/// as AMQP headers.
pub(crate) fn record_headers(json: &str) -> Option<FieldTable> {
    let value = serde_json::from_str::<serde_json::Value>(json).ok()?;
    headers_of(value.get("headers")?)
}

fn headers_of(headers: &serde_json::Value) -> Option<FieldTable> {
    let mut table = FieldTable::default();
    for (key, value) in headers.as_object()? {
        if let Some(text) = value.as_str() {
            table.insert(
                ShortString::from(key.clone()),
                lapin::types::AMQPValue::LongString(text.to_owned().into()),
            );
        }
    }
    Some(table)
}

/// The trace context in AMQP headers (`traceparent`), when they carry a valid one.
pub(crate) fn traceparent(headers: Option<&FieldTable>) -> Option<cqrs_core::trace::TraceParent> {
    let value = headers?.inner().get(cqrs_core::trace::HEADER)?;
    let text = match value {
        lapin::types::AMQPValue::LongString(s) => {
            String::from_utf8_lossy(s.as_bytes()).into_owned()
        }
        lapin::types::AMQPValue::ShortString(s) => s.as_str().to_owned(),
        _ => return None,
    };
    cqrs_core::trace::TraceParent::parse(&text)
}

/// Starts a publish with these properties; await the returned confirm. `mandatory`: the
/// broker returns it when no queue is bound.
pub(crate) async fn publish_with(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Result<PublisherConfirm> {
    channel
        .basic_publish(
            ShortString::from(exchange.to_owned()),
            ShortString::from(routing_key.to_owned()),
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .map_err(|source| Error::Publish {
            routing_key: routing_key.to_owned(),
            source: Box::new(source),
        })
}

/// How the broker answered a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirmed {
    /// Stored and routed.
    Routed,
    /// Stored but no queue was bound for its routing key (no replica subscribes).
    Unroutable,
    /// Refused (nack).
    Refused,
}

/// Waits for a publish's confirm.
pub(crate) async fn confirmed(confirm: PublisherConfirm, routing_key: &str) -> Result<Confirmed> {
    match confirm.await {
        Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Ok(Confirmed::Routed),
        Ok(Confirmation::Ack(Some(_))) => Ok(Confirmed::Unroutable),
        Ok(Confirmation::Nack(_)) => Ok(Confirmed::Refused),
        Err(source) => Err(Error::Publish {
            routing_key: routing_key.to_owned(),
            source: Box::new(source),
        }),
    }
}

/// Publishes one message and waits for its confirm; an unroutable message is retried straight
/// into `fallback_queue` through the default exchange when one is given.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    expiration: Option<Duration>,
    fallback_queue: Option<&str>,
) -> Result<()> {
    let confirm = publish(channel, exchange, routing_key, body, expiration).await?;
    match confirmed(confirm, routing_key).await? {
        Confirmed::Routed => Ok(()),
        Confirmed::Unroutable => match fallback_queue {
            Some(queue) => {
                let confirm = publish(channel, "", queue, body, expiration).await?;
                match confirmed(confirm, queue).await? {
                    Confirmed::Routed => Ok(()),
                    Confirmed::Unroutable => Err(Error::Refused {
                        routing_key: queue.to_owned(),
                        reason: "the queue does not exist",
                    }),
                    Confirmed::Refused => Err(refused(queue)),
                }
            }
            None => Err(Error::Refused {
                routing_key: routing_key.to_owned(),
                reason: "no queue is bound to this routing key",
            }),
        },
        Confirmed::Refused => Err(refused(routing_key)),
    }
}

/// Starts consuming `queue` on `channel` (server-named consumer tag).
pub(crate) async fn consume(
    channel: &Channel,
    url: &BrokerUrl,
    queue: &str,
) -> Result<lapin::Consumer> {
    channel
        .basic_consume(
            ShortString::from(queue.to_owned()),
            ShortString::from(String::new()),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| url.error("start consuming", e))
}

/// Puts back every unacknowledged message of `channel` up to `tag`, in their order.
pub(crate) async fn requeue_up_to(
    channel: &Channel,
    tag: u64,
    url: &BrokerUrl,
    action: &'static str,
) -> Result<()> {
    channel
        .basic_nack(
            tag,
            lapin::options::BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .map_err(|e| url.error(action, e))
}

pub(crate) fn refused(routing_key: &str) -> Error {
    Error::Refused {
        routing_key: routing_key.to_owned(),
        reason: "the broker refused the message (nack)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_and_a_frame_size_are_asked_for_unless_the_url_sets_them() {
        let uri =
            |u: &str| connect_uri(&BrokerUrl::parse(u).unwrap_or_else(|_| BrokerUrl::localhost()));
        assert_eq!(
            uri("amqp://guest:guest@localhost:5672/%2f"),
            "amqp://guest:guest@localhost:5672/%2f?heartbeat=10&frame_max=32768"
        );
        assert!(uri("amqp://h/%2f?heartbeat=30").ends_with("?heartbeat=30&frame_max=32768"));
        assert!(uri("amqp://h/%2f?frame_max=8192").ends_with("?frame_max=8192&heartbeat=10"));
    }
}
