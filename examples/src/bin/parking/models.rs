//! The parking service's two models of one stream: `ParkingSlot`, the write model in the
//! primary database, and `ParkingSlotRead`, the read model the consumer keeps in the replica
//! database. Both tables are named `parking_slots` (the replica is a copy); keys are UUIDs,
//! stored as their hyphenated text (`UuidText`) so that one model serves both backends.
#![deny(warnings, unused_qualifications)]
#![deny(clippy::all, clippy::pedantic)]

use chrono::NaiveDateTime;
use cqrs_core::prelude::*;
use cqrs_core::types::UuidText;
use serde_json::{Value, json};

/// The write model's table (primary database).
pub mod primary {
    diesel::table! {
        parking_slots (uuid) {
            uuid -> Text,
            name -> Text,
            status -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
}

/// The read model's table (replica database).
pub mod replica {
    diesel::table! {
        parking_slots (uuid) {
            uuid -> Text,
            name -> Text,
            status -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
}

/// The table, in both databases and on both backends.
pub const DDL: &str = "
CREATE TABLE IF NOT EXISTS parking_slots (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    cqrs_revision INTEGER NOT NULL,
    cqrs_updated TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS parking_slots_cqrs_updated ON parking_slots (cqrs_updated);
";

/// A free slot.
pub const AVAILABLE: &str = "available";
/// A booked slot.
pub const BOOKED: &str = "booked";

/// The write model.
#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = primary::parking_slots)]
#[diesel(primary_key(uuid))]
#[cqrs(cqrs_id = "parking_slot")]
pub struct ParkingSlot {
    pub uuid: UuidText,
    pub name: String,
    pub status: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// The read model: what every read of the service shows.
#[derive(Debug, Clone, CqrsReplica, diesel::Queryable)]
#[diesel(table_name = replica::parking_slots)]
#[diesel(primary_key(uuid))]
#[cqrs(cqrs_id = "parking_slot")]
pub struct ParkingSlotRead {
    pub uuid: UuidText,
    pub name: String,
    pub status: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

impl ParkingSlotRead {
    /// The slot as the API and the CLI print it.
    pub fn to_json(&self) -> Value {
        json!({"uuid": self.uuid.to_string(), "name": self.name, "status": self.status,
            "revision": self.cqrs_revision})
    }
}
