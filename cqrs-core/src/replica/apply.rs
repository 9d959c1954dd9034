//! Applying messages to a replica model: read the message, look up the row's state, let
//! [`crate::rules::decide`] choose, then act. Acting is written once ([`act`]), over a
//! [`Rows`] target: the database through the model's hooks for one message ([`apply`]), or a
//! batch's rows held in memory and written with multi-row statements at the end
//! ([`apply_many`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{HookContext, ReplicaHooks, ReplicaModel, ReplicaStore};
use crate::db::CqrsConnection;
use crate::error::ApplyError;
use crate::message::{Message, SignalType};
use crate::rules::{
    Decision, IgnoreReason, Order, Outcome, Subject, Version, decide, tombstone_moves,
};
use crate::value::{CqrsValue, pk_key};

/// Reads the required `cqrs_revision` and `cqrs_updated` of `data`.
fn data_version(
    cqrs_id: &'static str,
    data: &Map<String, Value>,
    pk: &str,
) -> Result<Version, ApplyError> {
    let get = |field: &'static str| {
        data.get(field).ok_or_else(|| ApplyError::MissingField {
            cqrs_id,
            pk: pk.to_owned(),
            field: field.to_owned(),
        })
    };
    let bad = |field: &'static str| {
        move |source| ApplyError::BadValue {
            cqrs_id,
            pk: pk.to_owned(),
            field: field.to_owned(),
            source,
        }
    };
    Ok(Version {
        revision: i32::from_cqrs(get("cqrs_revision")?).map_err(bad("cqrs_revision"))?,
        updated: DateTime::<Utc>::from_cqrs(get("cqrs_updated")?).map_err(bad("cqrs_updated"))?,
    })
}

/// Applies the mapping of a model to `data` (django-cqrs's `_make_initial_mapping`).
fn map_data<'d, M: ReplicaModel>(
    data: &'d Map<String, Value>,
    pk: &str,
) -> Result<Cow<'d, Map<String, Value>>, ApplyError> {
    let Some(mapping) = M::MAPPING else {
        return Ok(Cow::Borrowed(data));
    };
    let mut mapped = Map::with_capacity(mapping.len() + 2);
    for key in ["cqrs_revision", "cqrs_updated"] {
        if let Some(value) = data.get(key) {
            mapped.insert(key.to_owned(), value.clone());
        }
    }
    for (master, replica) in mapping {
        let value = data.get(*master).ok_or_else(|| ApplyError::BadMapping {
            cqrs_id: M::CQRS_ID,
            pk: pk.to_owned(),
            field: master,
        })?;
        mapped.insert((*replica).to_owned(), value.clone());
    }
    Ok(Cow::Owned(mapped))
}

/// Maps `previous_data` like the data, keeping only replica fields.
fn map_previous<M: ReplicaModel>(previous: &Map<String, Value>) -> Map<String, Value> {
    let renamed = previous.iter().filter_map(|(key, value)| match M::MAPPING {
        None => Some((key.as_str(), value)),
        Some(mapping) => mapping
            .iter()
            .find(|(master, _)| master == key)
            .map(|(_, replica)| (*replica, value)),
    });
    renamed
        .filter(|(key, _)| M::FIELDS.contains(key))
        .map(|(key, value)| (key.to_owned(), value.clone()))
        .collect()
}

/// A message read for applying: signal, primary key, version and mapped data.
struct Prepared<'m, M: ReplicaModel> {
    message: &'m Message,
    direct: bool,
    signal: SignalType,
    pk: M::Pk,
    pk_text: String,
    version: Version,
    data: Cow<'m, Map<String, Value>>,
    previous: Option<Map<String, Value>>,
}

impl<M: ReplicaModel> Prepared<'_, M> {
    fn subject(&self) -> Subject<'_> {
        Subject {
            cqrs_id: M::CQRS_ID,
            pk: &self.pk_text,
            signal: self.signal,
            version: self.version,
            direct: self.direct && self.signal == SignalType::Sync,
            order: self.order(),
        }
    }

    fn order(&self) -> Order {
        Order::of(self.message.monotonic_revisions)
    }

    /// What the hooks are told about the message.
    fn context(&self) -> HookContext<'_> {
        HookContext {
            signal_type: self.signal,
            direct: self.direct && self.signal == SignalType::Sync,
            pk: &self.pk_text,
            previous_data: self.previous.as_ref(),
            meta: if M::META {
                self.message.meta.as_ref()
            } else {
                None
            },
            correlation_id: self.message.correlation_id.as_deref(),
            retries: self.message.retries,
        }
    }
}

/// A message read for applying, or the outcome it has without looking at the database.
enum Read<'m, M: ReplicaModel> {
    Apply(Box<Prepared<'m, M>>),
    Done(Result<Outcome, ApplyError>),
}

