//! Messages no queue is bound for. The relay publishes with `mandatory`, so the broker returns
//! a message whose routing key no replica has bound yet (a replica service deployed after its
//! master, a SYNC to a queue that does not exist). By default ([`Unroutable::Keep`]) the relay
//! moves it, with its routing key in a header, into a durable queue
//! (`<exchange>_unroutable`) before it removes it from the outbox; `replay-unroutable` sends
//! those again once their queue exists. With [`Unroutable::Drop`] it is counted and dropped.
//! Either way the first message of each routing key is logged once, at WARN.

use std::collections::HashSet;
use std::sync::Mutex;

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel};

use crate::broker::{self, Confirmed};
use crate::config::{Config, Unroutable};
use crate::error::{Error, Result};

/// The header that carries a kept message's routing key.
pub(crate) const ROUTING_KEY_HEADER: &str = "x-cqrs-routing-key";

/// The relay's handling of unroutable messages.
#[derive(Debug)]
pub(crate) struct UnroutablePolicy {
    mode: Unroutable,
    queue: String,
    /// Routing keys already logged.
    logged: Mutex<HashSet<String>>,
}

/// What became of an unroutable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// In the unroutable queue: the outbox may forget it.
    Kept,
    /// Dropped (configured): the outbox may forget it.
    Dropped,
    /// Could not be kept (the unroutable queue is gone): it stays in the outbox.
    Held,
}

impl UnroutablePolicy {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            mode: config.unroutable,
            queue: config.unroutable_queue(),
            logged: Mutex::new(HashSet::new()),
        }
    }

    /// The queue to declare, when messages are kept.
    pub(crate) fn queue(&self) -> Option<&str> {
        (self.mode == Unroutable::Keep).then_some(self.queue.as_str())
    }

    /// Keeps or drops one unroutable message.
    pub(crate) async fn handle(
        &self,
        channel: &Channel,
        routing_key: &str,
        body: &[u8],
    ) -> Result<Fate> {
        let fate = match self.mode {
            Unroutable::Drop => Fate::Dropped,
            Unroutable::Keep => match keep(channel, &self.queue, routing_key, body).await? {
                Confirmed::Routed => Fate::Kept,
                Confirmed::Unroutable | Confirmed::Refused => Fate::Held,
            },
        };
        let first = self
            .logged
            .lock()
            .map_or(true, |mut seen| seen.insert(routing_key.to_owned()));
        match fate {
            Fate::Kept if first => tracing::warn!(
                routing_key, queue = %self.queue,
                "no queue is bound to this routing key: its messages are kept in the \
                 unroutable queue (replay-unroutable sends them again); logged once per key"
            ),
            Fate::Dropped if first => tracing::warn!(
                routing_key,
                "no queue is bound to this routing key: its messages are dropped \
                 (CQRS_UNROUTABLE=drop) and counted; logged once per key"
            ),
            Fate::Held => tracing::warn!(
                routing_key, queue = %self.queue,
                "unroutable message could not be kept (does the unroutable queue exist?); it stays in the outbox"
            ),
            Fate::Kept | Fate::Dropped => {}
        }
        Ok(fate)
    }
}

/// Publishes `body` into `queue` (default exchange) with its routing key in a header; waits
/// for the confirm.
async fn keep(channel: &Channel, queue: &str, routing_key: &str, body: &[u8]) -> Result<Confirmed> {
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from(ROUTING_KEY_HEADER),
        AMQPValue::LongString(LongString::from(routing_key.to_owned())),
    );
    let properties = BasicProperties::default()
        .with_content_type(ShortString::from("text/plain"))
        .with_delivery_mode(2)
        .with_headers(headers);
    let confirm = channel
        .basic_publish(
            ShortString::from(""),
            ShortString::from(queue.to_owned()),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .map_err(|source| Error::Publish {
            routing_key: queue.to_owned(),
            source: Box::new(source),
        })?;
    broker::confirmed(confirm, queue).await
}

/// The routing key a kept message was published with.
fn original_key(properties: &BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(ROUTING_KEY_HEADER)? {
        AMQPValue::LongString(key) => Some(key.to_string()),
        AMQPValue::ShortString(key) => Some(key.to_string()),
        _ => None,
    }
}

/// What `replay-unroutable` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Messages now routed to a queue.
    pub routed: u64,
    /// Messages that still have no queue (kept again, at the end of the queue).
    pub still_unroutable: u64,
    /// Messages without a routing key header (left in the queue).
    pub unreadable: u64,
}

/// Publishes every kept unroutable message again, with its routing key; those that still have
/// no queue go back into the unroutable queue. Each message is acknowledged only after its new
/// copy was confirmed: none is lost if this stops half-way.
pub async fn replay(config: &Config) -> Result<Replayed> {
    let queue = config.unroutable_queue();
    let connection = broker::connect(&config.url, "cqrs-replay-unroutable").await?;
    let channel = broker::confirm_channel(&connection, &config.url).await?;
    let lapin_error = |action: &'static str| move |e| config.url.error(action, e);
    let count = if let Ok(q) = broker::inspect_queue(&channel, &queue).await {
        q.message_count()
    } else {
        // never declared: nothing was ever kept
        let _ = connection.close(200, "done".into()).await;
        return Ok(Replayed::default());
    };
    let mut done = Replayed::default();
    let mut unreadable_tag = None;
    for _ in 0..count {
        let Some(message) = channel
            .basic_get(
                ShortString::from(queue.clone()),
                BasicGetOptions { no_ack: false },
            )
            .await
            .map_err(lapin_error("get an unroutable message"))?
        else {
            break;
        };
        let tag = message.delivery.delivery_tag;
        let Some(key) = original_key(&message.delivery.properties) else {
            done.unreadable += 1;
            unreadable_tag = Some(tag);
            continue;
        };
        let body = &message.delivery.data;
        let confirm = broker::publish(&channel, &config.exchange, &key, body, None).await?;
        match broker::confirmed(confirm, &key).await? {
            Confirmed::Routed => done.routed += 1,
            Confirmed::Unroutable => {
                if keep(&channel, &queue, &key, body).await? != Confirmed::Routed {
                    return Err(Error::Refused {
                        routing_key: queue,
                        reason: "the unroutable queue refused a message back",
                    });
                }
                done.still_unroutable += 1;
            }
            Confirmed::Refused => {
                return Err(Error::Refused {
                    routing_key: key,
                    reason: "the broker refused the message (nack)",
                });
            }
        }
        channel
            .basic_ack(tag, BasicAckOptions::default())
            .await
            .map_err(lapin_error("acknowledge an unroutable message"))?;
    }
    if let Some(tag) = unreadable_tag {
        broker::requeue_up_to(&channel, tag, &config.url, "requeue unroutable messages").await?;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(done)
}
