//! The counters of a running relay and consumer (shared with the service through `Arc`), and
//! the one place that records them into the `metrics` facade (names in [`super::names`]).

#![allow(
    clippy::cast_precision_loss,
    reason = "metric values are f64: counts past 2^52 lose precision harmlessly"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use cqrs_core::Outcome;
use cqrs_core::rules::IgnoreReason;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::names;

/// Counters of a running relay.
#[derive(Debug, Default)]
pub struct RelayMetrics {
    /// Messages confirmed by the broker and removed from the outbox.
    pub published: AtomicU64,
    /// Messages no replica queue is bound for (kept in the unroutable queue, or dropped:
    /// `CQRS_UNROUTABLE`).
    pub unroutable: AtomicU64,
    /// Reconnections to the broker or the database.
    pub reconnects: AtomicU64,
    /// Outbox batches published.
    pub batches: AtomicU64,
    /// Looks at the outbox, the empty ones included (a database transaction each).
    pub looks: AtomicU64,
    /// The publish-to-confirm histogram, registered once (recorded per message).
    confirm: std::sync::OnceLock<Histogram>,
}

/// Counters of a running consumer.
#[derive(Debug, Default)]
pub struct ConsumerMetrics {
    /// The per-message metrics' handles, by `cqrs_id`: registered once with the recorder, so
    /// that a message costs one map lookup and a few atomic adds, not a key built, hashed and
    /// registered per metric.
    handles: HandleCache,
    /// Messages applied (created, updated, deleted).
    pub applied: AtomicU64,
    /// Messages acknowledged without change (stale, duplicate, filtered).
    pub ignored: AtomicU64,
    /// Messages sent to wait for a retry.
    pub retried: AtomicU64,
    /// Messages moved to the dead-letter queue.
    pub dead_lettered: AtomicU64,
    /// Database transactions (batches) committed.
    pub batches: AtomicU64,
    /// Broker reconnections.
    pub reconnects: AtomicU64,
}

const APPLIED: [&str; 4] = ["created", "updated", "deleted", "already_absent"];
const IGNORED: [&str; 5] = [
    "stale",
    "duplicate",
    "older_than_delete",
    "stale_delete",
    "broadcast_sync",
];

/// One model's per-message metrics.
struct ModelHandles {
    received: Counter,
    applied: [Counter; 4],
    ignored: [Counter; 5],
    lag: Histogram,
    lag_last: Gauge,
}

impl ModelHandles {
    fn register(cqrs_id: &str) -> Self {
        let id = || cqrs_id.to_owned();
        Self {
            received: counter!(names::CONSUMER_RECEIVED, "cqrs_id" => id()),
            applied: APPLIED
                .map(|outcome| counter!(names::CONSUMER_APPLIED, "cqrs_id" => id(), "outcome" => outcome)),
            ignored: IGNORED
                .map(|reason| counter!(names::CONSUMER_IGNORED, "cqrs_id" => id(), "reason" => reason)),
            lag: histogram!(names::REPLICATION_LAG, "cqrs_id" => id()),
            lag_last: gauge!(names::REPLICATION_LAG_LAST, "cqrs_id" => id()),
        }
    }
}

/// The handles by `cqrs_id` (bounded: the binary's models and `unknown`).
#[derive(Default)]
struct HandleCache {
    models: RwLock<HashMap<String, Arc<ModelHandles>>>,
}

impl std::fmt::Debug for HandleCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandleCache")
    }
}

impl HandleCache {
    fn of(&self, cqrs_id: &str) -> Arc<ModelHandles> {
        if let Some(found) = self
            .models
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cqrs_id)
        {
            return Arc::clone(found);
        }
        let mut models = self.models.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            models
                .entry(cqrs_id.to_owned())
                .or_insert_with(|| Arc::new(ModelHandles::register(cqrs_id))),
        )
    }
}

/// Why a message went to the dead-letter queue (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadReason {
    Permanent,
    RetriesExhausted,
    Expired,
    Malformed,
    UnknownModel,
    TooLarge,
}

impl DeadReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent_error",
            Self::RetriesExhausted => "retries_exhausted",
            Self::Expired => "expired",
            Self::Malformed => "malformed",
            Self::UnknownModel => "unknown_model",
            Self::TooLarge => "too_large",
        }
    }
}

/// Why a reconnection happened (the `cause` label).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cause {
    Broker,
    Database,
}

impl RelayMetrics {
    /// `count` messages of one `(exchange, cqrs_id)` confirmed and forgotten.
    pub(crate) fn published(&self, exchange: &str, cqrs_id: &str, count: u64) {
        self.published.fetch_add(count, Ordering::Relaxed);
        counter!(names::RELAY_PUBLISHED, "exchange" => exchange.to_owned(), "cqrs_id" => cqrs_id.to_owned())
            .increment(count);
    }

    pub(crate) fn unroutable(&self, exchange: &str, cqrs_id: &str) {
        self.unroutable.fetch_add(1, Ordering::Relaxed);
        counter!(names::RELAY_UNROUTABLE, "exchange" => exchange.to_owned(), "cqrs_id" => cqrs_id.to_owned())
            .increment(1);
    }

