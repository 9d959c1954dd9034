//! The parking service's operations on its two databases, through `cqrs_core::split`:
//! writes (and the master hooks) on the primary, reads on the read-only replica, and
//! read-your-writes after a create, a booking and a release.
#![allow(
    clippy::assigning_clones,
    reason = "clarity over one allocation in tests and examples"
)]

use std::time::Duration;

use cqrs_core::Written;
use cqrs_core::pool::PoolConfig;
use cqrs_core::prelude::*;
use cqrs_core::split::{ReadWrite, SplitError};
use cqrs_core::types::UuidText;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};

use crate::models::{AVAILABLE, BOOKED, ParkingSlot, ParkingSlotRead, replica};

/// What can go wrong, each with what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ParkingError {
    /// The name is empty, too long or has control characters.
    #[error("a slot name must be 1 to 100 characters, without control characters")]
    BadName,
    /// The text is not a UUID.
    #[error("`{0}` is not a slot UUID (expected 8-4-4-4-12 hexadecimal digits)")]
    BadUuid(String),
    /// No slot has this UUID.
    #[error("no parking slot {0}")]
    NotFound(String),
    /// Booking a booked slot, or releasing a free one.
    #[error("parking slot {uuid} is {status} already")]
    Conflict {
        /// The slot.
        uuid: String,
        /// Its current status.
        status: String,
    },
    /// The primary and the replica URLs name two backends.
    #[error(
        "the primary and the replica databases must use one backend (both SQLite or both PostgreSQL)"
    )]
    MixedBackends,
    /// A database or the replica's wait failed.
    #[error(transparent)]
    Split(#[from] SplitError),
}

impl From<cqrs_core::Error> for ParkingError {
    fn from(error: cqrs_core::Error) -> Self {
        Self::Split(SplitError::Core(error))
    }
}

impl From<diesel::result::Error> for ParkingError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Split(SplitError::from(error))
    }
}

/// The service's databases, on the backend their URLs name.
#[derive(Debug, Clone)]
pub enum Db {
    /// Two SQLite files.
    Sqlite(ReadWrite<SqliteConnection>),
    /// Two PostgreSQL databases.
    Postgres(ReadWrite<PgConnection>),
}

/// Runs `$body` with `$rw` the backend's `ReadWrite` and `$conn` its connection type.
macro_rules! with_db {
    ($db:expr, |$rw:ident, $conn:ident| $body:expr) => {
        match $db {
            Db::Sqlite($rw) => {
                #[allow(dead_code)]
                type $conn = SqliteConnection;
                $body
            }
            Db::Postgres($rw) => {
                #[allow(dead_code)]
                type $conn = PgConnection;
                $body
            }
        }
    };
}

/// The slot a write produced, and what a read-your-writes wait needs.
#[derive(Debug)]
pub struct Changed {
    /// The write model's row, as stored.
    pub slot: ParkingSlot,
    /// What identifies the write.
    pub written: Written,
}

impl Db {
    /// Pools to both databases. Nothing is opened yet: a database that is down fails the
    /// requests that need it, with the reason, and the others go on (writes while the replica
    /// is away replicate once it is back).
    pub fn open(
        primary_url: &str,
        replica_url: &str,
        pools: &PoolConfig,
    ) -> Result<Self, ParkingError> {
        use cqrs_core::db::Backend;
        let backend = Backend::of_url(primary_url)?;
        if Backend::of_url(replica_url)? != backend {
            return Err(ParkingError::MixedBackends);
        }
        Ok(if backend.is_postgres() {
            Self::Postgres(ReadWrite::open(primary_url, replica_url, pools))
        } else {
            Self::Sqlite(ReadWrite::open(primary_url, replica_url, pools))
        })
    }

    /// Creates an available slot on the primary.
    pub fn create(&self, name: &str) -> Result<Changed, ParkingError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ParkingError::BadName);
        }
        let slot = ParkingSlot {
            uuid: UuidText::from(uuid::Uuid::new_v4()),
            name: name.to_owned(),
            status: AVAILABLE.to_owned(),
            cqrs_revision: 0,
            cqrs_updated: chrono::Utc::now().naive_utc(),
        };
        let slot = with_db!(self, |rw, C| slot.cqrs_insert(&mut *rw.primary()?)?);
        Ok(changed(slot))
    }

    /// Books an available slot (`to = BOOKED`) or releases a booked one (`to = AVAILABLE`),
    /// on the primary, in one transaction with the row locked.
    pub fn set_status(&self, uuid: &str, to: &str) -> Result<Changed, ParkingError> {
        let key = parse_uuid(uuid)?;
        let from = if to == BOOKED { AVAILABLE } else { BOOKED };
        let slot = with_db!(self, |rw, C| {
            let mut conn = rw.primary()?;
            cqrs_core::transaction(&mut *conn, |conn| {
                let mut found = None;
                let slot = ParkingSlot::cqrs_update(conn, &key, |slot| {
                    found = Some(slot.status.clone());
                    slot.status = to.to_owned();
                })
                .map_err(|error| match error {
                    cqrs_core::Error::NotFound { .. } => ParkingError::NotFound(key.to_string()),
                    other => other.into(),
                })?;
                match found {
                    // rolled back with the error: nothing is written, nothing is sent
                    Some(status) if status != from => Err(ParkingError::Conflict {
                        uuid: key.to_string(),
                        status,
                    }),
                    _ => Ok(slot),
                }
            })?
        });
        Ok(changed(slot))
    }

    /// Every slot, from the replica, by name.
    pub fn list(&self) -> Result<Vec<ParkingSlotRead>, ParkingError> {
        Ok(with_db!(self, |rw, C| rw.read(|conn: &mut C| {
            replica::parking_slots::table
                .order((replica::parking_slots::name, replica::parking_slots::uuid))
                .load::<ParkingSlotRead>(conn)
        })?))
    }

    /// One slot from the replica once it has applied `written` (read-your-writes).
    pub async fn read_after(
        &self,
        written: &Written,
        timeout: Duration,
    ) -> Result<Option<ParkingSlotRead>, ParkingError> {
        let key = parse_uuid(&written.pk_text())?;
        Ok(with_db!(self, |rw, C| rw
            .read_after(written, timeout, |conn: &mut C| {
                replica::parking_slots::table
                    .find(&key)
                    .first::<ParkingSlotRead>(conn)
                    .optional()
            })
            .await?))
    }
}

fn changed(slot: ParkingSlot) -> Changed {
    Changed {
        written: Written::of(&slot),
        slot,
    }
}

fn parse_uuid(text: &str) -> Result<UuidText, ParkingError> {
    text.trim()
        .parse::<UuidText>()
        .map_err(|_| ParkingError::BadUuid(text.chars().take(60).collect()))
}
