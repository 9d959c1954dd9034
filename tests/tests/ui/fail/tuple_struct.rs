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
#[cqrs(cqrs_id = "book")]
struct BookRef(i32, String, i32, DateTime<Utc>);

fn main() {}
