//! Master models: the traits `#[derive(CqrsMaster)]` implements, and the write hooks.
//!
//! Every hook runs in the caller's connection: inside the caller's transaction if one is
//! open, otherwise in its own. The row change and its message (written to the outbox) commit
//! or roll back together.

use diesel::QueryResult;
use serde_json::Value;

use crate::db::{CqrsConnection, RevisionNote};
use crate::error::{Error, Result};
use crate::filter::{BoxedFilter, Lookup, parse_lookups};
use crate::message::SignalType;
use crate::outbox;
use crate::rules::Version;
use crate::settings;
use crate::value::now_micros;

mod coalesce;
mod create;
mod envelope;
mod model;
mod page;
mod save;
mod selected;
mod write;

use create::{create_one, insert_created};
use envelope::{changed_tracked, created_previous_data, messages};
pub use envelope::{delete_message, message};
pub use model::{MasterModel, MasterTable};
pub(crate) use page::for_each_page;
pub use page::{Filters, build_filters};
use save::{enqueue_saves, save_changed, update_carrying_message};
pub use selected::{NotSynced, SyncReport};
pub(crate) use write::delete_revision;
pub use write::transaction;
use write::{first_revision, not_found, pk_text, write};

/// Where a SYNC goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncTarget<'a> {
    /// Every replica of the model (routing key `<cqrs_id>`).
    Broadcast,
    /// The replica service with this queue only (routing key `cqrs.<queue>.<cqrs_id>`).
    Queue(&'a str),
}

impl<'a> SyncTarget<'a> {
    /// The queue of a direct sync.
    pub fn queue(self) -> Option<&'a str> {
        match self {
            Self::Broadcast => None,
            Self::Queue(queue) => Some(queue),
        }
    }
}

impl<'a> From<Option<&'a str>> for SyncTarget<'a> {
    /// `None` is a broadcast (as in the diff pipeline's `None` queue).
    fn from(queue: Option<&'a str>) -> Self {
        queue.map_or(Self::Broadcast, Self::Queue)
    }
}

/// The write hooks of a master model: each changes the row, keeps `cqrs_revision` and
/// `cqrs_updated`, and writes the message to the outbox in the same transaction. Implemented
/// for every `#[derive(CqrsMaster)]` model; bring it into scope with
/// `use cqrs_core::prelude::*;`.
pub trait MasterStore<C: CqrsConnection>: MasterTable<C> {
    /// Builds diesel predicates (all must hold) from a JSON object of Django lookups
    /// (`{"price__gt": 10, "id__in": [1, 2]}`); empty for `{}`.
    fn cqrs_filter(lookups: &Value) -> Result<Vec<BoxedFilter<Self::Table, C::Backend>>> {
        build_filters::<Self, C>(&parse_lookups(lookups)?).map_err(Error::from)
    }

    /// Inserts this row with `cqrs_revision = 0` and `cqrs_updated = now`, and writes its SAVE
    /// message. Returns the row as stored.
    #[must_use = "the stored row carries the new revision; keep it rather than the old value"]
    fn cqrs_insert(self, conn: &mut C) -> Result<Self> {
        let mut rows = Self::cqrs_bulk_insert(conn, vec![self])?;
        rows.pop().ok_or(Error::NotReturned {
            model: Self::TYPE_NAME,
        })
    }

    /// Runs the caller's own insert statement (for database-generated keys or defaults),
    /// which returns the new primary key, then sets the revision bookkeeping and writes the
    /// SAVE message.
    #[must_use = "the stored row carries the new revision; keep it rather than the old value"]
    fn cqrs_create<F>(conn: &mut C, insert: F) -> Result<Self>
    where
        F: FnOnce(&mut C) -> QueryResult<Self::Pk>,
    {
        write(conn, |conn| {
            let pk = insert(conn)?;
            let continued = conn
                .deleted_revisions_take(Self::CQRS_ID, &[pk_text(&pk)])?
                .pop()
                .map(|(_, revision)| revision);
            let version = Version {
                revision: first_revision(continued),
                updated: now_micros(),
            };
            let row =
                Self::db_set_created(conn, &pk, version)?.ok_or_else(|| not_found::<Self>(&pk))?;
            let previous = created_previous_data::<Self>();
            enqueue_saves(conn, std::slice::from_ref(&row), |_| previous.clone())?;
            Ok(row)
        })
    }

