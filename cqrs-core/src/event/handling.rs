//! Running handlers in database transactions: one message, or a batch of them in one
//! transaction with a savepoint each, so that one failing handler never undoes the others.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::dispatch::{HandlerEntry, HandlerKind};
use super::incoming::{CallRoute, Incoming};
use crate::db::CqrsConnection;
use crate::error::HandlerError;
use crate::error::{ErrorClass, classify_diesel};

/// What [`dispatch`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The handler ran and its transaction committed.
    Done,
    /// An expired command or call: not executed.
    Expired,
    /// The inbox already holds this handler's effect of this event id.
    Duplicate,
}

/// Runs `entry` on `incoming` in one database transaction: the inbox row (when the handler
/// asks for one), the handler's writes, what it publishes and a call's answer commit together,
/// or nothing does. An expired command or call is not run; with `check_expired_after`, one
/// that expired while it ran is rolled back.
pub fn dispatch<C: CqrsConnection>(
    conn: &mut C,
    entry: &HandlerEntry<C>,
    incoming: &Incoming,
) -> Result<Handled, HandlerError> {
    match Prepared::of(entry, incoming)? {
        None => Ok(Handled::Expired),
        Some(prepared) => settle(
            entry,
            crate::master::transaction(conn, |conn| prepared.run(conn, entry, incoming)),
        ),
    }
}

/// One message of [`dispatch_batch`].
pub type BatchItem<'a, C> = (&'static HandlerEntry<C>, &'a Incoming);

/// Runs a batch of messages in one database transaction with a savepoint per message: each
/// message's result is its own (a failing handler's savepoint is rolled back, the others
/// commit), and the batch pays for one commit instead of one per message. Results come in
/// the items' order.
///
/// The outer `Err` means nothing was committed and the batch must be kept for later: the
/// database is unavailable. A transaction that fails as a whole otherwise (at COMMIT) is not
/// retried as a whole: each message then runs in its own transaction, with its own result.
pub fn dispatch_batch<C: CqrsConnection>(
    conn: &mut C,
    items: &[BatchItem<'_, C>],
) -> Result<Vec<Result<Handled, HandlerError>>, HandlerError> {
    let mut results: Vec<Option<Result<Handled, HandlerError>>> = Vec::with_capacity(items.len());
    let mut ready = Vec::with_capacity(items.len());
    for (index, (entry, incoming)) in items.iter().enumerate() {
        match Prepared::of(entry, incoming) {
            Ok(Some(prepared)) => {
                results.push(None);
                ready.push((index, prepared));
            }
            Ok(None) => results.push(Some(Ok(Handled::Expired))),
            Err(error) => results.push(Some(Err(error))),
        }
    }
    let together = match ready.len() {
        0 => Ok(Vec::new()),
        // one message needs no savepoint: its own transaction is enough
        1 => Err(Batch::Alone),
        _ => crate::master::transaction(conn, |conn| {
            let mut done = Vec::with_capacity(ready.len());
            for (index, prepared) in &ready {
                let (entry, incoming) = items[*index];
                let result = conn.cqrs_transaction(|conn| prepared.run(conn, entry, incoming));
                match settle(entry, result) {
                    Err(error) if error.is_unavailable() => return Err(Batch::Unavailable(error)),
                    result => done.push(result),
                }
            }
            Ok(done)
        }),
    };
    let done = match together {
        Ok(done) => done,
        Err(Batch::Unavailable(error)) => return Err(error),
        Err(Batch::Commit(error)) if classify_diesel(&error) == ErrorClass::Unavailable => {
            return Err(error.into());
        }
        Err(other) => {
            if let Batch::Commit(error) = &other {
                tracing::warn!(%error, messages = ready.len(),
                    "event batch failed as a whole; handling its messages one by one");
            }
            let mut done = Vec::with_capacity(ready.len());
            for (index, prepared) in &ready {
                let (entry, incoming) = items[*index];
                let result =
                    crate::master::transaction(conn, |conn| prepared.run(conn, entry, incoming));
                match settle(entry, result) {
                    Err(error) if error.is_unavailable() => return Err(error),
                    result => done.push(result),
                }
            }
            done
        }
    };
    for ((index, _), result) in ready.iter().zip(done) {
        results[*index] = Some(result);
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Ok(Handled::Expired)))
        .collect())
}

/// Why a batch's transaction did not commit as one.
enum Batch {
    /// Only one message to run: its own transaction.
    Alone,
    /// The database went away: nothing is committed.
    Unavailable(HandlerError),
    /// BEGIN or COMMIT failed.
    Commit(diesel::result::Error),
}

impl From<diesel::result::Error> for Batch {
    fn from(error: diesel::result::Error) -> Self {
        Self::Commit(error)
    }
}

/// What is known of a message before its transaction: when it expires, where a call's
/// answer goes.
struct Prepared {
    expires: Option<DateTime<Utc>>,
    route: Option<CallRoute>,
}

impl Prepared {
    /// `None`: an expired command or call, not to be run.
    fn of<C>(entry: &HandlerEntry<C>, incoming: &Incoming) -> Result<Option<Self>, HandlerError> {
        let expires = match entry.kind {
            HandlerKind::Command | HandlerKind::Call => incoming.expires()?,
            _ => None,
        };
        if expires.is_some_and(|t| t < Utc::now()) {
            return Ok(None);
        }
        let route = match entry.kind {
            HandlerKind::Call => Some(CallRoute::of(incoming)?),
            _ => None,
        };
        Ok(Some(Self { expires, route }))
    }

    /// The inbox row, the handler and a call's answer, inside the caller's transaction.
    fn run<C: CqrsConnection>(
        &self,
        conn: &mut C,
        entry: &HandlerEntry<C>,
        incoming: &Incoming,
    ) -> Result<Handled, Abort> {
        if entry.inbox
            && let Some(id) = incoming.event_id()
            && !conn.inbox_insert(entry.name, &id)?
        {
            return Ok(Handled::Duplicate);
        }
        let answer = (entry.run)(conn, incoming)?;
        if entry.check_expired_after && self.expires.is_some_and(|t| t < Utc::now()) {
            return Err(Abort::ExpiredWhileRunning);
        }
        if let Some(route) = &self.route {
            super::send_call_response(conn, route, &answer.unwrap_or(Value::Null))?;
        }
        Ok(Handled::Done)
    }
}

/// A handler's transaction result as the consumer sees it.
fn settle<C>(
    entry: &HandlerEntry<C>,
    result: Result<Handled, Abort>,
) -> Result<Handled, HandlerError> {
    match result {
        Ok(handled) => Ok(handled),
        Err(Abort::ExpiredWhileRunning) => {
            tracing::warn!(
                handler = entry.name,
                "the command expired while its handler ran: rolled back"
            );
            Ok(Handled::Expired)
        }
        Err(Abort::Failed(error)) => Err(error),
    }
}

/// Why a handler's transaction rolls back.
enum Abort {
    Failed(HandlerError),
    ExpiredWhileRunning,
}

impl<E: Into<HandlerError>> From<E> for Abort {
    fn from(error: E) -> Self {
        Self::Failed(error.into())
    }
}
