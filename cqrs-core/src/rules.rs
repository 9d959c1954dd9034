//! The apply rules of a replica: given a message's version, the stored row's version and the
//! row's tombstone, what to do. Pure functions: no database, no hooks. The one description of
//! the rules is the table below (the repository's `docs/protocol.md`, section "Applying
//! messages", says why each rule exists).
//!
//! | message | stored row | action |
//! |---|---|---|
//! | SAVE/SYNC | none, no tombstone | create |
//! | SAVE/SYNC | none, tombstone newer | ignore (the row was deleted after this version) |
//! | SAVE/SYNC | none, tombstone older | create (re-created row), forget the tombstone |
//! | SYNC sent to this replica's queue | none, tombstone newer | create, forget the tombstone (an operator's repair) |
//! | SAVE | revision > new | ignore, error "wrong order" |
//! | SAVE | revision == new | ignore, error "duplicate" (warning "creation race" if 0) |
//! | SAVE | revision < new - 1 | update, warning "lost or filtered out" |
//! | SAVE | revision == new - 1 | update |
//! | SAVE | revision >= new but re-created (clock order only) | update (row re-created on the master) |
//! | SYNC | any | update (warning on a downgrade) |
//! | DELETE | older than the message | delete, record a tombstone |
//! | DELETE | newer than the message | ignore (a newer version must stay) |
//! | DELETE | none | record a tombstone |
//!
//! "Older" and "newer" across a delete follow the message's [`Order`]:
//! - [`Order::Revision`], messages of this framework's masters (`"monotonic_revisions": true`):
//!   a re-created row continues above its DELETE's revision, so the revision alone orders
//!   every version of a primary key. No clock is compared: skewed master hosts, a clock that
//!   steps back, or a re-creation in the delete's microsecond change nothing.
//! - [`Order::Clock`], messages of django-cqrs masters, whose revisions restart at 0 when a
//!   row is re-created: `cqrs_updated` first, then the revision. Equal timestamps favour the
//!   re-created row (as django-cqrs, which checks nothing, would apply it). This order trusts
//!   the master hosts' clocks; it is the best the message allows.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::message::SignalType;

/// The version of a row: its revision and the master's `cqrs_updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// `cqrs_revision`.
    pub revision: i32,
    /// `cqrs_updated`.
    pub updated: DateTime<Utc>,
}

/// How a message's version is ordered against a row's other versions across a delete (see
/// the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Revisions never restart for a primary key: compare revisions only.
    Revision,
    /// Revisions restart at 0 on re-creation: compare `cqrs_updated`, then the revision.
    Clock,
}

impl Order {
    /// The order of a message: [`Order::Revision`] when its master says its revisions never
    /// restart.
    pub fn of(monotonic_revisions: bool) -> Self {
        if monotonic_revisions {
            Self::Revision
        } else {
            Self::Clock
        }
    }
}

impl Version {
    /// Whether this version (of a DELETE) comes after `other`, the stored row or tombstone.
    pub fn is_after(&self, other: &Version, order: Order) -> bool {
        match order {
            Order::Revision => self.revision > other.revision,
            Order::Clock => (self.updated, self.revision) > (other.updated, other.revision),
        }
    }

    /// Whether this version of a SAVE or SYNC belongs to a row created after the delete that
    /// left `tombstone`. On clock order an equal timestamp counts as after: the delete's
    /// microsecond is shared with the re-creation, not with an older save.
    fn outlives(&self, tombstone: &Version, order: Order) -> bool {
        match order {
            Order::Revision => self.revision > tombstone.revision,
            Order::Clock => self.updated >= tombstone.updated,
        }
    }

    /// Whether this version (lower or equal revision, later `cqrs_updated`) is of a row
    /// re-created after `stored` was written, its delete lost. Never on revision order: a
    /// re-created row has a higher revision. Strictly later on clock order: two saves of one
    /// row can share a microsecond, and the stored row must not go back.
    fn recreates(&self, stored: &Version, order: Order) -> bool {
        order == Order::Clock && self.revision <= stored.revision && self.updated > stored.updated
    }
}

/// What applying a message did. Every outcome is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new row was created.
    Created,
    /// The stored row was updated.
    Updated,
    /// The row was deleted.
    Deleted,
    /// A DELETE for a row this replica does not have: the tombstone was recorded.
    AlreadyAbsent,
    /// Nothing changed.
    Ignored(IgnoreReason),
}

/// Why a message changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// A SAVE older than the stored row ("wrong order").
    Stale,
    /// A SAVE with the stored revision.
    Duplicate,
    /// A SAVE or SYNC older than the row's recorded delete.
    Deleted,
    /// A DELETE older than the stored row.
    StaleDelete,
    /// A broadcast SYNC for an `only_direct_syncs` model.
    BroadcastSync,
}