    /// Inserts rows (one statement per 500) with revision 0 (or, for a key deleted before,
    /// one above its DELETE's revision: revisions never restart), and writes one SAVE per row.
    #[must_use = "the stored row carries the new revision; keep it rather than the old value"]
    fn cqrs_bulk_insert(conn: &mut C, rows: Vec<Self>) -> Result<Vec<Self>> {
        write(conn, |conn| {
            if Self::PRODUCE && rows.len() == 1 {
                return create_one(conn, rows);
            }
            let stored = insert_created(conn, rows)?;
            let previous = created_previous_data::<Self>();
            enqueue_saves(conn, &stored, |_| previous.clone())?;
            Ok(stored)
        })
    }

    /// Writes every field of this row, increments `cqrs_revision` and sets `cqrs_updated` in
    /// the same statement, and writes the SAVE message (with `previous_data` for tracked
    /// fields). Returns the row as stored.
    #[must_use = "the stored row carries the new revision; keep it rather than the old value"]
    fn cqrs_save(&self, conn: &mut C) -> Result<Self> {
        write(conn, |conn| {
            let before = if Self::TRACKED_FIELDS.is_empty() {
                None
            } else {
                Self::db_get(conn, self.cqrs_pk(), true)?.map(|row| row.cqrs_tracked())
            };
            save_changed(conn, self, None, true, before.as_ref())
        })
    }

    /// Writes only `fields` of this row (django-cqrs's `save(update_fields=[...])`, by the
    /// fields' Rust names) and writes its SAVE message, as django-cqrs does for a partial save.
    /// `update_cqrs_fields` (django-cqrs's argument of the same name; `None`: the process
    /// setting [`MasterSettings::auto_update_fields`](crate::settings::MasterSettings), its
    /// `CQRS_AUTO_UPDATE_FIELDS`, `false` by default) says whether the write also bumps
    /// `cqrs_revision` and sets `cqrs_updated`. Without the bump the message carries the
    /// revision the replicas already hold, so they keep their row, exactly as with a Django
    /// master: use it for columns the replicas do not need, or pass `Some(true)`. A name
    /// that is not a writable field is [`Error::UnknownUpdateField`], and nothing is written.
    #[must_use = "the stored row carries the new revision; keep it rather than the old value"]
    fn cqrs_save_fields(
        &self,
        conn: &mut C,
        fields: &[&str],
        update_cqrs_fields: Option<bool>,
    ) -> Result<Self> {
        if let Some(unknown) = fields.iter().find(|f| !Self::WRITABLE.contains(f)) {
            return Err(Error::UnknownUpdateField {
                model: Self::TYPE_NAME,
                field: (*unknown).to_owned(),
                valid: Self::WRITABLE.join(", "),
            });
        }
        let bump = update_cqrs_fields.unwrap_or_else(|| settings::master().auto_update_fields);
        write(conn, |conn| {
            let before = if Self::TRACKED_FIELDS.is_empty() {
                None
            } else {
                Self::db_get(conn, self.cqrs_pk(), true)?.map(|row| row.cqrs_tracked())
            };
            save_changed(conn, self, Some(fields), bump, before.as_ref())
        })
    }

