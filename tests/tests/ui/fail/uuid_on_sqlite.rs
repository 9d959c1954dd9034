#![allow(unused_imports, dead_code)]
use chrono::NaiveDateTime;
use cqrs_core::prelude::*;

diesel::table! {
    slots (id) {
        id -> Text,
        cqrs_revision -> Integer,
        cqrs_updated -> Timestamp,
    }
}

#[derive(CqrsMaster)]
#[diesel(table_name = slots)]
#[cqrs(cqrs_id = "slot", backends(sqlite))]
struct Slot { id: uuid::Uuid, cqrs_revision: i32, cqrs_updated: NaiveDateTime }

fn main() {}
