//! Saving changed rows and their SAVE messages: a full save, a partial save, a save whose
//! message travels in the row's `UPDATE` (PostgreSQL), and the folding of a transaction's
//! later writes of a row into its first message.

use serde_json::{Map, Value};

use super::coalesce;
use super::envelope::{changed_tracked, envelope, instance_data, message, messages};
use super::model::MasterTable;
use super::write::{not_found, pk_text};
use crate::db::CqrsConnection;
use crate::error::Result;
use crate::message::SignalType;
use crate::outbox;
use crate::rules::Version;
use crate::value::now_micros;

pub(super) fn enqueue_saves<M, C>(
    conn: &mut C,
    rows: &[M],
    previous: impl Fn(&M) -> Option<Map<String, Value>>,
) -> Result<()>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    if !M::PRODUCE {
        return Ok(());
    }
    let scope = coalesce::conn_id(conn);
    if let [row] = rows
        && coalesce::active(scope)
    {
        // a created row that later writes of this transaction may fold into its message
        if row.cqrs_is_sync_instance() {
            let previous = previous(row);
            let message = message(conn, row, SignalType::Save, previous.clone(), None)?;
            let outbox_id = conn.outbox_insert_one(&message)?;
            coalesce::remember(
                scope,
                (M::CQRS_ID, pk_text(row.cqrs_pk())),
                coalesce::Pending {
                    outbox_id,
                    previous,
                },
            );
        }
        return Ok(());
    }
    let messages = messages(conn, rows, SignalType::Save, |_, row| previous(row), None)?;
    outbox::enqueue(conn, &messages)?;
    Ok(())
}

/// Writes a changed row and its SAVE message. Inside a transaction that coalesces and already
/// sent a message of the row, it writes the row without a second revision bump and rewrites
/// that message with the row's final state instead. `fields`: a partial save's columns
/// (`None`: a full save, which bumps); `bump`: a partial save's `update_cqrs_fields`.
pub(super) fn save_changed<M, C>(
    conn: &mut C,
    row: &M,
    fields: Option<&[&str]>,
    bump: bool,
    before: Option<&Map<String, Value>>,
) -> Result<M>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    let scope = coalesce::conn_id(conn);
    // the row's key only where this transaction folds (a write outside one builds none)
    let key: Option<coalesce::Key> =
        coalesce::active(scope).then(|| (M::CQRS_ID, pk_text(row.cqrs_pk())));
    let bumps = fields.is_none() || bump;
    if let Some((key, pending)) = key
        .as_ref()
        .and_then(|key| Some((key, coalesce::pending(scope, key)?)))
    {
        // the revision moved at the first write; `cqrs_updated` moves as that write's did
        let updated = bumps.then(now_micros);
        let columns = fields.unwrap_or(M::WRITABLE);
        let stored = if columns.is_empty() && updated.is_none() {
            M::db_get(conn, row.cqrs_pk(), false)?
        } else {
            M::db_update_fields(conn, row, columns, false, updated)?
        }
        .ok_or_else(|| not_found::<M>(row.cqrs_pk()))?;
        let body = message(
            conn,
            &stored,
            SignalType::Save,
            pending.previous.clone(),
            None,
        )?
        .body;
        if conn.outbox_rewrite(pending.outbox_id, &body)? > 0 {
            return Ok(stored);
        }
        // its message is gone (a savepoint rolled back unseen here): bump and send anew
        coalesce::forget(scope, key);
        let bumped = M::db_update_fields(conn, &stored, &[], true, None)?
            .ok_or_else(|| not_found::<M>(row.cqrs_pk()))?;
        return send_saved(conn, Some(key.clone()), bumped, before, true);
    }
    let stored = match fields {
        None => M::db_update(conn, row, now_micros(), None)?.map(|(row, _)| row),
        Some([]) if !bump => M::db_get(conn, row.cqrs_pk(), false)?,
        Some(columns) => M::db_update_fields(conn, row, columns, bump, bump.then(now_micros))?,
    }
    .ok_or_else(|| not_found::<M>(row.cqrs_pk()))?;
    send_saved(conn, key, stored, before, bumps)
}

