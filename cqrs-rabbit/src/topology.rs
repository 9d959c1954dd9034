//! What the framework declares on the broker (see the repository's `docs/protocol.md`, section
//! "Broker topology"): the exchange, a replica service's queue and dead-letter queue, their
//! bindings, and the delay queues of the retries. Every declare is idempotent.

use cqrs_core::message::{delay_queue, routing_key};
use lapin::Channel;
use lapin::ExchangeKind;
use lapin::options::{
    BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::config::Config;
use crate::error::{Error, Result};

/// The arguments of every queue the framework declares (`x-queue-type`).
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
pub(crate) async fn declare_exchange(channel: &Channel, config: &Config) -> Result<()> {
    declare_event_exchange(channel, config, &config.exchange).await
}

/// A durable topic exchange: the replication exchange, or an event's aggregate or service
/// exchange (declared the way django-microservices-communication declares them).
pub(crate) async fn declare_event_exchange(
    channel: &Channel,
    config: &Config,
    name: &str,
) -> Result<()> {
    channel
        .exchange_declare(
            ShortString::from(name.to_owned()),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| declare_error(config, "exchange", name, e))
}

/// A declare that failed, with a hint when the broker holds the object with other arguments.
fn declare_error(config: &Config, what: &str, name: &str, error: lapin::Error) -> Error {
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
    config
        .url
        .error(format!("declare {what} `{name}`{hint}"), error)
}

/// Declares the replica topology, idempotently: the exchange, the replica queue, the
/// dead-letter queue, the three bindings per `cqrs_id` (django-cqrs's), and the delay queue of
/// each `cqrs_id`'s retries.
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
        declare_delay_queue(channel, config, cqrs_id).await?;
    }
    Ok(())
}

/// The queue where retries of `cqrs_id` consumed from `queue` wait out their delay.
/// Declares the delay queue of `cqrs_id`: durable, dead-lettering expired messages back to
/// the replica queue through the exchange.
async fn declare_delay_queue(channel: &Channel, config: &Config, cqrs_id: &str) -> Result<()> {
    let queue = config.queue()?;
    let delay = delay_queue(queue, cqrs_id);
    let mut args = queue_args(config);
    args.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(config.exchange.clone())),
    );
    args.insert(
        ShortString::from("x-dead-letter-routing-key"),
        AMQPValue::LongString(LongString::from(routing_key(cqrs_id, Some(queue)))),
    );
    if config.quorum_queues {
        // A quorum queue dead-letters at most once by default: a leader change while a retry
        // moves back could drop it. At least once needs `reject-publish` overflow (RabbitMQ
        // 3.10+); the queue has no length limit, so nothing is rejected.
        for (key, value) in [
            ("x-dead-letter-strategy", "at-least-once"),
            ("x-overflow", "reject-publish"),
        ] {
            args.insert(
                ShortString::from(key),
                AMQPValue::LongString(LongString::from(value)),
            );
        }
    }
    channel
        .queue_declare(ShortString::from(delay.clone()), durable(), args)
        .await
        .map_err(|e| declare_error(config, "delay queue", &delay, e))?;
    Ok(())
}

/// Declares the durable queue of kept unroutable messages.
pub(crate) async fn declare_unroutable_queue(
    channel: &Channel,
    config: &Config,
    queue: &str,
) -> Result<()> {
    channel
        .queue_declare(
            ShortString::from(queue.to_owned()),
            durable(),
            queue_args(config),
        )
        .await
        .map_err(|e| declare_error(config, "unroutable queue", queue, e))?;
    Ok(())
}

/// Sets the prefetch count of a consumer channel.
pub(crate) async fn set_prefetch(channel: &Channel, config: &Config) -> Result<()> {
    channel
        .basic_qos(config.prefetch(), BasicQosOptions::default())
        .await
        .map_err(|e| config.url.error("set the prefetch count", e))
}