/// Reads and checks a message's key, version and data (no database access).
fn read<M: ReplicaModel>(message: &Message, direct: bool) -> Read<'_, M> {
    if message.signal_type == SignalType::Sync && M::ONLY_DIRECT_SYNCS && !direct {
        tracing::trace!(
            cqrs_id = M::CQRS_ID,
            "broadcast sync ignored (only_direct_syncs)"
        );
        return Read::Done(Ok(Outcome::Ignored(IgnoreReason::BroadcastSync)));
    }
    match prepare::<M>(message, direct) {
        Ok(prepared) => Read::Apply(Box::new(prepared)),
        Err(error) => Read::Done(Err(error)),
    }
}

/// Fails if `instance_pk` (when given: its text form) and the data's key name different rows.
fn same_row<M: ReplicaModel>(instance_pk: Option<&str>, data_pk: &str) -> Result<(), ApplyError> {
    match instance_pk {
        Some(instance_pk) if instance_pk != data_pk => Err(ApplyError::PkMismatch {
            cqrs_id: M::CQRS_ID,
            instance_pk: instance_pk.to_owned(),
            data_pk: data_pk.to_owned(),
        }),
        _ => Ok(()),
    }
}

fn prepare<M: ReplicaModel>(
    message: &Message,
    direct: bool,
) -> Result<Prepared<'_, M>, ApplyError> {
    if message.signal_type == SignalType::Delete {
        let data = &message.instance_data;
        // django-cqrs puts the key under `id` whatever its name; fall back on instance_pk.
        let (pk_value, instance_pk) = match data.get("id") {
            Some(id) if !message.instance_pk.is_null() => (id, Some(pk_key(&message.instance_pk))),
            Some(id) => (id, None),
            None => (&message.instance_pk, None),
        };
        let pk_text = pk_key(pk_value);
        let pk = M::Pk::from_cqrs(pk_value).map_err(|source| ApplyError::BadValue {
            cqrs_id: M::CQRS_ID,
            pk: pk_text.clone(),
            field: "id".to_owned(),
            source,
        })?;
        same_row::<M>(instance_pk.as_deref(), &pk_text)?;
        let version = data_version(M::CQRS_ID, data, &pk_text)?;
        return Ok(Prepared {
            message,
            direct,
            signal: SignalType::Delete,
            pk,
            pk_text,
            version,
            data: Cow::Owned(Map::new()),
            previous: None,
        });
    }
    let instance_pk = pk_key(&message.instance_pk);
    let version = data_version(M::CQRS_ID, &message.instance_data, &instance_pk)?;
    let data = map_data::<M>(&message.instance_data, &instance_pk)?;
    let pk_value = data.get(M::PK_FIELD).ok_or(ApplyError::MissingPk {
        cqrs_id: M::CQRS_ID,
        detail: "instance_data has no primary key field",
    })?;
    let pk_text = pk_key(pk_value);
    let pk = M::Pk::from_cqrs(pk_value).map_err(|source| ApplyError::BadValue {
        cqrs_id: M::CQRS_ID,
        pk: pk_text.clone(),
        field: M::PK_FIELD.to_owned(),
        source,
    })?;
    same_row::<M>(
        (!message.instance_pk.is_null()).then_some(instance_pk.as_str()),
        &pk_text,
    )?;
    if !M::CUSTOM_SERIALIZATION
        && let Some(field) = M::REQUIRED.iter().find(|f| !data.contains_key(**f))
    {
        return Err(ApplyError::MissingField {
            cqrs_id: M::CQRS_ID,
            pk: pk_text,
            field: (*field).to_owned(),
        });
    }
    Ok(Prepared {
        message,
        direct,
        signal: message.signal_type,
        pk,
        pk_text,
        version,
        data,
        previous: message.previous_data.as_ref().map(map_previous::<M>),
    })
}

