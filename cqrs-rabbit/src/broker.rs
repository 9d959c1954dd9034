//! Connections, topology and confirmed publishing (see the repository's `docs/protocol.md`,
//! section "Broker topology"). Public: [`inspect_queue`] and [`publish_confirmed`], for tools
//! and tests; the rest serves the relay and the consumer.

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use lapin::{Confirmation, PublisherConfirm};

use cqrs_core::message::routing_key;

use crate::broker_url::BrokerUrl;
use crate::config::Config;
use crate::error::{Error, Result};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens a connection, or fails at once (the callers retry with their backoff).
pub(crate) async fn connect(url: &BrokerUrl, name: &str) -> Result<Connection> {
    let properties =
        ConnectionProperties::default().with_connection_name(LongString::from(name.to_owned()));
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(url.expose(), properties),
    )
    .await
    {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(Error::broker(url, "connect", e)),
        Err(_) => Err(Error::BrokerTimeout {
            url: url.to_string(),
            action: "connect",
            seconds: CONNECT_TIMEOUT.as_secs(),
        }),
    }
}

/// A channel in confirm mode.
pub(crate) async fn confirm_channel(connection: &Connection, url: &BrokerUrl) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| Error::broker(url, "open a channel", e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| Error::broker(url, "enable publisher confirms", e))?;
    Ok(channel)
}

/// The arguments of every queue the framework declares (`x-queue-type`).
pub(crate) fn queue_args(config: &Config) -> FieldTable {
    let mut args = FieldTable::default();
    if config.quorum_queues {
        args.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
    args
}

pub(crate) fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares the exchange (topic, durable).
pub(crate) async fn declare_exchange(channel: &Channel, config: &Config) -> Result<()> {
    channel
        .exchange_declare(
            ShortString::from(config.exchange.clone()),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| declare_error(config, "exchange", &config.exchange, e))
}

/// A declare that failed, with a hint when the broker holds the object with other arguments.
pub(crate) fn declare_error(config: &Config, what: &str, name: &str, error: lapin::Error) -> Error {
    let text = error.to_string();
    let hint = if text.contains("PRECONDITION_FAILED") {
        if what == "exchange" {
            " (it exists with another type or durability)"
        } else if config.quorum_queues {
            " (it exists as a classic queue; CQRS_QUORUM_QUEUES must match how it was declared)"
        } else {
            " (it exists with other arguments, e.g. as a quorum queue: set CQRS_QUORUM_QUEUES)"
        }
    } else {
        ""
    };
    Error::broker(&config.url, format!("declare {what} `{name}`{hint}"), error)
}

/// Declares the replica topology, idempotently: the exchange, the replica queue, the
/// dead-letter queue, the three bindings per `cqrs_id` (django-cqrs's), and the delay queues
/// of the retries ([`crate::retry::declare_delay_queue`]).
pub(crate) async fn declare_replica_topology(
    channel: &Channel,
    config: &Config,
    cqrs_ids: &[&str],
) -> Result<()> {
    let queue = config.queue()?.to_owned();
    let dlq = config.dead_letter_queue()?;
    declare_exchange(channel, config).await?;
    for name in [&queue, &dlq] {
        channel
            .queue_declare(
                ShortString::from(name.clone()),
                durable(),
                queue_args(config),
            )
            .await
            .map_err(|e| declare_error(config, "queue", name, e))?;
    }
    for cqrs_id in cqrs_ids {
        for (target, key) in [
            (&queue, routing_key(cqrs_id, None)),
            (&queue, routing_key(cqrs_id, Some(&queue))),
            (&dlq, routing_key(cqrs_id, Some(&dlq))),
        ] {
            channel
                .queue_bind(
                    ShortString::from(target.clone()),
                    ShortString::from(config.exchange.clone()),
                    ShortString::from(key.clone()),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| declare_error(config, "binding", &key, e))?;
        }
        crate::retry::declare_delay_queue(channel, config, cqrs_id).await?;
    }
    Ok(())
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

/// Sets the prefetch count of a consumer channel.
pub(crate) async fn set_prefetch(channel: &Channel, config: &Config) -> Result<()> {
    channel
        .basic_qos(config.prefetch(), BasicQosOptions::default())
        .await
        .map_err(|e| Error::broker(&config.url, "set the prefetch count", e))
}

/// django-cqrs's message properties: `text/plain`, persistent, and an `expiration` in
/// milliseconds when given.
fn properties(expiration: Option<Duration>) -> BasicProperties {
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
    channel
        .basic_publish(
            ShortString::from(exchange.to_owned()),
            ShortString::from(routing_key.to_owned()),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties(expiration),
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
        Ok(Confirmation::Ack(None)) => Ok(Confirmed::Routed),
        Ok(Confirmation::Ack(Some(_))) => Ok(Confirmed::Unroutable),
        Ok(Confirmation::Nack(_)) => Ok(Confirmed::Refused),
        Ok(Confirmation::NotRequested) => Ok(Confirmed::Routed),
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

fn refused(routing_key: &str) -> Error {
    Error::Refused {
        routing_key: routing_key.to_owned(),
        reason: "the broker refused the message (nack)",
    }
}
