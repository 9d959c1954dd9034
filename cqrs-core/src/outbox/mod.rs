//! The transactional outbox: how a transport takes messages out, in order, and removes them
//! once the broker confirmed them.
//!
//! A master write inserts its message into `cqrs_outbox` in the same transaction as the row
//! change, so a rollback sends nothing and a commit cannot lose its message. A relay (for
//! example `cqrs_rabbit::Relay`) calls [`relay_batch`] in a loop, and waits on
//! [`OutboxWaker`] between batches instead of polling hard.

mod cursor;

pub use cursor::OutboxCursor;

use crate::db::{CqrsConnection, OutboxMessage, OutboxRecord, OutboxTaken};
use crate::signal::{Signal, Subscription};

static OUTBOX: Signal = Signal::new();

/// Signals relays in this process that the outbox has new messages. Every master write calls
/// it through [`crate::transaction`]: after the commit of an outermost transaction, at once
/// for a write inside a caller's transaction (then the relay may find nothing yet, and looks
/// again shortly).
pub fn notify_local() {
    OUTBOX.notify();
}

/// Wakes a relay when messages were written to the outbox by this process.
///
/// On PostgreSQL the relay also `LISTEN`s to the channel every outbox insert notifies at
/// commit, from any process (`cqrs_core::db::postgres::NOTIFY_CHANNEL`).
#[derive(Debug)]
pub struct OutboxWaker(Subscription);

impl OutboxWaker {
    /// Subscribes to this process's outbox inserts.
    pub fn new() -> Self {
        Self(OUTBOX.subscribe())
    }

    /// Waits until an insert happened since the last call (returns at once if one did).
    pub async fn wait(&mut self) {
        self.0.wait().await;
    }

    /// Takes the wakes so far as answered: call it right before a look at the outbox. A
    /// write's wake comes after its commit, so that look sees its messages, and a later
    /// [`OutboxWaker::wait`] waits for a newer write instead of causing an empty look. (A
    /// write inside a caller's transaction wakes before its commit: if that wake is taken
    /// here, the relay's poll, or PostgreSQL's notification at the commit, finds the
    /// message.)
    pub fn covered(&mut self) {
        self.0.mark_seen();
    }
}

impl Default for OutboxWaker {
    fn default() -> Self {
        Self::new()
    }
}

/// What one [`relay_batch`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayedBatch {
    /// Messages taken from the outbox.
    pub fetched: usize,
    /// Messages the broker confirmed, now removed from the outbox (on SQLite another relay
    /// of the same file may have removed some first: they still count, the broker has them).
    pub published: usize,
    /// Due messages left for a later look: an earlier message of their row (or aggregate) was
    /// in another relay's hands (PostgreSQL, several relays).
    pub held_back: usize,
}

/// Takes up to `limit` of the oldest messages, hands them to `publish` (which returns the ids
/// the broker confirmed) and removes those.
///
/// Where the backend allows it ([`OutboxReader::CONCURRENT_TAKE`](crate::db::OutboxReader::CONCURRENT_TAKE), PostgreSQL), the batch is
/// taken in one statement that skips rows locked by another relay, and what the broker did not
/// confirm is put back, under its own id, before the commit: several relay processes never
/// publish the same message concurrently, and a message whose row (or aggregate) has an
/// earlier message in another relay's hands stays for a later look
/// ([`RelayedBatch::held_back`]), so that a row's messages reach the broker in order. There
/// `cursor` says where the look starts: while batches come back full, past what the last one
/// took ([`OutboxCursor`]). Elsewhere (SQLite) the fetch takes no lock, so that a relay never
/// blocks the application's writers while it talks to the broker: run one relay per database.
///
/// A crash between the broker's confirm and the removal publishes a message again after a
/// restart: delivery is at least once, and replicas drop the duplicate by its revision.
pub fn relay_batch<C, F, E>(
    conn: &mut C,
    limit: i64,
    cursor: &mut OutboxCursor,
    publish: F,
) -> Result<RelayedBatch, E>
where
    C: CqrsConnection,
    F: FnOnce(&[OutboxRecord]) -> Result<Vec<i64>, E>,
    E: From<diesel::result::Error>,
{
    if C::CONCURRENT_TAKE {
        // One statement takes the batch (DELETE ... FOR UPDATE SKIP LOCKED ... RETURNING);
        // what the broker did not confirm is put back before the commit.
        let batch = conn.cqrs_transaction(|conn| {
            let taken = take(conn, limit, cursor)?;
            let OutboxTaken {
                records, held_back, ..
            } = taken;
            if records.is_empty() {
                return Ok(RelayedBatch {
                    held_back,
                    ..RelayedBatch::default()
                });
            }
            let confirmed = publish(&records)?;
            if confirmed.len() < records.len() {
                // under their own ids: still before the later messages of their rows
                let back: Vec<OutboxRecord> = records
                    .iter()
                    .filter(|r| !confirmed.contains(&r.id))
                    .cloned()
                    .collect();
                conn.outbox_put_back(&back)?;
                cursor.rewind();
            }
            Ok(RelayedBatch {
                fetched: records.len(),
                published: confirmed.len(),
                held_back,
            })
        });
        if batch.is_err() {
            // rolled back: what it took is in the outbox again
            cursor.rewind();
        }
        batch
    } else {
        let records = conn.outbox_fetch(limit)?;
        if records.is_empty() {
            return Ok(RelayedBatch::default());
        }
        let confirmed = publish(&records)?;
        conn.cqrs_transaction(|conn| conn.outbox_delete(&confirmed))?;
        Ok(RelayedBatch {
            fetched: records.len(),
            published: confirmed.len(),
            held_back: 0,
        })
    }
}

/// One look at the outbox from `cursor`; a look from past the start that finds nothing looks
/// again from the start, so that an empty batch always means an empty outbox.
fn take<C: CqrsConnection>(
    conn: &mut C,
    limit: i64,
    cursor: &mut OutboxCursor,
) -> diesel::QueryResult<OutboxTaken> {
    let mut look = |conn: &mut C| {
        let look = cursor.begin();
        let taken = conn.outbox_take(limit, look.from)?;
        cursor.end(look, &taken, limit);
        diesel::QueryResult::Ok((look.from, taken))
    };
    let (from, taken) = look(conn)?;
    if from == 0 || !taken.records.is_empty() || taken.held_back > 0 {
        return Ok(taken);
    }
    // `end` put the cursor back at the start
    Ok(look(conn)?.1)
}

/// Writes messages to the outbox of `conn` (in its current transaction, if any).
pub fn enqueue<C: CqrsConnection>(
    conn: &mut C,
    messages: &[OutboxMessage],
) -> diesel::QueryResult<()> {
    conn.outbox_insert(messages)
}
