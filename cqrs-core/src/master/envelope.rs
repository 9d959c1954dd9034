//! The messages of master rows: the SAVE/SYNC envelope, the DELETE stub, tracked fields.

use chrono::Utc;
use serde_json::{Map, Value};

use super::model::{MasterModel, MasterTable};
use crate::db::{CqrsConnection, OutboxMessage};
use crate::error::Result;
use crate::message::{Message, SignalType, routing_key};
use crate::settings::{self, CorrelationContext, MetaContext};
use crate::value::{CqrsValue, now_micros};

/// `previous_data` of a created row: `{field: null}` per tracked field, or none.
pub(super) fn created_previous_data<M: MasterModel>() -> Option<Map<String, Value>> {
    (!M::TRACKED_FIELDS.is_empty()).then(|| {
        M::TRACKED_FIELDS
            .iter()
            .map(|f| ((*f).to_owned(), Value::Null))
            .collect()
    })
}

/// The old values of the tracked fields that changed.
pub(super) fn changed_tracked<M: MasterModel>(
    before: &Map<String, Value>,
    row: &M,
) -> Map<String, Value> {
    let after = row.cqrs_tracked();
    before
        .iter()
        .filter(|(field, old)| after.get(field.as_str()) != Some(old))
        .map(|(field, old)| (field.clone(), old.clone()))
        .collect()
}

/// Builds the SAVE or SYNC message of a row (whatever its sync filter says), reading its
/// related data through `conn` if the model has `relate`.
pub fn message<M, C>(
    conn: &mut C,
    row: &M,
    signal_type: SignalType,
    previous_data: Option<Map<String, Value>>,
    queue: Option<&str>,
) -> Result<OutboxMessage>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    let data = instance_data(conn, row)?;
    envelope(row, signal_type, data, previous_data, queue)
}

/// The serialized row (`instance_data`) of one row.
pub(super) fn instance_data<M, C>(conn: &mut C, row: &M) -> Result<Map<String, Value>>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    M::db_instance_data(conn, std::slice::from_ref(row))?
        .pop()
        .ok_or(crate::Error::NotReturned {
            model: M::TYPE_NAME,
        })
}

/// Builds the SAVE or SYNC messages of the `rows` the sync filter lets through, serialized
/// together (a model with `relate` loads the related data of them all in one call);
/// `previous(i, row)` is the `previous_data` of `rows[i]`.
pub(super) fn messages<M, C>(
    conn: &mut C,
    rows: &[M],
    signal_type: SignalType,
    previous: impl Fn(usize, &M) -> Option<Map<String, Value>>,
    queue: Option<&str>,
) -> Result<Vec<OutboxMessage>>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    if !rows.iter().any(MasterModel::cqrs_is_sync_instance) {
        return Ok(Vec::new());
    }
    let data = M::db_instance_data(conn, rows)?;
    rows.iter()
        .zip(data)
        .enumerate()
        .filter(|(_, (row, _))| row.cqrs_is_sync_instance())
        .map(|(i, (row, data))| envelope(row, signal_type, data, previous(i, row), queue))
        .collect()
}

/// Builds the DELETE message of a row: the stub `{"id": pk, "cqrs_revision": revision + 1,
/// "cqrs_updated": now}` plus `custom` when the model adds delete data.
pub fn delete_message<M: MasterModel>(row: &M) -> Result<OutboxMessage> {
    let mut data = Map::new();
    data.insert("id".to_owned(), row.cqrs_pk().to_cqrs());
    data.insert(
        "cqrs_revision".to_owned(),
        Value::from(super::write::delete_revision(row.cqrs_version())),
    );
    data.insert("cqrs_updated".to_owned(), now_micros().to_cqrs());
    if let Some(custom) = row.cqrs_delete_data() {
        data.insert("custom".to_owned(), custom);
    }
    envelope(row, SignalType::Delete, data, None, None)
}

pub(super) fn envelope<M: MasterModel>(
    row: &M,
    signal_type: SignalType,
    instance_data: Map<String, Value>,
    previous_data: Option<Map<String, Value>>,
    queue: Option<&str>,
) -> Result<OutboxMessage> {
    let instance_pk = row.cqrs_pk().to_cqrs();
    let meta = row.cqrs_meta(&MetaContext {
        signal_type,
        cqrs_id: M::CQRS_ID,
        instance_data: &instance_data,
        previous_data: previous_data.as_ref(),
    });
    let correlation_id = row.cqrs_correlation_id(&CorrelationContext {
        signal_type,
        cqrs_id: M::CQRS_ID,
        instance_pk: &instance_pk,
        queue,
    });
    let settings = settings::master();
    let expires = settings.message_ttl.and_then(|ttl| {
        chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| Utc::now().checked_add_signed(ttl))
    });
    let message = Message {
        signal_type,
        cqrs_id: M::CQRS_ID.to_owned(),
        instance_data,
        previous_data,
        instance_pk,
        correlation_id,
        retries: 0,
        expires,
        meta,
        monotonic_revisions: true,
    };
    let body = message.to_json();
    if body.len() > settings.max_message_bytes {
        return Err(crate::Error::MessageTooLarge {
            model: M::TYPE_NAME,
            pk: crate::value::pk_key(&message.instance_pk),
            bytes: body.len(),
            max: settings.max_message_bytes,
        });
    }
    Ok(OutboxMessage::row(
        M::CQRS_ID.to_owned(),
        &crate::value::pk_key(&message.instance_pk),
        routing_key(M::CQRS_ID, queue),
        body,
    ))
}
