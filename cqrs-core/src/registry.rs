//! The model registry: every `#[derive(CqrsMaster)]` and `#[derive(CqrsReplica)]` registers
//! itself through `inventory`, so consumers and tools find models by `cqrs_id`.
//!
//! [`models`] lists every model of the binary; [`Registered::master_entries`] and
//! [`Registered::replica_entries`] give the type-erased operations for one backend, and
//! [`master`] and [`replica`] find one by `cqrs_id`. [`check`] reports two models of the same
//! kind sharing a `cqrs_id`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};

use serde_json::{Map, Value};

use crate::db::{CqrsConnection, KEY_CHUNK};
use crate::error::{ApplyError, Error, Result};
use crate::filter::Lookup;
use crate::master::{MasterStore, SyncReport, SyncTarget, build_filters, for_each_page};
use crate::message::Message;
use crate::replica::{ReplicaHooks, apply, apply_many};
use crate::retry::RetryPolicy;
use crate::rules::{Outcome, Version};
use crate::value::CqrsValue;

/// Master or replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelKind {
    /// `#[derive(CqrsMaster)]`.
    Master,
    /// `#[derive(CqrsReplica)]`.
    Replica,
}

impl ModelKind {
    /// `master` or `replica`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Replica => "replica",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered model, whatever the backend.
#[derive(Debug)]
pub struct ModelInfo {
    /// Master or replica.
    pub kind: ModelKind,
    /// The stream id.
    pub cqrs_id: &'static str,
    /// The Rust type, with its module path.
    pub type_name: &'static str,
}

inventory::collect!(ModelInfo);

/// Every model registered in this binary, sorted by kind and `cqrs_id`.
pub fn models() -> Vec<&'static ModelInfo> {
    let mut models: Vec<_> = inventory::iter::<ModelInfo>.into_iter().collect();
    models.sort_by_key(|m| (m.kind, m.cqrs_id, m.type_name));
    models
}

/// Fails if two masters or two replicas share a `cqrs_id`, naming both types. Consumers and
/// tools call it at start-up.
pub fn check() -> Result<()> {
    let mut seen: BTreeMap<(ModelKind, &str), &ModelInfo> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for model in models() {
        if let Some(first) = seen.insert((model.kind, model.cqrs_id), model) {
            duplicates.push(crate::error::DuplicateModel {
                kind: model.kind.as_str(),
                cqrs_id: model.cqrs_id,
                first: first.type_name,
                second: model.type_name,
            });
        }
    }
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(Error::DuplicateCqrsId { duplicates })
    }
}

/// A registered master model on backend `C`.
pub struct MasterEntry<C: 'static> {
    /// The stream id.
    pub cqrs_id: &'static str,
    /// The Rust type.
    pub type_name: &'static str,
    /// Its operations.
    pub ops: &'static dyn MasterOps<C>,
}

/// A registered replica model on backend `C`.
pub struct ReplicaEntry<C: 'static> {
    /// The stream id.
    pub cqrs_id: &'static str,
    /// The Rust type.
    pub type_name: &'static str,
    /// Its operations.
    pub ops: &'static dyn ReplicaOps<C>,
}

impl<C> fmt::Debug for MasterEntry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterEntry")
            .field("cqrs_id", &self.cqrs_id)
            .field("type_name", &self.type_name)
            .finish_non_exhaustive()
    }
}

impl<C> fmt::Debug for ReplicaEntry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaEntry")
            .field("cqrs_id", &self.cqrs_id)
            .field("type_name", &self.type_name)
            .finish_non_exhaustive()
    }
}

/// A backend whose models register here: the connection types of the enabled backend
/// features. Consumers and tools take `C: Registered`.
pub trait Registered: CqrsConnection {
    /// The master models registered in this binary for this backend, sorted by `cqrs_id`.
    fn master_entries() -> Vec<&'static MasterEntry<Self>>;

    /// The replica models registered in this binary for this backend, sorted by `cqrs_id`.
    fn replica_entries() -> Vec<&'static ReplicaEntry<Self>>;