impl Outcome {
    /// A short name for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::AlreadyAbsent => "already absent",
            Self::Ignored(IgnoreReason::Stale) => "ignored: wrong order",
            Self::Ignored(IgnoreReason::Duplicate) => "ignored: duplicate",
            Self::Ignored(IgnoreReason::Deleted) => "ignored: older than its delete",
            Self::Ignored(IgnoreReason::StaleDelete) => "ignored: delete older than the row",
            Self::Ignored(IgnoreReason::BroadcastSync) => "ignored: broadcast sync",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rules say to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Create the row (forgetting an older tombstone).
    Create,
    /// Update the stored row.
    Update,
    /// Change nothing.
    Ignore(IgnoreReason),
    /// Delete the stored row and record the tombstone.
    Delete,
    /// No row: record the tombstone only.
    Tombstone,
}

/// The message a decision is about, for the rules' log lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) cqrs_id: &'static str,
    pub(crate) pk: &'a str,
    pub(crate) signal: SignalType,
    pub(crate) version: Version,
    /// A SYNC sent to this replica's queue only (an operator's repair).
    pub(crate) direct: bool,
    /// How the message's version is ordered across a delete.
    pub(crate) order: Order,
}

/// The apply rules (see the module docs), with their log lines.
///
/// `tombstone` is only looked at when there is no stored row, or for a DELETE.
pub(crate) fn decide(
    subject: Subject<'_>,
    stored: Option<Version>,
    tombstone: Option<Version>,
) -> Decision {
    let Subject {
        cqrs_id,
        pk,
        signal,
        version,
        direct,
        order,
    } = subject;
    if signal == SignalType::Delete {
        return match stored {
            Some(stored) if !version.is_after(&stored, order) => {
                tracing::warn!(
                    cqrs_id,
                    pk,
                    revision = version.revision,
                    existing = stored.revision,
                    "CQRS DELETE older than the stored row ignored"
                );
                Decision::Ignore(IgnoreReason::StaleDelete)
            }
            Some(_) => Decision::Delete,
            None => Decision::Tombstone,
        };
    }
    let Some(stored) = stored else {
        return match tombstone {
            Some(tombstone) if signal == SignalType::Sync && direct => {
                tracing::warn!(
                    cqrs_id,
                    pk,
                    revision = version.revision,
                    deleted_revision = tombstone.revision,
                    "CQRS direct SYNC restores a deleted row"
                );
                Decision::Create
            }
            Some(tombstone) if !version.outlives(&tombstone, order) => {
                tracing::warn!(
                    cqrs_id,
                    pk,
                    revision = version.revision,
                    deleted_revision = tombstone.revision,
                    "CQRS {signal} older than the row's delete ignored"
                );
                Decision::Ignore(IgnoreReason::Deleted)
            }
            _ => Decision::Create,
        };
    };
    let recreated = version.recreates(&stored, order);
    if signal == SignalType::Sync {
        if stored.revision > version.revision && !recreated {
            tracing::warn!(
                cqrs_id,
                pk,
                new = version.revision,
                existing = stored.revision,
                "CQRS revision downgrade on sync"
            );
        }
    } else if recreated {
        tracing::warn!(
            cqrs_id,
            pk,
            new = version.revision,
            existing = stored.revision,
            "CQRS revision went back with a later cqrs_updated: the row was re-created"
        );
    } else if stored.revision > version.revision {
        tracing::error!(
            cqrs_id,
            pk,
            new = version.revision,
            existing = stored.revision,
            "Wrong CQRS sync order"
        );
        return Decision::Ignore(IgnoreReason::Stale);
    } else if stored.revision == version.revision {
        tracing::error!(
            cqrs_id,
            pk,
            revision = version.revision,
            "Received duplicate CQRS data"
        );
        if version.revision == 0 {
            tracing::warn!(cqrs_id, pk, "CQRS potential creation race condition");
        }
        return Decision::Ignore(IgnoreReason::Duplicate);
    } else if i64::from(version.revision) != i64::from(stored.revision) + 1 {
        tracing::warn!(
            cqrs_id,
            pk,
            revision = version.revision,
            lost = i64::from(version.revision) - i64::from(stored.revision) - 1,
            "Lost or filtered out CQRS packages"
        );
    }
    Decision::Update
}

