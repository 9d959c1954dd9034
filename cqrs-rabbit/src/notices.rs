//! The outbox notifications a relay receives from PostgreSQL (`LISTEN`), and which of them
//! are news to it.
//!
//! Each outbox insert notifies, at its transaction's commit, with the id of its last message
//! (`cqrs_core`'s `db/announce.rs`). A relay that took that message already (the notification
//! often arrives while the relay publishes the very messages it announces: a write of this
//! process wakes the relay directly, at its commit) needs no other look at the outbox: the
//! messages of one transaction become visible together, and the relay takes them in id
//! order. Without this, every write cost the relay an empty cycle (a transaction, a `DELETE`
//! and a commit on the database): measured at 100 writes/s, three relay cycles per message.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// How many taken ids a relay remembers: far more than are taken between a commit and its
/// notification.
const REMEMBERED: usize = 16_384;

/// What the `LISTEN` connection brought since the relay last looked.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    notify: Notify,
    /// What was notified since the last look.
    pending: Mutex<Pending>,
    /// Whether a `LISTEN` is in place (then a commit of any process is announced).
    listening: AtomicBool,
}

impl Notices {
    /// Records a notification (its payload) and wakes the relay.
    #[cfg_attr(
        not(feature = "postgres"),
        allow(dead_code, reason = "only the PostgreSQL listener notifies")
    )]
    pub(crate) fn received(&self, payload: &str) {
        {
            let mut pending = lock(&self.pending);
            match payload.trim().parse::<i64>() {
                Ok(id) => pending.ids.push(id),
                Err(_) => pending.anonymous = true,
            }
        }
        self.notify.notify_one();
    }

    /// Whether the `LISTEN` is in place.
    #[cfg_attr(
        not(feature = "postgres"),
        allow(dead_code, reason = "only the PostgreSQL listener listens")
    )]
    pub(crate) fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Relaxed);
    }

    /// Whether every commit is announced here (the relay then needs no early second looks
    /// after a wake of this process that found nothing).
    pub(crate) fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Waits for a notification.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Whether the notifications since the last call announce messages the relay has not
    /// taken (then it looks at the outbox); forgets them.
    pub(crate) fn news(&self, taken: &Taken) -> bool {
        let pending = std::mem::take(&mut *lock(&self.pending));
        pending.anonymous || pending.ids.iter().any(|id| !taken.contains(*id))
    }
}

/// The notifications not looked at yet.
#[derive(Debug, Default)]
struct Pending {
    ids: Vec<i64>,
    /// A notification without an id came (another sender): news.
    anonymous: bool,
}

/// The ids of the messages a relay took lately.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    ids: Mutex<(HashSet<i64>, VecDeque<i64>)>,
}

impl Taken {
    /// Remembers `ids` as taken (forgetting the oldest beyond [`REMEMBERED`]).
    pub(crate) fn record(&self, ids: impl IntoIterator<Item = i64>) {
        let mut guard = lock(&self.ids);
        let (set, order) = &mut *guard;
        for id in ids {
            if set.insert(id) {
                order.push_back(id);
            }
        }
        while order.len() > REMEMBERED {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
    }

    /// Forgets every id (the batch that took them rolled back: they are in the outbox again).
    pub(crate) fn clear(&self) {
        let mut guard = lock(&self.ids);
        guard.0.clear();
        guard.1.clear();
    }

    fn contains(&self, id: i64) -> bool {
        lock(&self.ids).0.contains(&id)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_of_a_taken_message_is_no_news() {
        let (notices, taken) = (Notices::default(), Taken::default());
        taken.record([4, 5]);
        notices.received("5");
        assert!(!notices.news(&taken));
        notices.received("5");
        notices.received("6");
        assert!(notices.news(&taken), "6 was not taken");
        assert!(!notices.news(&taken), "forgotten once looked at");
    }

    #[test]
    fn a_notification_without_an_id_is_news() {
        let (notices, taken) = (Notices::default(), Taken::default());
        notices.received("");
        notices.received("3");
        taken.record([3]);
        assert!(notices.news(&taken));
    }

    #[test]
    fn a_rolled_back_batch_is_forgotten_and_the_memory_is_bounded() {
        let (notices, taken) = (Notices::default(), Taken::default());
        taken.record(0..i64::try_from(REMEMBERED).unwrap_or(0) + 10);
        notices.received("3");
        assert!(notices.news(&taken), "the oldest ids are forgotten");
        notices.received("100");
        assert!(!notices.news(&taken));
        taken.clear();
        notices.received("100");
        assert!(notices.news(&taken));
    }
}
