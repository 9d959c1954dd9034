//! Connections, topology and confirmed publishing (PROTOCOL.md section 6).

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use lapin::{Confirmation, PublisherConfirm};

use crate::config::{BrokerUrl, Config};
use crate::error::{Error, Result};

/// Opens a connection (fails at once; see [`connect_with_backoff`]).
pub async fn connect(url: &BrokerUrl, name: &str) -> Result<Connection> {
    let properties =
        ConnectionProperties::default().with_connection_name(LongString::from(name.to_owned()));
    match tokio::time::timeout(
        Duration::from_secs(15),
        Connection::connect(url.expose(), properties),
    )
    .await
    {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(Error::broker(url, e)),
        Err(_) => Err(Error::broker(url, "connection timed out after 15 s")),
    }
}

/// Exponential backoff from 100 ms up to 10 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    /// Sleeps for the current delay and doubles it.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(10));
    }

    /// The delay the next `wait` sleeps.
    pub fn delay(&self) -> Duration {
        self.next
    }

    /// Back to the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}

/// Connects, retrying with backoff until it succeeds or `give_up` resolves.
pub async fn connect_with_backoff(
    url: &BrokerUrl,
    name: &str,
    backoff: &mut Backoff,
) -> Connection {
    loop {
        match connect(url, name).await {
            Ok(connection) => {
                backoff.reset();
                return connection;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff.delay(), "RabbitMQ unreachable; reconnecting");
                backoff.wait().await;
            }
        }
    }
}

/// A channel in confirm mode.
pub async fn confirm_channel(connection: &Connection, url: &BrokerUrl) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| Error::broker(url, e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| Error::broker(url, e))?;
    Ok(channel)
}

fn queue_args(config: &Config) -> FieldTable {
    let mut args = FieldTable::default();
    if config.quorum_queues {
        args.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(LongString::from("quorum")),
        );
    }
    args
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares the exchange (topic, durable).
pub async fn declare_exchange(channel: &Channel, config: &Config) -> Result<()> {
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
        .map_err(|e| declare_error(config, "exchange", &config.exchange, &e))
}

fn declare_error(config: &Config, what: &str, name: &str, error: &lapin::Error) -> Error {
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
    Error::Broker {
        url: config.url.to_string(),
        reason: format!(
            "cannot declare {what} `{name}`: {}{hint}",
            config.url.redact(&text)
        ),
    }
}

/// Declares the replica topology, idempotently: the exchange, the replica queue, the
/// dead-letter queue, the three bindings per `cqrs_id` (django-cqrs's), and one delay queue
/// per `cqrs_id` whose messages dead-letter back to `cqrs.<queue>.<cqrs_id>` when their delay
/// expires (retries wait in the broker, so a restart loses none).
pub async fn declare_replica_topology(
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
            .map_err(|e| declare_error(config, "queue", name, &e))?;
    }
    for cqrs_id in cqrs_ids {
        for (target, key) in [
            (&queue, (*cqrs_id).to_owned()),
            (&queue, format!("cqrs.{queue}.{cqrs_id}")),
            (&dlq, format!("cqrs.{dlq}.{cqrs_id}")),
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
                .map_err(|e| declare_error(config, "binding", &key, &e))?;
        }
        let delay = config.delay_queue(cqrs_id)?;
        let mut args = queue_args(config);
        args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from(config.exchange.clone())),
        );
        args.insert(
            ShortString::from("x-dead-letter-routing-key"),
            AMQPValue::LongString(LongString::from(format!("cqrs.{queue}.{cqrs_id}"))),
        );
        channel
            .queue_declare(ShortString::from(delay.clone()), durable(), args)
            .await
            .map_err(|e| declare_error(config, "delay queue", &delay, &e))?;
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
pub async fn set_prefetch(channel: &Channel, config: &Config) -> Result<()> {
    channel
        .basic_qos(config.prefetch(), BasicQosOptions::default())
        .await
        .map_err(|e| Error::broker(&config.url, e))
}

/// django-cqrs's message properties: `text/plain`, persistent, and an `expiration` in
/// milliseconds when given.
pub fn properties(expiration: Option<Duration>) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_content_type(ShortString::from("text/plain"))
        .with_delivery_mode(2);
    match expiration {
        Some(ttl) => properties.with_expiration(ShortString::from(ttl.as_millis().to_string())),
        None => properties,
    }
}

/// Starts a mandatory, persistent publish; await the returned confirm.
pub async fn publish(
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
        .map_err(|e| Error::Publish {
            routing_key: routing_key.to_owned(),
            reason: e.to_string(),
        })
}

/// How the broker answered a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// Stored and routed.
    Routed,
    /// Stored but no queue was bound for its routing key (no replica subscribes).
    Unroutable,
    /// Refused (nack).
    Refused,
}

/// Waits for a publish's confirm.
pub async fn confirmed(confirm: PublisherConfirm, routing_key: &str) -> Result<Confirmed> {
    match confirm.await {
        Ok(Confirmation::Ack(None)) => Ok(Confirmed::Routed),
        Ok(Confirmation::Ack(Some(_))) => Ok(Confirmed::Unroutable),
        Ok(Confirmation::Nack(_)) => Ok(Confirmed::Refused),
        Ok(Confirmation::NotRequested) => Ok(Confirmed::Routed),
        Err(e) => Err(Error::Publish {
            routing_key: routing_key.to_owned(),
            reason: e.to_string(),
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
                    other => Err(Error::Publish {
                        routing_key: queue.to_owned(),
                        reason: format!("broker answered {other:?}"),
                    }),
                }
            }
            None => Err(Error::Publish {
                routing_key: routing_key.to_owned(),
                reason: "no queue is bound to this routing key".to_owned(),
            }),
        },
        Confirmed::Refused => Err(Error::Publish {
            routing_key: routing_key.to_owned(),
            reason: "the broker refused the message (nack)".to_owned(),
        }),
    }
}
