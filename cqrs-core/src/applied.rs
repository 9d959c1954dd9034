//! The in-process signal that a replica apply committed: what wakes a read-your-writes wait
//! ([`crate::split::ReadWrite::wait_applied`]) as soon as the consumer of the same process has
//! applied a batch, instead of at its next poll.

use crate::signal::{Signal, Subscription};

static APPLIED: Signal = Signal::new();

/// Tells this process's waiters that a replica transaction committed. The batch apply calls it
/// after every commit.
pub fn notify() {
    APPLIED.notify();
}

/// A subscription to [`notify`].
#[derive(Debug)]
pub struct AppliedWaker(Subscription);

impl AppliedWaker {
    /// Subscribes; only commits after this call wake it.
    pub fn new() -> Self {
        Self(APPLIED.subscribe())
    }

    /// Waits for the next commit (returns at once if one happened since the last call).
    pub async fn wait(&mut self) {
        self.0.wait().await;
    }
}

impl Default for AppliedWaker {
    fn default() -> Self {
        Self::new()
    }
}