    /// The event, command and call handlers registered for this backend, sorted by exchange
    /// and routing key.
    #[cfg(feature = "events")]
    fn handler_entries() -> Vec<&'static crate::event::HandlerEntry<Self>>;
}

/// Collects the entries of one backend's connection type and implements [`Registered`].
macro_rules! registered {
    ($conn:ty) => {
        inventory::collect!(MasterEntry<$conn>);
        inventory::collect!(ReplicaEntry<$conn>);
        #[cfg(feature = "events")]
        inventory::collect!(crate::event::HandlerEntry<$conn>);

        impl Registered for $conn {
            fn master_entries() -> Vec<&'static MasterEntry<Self>> {
                sorted(inventory::iter::<MasterEntry<Self>>)
            }

            fn replica_entries() -> Vec<&'static ReplicaEntry<Self>> {
                sorted(inventory::iter::<ReplicaEntry<Self>>)
            }

            #[cfg(feature = "events")]
            fn handler_entries() -> Vec<&'static crate::event::HandlerEntry<Self>> {
                let mut entries: Vec<_> = inventory::iter::<crate::event::HandlerEntry<Self>>
                    .into_iter()
                    .collect();
                entries.sort_by_key(|e| (e.exchange, e.routing_key, e.name));
                entries
            }
        }
    };
}

#[cfg(feature = "sqlite")]
registered!(diesel::SqliteConnection);
#[cfg(feature = "postgres")]
registered!(diesel::PgConnection);

/// Entries sorted by `cqrs_id`.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, reason = "no backend registers entries")
)]
fn sorted<T: HasCqrsId + 'static>(
    entries: impl IntoIterator<Item = &'static T>,
) -> Vec<&'static T> {
    let mut entries: Vec<_> = entries.into_iter().collect();
    entries.sort_by_key(|e| (e.cqrs_id(), e.type_name()));
    entries
}

trait HasCqrsId {
    fn cqrs_id(&self) -> &'static str;
    fn type_name(&self) -> &'static str;
}

impl<C> HasCqrsId for MasterEntry<C> {
    fn cqrs_id(&self) -> &'static str {
        self.cqrs_id
    }
    fn type_name(&self) -> &'static str {
        self.type_name
    }
}

impl<C> HasCqrsId for ReplicaEntry<C> {
    fn cqrs_id(&self) -> &'static str {
        self.cqrs_id
    }
    fn type_name(&self) -> &'static str {
        self.type_name
    }
}

/// The master model with this `cqrs_id` on backend `C`.
pub fn master<C: Registered>(cqrs_id: &str) -> Result<&'static MasterEntry<C>> {
    find(&C::master_entries(), cqrs_id, "master")
}

/// The replica model with this `cqrs_id` on backend `C`.
pub fn replica<C: Registered>(cqrs_id: &str) -> Result<&'static ReplicaEntry<C>> {
    find(&C::replica_entries(), cqrs_id, "replica")
}

fn find<T: HasCqrsId>(
    entries: &[&'static T],
    cqrs_id: &str,
    kind: &'static str,
) -> Result<&'static T> {
    entries
        .iter()
        .find(|e| e.cqrs_id() == cqrs_id)
        .copied()
        .ok_or_else(|| Error::UnknownCqrsId {
            cqrs_id: cqrs_id.to_owned(),
            kind,
            known: list(entries.iter().map(|e| e.cqrs_id())),
        })
}

fn list(ids: impl Iterator<Item = &'static str>) -> String {
    let ids: Vec<_> = ids.collect();
    if ids.is_empty() {
        "(none)".to_owned()
    } else {
        ids.join(", ")
    }
}

/// What a sync or a page walk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows looked at.
    pub processed: u64,
    /// Rows that produced output (a message, a line).
    pub succeeded: u64,
    /// Rows that failed.
    pub failed: u64,
}

/// A sink for rows or batches; returning an error stops the walk.
pub type Sink<'a, T> = &'a mut dyn FnMut(T) -> Result<()>;

