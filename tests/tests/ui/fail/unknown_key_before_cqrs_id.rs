#![allow(unused_imports, dead_code)]
use chrono::{DateTime, Utc};
use cqrs_core::prelude::*;

diesel::table! {
    books (id) {
        id -> Integer,
        title -> Text,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

// The unknown key is reported once; the keys after it are still read.
#[derive(CqrsReplica)]
#[diesel(table_name = books)]
#[cqrs(mapings(id = id), cqrs_id = "book", only_direct_sync, backends(sqlite))]
struct BookRef { id: i32, title: String, cqrs_revision: i32, cqrs_updated: DateTime<Utc> }

fn main() {}
