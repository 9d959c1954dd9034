//! The event consumer's database work, on a blocking thread: a batch of messages through
//! their handlers in one transaction, with a handler that panics isolated to its own message.

use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, Utc};
use cqrs_core::event::{BatchItem, Handled, HandlerEntry, HandlerError, Incoming};
use cqrs_core::event::{dispatch, dispatch_batch};
use cqrs_core::registry::Registered;

/// A message for the handlers: its place in the batch, its handler, the message.
pub(super) type Work<C> = (usize, &'static HandlerEntry<C>, Incoming);

/// What a handler did with a message.
pub(super) type HandlerResult = Result<Handled, HandlerError>;

/// Why the database could not take a batch (it is kept and tried again).
pub(super) type DatabaseAway = Box<dyn std::error::Error + Send + Sync>;

/// Runs `work` on `conn` (opened, and made durable, when there is none). Returns the
/// connection to keep (none once it is broken) and each message's result, in order; `Err`
/// when the database is away and nothing was committed. Inbox entries older than `purge` are
/// deleted afterwards.
pub(super) fn run<C: Registered>(
    conn: Option<C>,
    url: &str,
    work: &[Work<C>],
    purge: Option<DateTime<Utc>>,
) -> (Option<C>, Result<Vec<HandlerResult>, DatabaseAway>) {
    let mut conn = match conn.map_or_else(|| connect(url), Ok) {
        Ok(conn) => conn,
        Err(error) => return (None, Err(error.into())),
    };
    let items: Vec<BatchItem<'_, C>> = work
        .iter()
        .map(|(_, entry, incoming)| (*entry, incoming))
        .collect();
    let results = match catch_unwind(AssertUnwindSafe(|| dispatch_batch(&mut conn, &items))) {
        // the connection is broken: reopened for the next try
        Ok(Err(error)) => return (None, Err(error.into())),
        Ok(Ok(results)) => results,
        // a handler panicked; its transaction may be left open: a new connection, and each
        // message on its own to find which
        Err(_) => {
            drop(conn);
            return one_by_one(url, &items);
        }
    };
    if let Some(before) = purge {
        match conn.inbox_purge(before) {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "old inbox entries purged"),
            Err(error) => tracing::warn!(%error, "inbox purge failed"),
        }
    }
    (Some(conn), Ok(results))
}

/// Each message in its own transaction on a fresh connection after each panic; a message
/// whose handler panics is a permanent failure (dead-lettered with the panic's message).
fn one_by_one<C: Registered>(
    url: &str,
    items: &[BatchItem<'_, C>],
) -> (Option<C>, Result<Vec<HandlerResult>, DatabaseAway>) {
    let mut conn: Option<C> = None;
    let mut results = Vec::with_capacity(items.len());
    for (entry, incoming) in items {
        let mut c = match conn.take().map_or_else(|| connect(url), Ok) {
            Ok(c) => c,
            Err(error) => return (None, Err(error.into())),
        };
        match catch_unwind(AssertUnwindSafe(|| dispatch(&mut c, entry, incoming))) {
            Ok(Err(error)) if error.is_unavailable() => return (None, Err(error.into())),
            Ok(result) => {
                results.push(result);
                conn = Some(c);
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                tracing::error!(handler = entry.name, %message, "event handler panicked");
                results.push(Err(HandlerError::permanent(format!(
                    "the handler `{}` panicked: {message}",
                    entry.name
                ))));
            }
        }
    }
    (conn, Ok(results))
}

/// A connection for the handlers whose commits are durable before they are acknowledged.
fn connect<C: Registered>(url: &str) -> cqrs_core::Result<C> {
    let mut conn = C::cqrs_connect(url)?;
    for warning in conn.cqrs_durable()? {
        tracing::warn!("{warning}");
    }
    Ok(conn)
}