/// Type-erased operations of a master model on backend `C`, for the tools.
pub trait MasterOps<C>: Sync {
    /// The fields a filter may name.
    fn fields(&self) -> &'static [&'static str];
    /// Whether the model sends messages (`false`: `produce = false`, SYNC included).
    fn produces(&self) -> bool;
    /// Counts rows matching `lookups`.
    fn count(&self, conn: &mut C, lookups: &[Lookup]) -> Result<u64>;
    /// The `instance_data` of every row that passes the sync filter, in primary-key order,
    /// `batch` rows per query; returns how many rows the sync filter left out.
    fn dump(
        &self,
        conn: &mut C,
        batch: usize,
        sink: Sink<'_, Result<Map<String, Value>>>,
    ) -> Result<u64>;
    /// `[pk, cqrs_revision]` of the rows matching `lookups` that pass the sync filter, one
    /// call of `sink` per batch.
    fn versions(
        &self,
        conn: &mut C,
        lookups: &[Lookup],
        batch: usize,
        sink: Sink<'_, Vec<(Value, i32)>>,
    ) -> Result<()>;
    /// Writes SYNC messages to the outbox for rows matching `lookups`.
    fn sync(
        &self,
        conn: &mut C,
        lookups: &[Lookup],
        target: SyncTarget<'_>,
        batch: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64>;
    /// Writes SYNC messages for these primary keys; returns how many rows were sent.
    fn sync_pks(&self, conn: &mut C, pks: &[Value], target: SyncTarget<'_>) -> Result<u64>;
    /// SYNC for rows an operator picked, with what was sent and why the rest was not
    /// ([`MasterStore::cqrs_sync_selected`]).
    fn sync_selected(
        &self,
        conn: &mut C,
        pks: &[Value],
        target: SyncTarget<'_>,
    ) -> Result<SyncReport>;
    /// Which of these primary keys no longer exist.
    fn missing(&self, conn: &mut C, pks: &[Value]) -> Result<Vec<Value>>;
    /// The newest `cqrs_updated` of the table.
    fn latest_update(&self, conn: &mut C) -> Result<Option<DateTime<Utc>>>;
}

/// Type-erased operations of a replica model on backend `C`, for the consumer and the tools.
pub trait ReplicaOps<C>: Sync {
    /// Applies one message in the caller's transaction.
    fn apply(&self, conn: &mut C, message: &Message, direct: bool) -> Result<Outcome, ApplyError>;
    /// Whether [`ReplicaOps::apply_many`] may be used (the model has the generated hooks).
    fn batchable(&self) -> bool;
    /// Applies several messages with multi-row statements (see `replica::apply_many`).
    fn apply_many(
        &self,
        conn: &mut C,
        messages: &[(&Message, bool)],
    ) -> Result<Vec<Result<Outcome, ApplyError>>, ApplyError>;
    /// The model's retry decision.
    fn should_retry(&self, retries: u32, error: &ApplyError, policy: &RetryPolicy) -> bool;
    /// The model's retry delay.
    fn retry_delay(&self, retries: u32, policy: &RetryPolicy) -> Duration;
    /// Whether the model ignores broadcast syncs.
    fn only_direct_syncs(&self) -> bool;
    /// Stored revisions of these primary keys (absent rows are left out).
    fn versions(&self, conn: &mut C, pks: &[Value]) -> Result<Vec<(Value, Version)>>;
    /// Primary keys of the rows matching `lookups`, after `after`, in order.
    fn pks(
        &self,
        conn: &mut C,
        lookups: &[Lookup],
        after: Option<&Value>,
        limit: usize,
    ) -> Result<Vec<Value>>;
    /// Deletes rows by primary key, leaving a tombstone for each (as a DELETE message would);
    /// how many existed.
    fn delete(&self, conn: &mut C, pks: &[Value]) -> Result<u64>;
    /// Deletes every row.
    fn clear(&self, conn: &mut C) -> Result<u64>;
    /// Counts rows.
    fn count(&self, conn: &mut C) -> Result<u64>;
    /// The newest `cqrs_updated` of the table.
    fn latest_update(&self, conn: &mut C) -> Result<Option<DateTime<Utc>>>;
}

/// The [`MasterOps`] of model `M` (built by the derive).
#[doc(hidden)]
#[derive(Debug)]
pub struct MasterVTable<M>(PhantomData<fn() -> M>);

impl<M> MasterVTable<M> {
    /// The vtable value (used by the derive).
    pub const NEW: Self = Self(PhantomData);
}

/// The [`ReplicaOps`] of model `M` (built by the derive).
#[doc(hidden)]
#[derive(Debug)]
pub struct ReplicaVTable<M>(PhantomData<fn() -> M>);

impl<M> ReplicaVTable<M> {
    /// The vtable value (used by the derive).
    pub const NEW: Self = Self(PhantomData);
}

fn pks_of<T: CqrsValue>(pks: &[Value]) -> Result<Vec<T>> {
    pks.iter()
        .map(|pk| {
            T::from_cqrs(pk).map_err(|source| Error::Value {
                context: "primary key".to_owned(),
                source,
            })
        })
        .collect()
}

fn count_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

// The signatures below repeat `MasterOps`'s (a trait and its one implementation), and each
// forwards to the typed hook of the same name: deliberate, not duplicated logic.
impl<M, C> MasterOps<C> for MasterVTable<M>
where
    M: MasterStore<C>,
    C: CqrsConnection,
{
    fn fields(&self) -> &'static [&'static str] {
        M::FIELDS
    }

    fn produces(&self) -> bool {
        M::PRODUCE
    }

    fn count(&self, conn: &mut C, lookups: &[Lookup]) -> Result<u64> {
        let filters = build_filters::<M, C>(lookups)?;
        Ok(u64::try_from(M::db_count(conn, filters)?).unwrap_or(0))
    }

    fn dump(
        &self,
        conn: &mut C,
        batch: usize,
        sink: Sink<'_, Result<Map<String, Value>>>,
    ) -> Result<u64> {
        let mut filtered = 0;
        for_each_page::<M, C>(conn, &[], batch, &mut |conn, rows| {
            let sent = rows
                .iter()
                .filter(|row| row.cqrs_is_sync_instance())
                .count();
            filtered += (rows.len() - sent) as u64;
            if sent == 0 {
                return Ok(());
            }
            // one call per page: a model with `relate` loads the page's related data at once
            match M::db_instance_data(conn, rows) {
                Err(error) => sink(Err(error)),
                Ok(data) => rows
                    .iter()
                    .zip(data)
                    .filter(|(row, _)| row.cqrs_is_sync_instance())
                    .try_for_each(|(_, data)| sink(Ok(data))),
            }
        })?;
        Ok(filtered)
    }

    fn versions(
        &self,
        conn: &mut C,
        lookups: &[Lookup],
        batch: usize,
        sink: Sink<'_, Vec<(Value, i32)>>,
    ) -> Result<()> {
        for_each_page::<M, C>(conn, lookups, batch, &mut |_, rows| {
            sink(
                rows.iter()
                    .filter(|row| row.cqrs_is_sync_instance())
                    .map(|row| (row.cqrs_pk().to_cqrs(), row.cqrs_version().revision))
                    .collect(),
            )
        })
    }

    fn sync(
        &self,
        conn: &mut C,
        lookups: &[Lookup],
        target: SyncTarget<'_>,
        batch: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        M::cqrs_sync_where(conn, lookups, target, batch, progress)
    }

    fn sync_selected(
        &self,
        conn: &mut C,
        pks: &[Value],
        target: SyncTarget<'_>,
    ) -> Result<SyncReport> {
        M::cqrs_sync_selected(conn, &pks_of::<M::Pk>(pks)?, target)
    }

    fn sync_pks(&self, conn: &mut C, pks: &[Value], target: SyncTarget<'_>) -> Result<u64> {
        M::cqrs_sync_pks(conn, &pks_of::<M::Pk>(pks)?, target).map(count_u64)
    }

    fn missing(&self, conn: &mut C, pks: &[Value]) -> Result<Vec<Value>> {
        let typed = pks_of::<M::Pk>(pks)?;
        let existing: Vec<Value> = M::db_existing(conn, &typed)?
            .iter()
            .map(CqrsValue::to_cqrs)
            .collect();
        Ok(typed
            .iter()
            .map(CqrsValue::to_cqrs)
            .filter(|pk| !existing.contains(pk))
            .collect())
    }

    fn latest_update(&self, conn: &mut C) -> Result<Option<DateTime<Utc>>> {
        Ok(M::db_latest_update(conn)?)
    }
}

