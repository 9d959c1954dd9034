//! What identifies a master write for read-your-writes: the stream, the row and the revision
//! the write gave it.

use serde_json::Value;

use crate::master::MasterModel;
use crate::value::{CqrsValue, pk_key};

/// A master write, as a replica will see it: `cqrs_id`, primary key and revision. A replica
/// has applied it once its row has this revision or a later one (or, for a delete, once the
/// row is gone or came back later).
///
/// ```
/// # cqrs_core::__doc_fixtures!();
/// use cqrs_core::prelude::*;
/// use cqrs_core::Written;
///
/// let mut conn = connection();
/// let book = Book::sample(7).cqrs_insert(&mut conn)?;
/// let written = Written::of(&book); // also after cqrs_create, cqrs_update, cqrs_save...
/// assert_eq!((written.cqrs_id, written.revision), ("book", 0));
/// assert_eq!(Written::delete_of(&book).revision, 1); // the DELETE's revision
/// # Ok::<_, cqrs_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The model's stream id.
    pub cqrs_id: &'static str,
    /// The primary key, as it travels (`instance_pk`).
    pub pk: Value,
    /// The revision of the write.
    pub revision: i32,
    /// Whether the write deleted the row.
    pub deleted: bool,
}

impl Written {
    /// A save: the row as a master hook returned it.
    pub fn of<M: MasterModel>(row: &M) -> Self {
        Self {
            cqrs_id: M::CQRS_ID,
            pk: row.cqrs_pk().to_cqrs(),
            revision: row.cqrs_version().revision,
            deleted: false,
        }
    }

    /// A delete of `row` (the row as it was read before `cqrs_delete`): its DELETE carries
    /// the next revision.
    pub fn delete_of<M: MasterModel>(row: &M) -> Self {
        Self {
            revision: row.cqrs_version().revision.saturating_add(1),
            deleted: true,
            ..Self::of(row)
        }
    }

    /// The primary key's text, as tombstones and logs name it.
    pub fn pk_text(&self) -> String {
        pk_key(&self.pk)
    }
}