    #[allow(
        clippy::unused_self,
        reason = "recorded through the relay's metrics like every other figure; its series is global"
    )]
    pub(crate) fn refused(&self) {
        counter!(names::RELAY_REFUSED).increment(1);
    }

    pub(crate) fn reconnect(&self, cause: Cause) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        let cause = match cause {
            Cause::Broker => "broker",
            Cause::Database => "database",
        };
        counter!(names::RELAY_RECONNECTS, "cause" => cause).increment(1);
    }

    pub(crate) fn batch(&self, messages: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        histogram!(names::RELAY_BATCH_SIZE).record(messages as f64);
    }

    pub(crate) fn confirm_latency(&self, waited: Duration) {
        self.confirm
            .get_or_init(|| histogram!(names::RELAY_CONFIRM_SECONDS))
            .record(waited.as_secs_f64());
    }

    #[allow(
        clippy::unused_self,
        reason = "recorded through the relay's metrics like every other figure; its series is global"
    )]
    pub(crate) fn outbox(&self, stats: &cqrs_core::db::OutboxStats) {
        gauge!(names::OUTBOX_DEPTH).set(stats.depth as f64);
        let age = stats.oldest_due_micros.unwrap_or(0) as f64 / 1e6;
        gauge!(names::OUTBOX_OLDEST_AGE).set(age);
    }
}

impl ConsumerMetrics {
    pub(crate) fn received(&self, cqrs_id: &str) {
        self.handles.of(cqrs_id).received.increment(1);
    }

    pub(crate) fn count_outcome(&self, outcome: Outcome, cqrs_id: &str) {
        let handles = self.handles.of(cqrs_id);
        match outcome {
            Outcome::Ignored(reason) => {
                self.ignored.fetch_add(1, Ordering::Relaxed);
                let index = match reason {
                    IgnoreReason::Stale => 0,
                    IgnoreReason::Duplicate => 1,
                    IgnoreReason::Deleted => 2,
                    IgnoreReason::StaleDelete => 3,
                    IgnoreReason::BroadcastSync => 4,
                };
                handles.ignored[index].increment(1);
            }
            applied => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                let index = match applied {
                    Outcome::Created => 0,
                    Outcome::Updated => 1,
                    Outcome::Deleted => 2,
                    _ => 3,
                };
                handles.applied[index].increment(1);
            }
        }
    }

    pub(crate) fn count_retry(&self, cqrs_id: &str) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        counter!(names::CONSUMER_RETRIED, "cqrs_id" => cqrs_id.to_owned()).increment(1);
    }

    pub(crate) fn count_dead_letter(&self, cqrs_id: &str, reason: DeadReason) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        counter!(names::CONSUMER_DEAD_LETTERED, "cqrs_id" => cqrs_id.to_owned(), "reason" => reason.as_str())
            .increment(1);
    }

    pub(crate) fn reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        counter!(names::CONSUMER_RECONNECTS).increment(1);
    }

    pub(crate) fn batch(&self, messages: usize, took: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        histogram!(names::CONSUMER_BATCH_SIZE).record(messages as f64);
        histogram!(names::CONSUMER_BATCH_SECONDS).record(took.as_secs_f64());
    }

    /// Master commit to replica commit, for one applied message.
    pub(crate) fn lag(&self, cqrs_id: &str, seconds: f64) {
        let seconds = seconds.max(0.0);
        let handles = self.handles.of(cqrs_id);
        handles.lag.record(seconds);
        handles.lag_last.set(seconds);
    }

    /// A handler's message: `outcome` is `handled`, `duplicate`, `expired`, `retried` or
    /// `dead_lettered`.
    #[cfg(feature = "events")]
    pub(crate) fn handler(&self, exchange: &str, routing_key: &str, outcome: &'static str) {
        let counter = match outcome {
            "handled" => &self.applied,
            "retried" => &self.retried,
            "dead_lettered" => &self.dead_lettered,
            _ => &self.ignored,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        counter!(names::HANDLER_MESSAGES, "exchange" => exchange.to_owned(),
            "routing_key" => routing_key.to_owned(), "outcome" => outcome)
        .increment(1);
    }

    #[cfg(feature = "events")]
    pub(crate) fn handler_batch(&self, took: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        histogram!(names::HANDLER_BATCH_SECONDS).record(took.as_secs_f64());
    }

    /// Every message acknowledged so far.
    pub fn handled(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
            + self.ignored.load(Ordering::Relaxed)
            + self.retried.load(Ordering::Relaxed)
            + self.dead_lettered.load(Ordering::Relaxed)
    }
}

/// Queue depths of a consumer's queues (a passive declare's answer).
pub(crate) fn queue_depth(queue: &str, messages: u32, consumers: u32) {
    gauge!(names::QUEUE_MESSAGES, "queue" => queue.to_owned()).set(f64::from(messages));
    gauge!(names::QUEUE_CONSUMERS, "queue" => queue.to_owned()).set(f64::from(consumers));
}