/// Where the rules' actions land: the state of a row and the writes that change it.
trait Rows<M: ReplicaModel> {
    /// The stored row's version, and its tombstone when the rules need it (no stored row, or
    /// a DELETE).
    fn state(
        &mut self,
        p: &Prepared<'_, M>,
    ) -> Result<(Option<Version>, Option<Version>), ApplyError>;
    fn create(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError>;
    fn update(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError>;
    fn delete(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError>;
    fn record_tombstone(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError>;
    fn forget_tombstone(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError>;
}

/// Decides and acts on one message: the one place where a decision becomes writes.
fn act<M: ReplicaModel, R: Rows<M>>(
    rows: &mut R,
    p: &Prepared<'_, M>,
) -> Result<Outcome, ApplyError> {
    let (stored, tombstone) = rows.state(p)?;
    Ok(match decide(p.subject(), stored, tombstone) {
        Decision::Ignore(reason) => Outcome::Ignored(reason),
        Decision::Create => {
            if tombstone.is_some() {
                rows.forget_tombstone(p)?;
            }
            rows.create(p)?;
            Outcome::Created
        }
        Decision::Update => {
            rows.update(p)?;
            Outcome::Updated
        }
        decision @ (Decision::Delete | Decision::Tombstone) => {
            if tombstone_moves(p.version, tombstone, p.order()) {
                rows.record_tombstone(p)?;
            }
            if decision == Decision::Tombstone {
                Outcome::AlreadyAbsent
            } else {
                rows.delete(p)?;
                Outcome::Deleted
            }
        }
    })
}

/// One message applied straight to the database through the model's hooks.
struct Hooked<'c, C, M> {
    conn: &'c mut C,
    existing: Option<M>,
}

impl<C, M> Rows<M> for Hooked<'_, C, M>
where
    M: ReplicaHooks<C>,
    C: CqrsConnection,
{
    fn state(
        &mut self,
        p: &Prepared<'_, M>,
    ) -> Result<(Option<Version>, Option<Version>), ApplyError> {
        let db = |e| ApplyError::database(M::CQRS_ID, &p.pk_text, e);
        self.existing = M::db_get(self.conn, &p.pk, M::SELECT_FOR_UPDATE).map_err(db)?;
        let tombstone = if self.existing.is_none() || p.signal == SignalType::Delete {
            self.conn
                .tombstone_get(M::CQRS_ID, &p.pk_text)
                .map_err(db)?
        } else {
            None
        };
        Ok((
            self.existing.as_ref().map(ReplicaModel::cqrs_version),
            tombstone,
        ))
    }

    fn create(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        M::cqrs_create(self.conn, &p.data, &p.context())
    }

    fn update(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        let existing = self.existing.take().ok_or_else(|| {
            ApplyError::database(M::CQRS_ID, &p.pk_text, diesel::result::Error::NotFound)
        })?;
        M::cqrs_update(self.conn, existing, &p.data, &p.context())
    }

    fn delete(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        M::cqrs_delete(self.conn, &p.pk, &p.context()).map(drop)
    }

    fn record_tombstone(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        self.conn
            .tombstone_put(M::CQRS_ID, &p.pk_text, p.version)
            .map_err(|e| ApplyError::database(M::CQRS_ID, &p.pk_text, e))
    }

    fn forget_tombstone(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        self.conn
            .tombstone_remove(M::CQRS_ID, &p.pk_text)
            .map(drop)
            .map_err(|e| ApplyError::database(M::CQRS_ID, &p.pk_text, e))
    }
}

/// Applies one message to a replica model, in the caller's transaction.
///
/// `direct` tells a SYNC sent to this replica's queue (`cqrs.<queue>.<cqrs_id>`) from a
/// broadcast one. The consumer calls this inside a savepoint per message.
pub(crate) fn apply<M, C>(
    conn: &mut C,
    message: &Message,
    direct: bool,
) -> Result<Outcome, ApplyError>
where
    M: ReplicaHooks<C>,
    C: CqrsConnection,
{
    match read::<M>(message, direct) {
        Read::Done(result) => result,
        Read::Apply(p) => act(
            &mut Hooked {
                conn,
                existing: None,
            },
            &p,
        ),
    }
}

/// The state of one row while a batch is simulated in memory.
enum Row<M> {
    Present(M),
    Absent,
}

/// A batch's rows and tombstones, loaded once, changed in memory, written at the end.
struct InMemory<M: ReplicaModel> {
    rows: HashMap<String, Row<M>>,
    tombstones: HashMap<String, Version>,
    /// Rows changed, in first-change order, with their key.
    dirty: Vec<(String, M::Pk)>,
    dirty_keys: HashSet<String>,
    /// The last word on each tombstone the batch touched: `Some` records, `None` forgets.
    tombstone_writes: HashMap<String, Option<Version>>,
}

impl<M: ReplicaModel> InMemory<M> {
    fn touch(&mut self, p: &Prepared<'_, M>) {
        if self.dirty_keys.insert(p.pk_text.clone()) {
            self.dirty.push((p.pk_text.clone(), p.pk.clone()));
        }
    }
}

impl<M: ReplicaModel> Rows<M> for InMemory<M> {
    fn state(
        &mut self,
        p: &Prepared<'_, M>,
    ) -> Result<(Option<Version>, Option<Version>), ApplyError> {
        let stored = match self.rows.get(&p.pk_text) {
            Some(Row::Present(row)) => Some(row.cqrs_version()),
            _ => None,
        };
        let tombstone = if stored.is_none() || p.signal == SignalType::Delete {
            self.tombstones.get(&p.pk_text).copied()
        } else {
            None
        };
        Ok((stored, tombstone))
    }

    fn create(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        let row = M::cqrs_from_data(&p.data, None, &p.pk_text)?;
        self.rows.insert(p.pk_text.clone(), Row::Present(row));
        self.touch(p);
        Ok(())
    }

    fn update(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        let Some(Row::Present(existing)) = self.rows.remove(&p.pk_text) else {
            return Err(ApplyError::database(
                M::CQRS_ID,
                &p.pk_text,
                diesel::result::Error::NotFound,
            ));
        };
        let row = M::cqrs_from_data(&p.data, Some(existing), &p.pk_text)?;
        self.rows.insert(p.pk_text.clone(), Row::Present(row));
        self.touch(p);
        Ok(())
    }

    fn delete(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        self.rows.insert(p.pk_text.clone(), Row::Absent);
        self.touch(p);
        Ok(())
    }

    fn record_tombstone(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        self.tombstones.insert(p.pk_text.clone(), p.version);
        self.tombstone_writes
            .insert(p.pk_text.clone(), Some(p.version));
        Ok(())
    }

    fn forget_tombstone(&mut self, p: &Prepared<'_, M>) -> Result<(), ApplyError> {
        self.tombstones.remove(&p.pk_text);
        self.tombstone_writes.insert(p.pk_text.clone(), None);
        Ok(())
    }
}

/// Applies the messages of one model with the default hooks as a handful of statements: one
/// query for the stored rows, one for tombstones, then multi-row upserts and one delete. The
/// outcome of each message is the one [`apply`] gives applied one after the other: both run
/// [`act`], only the target differs.
///
/// `Err` asks the caller to roll this group back and apply it message by message (a value
/// that fails to convert, a statement that fails).
pub(crate) fn apply_many<M, C>(
    conn: &mut C,
    items: &[(&Message, bool)],
) -> Result<Vec<Result<Outcome, ApplyError>>, ApplyError>
where
    M: ReplicaStore<C>,
    C: CqrsConnection,
{
    let read: Vec<Read<'_, M>> = items
        .iter()
        .map(|(message, direct)| read::<M>(message, *direct))
        .collect();
    let prepared = || {
        read.iter().filter_map(|r| match r {
            Read::Apply(p) => Some(p),
            Read::Done(_) => None,
        })
    };
    let batch_error = |source| ApplyError::BatchDatabase {
        cqrs_id: M::CQRS_ID,
        source,
    };
    let mut keys: Vec<M::Pk> = Vec::new();
    let mut seen = HashSet::new();
    for p in prepared() {
        if seen.insert(p.pk_text.as_str()) {
            keys.push(p.pk.clone());
        }
    }
    let mut target = InMemory::<M> {
        rows: HashMap::with_capacity(keys.len()),
        tombstones: HashMap::new(),
        dirty: Vec::new(),
        dirty_keys: HashSet::new(),
        tombstone_writes: HashMap::new(),
    };
    for row in M::db_get_many(conn, &keys, M::SELECT_FOR_UPDATE).map_err(batch_error)? {
        target
            .rows
            .insert(pk_key(&row.cqrs_pk().to_cqrs()), Row::Present(row));
    }
    let need_tombstone: Vec<String> = prepared()
        .filter(|p| !target.rows.contains_key(&p.pk_text) || p.signal == SignalType::Delete)
        .map(|p| p.pk_text.clone())
        .collect();
    target.tombstones = conn
        .tombstone_get_many(M::CQRS_ID, &need_tombstone)
        .map_err(batch_error)?
        .into_iter()
        .collect();
    let mut results = Vec::with_capacity(read.len());
    for r in read {
        results.push(match r {
            Read::Done(result) => result,
            Read::Apply(p) => Ok(act(&mut target, &p)?),
        });
    }
    // Write the final state of every row the batch changed.
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    for (key, pk) in target.dirty {
        match target.rows.remove(&key) {
            Some(Row::Present(row)) => upserts.push(row),
            Some(Row::Absent) => deletes.push(pk),
            None => {}
        }
    }
    if !deletes.is_empty() {
        M::db_delete_many(conn, &deletes).map_err(batch_error)?;
    }
    for chunk in upserts.chunks(crate::db::ROW_CHUNK) {
        M::db_upsert(conn, chunk).map_err(batch_error)?;
    }
    for (key, write) in target.tombstone_writes {
        match write {
            Some(version) => conn
                .tombstone_put(M::CQRS_ID, &key, version)
                .map_err(batch_error)?,
            None => conn
                .tombstone_remove(M::CQRS_ID, &key)
                .map(drop)
                .map_err(batch_error)?,
        }
    }
    Ok(results)
}
