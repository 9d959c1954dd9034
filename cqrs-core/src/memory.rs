//! An in-memory transport, for tests: drain a master's outbox and apply the messages to a
//! replica database with the same routing rules as RabbitMQ, without a broker.
//!
//! ```
//! # #[cfg(all(feature = "sqlite", feature = "derive"))] {
//! # cqrs_core::__doc_fixtures!();
//! use cqrs_core::memory::MemoryBroker;
//! use cqrs_core::prelude::*;
//!
//! let (mut master, mut replica) = (connection(), connection());
//! Book::sample(1).cqrs_insert(&mut master)?;
//! let mut broker = MemoryBroker::new();
//! broker.relay(&mut master)?;
//! let outcomes = broker.deliver(&mut replica, "replica_queue")?;
//! assert_eq!(outcomes.len(), 1);
//! assert_eq!(BookRef::cqrs_count(&mut replica)?, 1);
//! # }
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use crate::batch::apply_one;
use crate::db::CqrsConnection;
use crate::error::{ApplyError, Result};
use crate::message::{Message, is_direct_to};
use crate::outbox::{OutboxCursor, relay_batch};
use crate::registry::{self, Registered};
use crate::rules::Outcome;

/// One published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its routing key.
    pub routing_key: String,
    /// Its body.
    pub body: String,
}

/// Holds published messages in memory.
#[derive(Debug, Default)]
pub struct MemoryBroker {
    /// Messages published and not yet delivered, in order.
    pub queue: Vec<Published>,
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves every message of `master`'s outbox here; returns how many.
    pub fn relay<C: CqrsConnection>(&mut self, master: &mut C) -> Result<usize> {
        let mut total = 0;
        let mut cursor = OutboxCursor::new();
        loop {
            let batch = relay_batch(master, 500, &mut cursor, |records| {
                self.queue.extend(records.iter().map(|r| Published {
                    routing_key: r.routing_key.clone(),
                    body: r.body.clone(),
                }));
                Ok::<_, crate::Error>(records.iter().map(|r| r.id).collect())
            })?;
            total += batch.published;
            if batch.fetched == 0 {
                return Ok(total);
            }
        }
    }

    /// Applies every held message to the replica models of `replica` as a consumer on
    /// `queue` would: broadcast keys and keys aimed at `queue` are applied (each in its own
    /// transaction), messages for other queues or unknown models are dropped. Returns the
    /// outcome of each applied message.
    pub fn deliver<C: Registered>(
        &mut self,
        replica: &mut C,
        queue: &str,
    ) -> Result<Vec<Result<Outcome, ApplyError>>> {
        let mut outcomes = Vec::new();
        for published in self.queue.drain(..) {
            let Ok(message) = Message::parse(published.body.as_bytes(), None) else {
                continue;
            };
            let direct = is_direct_to(&published.routing_key, queue, &message.cqrs_id);
            if !direct && published.routing_key != message.cqrs_id {
                continue;
            }
            let Ok(entry) = registry::replica::<C>(&message.cqrs_id) else {
                continue;
            };
            outcomes.push(apply_one(replica, entry.ops, &message, direct));
        }
        Ok(outcomes)
    }
}
