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
#[cqrs(cqrs_id = "book", backends(sqlite))]
struct BookRef { id: i32, title: String, cqrs_revision: i32, cqrs_updated: String }

fn main() {}
