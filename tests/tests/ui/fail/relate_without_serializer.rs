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

#[derive(CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(cqrs_id = "book", relate = Book::authors, backends(sqlite))]
struct Book { id: i32, title: String, cqrs_revision: i32, cqrs_updated: DateTime<Utc> }
impl Book {
    fn authors(_: &mut diesel::SqliteConnection, _: &[Self]) -> diesel::QueryResult<()> { Ok(()) }
}

fn main() {}