/// A full save of a row read under its lock (`read`: its version then) whose SAVE message
/// travels in the `UPDATE`'s own statement, where the backend carries it
/// ([`OutboxWriter::UPDATE_CARRIES_MESSAGE`]: one round trip less on PostgreSQL).
///
/// The message is built first, from the row as it will be stored: the lock keeps the
/// revision at one above the one read, and `cqrs_updated` is the time written. Should the
/// stored row serialize otherwise (a trigger, a column type that rounds), the message is
/// written again from it. `None`: not for this write (another backend, a model whose `relate`
/// would read its related data twice, a row whose message this transaction folds into an
/// earlier one, a row not sent); the caller saves it as before.
pub(super) fn update_carrying_message<M, C>(
    conn: &mut C,
    row: &mut M,
    read: Version,
    before: Option<&Map<String, Value>>,
) -> Result<Option<M>>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    if !C::UPDATE_CARRIES_MESSAGE || !M::PRODUCE || M::RELATES || !row.cqrs_is_sync_instance() {
        return Ok(None);
    }
    let scope = coalesce::conn_id(conn);
    let key: Option<coalesce::Key> =
        coalesce::active(scope).then(|| (M::CQRS_ID, pk_text(row.cqrs_pk())));
    let folds = key
        .as_ref()
        .is_some_and(|key| coalesce::pending(scope, key).is_some());
    let Some(revision) = read.revision.checked_add(1).filter(|_| !folds) else {
        return Ok(None);
    };
    let updated = now_micros();
    row.cqrs_set_version(Version { revision, updated });
    let data = instance_data(conn, row)?;
    let mut previous = before.map(|b| changed_tracked(b, row));
    let expected = envelope(row, SignalType::Save, data.clone(), previous.clone(), None)?;
    let (stored, carried) = M::db_update(conn, row, updated, Some(&expected))?
        .ok_or_else(|| not_found::<M>(row.cqrs_pk()))?;
    let outbox_id = match carried {
        Some(id) if !stored.cqrs_is_sync_instance() => {
            // stored otherwise than written, and not to be sent after all
            conn.outbox_delete(&[id])?;
            return Ok(Some(stored));
        }
        Some(id) => {
            let stored_data = instance_data(conn, &stored)?;
            let stored_previous = before.map(|b| changed_tracked(b, &stored));
            if stored_data != data
                || stored_previous != previous
                || stored.cqrs_version() != row.cqrs_version()
            {
                let again = envelope(
                    &stored,
                    SignalType::Save,
                    stored_data,
                    stored_previous.clone(),
                    None,
                )?;
                conn.outbox_rewrite(id, &again.body)?;
                previous = stored_previous;
            }
            id
        }
        None => {
            let saved = message(conn, &stored, SignalType::Save, previous.clone(), None)?;
            conn.outbox_insert_one(&saved)?
        }
    };
    if let Some(key) = key {
        let pending = coalesce::Pending {
            outbox_id,
            previous,
        };
        coalesce::remember(scope, key, pending);
    }
    Ok(Some(stored))
}

/// Writes the SAVE message of a stored row, if the model sends it; where this transaction
/// coalesces (`key` is the row's) and the write bumped the revision, remembers it for the
/// row's later writes (a partial save without the bump is not folded into: a later full save
/// sends its own).
pub(super) fn send_saved<M, C>(
    conn: &mut C,
    key: Option<coalesce::Key>,
    row: M,
    before: Option<&Map<String, Value>>,
    bumped: bool,
) -> Result<M>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    if !M::PRODUCE || !row.cqrs_is_sync_instance() {
        return Ok(row);
    }
    let previous = before.map(|b| changed_tracked(b, &row));
    let message = message(conn, &row, SignalType::Save, previous.clone(), None)?;
    if let (true, Some(key)) = (bumped, key) {
        let outbox_id = conn.outbox_insert_one(&message)?;
        coalesce::remember(
            coalesce::conn_id(conn),
            key,
            coalesce::Pending {
                outbox_id,
                previous,
            },
        );
    } else {
        outbox::enqueue(conn, std::slice::from_ref(&message))?;
    }
    Ok(row)
}
