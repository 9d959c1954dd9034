//! The consumer's database transaction: a batch of messages, of any registered replica
//! models, applied in one transaction with a savepoint per message, so that one bad message
//! never rolls back the others. Models with the generated hooks get their messages written
//! with multi-row statements (`replica::apply_many`); a group that fails falls back
//! to one savepoint per message.

use std::fmt;

use crate::db::{CqrsConnection, row_lock_key};
use crate::error::{ApplyError, ErrorClass, classify_diesel};
use crate::message::Message;
use crate::registry::ReplicaOps;
use crate::rules::Outcome;

/// One message of a batch.
pub struct BatchItem<'a, C: 'static> {
    /// The replica model's operations.
    pub ops: &'static dyn ReplicaOps<C>,
    /// The message.
    pub message: &'a Message,
    /// Whether it was sent to this replica's queue only.
    pub direct: bool,
}

impl<C> fmt::Debug for BatchItem<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchItem")
            .field("cqrs_id", &self.message.cqrs_id)
            .field("instance_pk", &self.message.instance_pk)
            .field("direct", &self.direct)
            .finish_non_exhaustive()
    }
}

/// Errors inside the batch transaction.
enum TxError {
    /// BEGIN, SAVEPOINT, RELEASE or COMMIT failed.
    Db(diesel::result::Error),
    /// A message failed: roll its savepoint (or the transaction of a batch of one) back.
    Message(ApplyError),
    /// The database is gone: undo everything.
    Abort(ApplyError),
    /// The batch's only model failed as a group, applied without a savepoint: undo, then
    /// apply the batch a savepoint per message.
    Regroup,
}

impl From<diesel::result::Error> for TxError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error)
    }
}

impl TxError {
    fn into_apply(self) -> ApplyError {
        match self {
            Self::Db(source) => ApplyError::Transaction { source },
            Self::Message(error) | Self::Abort(error) => error,
            Self::Regroup => ApplyError::Unprocessed,
        }
    }

    /// A message's error: undo everything if the database is gone, else only this message.
    fn of_message(error: ApplyError) -> Self {
        if error.is_unavailable() {
            Self::Abort(error)
        } else {
            Self::Message(error)
        }
    }
}

