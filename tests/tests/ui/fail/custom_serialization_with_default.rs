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

#[derive(CqrsReplica)]
#[diesel(table_name = books)]
#[cqrs(cqrs_id = "book", custom_serialization, backends(sqlite))]
struct BookRef {
    id: i32,
    #[cqrs(default)]
    title: String,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

fn main() {}
