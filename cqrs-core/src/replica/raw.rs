//! Replicas without a table (django-cqrs's `RawReplicaMixin` and `CQRS_NO_DB_OPERATIONS`): a
//! replica whose hooks put the stream somewhere else (a cache, a search index, a file, another
//! service's API). The consumer runs them as it runs table replicas: in its batches, with the
//! same retries, delays and dead letters, and the same metrics.
//!
//! ```
//! use std::sync::Mutex;
//! use cqrs_core::message::Message;
//! use cqrs_core::replica::RawReplica;
//! use cqrs_core::ApplyError;
//!
//! /// Article titles, for a search index kept in memory.
//! struct TitleIndex;
//!
//! static TITLES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
//!
//! impl RawReplica for TitleIndex {
//!     const CQRS_ID: &'static str = "article";
//!
//!     fn cqrs_save(message: &Message, pk: &str) -> Result<bool, ApplyError> {
//!         let title = message.instance_data.get("title").and_then(|t| t.as_str())
//!             .ok_or_else(|| ApplyError::reject("article", pk, "no title"))?;
//!         let mut titles = TITLES.lock().map_err(|_| ApplyError::retry("article", pk, "poisoned"))?;
//!         let created = !titles.iter().any(|(k, _)| k == pk);
//!         titles.retain(|(k, _)| k != pk);
//!         titles.push((pk.to_owned(), title.to_owned()));
//!         Ok(created)
//!     }
//!
//!     fn cqrs_delete(_message: &Message, pk: &str) -> Result<bool, ApplyError> {
//!         let mut titles = TITLES.lock().map_err(|_| ApplyError::retry("article", pk, "poisoned"))?;
//!         let before = titles.len();
//!         titles.retain(|(k, _)| k != pk);
//!         Ok(titles.len() < before)
//!     }
//! }
//!
//! // (a stream of its own here: the other examples of this crate replicate `book`)
//! cqrs_core::register_raw_replica!(TitleIndex);
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{ApplyError, Error, Result};
use crate::filter::Lookup;
use crate::message::{Message, SignalType};
use crate::registry::ReplicaOps;
use crate::retry::{self, RetryPolicy};
use crate::rules::{IgnoreReason, Outcome, Version};

/// A replica that keeps no table: its hooks receive each message. Register it with
/// [`register_raw_replica!`](crate::register_raw_replica) for every backend this binary
/// consumes on.
pub trait RawReplica: Send + Sync + 'static {
    /// The stream it replicates.
    const CQRS_ID: &'static str;
    /// Take only SYNC messages sent to this service's queue (django-cqrs's
    /// `CQRS_ONLY_DIRECT_SYNCS`).
    const ONLY_DIRECT_SYNCS: bool = false;

    /// A SAVE or SYNC of row `pk` (the text of its key): put it where it goes. Returns whether
    /// it was new there (for the counters). An error is retried or dead-lettered by its class
    /// ([`ApplyError::retry`], [`ApplyError::reject`]).
    fn cqrs_save(message: &Message, pk: &str) -> std::result::Result<bool, ApplyError>;

    /// A DELETE of row `pk`. Returns whether it was there.
    fn cqrs_delete(message: &Message, pk: &str) -> std::result::Result<bool, ApplyError>;

    /// The revision the target holds for `pk`, if it keeps one: then a SAVE older than it, or
    /// at it, and a DELETE older than it, are ignored as for a table replica, and a SYNC that
    /// goes back in revisions is logged. `None` (the default: django-cqrs's raw replicas keep
    /// none): every message is handed to the hooks.
    fn cqrs_revision(pk: &str) -> std::result::Result<Option<i32>, ApplyError> {
        let _ = pk;
        Ok(None)
    }

    /// Whether a failed message is retried (default: the configured policy).
    fn cqrs_should_retry(retries: u32, error: &ApplyError, policy: &RetryPolicy) -> bool {
        retry::should_retry(retries, error, policy)
    }

    /// The delay before the next retry (default: the configured delay).
    fn cqrs_retry_delay(retries: u32, policy: &RetryPolicy) -> Duration {
        retry::retry_delay(retries, policy)
    }
}

/// The [`ReplicaOps`] of raw replica `M` (built by [`register_raw_replica!`](crate::register_raw_replica)).
#[doc(hidden)]
#[derive(Debug)]
pub struct RawVTable<M>(PhantomData<fn() -> M>);

impl<M> RawVTable<M> {
    /// The vtable value.
    pub const NEW: Self = Self(PhantomData);
}