/// The sorted, distinct lock keys of the rows these messages change
/// ([`TombstoneStore::lock_rows`]). A row is named by `instance_pk` (the apply refuses a
/// message whose data names another row), or the DELETE stub's `id`; a message naming
/// neither locks its model's whole stream.
fn lock_keys<'m>(messages: impl Iterator<Item = &'m Message>) -> Vec<i64> {
    let mut keys: Vec<i64> = messages
        .map(|m| row_lock_key(&m.cqrs_id, m.row_pk().as_deref().unwrap_or("*")))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Applies one message in its own transaction (a savepoint when one is open): a failed
/// message leaves nothing behind.
pub fn apply_one<C: CqrsConnection>(
    conn: &mut C,
    ops: &dyn ReplicaOps<C>,
    message: &Message,
    direct: bool,
) -> Result<Outcome, ApplyError> {
    let nested = conn.cqrs_in_transaction();
    let outcome = conn
        .cqrs_transaction(|conn| {
            conn.lock_rows(&lock_keys(std::iter::once(message)))?;
            ops.apply(conn, message, direct).map_err(TxError::Message)
        })
        .map_err(TxError::into_apply)?;
    // wake this process's read-your-writes waits of this row; inside a caller's transaction
    // nothing is committed yet, so the wake vouches for nothing (the wait looks, finds
    // nothing new yet, and waits again)
    let revision = if nested {
        None
    } else {
        crate::applied::vouched(message, Some(&outcome))
    };
    crate::applied::committed(std::iter::once((message, revision)));
    Ok(outcome)
}

/// Applies a batch in one transaction with a savepoint per message, so that one bad message
/// never rolls back the others. Returns each message's result, in order.
///
/// The outer `Err` means the whole batch is undone and must be kept for later: the database
/// is unavailable. A transaction that fails otherwise (at COMMIT: a deferred constraint, a
/// serialization failure) is not retried as a whole: each message is applied in its own
/// transaction, and its result is its own.
pub fn apply_batch<C: CqrsConnection>(
    conn: &mut C,
    items: &[BatchItem<'_, C>],
) -> Result<Vec<Result<Outcome, ApplyError>>, ApplyError> {
    let nested = conn.cqrs_in_transaction();
    if items.len() == 1 {
        // A batch of one needs no savepoint: its own transaction rolls back on failure.
        // Its transaction failing (at COMMIT, say) is its own result, retried or
        // dead-lettered like any other failure: only a lost database keeps it for later.
        return one_by_one(conn, items);
    }
    let results = match together(conn, items, true) {
        // the savepoint a group needs when it may fail is paid only when it did fail
        Err(TxError::Regroup) => together(conn, items, false),
        result => result,
    };
    let results = match results {
        Err(TxError::Db(error)) if classify_diesel(&error) != ErrorClass::Unavailable => {
            // The transaction as a whole failed, at COMMIT (a deferred constraint, a
            // serialization failure) or at BEGIN: retrying it could fail forever. Each message
            // in its own transaction instead, to be retried or dead-lettered on its own.
            tracing::warn!(%error, messages = items.len(),
                "CQRS batch failed as a whole; applying its messages one by one");
            one_by_one(conn, items)
        }
        result => result.map_err(TxError::into_apply),
    }?;
    crate::applied::committed(items.iter().zip(&results).map(|(item, result)| {
        (
            item.message,
            result
                .as_ref()
                .ok()
                .filter(|_| !nested)
                .and_then(|outcome| crate::applied::vouched(item.message, Some(outcome))),
        )
    }));
    Ok(results)
}

/// Each message in its own transaction. `Err` only when the database is gone (what was
/// committed comes again and is dropped as a duplicate).
fn one_by_one<C: CqrsConnection>(
    conn: &mut C,
    items: &[BatchItem<'_, C>],
) -> Result<Vec<Result<Outcome, ApplyError>>, ApplyError> {
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        match apply_one(conn, item.ops, item.message, item.direct) {
            Err(error) if error.is_unavailable() => return Err(error),
            result => results.push(result),
        }
    }
    Ok(results)
}

/// The batch in one transaction: each model's messages as a group (`group`, for a model with
/// the generated hooks; in a savepoint unless it is the batch's only model, whose failure
/// then asks for [`TxError::Regroup`]), or a savepoint per message.
fn together<C: CqrsConnection>(
    conn: &mut C,
    items: &[BatchItem<'_, C>],
    group: bool,
) -> Result<Vec<Result<Outcome, ApplyError>>, TxError> {
    conn.cqrs_transaction(|conn| {
        conn.lock_rows(&lock_keys(items.iter().map(|item| item.message)))?;
        let mut results: Vec<Option<Result<Outcome, ApplyError>>> =
            items.iter().map(|_| None).collect();
        let groups = groups(items);
        let sole = groups.len() == 1;
        for (ops, indexes) in groups {
            if group && indexes.len() > 1 && ops.batchable() {
                let messages: Vec<(&Message, bool)> = indexes
                    .iter()
                    .map(|i| (items[*i].message, items[*i].direct))
                    .collect();
                if sole {
                    // the whole transaction is this group: no savepoint (two round trips)
                    let group = ops.apply_many(conn, &messages).map_err(|error| {
                        if error.is_unavailable() {
                            TxError::Abort(error)
                        } else {
                            TxError::Regroup
                        }
                    })?;
                    for (index, result) in indexes.iter().zip(group) {
                        results[*index] = Some(result);
                    }
                    continue;
                }
                match conn.cqrs_transaction(|conn| {
                    ops.apply_many(conn, &messages).map_err(TxError::of_message)
                }) {
                    Ok(group) => {
                        for (index, result) in indexes.iter().zip(group) {
                            results[*index] = Some(result);
                        }
                        continue;
                    }
                    Err(TxError::Abort(error)) => return Err(TxError::Abort(error)),
                    Err(TxError::Db(error))
                        if classify_diesel(&error) == ErrorClass::Unavailable =>
                    {
                        return Err(TxError::Db(error));
                    }
                    // Rolled back to the savepoint: apply this model's messages one by one.
                    Err(TxError::Message(_) | TxError::Db(_) | TxError::Regroup) => {}
                }
            }
            for index in indexes {
                let item = &items[index];
                let result = conn.cqrs_transaction(|conn| {
                    item.ops
                        .apply(conn, item.message, item.direct)
                        .map_err(TxError::of_message)
                });
                match result {
                    Ok(outcome) => results[index] = Some(Ok(outcome)),
                    Err(TxError::Message(error)) => results[index] = Some(Err(error)),
                    Err(other) => return Err(other),
                }
            }
        }
        results
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(TxError::Abort(ApplyError::Unprocessed))
    })
}

/// The indexes of each model's messages, in arrival order (models do not share rows). Grouped
/// by `cqrs_id`: the operations are zero-sized, so their addresses tell nothing apart.
fn groups<'i, C: 'static>(
    items: &'i [BatchItem<'_, C>],
) -> Vec<(&'static dyn ReplicaOps<C>, Vec<usize>)> {
    let mut groups: Vec<(&'i str, &'static dyn ReplicaOps<C>, Vec<usize>)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let cqrs_id = item.message.cqrs_id.as_str();
        match groups.iter_mut().find(|(id, _, _)| *id == cqrs_id) {
            Some((_, _, indexes)) => indexes.push(index),
            None => groups.push((cqrs_id, item.ops, vec![index])),
        }
    }
    groups
        .into_iter()
        .map(|(_, ops, indexes)| (ops, indexes))
        .collect()
}