/// Whether a DELETE's version must be written over the stored tombstone.
pub(crate) fn tombstone_moves(version: Version, tombstone: Option<Version>, order: Order) -> bool {
    tombstone.is_none_or(|t| version.is_after(&t, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(revision: i32, micros: i64) -> Version {
        Version {
            revision,
            updated: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
        }
    }

    fn subject(signal: SignalType, version: Version) -> Subject<'static> {
        Subject {
            cqrs_id: "book",
            pk: "1",
            signal,
            version,
            direct: false,
            order: Order::Clock,
        }
    }

    #[test]
    fn the_table() {
        use SignalType::{Delete, Save, Sync};
        let save = |v| subject(Save, v);
        assert_eq!(decide(save(at(0, 1)), None, None), Decision::Create);
        assert_eq!(
            decide(save(at(3, 1)), None, Some(at(4, 2))),
            Decision::Ignore(IgnoreReason::Deleted)
        );
        assert_eq!(
            decide(save(at(0, 3)), None, Some(at(4, 2))),
            Decision::Create
        );
        // a broadcast SYNC older than the delete is ignored, a direct one (a repair) applies
        assert_eq!(
            decide(subject(Sync, at(3, 1)), None, Some(at(4, 2))),
            Decision::Ignore(IgnoreReason::Deleted)
        );
        let direct = Subject {
            direct: true,
            ..subject(Sync, at(3, 1))
        };
        assert_eq!(decide(direct, None, Some(at(4, 2))), Decision::Create);
        assert_eq!(
            decide(save(at(1, 1)), Some(at(2, 1)), None),
            Decision::Ignore(IgnoreReason::Stale)
        );
        assert_eq!(
            decide(save(at(2, 1)), Some(at(2, 1)), None),
            Decision::Ignore(IgnoreReason::Duplicate)
        );
        assert_eq!(
            decide(save(at(5, 1)), Some(at(2, 1)), None),
            Decision::Update
        );
        assert_eq!(
            decide(save(at(0, 9)), Some(at(2, 1)), None),
            Decision::Update
        );
        assert_eq!(
            decide(subject(Sync, at(1, 1)), Some(at(2, 1)), None),
            Decision::Update
        );
        assert_eq!(
            decide(subject(Delete, at(3, 2)), Some(at(2, 1)), None),
            Decision::Delete
        );
        assert_eq!(
            decide(subject(Delete, at(2, 1)), Some(at(3, 2)), None),
            Decision::Ignore(IgnoreReason::StaleDelete)
        );
        assert_eq!(
            decide(subject(Delete, at(2, 1)), None, None),
            Decision::Tombstone
        );
        assert!(tombstone_moves(at(1, 1), None, Order::Clock));
        assert!(!tombstone_moves(at(1, 1), Some(at(2, 2)), Order::Clock));
        // extreme revisions never overflow the gap arithmetic
        assert_eq!(
            decide(save(at(i32::MAX, 1)), Some(at(i32::MIN, 1)), None),
            Decision::Update
        );
    }

    fn ordered(signal: SignalType, version: Version) -> Subject<'static> {
        Subject {
            order: Order::Revision,
            ..subject(signal, version)
        }
    }

    #[test]
    fn revision_order_ignores_clocks() {
        use SignalType::{Delete, Save};
        // a DELETE stamped before the row's last SAVE (a host whose clock is behind) deletes
        assert_eq!(
            decide(ordered(Delete, at(4, 1)), Some(at(3, 9)), None),
            Decision::Delete
        );
        // a late SAVE of the old incarnation (rev 3, deleted at rev 4) stays deleted, even
        // stamped by a fast clock
        assert_eq!(
            decide(ordered(Save, at(3, 99)), None, Some(at(4, 2))),
            Decision::Ignore(IgnoreReason::Deleted)
        );
        // and cannot overwrite the re-created row (rev 5), nor can the old DELETE remove it
        assert_eq!(
            decide(ordered(Save, at(3, 99)), Some(at(5, 1)), None),
            Decision::Ignore(IgnoreReason::Stale)
        );
        assert_eq!(
            decide(ordered(Delete, at(4, 99)), Some(at(5, 1)), None),
            Decision::Ignore(IgnoreReason::StaleDelete)
        );
        // re-created in the delete's microsecond, or on a clock that stepped back: applied
        assert_eq!(
            decide(ordered(Save, at(5, 2)), None, Some(at(4, 2))),
            Decision::Create
        );
        assert_eq!(
            decide(ordered(Save, at(5, 1)), None, Some(at(4, 2))),
            Decision::Create
        );
        // a re-delivered rev 5 stamped by a fast host does not go back over rev 6
        assert_eq!(
            decide(ordered(Save, at(5, 99)), Some(at(6, 1)), None),
            Decision::Ignore(IgnoreReason::Stale)
        );
        // a row saved in year 9999 can still be deleted
        let far = Version {
            revision: 2,
            updated: DateTime::parse_from_rfc3339("9999-01-01T00:00:00Z")
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_default(),
        };
        assert_eq!(
            decide(ordered(Delete, at(3, 1)), Some(far), None),
            Decision::Delete
        );
        assert!(tombstone_moves(at(5, 1), Some(at(4, 9)), Order::Revision));
        assert!(!tombstone_moves(at(4, 9), Some(at(5, 1)), Order::Revision));
    }

    #[test]
    fn clock_order_favours_the_recreated_row_on_equal_timestamps() {
        use SignalType::Save;
        // django-cqrs re-creation: revision 0, stamped in the delete's microsecond
        assert_eq!(
            decide(subject(Save, at(0, 2)), None, Some(at(4, 2))),
            Decision::Create
        );
        // without the delete, an equal stamp cannot tell a re-creation from a stale save:
        // the stored row stays
        assert_eq!(
            decide(subject(Save, at(0, 5)), Some(at(3, 5)), None),
            Decision::Ignore(IgnoreReason::Stale)
        );
        // the same revision and stamp is a duplicate
        assert_eq!(
            decide(subject(Save, at(3, 5)), Some(at(3, 5)), None),
            Decision::Ignore(IgnoreReason::Duplicate)
        );
    }
}
