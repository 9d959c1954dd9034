//! The counters of a running relay and consumer (shared with the service through `Arc`).

use std::sync::atomic::{AtomicU64, Ordering};

use cqrs_core::Outcome;

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
}

/// Counters of a running consumer.
#[derive(Debug, Default)]
pub struct ConsumerMetrics {
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

impl ConsumerMetrics {
    pub(crate) fn count_outcome(&self, outcome: Outcome) {
        match outcome {
            Outcome::Ignored(_) => self.ignored.fetch_add(1, Ordering::Relaxed),
            _ => self.applied.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub(crate) fn count_retry(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_dead_letter(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    /// Every message acknowledged so far.
    pub fn handled(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
            + self.ignored.load(Ordering::Relaxed)
            + self.retried.load(Ordering::Relaxed)
            + self.dead_lettered.load(Ordering::Relaxed)
    }
}