    /// Loads the row (locked on PostgreSQL), lets `change` modify it, then saves it as
    /// [`MasterStore::cqrs_save`] does.
    #[must_use = "the stored row carries the new revision; keep it rather than the old value"]
    fn cqrs_update<F>(conn: &mut C, pk: &Self::Pk, change: F) -> Result<Self>
    where
        F: FnOnce(&mut Self),
    {
        write(conn, |conn| {
            let mut row = Self::db_get(conn, pk, true)?.ok_or_else(|| not_found::<Self>(pk))?;
            let before = (!Self::TRACKED_FIELDS.is_empty()).then(|| row.cqrs_tracked());
            let read = row.cqrs_version();
            change(&mut row);
            if let Some(stored) = update_carrying_message(conn, &mut row, read, before.as_ref())? {
                return Ok(stored);
            }
            save_changed(conn, &row, None, true, before.as_ref())
        })
    }

    /// Updates every row matching `predicate` (a diesel expression, such as
    /// `books::published.eq(false)`) through `change`, one revision each, in one transaction,
    /// and writes one SAVE per row (django-cqrs's `cqrs.bulk_update`). Returns the rows as
    /// stored.
    #[must_use = "the stored rows carry the new revisions; keep them rather than the old values"]
    fn cqrs_bulk_update<P, F>(conn: &mut C, predicate: P, change: F) -> Result<Vec<Self>>
    where
        P: diesel::BoxableExpression<Self::Table, C::Backend, SqlType = diesel::sql_types::Bool>
            + 'static,
        F: FnMut(&mut Self),
    {
        Self::cqrs_bulk_update_filtered(conn, vec![Box::new(predicate)], change)
    }

    /// [`MasterStore::cqrs_bulk_update`] for predicates built at run time, such as the
    /// Django lookups of [`MasterStore::cqrs_filter`] (all must hold; none: every row).
    #[must_use = "the stored rows carry the new revisions; keep them rather than the old values"]
    fn cqrs_bulk_update_filtered<F>(
        conn: &mut C,
        filters: Vec<BoxedFilter<Self::Table, C::Backend>>,
        mut change: F,
    ) -> Result<Vec<Self>>
    where
        F: FnMut(&mut Self),
    {
        write(conn, |conn| {
            let pks: Vec<Self::Pk> = Self::db_page(conn, filters, None, i64::MAX)?
                .iter()
                .map(|row| row.cqrs_pk().clone())
                .collect();
            let mut rows = Vec::with_capacity(pks.len());
            let mut befores = Vec::with_capacity(pks.len());
            for pk in &pks {
                let Some(mut row) = Self::db_get(conn, pk, true)? else {
                    continue;
                };
                befores.push((!Self::TRACKED_FIELDS.is_empty()).then(|| row.cqrs_tracked()));
                change(&mut row);
                let (row, _) = Self::db_update(conn, &row, now_micros(), None)?
                    .ok_or_else(|| not_found::<Self>(pk))?;
                // bumped and sent here: a later write of the row in this transaction sends anew
                coalesce::forget(coalesce::conn_id(conn), &(Self::CQRS_ID, pk_text(pk)));
                rows.push(row);
            }
            if Self::PRODUCE {
                let previous = |i: usize, row: &Self| {
                    let before = befores.get(i)?.as_ref()?;
                    Some(changed_tracked(before, row))
                };
                let messages = messages(conn, &rows, SignalType::Save, previous, None)?;
                outbox::enqueue(conn, &messages)?;
            }
            Ok(rows)
        })
    }

    /// Deletes this row and writes its DELETE message. Returns whether a row was deleted.
    fn cqrs_delete(&self, conn: &mut C) -> Result<bool> {
        Self::cqrs_delete_pk(conn, self.cqrs_pk())
    }

