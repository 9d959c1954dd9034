//! The unit of a master write: `transaction`, which scopes one message per row and wakes
//! the relays after the commit, and the revision arithmetic every write shares.

use super::coalesce;
use super::model::MasterModel;
use crate::db::CqrsConnection;
use crate::error::Error;
use crate::outbox;
use crate::rules::Version;
use crate::settings::{self};
use crate::value::CqrsValue;

/// Runs `f` in a transaction in which master hooks may write; relays in this process are
/// woken once it commits. Use it around several master writes that must be atomic.
///
/// ```
/// # cqrs_core::__doc_fixtures!();
/// use cqrs_core::prelude::*;
/// let conn = &mut connection();
/// Book::sample(1).cqrs_insert(conn)?;
/// Book::sample(2).cqrs_insert(conn)?;
/// cqrs_core::transaction(conn, |conn| {
///     Book::cqrs_update(conn, &1, |b| b.price = 10.0)?;
///     Book::cqrs_delete_pk(conn, &2)?;
///     Ok::<_, cqrs_core::Error>(())
/// })?;
/// # Ok::<_, cqrs_core::Error>(())
/// ```
pub fn transaction<C, T, E, F>(conn: &mut C, f: F) -> std::result::Result<T, E>
where
    C: CqrsConnection,
    F: FnOnce(&mut C) -> std::result::Result<T, E>,
    E: From<diesel::result::Error>,
{
    // the outermost transaction sends one message per row (see `coalesce`)
    let _scope = (!conn.cqrs_in_transaction() && settings::master().one_message_per_transaction)
        .then(|| coalesce::Open::new(coalesce::conn_id(conn)));
    write(conn, f)
}

/// Runs a write in a transaction and wakes local relays: after the commit when this is the
/// outermost transaction, at once otherwise (the relay looks again shortly).
pub(super) fn write<C, T, E, F>(conn: &mut C, f: F) -> std::result::Result<T, E>
where
    C: CqrsConnection,
    F: FnOnce(&mut C) -> std::result::Result<T, E>,
    E: From<diesel::result::Error>,
{
    let outermost = !conn.cqrs_in_transaction();
    let scope = coalesce::conn_id(conn);
    let mark = coalesce::mark(scope);
    let result = conn.cqrs_transaction(f);
    if let (Err(_), Some(mark)) = (&result, mark) {
        // rolled back: the rows first written in it send anew
        coalesce::roll_back_to(scope, mark);
    }
    if result.is_ok() || !outermost {
        outbox::notify_local();
    }
    result
}

pub(super) fn not_found<M: MasterModel>(pk: &M::Pk) -> Error {
    Error::NotFound {
        model: M::TYPE_NAME,
        pk: pk_text(pk),
    }
}

pub(super) fn pk_text<P: CqrsValue>(pk: &P) -> String {
    crate::value::pk_key(&pk.to_cqrs())
}

/// The revision of a row's DELETE message: one above the row's.
pub(crate) fn delete_revision(version: Version) -> i32 {
    version.revision.saturating_add(1)
}

/// The revision a created row starts at: 0, or one above the DELETE of the key's previous
/// incarnation.
pub(super) fn first_revision(deleted: Option<i32>) -> i32 {
    deleted.map_or(0, |revision| revision.saturating_add(1))
}
