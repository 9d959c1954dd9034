//! Creating rows: their first revisions (0, or one above the DELETE of the key's previous
//! incarnation) and their SAVE messages.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::coalesce;
use super::envelope::{created_previous_data, message};
use super::model::MasterTable;
use super::write::{first_revision, not_found, pk_text};
use crate::db::{CqrsConnection, RevisionNote};
use crate::error::Result;
use crate::message::SignalType;
use crate::rules::Version;
use crate::value::now_micros;

/// Inserts new rows with their first revisions: 0, or one above the DELETE revision of a key
/// deleted before (revisions never restart; one statement per 500 rows).
///
/// The recorded revisions are taken after the insert, in a statement of their own: when
/// another process deletes one of these keys at the same time, the insert waits on the
/// deleted row until that DELETE commits, and only a statement started after the wait sees
/// the revision it recorded (a take before the insert, or in the insert's own statement,
/// would miss it and start the row again at 0, behind the replicas' tombstone). A key found
/// there gets its revision in one more statement.
pub(super) fn insert_created<M, C>(conn: &mut C, rows: Vec<M>) -> Result<Vec<M>>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    let now = now_micros();
    let mut stored = insert_first(conn, rows, now)?;
    continue_revisions(conn, &mut stored, now)?;
    Ok(stored)
}

/// Takes the recorded DELETE revisions of rows just inserted, in a statement of its own, and
/// moves each row whose key had one above it.
pub(super) fn continue_revisions<M, C>(
    conn: &mut C,
    stored: &mut [M],
    now: DateTime<Utc>,
) -> Result<()>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    let keys: Vec<String> = stored.iter().map(|row| pk_text(row.cqrs_pk())).collect();
    let continued: HashMap<String, i32> = conn
        .deleted_revisions_take(M::CQRS_ID, &keys)?
        .into_iter()
        .collect();
    for (row, key) in stored.iter_mut().zip(&keys) {
        if let Some(&deleted) = continued.get(key) {
            continue_revision(conn, row, deleted, now)?;
        }
    }
    Ok(())
}

/// Inserts rows with revision 0 and `cqrs_updated = now` (one statement per 500); returns
/// them as stored.
pub(super) fn insert_first<M, C>(
    conn: &mut C,
    mut rows: Vec<M>,
    now: DateTime<Utc>,
) -> Result<Vec<M>>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    for row in &mut rows {
        row.cqrs_set_version(Version {
            revision: 0,
            updated: now,
        });
    }
    let mut stored = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(crate::db::ROW_CHUNK) {
        stored.extend(M::db_insert(conn, chunk)?);
    }
    Ok(stored)
}

/// Moves a row just inserted above the DELETE revision `deleted` of its key's previous
/// incarnation.
pub(super) fn continue_revision<M, C>(
    conn: &mut C,
    row: &mut M,
    deleted: i32,
    now: DateTime<Utc>,
) -> Result<()>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    let version = Version {
        revision: first_revision(Some(deleted)),
        updated: now,
    };
    *row = M::db_set_created(conn, row.cqrs_pk(), version)?
        .ok_or_else(|| not_found::<M>(row.cqrs_pk()))?;
    Ok(())
}

/// [`insert_created`] and the SAVE message of one row of a producing model, with the key's
/// DELETE revision taken by the statement that writes the message (after the insert, for
/// the reason given there). A key deleted before (rare) costs two statements more: the row
/// moves above that revision, and the message is written again.
pub(super) fn create_one<M, C>(conn: &mut C, rows: Vec<M>) -> Result<Vec<M>>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    let now = now_micros();
    let mut stored = insert_first(conn, rows, now)?;
    let Some(row) = stored.first_mut().filter(|row| row.cqrs_is_sync_instance()) else {
        // nothing to send: the take in a statement of its own
        continue_revisions(conn, &mut stored, now)?;
        return Ok(stored);
    };
    let key = pk_text(row.cqrs_pk());
    let take = RevisionNote::Take {
        cqrs_id: M::CQRS_ID,
        pk: &key,
    };
    let previous = created_previous_data::<M>();
    let saved = message(conn, row, SignalType::Save, previous.clone(), None)?;
    let (outbox_id, taken) = conn.outbox_insert_noting(&saved, take)?;
    if let Some(deleted) = taken {
        continue_revision(conn, row, deleted, now)?;
        let saved = message(conn, row, SignalType::Save, previous.clone(), None)?;
        conn.outbox_rewrite(outbox_id, &saved.body)?;
    }
    let scope = coalesce::conn_id(conn);
    if coalesce::active(scope) {
        // a created row that later writes of this transaction may fold into its message
        let pending = coalesce::Pending {
            outbox_id,
            previous,
        };
        coalesce::remember(scope, (M::CQRS_ID, key), pending);
    }
    Ok(stored)
}
