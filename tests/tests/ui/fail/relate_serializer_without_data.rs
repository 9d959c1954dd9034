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

// with `relate`, the serializer takes the related data too
#[derive(CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(cqrs_id = "book", serializer = Book::json, relate = Book::authors, backends(sqlite))]
struct Book { id: i32, title: String, cqrs_revision: i32, cqrs_updated: DateTime<Utc> }
impl Book {
    fn authors(_: &mut diesel::SqliteConnection, _: &[Self]) -> diesel::QueryResult<u8> { Ok(0) }
    fn json(&self) -> serde_json::Value { serde_json::json!({"id": self.id}) }
}

fn main() {}
