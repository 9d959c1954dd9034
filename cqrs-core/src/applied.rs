//! The in-process signal that a replica apply committed rows: what wakes a read-your-writes
//! wait ([`crate::split::ReadWrite::wait_applied`]) as soon as the consumer of the same process
//! has applied the row it waits for, instead of at its next poll. Only the waits of the rows a
//! commit touched are woken (each then looks at its row once), so a busy consumer does not
//! make every wait query the database at every commit.
//!
//! A wake says which revision of the row the commit left in the replica (or later), when it
//! knows: a message applied, or ignored because the replica holds that revision or a later one
//! (or a later delete). The wait then needs no look at the database at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::message::Message;
use crate::rules::{IgnoreReason, Outcome};

type Key = (String, String);

/// One wait's wake-up and the newest revision a commit vouched for (-1: none yet).
#[derive(Debug)]
struct Slot {
    notify: Notify,
    seen: AtomicI64,
}

static WAITERS: LazyLock<Mutex<HashMap<Key, Vec<Arc<Slot>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn waiters() -> std::sync::MutexGuard<'static, HashMap<Key, Vec<Arc<Slot>>>> {
    // a panic while holding the lock leaves a map that is still valid
    WAITERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The revision a committed message's result vouches for: the replica holds it or a later
/// version of the row. `None` for a failure, a broadcast SYNC a model ignores (the replica may
/// be older), or a message without a revision.
pub fn vouched(message: &Message, result: Option<&Outcome>) -> Option<i64> {
    match result? {
        Outcome::Ignored(IgnoreReason::BroadcastSync) => None,
        _ => message
            .instance_data
            .get("cqrs_revision")
            .and_then(serde_json::Value::as_i64),
    }
}

/// Tells this process's waits that these messages' rows were committed, with the revision
/// each commit vouches for ([`vouched`]; `None`: the wait looks at the database). The batch
/// apply calls it after every commit; without a wait registered it only takes a lock and
/// looks.
pub fn committed<'m>(messages: impl IntoIterator<Item = (&'m Message, Option<i64>)>) {
    let map = waiters();
    if map.is_empty() {
        return;
    }
    for (message, revision) in messages {
        let Some(pk) = message.row_pk() else { continue };
        if let Some(list) = map.get(&(message.cqrs_id.clone(), pk)) {
            for slot in list {
                if let Some(revision) = revision {
                    slot.seen.fetch_max(revision, Ordering::AcqRel);
                }
                slot.notify.notify_one();
            }
        }
    }
}

static APPLYING: LazyLock<Mutex<HashMap<String, usize>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn applying() -> std::sync::MutexGuard<'static, HashMap<String, usize>> {
    APPLYING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Says, while it lives, that a consumer of this process applies these `cqrs_id`s and wakes
/// their waits at every commit ([`committed`]): a wait for one of them then looks at the
/// database only as a safety net (see [`applies_here`]). Held by a running consumer.
#[derive(Debug)]
pub struct Applying {
    cqrs_ids: Vec<String>,
}

impl Applying {
    /// Registers the `cqrs_id`s a consumer of this process applies.
    pub fn new<'a>(cqrs_ids: impl IntoIterator<Item = &'a str>) -> Self {
        let cqrs_ids: Vec<String> = cqrs_ids.into_iter().map(str::to_owned).collect();
        let mut map = applying();
        for id in &cqrs_ids {
            *map.entry(id.clone()).or_default() += 1;
        }
        Self { cqrs_ids }
    }
}

impl Drop for Applying {
    fn drop(&mut self) {
        let mut map = applying();
        for id in &self.cqrs_ids {
            if let Some(count) = map.get_mut(id) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(id);
                }
            }
        }
    }
}

/// Whether a consumer of this process applies `cqrs_id` ([`Applying`]), so that its commits
/// wake the waits of its rows.
pub fn applies_here(cqrs_id: &str) -> bool {
    applying().contains_key(cqrs_id)
}

/// A registered wait for one row: woken when a commit of this process touched it. Registered
/// from creation to drop; a commit between the two is not lost (it leaves a permit).
#[derive(Debug)]
pub struct RowWaiter {
    key: Key,
    slot: Arc<Slot>,
}

impl RowWaiter {
    /// Registers a wait for row `pk` (its key's text) of `cqrs_id`.
    pub fn new(cqrs_id: &str, pk: String) -> Self {
        let key = (cqrs_id.to_owned(), pk);
        let slot = Arc::new(Slot {
            notify: Notify::new(),
            seen: AtomicI64::new(-1),
        });
        waiters()
            .entry(key.clone())
            .or_default()
            .push(Arc::clone(&slot));
        Self { key, slot }
    }

    /// Waits for the next commit of the row (at once if one came since the last call).
    pub async fn wait(&self) {
        self.slot.notify.notified().await;
    }

    /// The newest revision of the row a commit since registration vouched for, if any.
    pub fn seen(&self) -> Option<i64> {
        let seen = self.slot.seen.load(Ordering::Acquire);
        (seen >= 0).then_some(seen)
    }
}

impl Drop for RowWaiter {
    fn drop(&mut self) {
        let mut map = waiters();
        if let Some(list) = map.get_mut(&self.key) {
            list.retain(|n| !Arc::ptr_eq(n, &self.slot));
            if list.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::message::SignalType;

    fn message(revision: i64) -> Message {
        let data = json!({"id": 1, "cqrs_revision": revision});
        let serde_json::Value::Object(map) = data else {
            unreachable!()
        };
        Message::new(SignalType::Save, "applied_test", map, json!(1))
    }

    #[test]
    fn a_running_consumer_says_which_streams_it_applies() {
        assert!(!applies_here("applied_test_here"));
        let first = Applying::new(["applied_test_here"]);
        let second = Applying::new(["applied_test_here", "applied_test_other"]);
        assert!(applies_here("applied_test_here") && applies_here("applied_test_other"));
        drop(first);
        assert!(applies_here("applied_test_here"));
        drop(second);
        assert!(!applies_here("applied_test_here") && !applies_here("applied_test_other"));
    }

    #[test]
    fn a_wake_carries_the_revision_a_commit_vouches_for() {
        let waiter = RowWaiter::new("applied_test", "1".to_owned());
        assert_eq!(waiter.seen(), None);
        let (m3, m5) = (message(3), message(5));
        committed([(&m5, vouched(&m5, Some(&Outcome::Updated)))]);
        assert_eq!(waiter.seen(), Some(5));
        // an older one, a failure, a broadcast SYNC ignored: the newest vouched stays
        committed([(
            &m3,
            vouched(&m3, Some(&Outcome::Ignored(IgnoreReason::Stale))),
        )]);
        committed([(&m3, vouched(&m3, None))]);
        assert_eq!(
            vouched(&m5, Some(&Outcome::Ignored(IgnoreReason::BroadcastSync))),
            None
        );
        assert_eq!(waiter.seen(), Some(5));
    }
}
