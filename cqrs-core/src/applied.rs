//! The in-process signal that a replica apply committed rows: what wakes a read-your-writes
//! wait ([`crate::split::ReadWrite::wait_applied`]) as soon as the consumer of the same process
//! has applied the row it waits for, instead of at its next poll. Only the waits of the rows a
//! commit touched are woken (each then looks at its row once), so a busy consumer does not
//! make every wait query the database at every commit.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::message::Message;

type Key = (String, String);

static WAITERS: LazyLock<Mutex<HashMap<Key, Vec<Arc<Notify>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn waiters() -> std::sync::MutexGuard<'static, HashMap<Key, Vec<Arc<Notify>>>> {
    // a panic while holding the lock leaves a map that is still valid
    WAITERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tells this process's waits that these messages' rows were committed. The batch apply calls
/// it after every commit; without a wait registered it only takes a lock and looks.
pub fn committed<'m>(messages: impl IntoIterator<Item = &'m Message>) {
    let map = waiters();
    if map.is_empty() {
        return;
    }
    for message in messages {
        let Some(pk) = message.row_pk() else { continue };
        if let Some(list) = map.get(&(message.cqrs_id.clone(), pk)) {
            for notify in list {
                notify.notify_one();
            }
        }
    }
}

/// A registered wait for one row: woken when a commit of this process touched it. Registered
/// from creation to drop; a commit between the two is not lost (it leaves a permit).
#[derive(Debug)]
pub struct RowWaiter {
    key: Key,
    notify: Arc<Notify>,
}

impl RowWaiter {
    /// Registers a wait for row `pk` (its key's text) of `cqrs_id`.
    pub fn new(cqrs_id: &str, pk: String) -> Self {
        let key = (cqrs_id.to_owned(), pk);
        let notify = Arc::new(Notify::new());
        waiters()
            .entry(key.clone())
            .or_default()
            .push(Arc::clone(&notify));
        Self { key, notify }
    }

    /// Waits for the next commit of the row (at once if one came since the last call).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

impl Drop for RowWaiter {
    fn drop(&mut self) {
        let mut map = waiters();
        if let Some(list) = map.get_mut(&self.key) {
            list.retain(|n| !Arc::ptr_eq(n, &self.notify));
            if list.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}
