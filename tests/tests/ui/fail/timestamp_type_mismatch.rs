#![allow(unused_imports, dead_code)]
// a NaiveDateTime field on a TimestamptzSqlite column: the first error is on the field
use chrono::NaiveDateTime;
use cqrs_core::prelude::*;

diesel::table! {
    books (id) {
        id -> Integer,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

#[derive(CqrsReplica)]
#[diesel(table_name = books)]
#[cqrs(cqrs_id = "book", backends(sqlite))]
struct Book { id: i32, cqrs_revision: i32, cqrs_updated: NaiveDateTime }

fn main() {}