/// Applies one message to raw replica `M`.
fn apply<M: RawReplica>(
    message: &Message,
    direct: bool,
) -> std::result::Result<Outcome, ApplyError> {
    if message.signal_type == SignalType::Sync && M::ONLY_DIRECT_SYNCS && !direct {
        return Ok(Outcome::Ignored(IgnoreReason::BroadcastSync));
    }
    let pk = message.row_pk().ok_or(ApplyError::MissingPk {
        cqrs_id: M::CQRS_ID,
        detail: "instance_pk, or the id of a delete",
    })?;
    let revision = message
        .instance_data
        .get("cqrs_revision")
        .and_then(Value::as_i64)
        .and_then(|r| i32::try_from(r).ok());
    if let (Some(revision), Some(stored)) = (revision, M::cqrs_revision(&pk)?) {
        match message.signal_type {
            SignalType::Save if revision < stored => {
                return Ok(Outcome::Ignored(IgnoreReason::Stale));
            }
            SignalType::Save if revision == stored => {
                return Ok(Outcome::Ignored(IgnoreReason::Duplicate));
            }
            SignalType::Delete if revision < stored => {
                return Ok(Outcome::Ignored(IgnoreReason::StaleDelete));
            }
            SignalType::Sync if revision < stored => {
                tracing::warn!(
                    cqrs_id = M::CQRS_ID,
                    pk,
                    revision,
                    stored,
                    "SYNC goes back in revisions; handed over as a repair"
                );
            }
            _ => {}
        }
    }
    if message.signal_type == SignalType::Delete {
        return M::cqrs_delete(message, &pk).map(|was| {
            if was {
                Outcome::Deleted
            } else {
                Outcome::AlreadyAbsent
            }
        });
    }
    M::cqrs_save(message, &pk).map(|new| {
        if new {
            Outcome::Created
        } else {
            Outcome::Updated
        }
    })
}

fn no_table<M: RawReplica>(what: &str) -> Error {
    Error::NoTable {
        cqrs_id: M::CQRS_ID,
        what: what.to_owned(),
    }
}

// The tools that read or write a replica's table (diff, bulk-load, deleted-diff) have nothing
// to work on: they say so. The consumer's start-up check (a page of keys) finds none.
impl<M: RawReplica, C: 'static> ReplicaOps<C> for RawVTable<M> {
    fn apply(
        &self,
        _conn: &mut C,
        message: &Message,
        direct: bool,
    ) -> std::result::Result<Outcome, ApplyError> {
        apply::<M>(message, direct)
    }

    fn batchable(&self) -> bool {
        false
    }

    fn apply_many(
        &self,
        _conn: &mut C,
        messages: &[(&Message, bool)],
    ) -> std::result::Result<Vec<std::result::Result<Outcome, ApplyError>>, ApplyError> {
        Ok(messages
            .iter()
            .map(|(message, direct)| apply::<M>(message, *direct))
            .collect())
    }

    fn should_retry(&self, retries: u32, error: &ApplyError, policy: &RetryPolicy) -> bool {
        M::cqrs_should_retry(retries, error, policy)
    }

    fn retry_delay(&self, retries: u32, policy: &RetryPolicy) -> Duration {
        M::cqrs_retry_delay(retries, policy)
    }

    fn only_direct_syncs(&self) -> bool {
        M::ONLY_DIRECT_SYNCS
    }

    fn versions(&self, _conn: &mut C, pks: &[Value]) -> Result<Vec<(Value, Version)>> {
        if pks.is_empty() {
            Ok(Vec::new())
        } else {
            Err(no_table::<M>("stored versions to compare"))
        }
    }

    fn pks(
        &self,
        _conn: &mut C,
        lookups: &[Lookup],
        _after: Option<&Value>,
        _limit: usize,
    ) -> Result<Vec<Value>> {
        if lookups.is_empty() {
            Ok(Vec::new())
        } else {
            Err(no_table::<M>("a filter"))
        }
    }

    fn delete(&self, _conn: &mut C, _pks: &[Value]) -> Result<u64> {
        Err(no_table::<M>("deletes by key"))
    }

    fn clear(&self, _conn: &mut C) -> Result<u64> {
        Err(no_table::<M>("clearing"))
    }

    fn count(&self, _conn: &mut C) -> Result<u64> {
        Ok(0)
    }

    fn latest_update(&self, _conn: &mut C) -> Result<Option<DateTime<Utc>>> {
        Ok(None)
    }
}

/// Registers a [`RawReplica`] with the consumer of every backend this crate compiles
/// (`sqlite`, `postgres`), as the derive registers table replicas.
#[macro_export]
macro_rules! register_raw_replica {
    ($ty:ty) => {
        $crate::__private::inventory::submit! {
            $crate::registry::ModelInfo {
                kind: $crate::registry::ModelKind::Replica,
                cqrs_id: <$ty as $crate::replica::RawReplica>::CQRS_ID,
                type_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!($ty)),
            }
        }
        $crate::__private::with_sqlite! {
            $crate::__cqrs_raw_entry!($ty, $crate::__private::SqliteConnection);
        }
        $crate::__private::with_postgres! {
            $crate::__cqrs_raw_entry!($ty, $crate::__private::PgConnection);
        }
    };
}

/// The registry entry of raw replica `$ty` for connection `$conn`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cqrs_raw_entry {
    ($ty:ty, $conn:ty) => {
        $crate::__private::inventory::submit! {
            $crate::registry::ReplicaEntry::<$conn> {
                cqrs_id: <$ty as $crate::replica::RawReplica>::CQRS_ID,
                type_name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!($ty)),
                ops: &$crate::replica::RawVTable::<$ty>::NEW,
            }
        }
    };
}