// As above: the signatures repeat `ReplicaOps`'s and forward to the typed functions.
impl<M, C> ReplicaOps<C> for ReplicaVTable<M>
where
    M: ReplicaHooks<C>,
    C: CqrsConnection,
{
    fn apply(&self, conn: &mut C, message: &Message, direct: bool) -> Result<Outcome, ApplyError> {
        apply::<M, C>(conn, message, direct)
    }

    fn batchable(&self) -> bool {
        M::DEFAULT_HOOKS
    }

    fn apply_many(
        &self,
        conn: &mut C,
        messages: &[(&Message, bool)],
    ) -> Result<Vec<Result<Outcome, ApplyError>>, ApplyError> {
        apply_many::<M, C>(conn, messages)
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

    fn versions(&self, conn: &mut C, pks: &[Value]) -> Result<Vec<(Value, Version)>> {
        let typed = pks_of::<M::Pk>(pks)?;
        let mut out = Vec::with_capacity(typed.len());
        for chunk in typed.chunks(KEY_CHUNK) {
            out.extend(
                M::db_versions(conn, chunk)?
                    .into_iter()
                    .map(|(pk, version)| (pk.to_cqrs(), version)),
            );
        }
        Ok(out)
    }

    fn pks(
        &self,
        conn: &mut C,
        lookups: &[Lookup],
        after: Option<&Value>,
        limit: usize,
    ) -> Result<Vec<Value>> {
        let after = after
            .map(|pk| pks_of::<M::Pk>(std::slice::from_ref(pk)))
            .transpose()?
            .and_then(|mut v| v.pop());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let filters = lookups
            .iter()
            .map(M::db_lookup)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(M::db_pks_where(conn, filters, after.as_ref(), limit)?
            .iter()
            .map(CqrsValue::to_cqrs)
            .collect())
    }

    fn delete(&self, conn: &mut C, pks: &[Value]) -> Result<u64> {
        let typed = pks_of::<M::Pk>(pks)?;
        let mut deleted = 0;
        let now = crate::value::now_micros();
        for chunk in typed.chunks(KEY_CHUNK) {
            // Tombstones as a DELETE message leaves them, one revision past the stored row, so
            // that a late SAVE or broadcast SYNC cannot bring the row back (a direct SYNC, an
            // operator's repair, still can).
            for (pk, stored) in M::db_versions(conn, chunk)? {
                let tombstone = Version {
                    revision: stored.revision.saturating_add(1),
                    updated: stored.updated.max(now),
                };
                conn.tombstone_put(M::CQRS_ID, &crate::value::pk_key(&pk.to_cqrs()), tombstone)?;
            }
            deleted += count_u64(M::db_delete_many(conn, chunk)?);
        }
        Ok(deleted)
    }

    fn clear(&self, conn: &mut C) -> Result<u64> {
        Ok(count_u64(M::db_clear(conn)?))
    }

    fn count(&self, conn: &mut C) -> Result<u64> {
        Ok(u64::try_from(M::db_count(conn)?).unwrap_or(0))
    }

    fn latest_update(&self, conn: &mut C) -> Result<Option<DateTime<Utc>>> {
        Ok(M::db_latest_update(conn)?)
    }
}
