//! A process-wide wake-up signal: a generation counter in a `watch` channel. The outbox's
//! (a master write happened) and the replica's (an apply committed) are both one of these.

use std::sync::OnceLock;

use tokio::sync::watch;

/// A signal that lives in a `static`.
pub(crate) struct Signal(OnceLock<watch::Sender<u64>>);

impl Signal {
    pub(crate) const fn new() -> Self {
        Self(OnceLock::new())
    }

    fn sender(&self) -> &watch::Sender<u64> {
        self.0.get_or_init(|| watch::channel(0).0)
    }

    /// Wakes every subscription.
    pub(crate) fn notify(&self) {
        self.sender()
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// A subscription woken by the notifications after this call.
    pub(crate) fn subscribe(&self) -> Subscription {
        Subscription(self.sender().subscribe())
    }
}

/// One subscriber of a [`Signal`].
#[derive(Debug)]
pub(crate) struct Subscription(watch::Receiver<u64>);

impl Subscription {
    /// Waits until a notification happened since the last call (at once if one did).
    pub(crate) async fn wait(&mut self) {
        // The sender lives in a static and is never dropped, so `changed` cannot fail.
        let _ = self.0.changed().await;
    }

    /// Takes the notifications so far as seen: [`Subscription::wait`] then waits for a later
    /// one.
    pub(crate) fn mark_seen(&mut self) {
        let _ = self.0.borrow_and_update();
    }
}