    /// Deletes the row with this primary key and writes its DELETE message.
    fn cqrs_delete_pk(conn: &mut C, pk: &Self::Pk) -> Result<bool> {
        write(conn, |conn| {
            let Some(row) = Self::db_delete(conn, pk)? else {
                return Ok(false);
            };
            let key = pk_text(pk);
            let revision = delete_revision(row.cqrs_version());
            if Self::PRODUCE && row.cqrs_is_sync_instance() {
                // the revision recorded by the statement that writes the message
                let note = RevisionNote::Put {
                    cqrs_id: Self::CQRS_ID,
                    pk: &key,
                    revision,
                };
                conn.outbox_insert_noting(&delete_message(&row)?, note)?;
            } else {
                conn.deleted_revision_put(Self::CQRS_ID, &key, revision)?;
            }
            coalesce::forget(coalesce::conn_id(conn), &(Self::CQRS_ID, key));
            Ok(true)
        })
    }

    /// Re-sends this row as it is in the database (SYNC), to every replica
    /// ([`SyncTarget::Broadcast`]) or to one queue ([`SyncTarget::Queue`]). Returns `false` if
    /// the row no longer exists or the sync filter excludes it.
    fn cqrs_sync(&self, conn: &mut C, target: SyncTarget<'_>) -> Result<bool> {
        Self::cqrs_sync_pks(conn, std::slice::from_ref(self.cqrs_pk()), target).map(|n| n > 0)
    }

    /// Sends SYNC for the rows with these primary keys; returns how many were sent. A model
    /// with `produce = false` sends none, as django-cqrs's `cqrs_sync` sends none for it.
    fn cqrs_sync_pks(conn: &mut C, pks: &[Self::Pk], target: SyncTarget<'_>) -> Result<usize> {
        if !Self::PRODUCE {
            return Ok(0);
        }
        Ok(Self::cqrs_sync_selected(conn, pks, target)?.synced.len())
    }

    /// Sends SYNC for the rows an operator picked, in one transaction, and says which were
    /// sent and why the others were not (django-cqrs's admin action "Synchronize selected",
    /// whose reply is the report's `Display`). A `produce = false` model sends nothing and
    /// reports every existing row as synced, as django-cqrs does.
    fn cqrs_sync_selected(
        conn: &mut C,
        pks: &[Self::Pk],
        target: SyncTarget<'_>,
    ) -> Result<SyncReport> {
        let queue = target.queue();
        write(conn, |conn| {
            let mut report = SyncReport::default();
            let mut rows = Vec::with_capacity(pks.len());
            for pk in pks {
                let key = pk_text(pk);
                match Self::db_get(conn, pk, false)? {
                    None => report.failed.push((key, NotSynced::Missing)),
                    Some(_) if !Self::PRODUCE => report.synced.push(key),
                    Some(row) if !row.cqrs_is_sync_instance() => {
                        report.failed.push((key, NotSynced::Filtered));
                    }
                    Some(row) => {
                        rows.push(row);
                        report.synced.push(key);
                    }
                }
            }
            let messages = messages(conn, &rows, SignalType::Sync, |_, _| None, queue)?;
            outbox::enqueue(conn, &messages)?;
            Ok(report)
        })
    }

    /// Sends SYNC for every row matching `lookups` (Django lookups; `{}` for all), in
    /// transactions of `batch` rows; `progress` is called with the number of rows done. A
    /// model with `produce = false` sends none.
    fn cqrs_sync_where(
        conn: &mut C,
        lookups: &[Lookup],
        target: SyncTarget<'_>,
        batch: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        if !Self::PRODUCE {
            return Ok(0);
        }
        let queue = target.queue();
        let mut sent = 0;
        let mut done = 0;
        for_each_page::<Self, C>(conn, lookups, batch, &mut |conn, rows| {
            sent += write(conn, |conn| {
                let messages = messages(conn, rows, SignalType::Sync, |_, _| None, queue)?;
                outbox::enqueue(conn, &messages)?;
                Ok::<_, Error>(messages.len() as u64)
            })?;
            done += rows.len() as u64;
            progress(done);
            Ok(())
        })?;
        Ok(sent)
    }
}

impl<M: MasterTable<C>, C: CqrsConnection> MasterStore<C> for M {}
