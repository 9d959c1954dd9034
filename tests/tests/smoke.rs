#![allow(clippy::unwrap_used, clippy::expect_used)]
use chrono::{DateTime, Utc};
use cqrs_core::prelude::*;
use diesel::prelude::*;

diesel::table! {
    books (id) {
        id -> Integer,
        title -> Text,
        author -> Text,
        price -> Nullable<Double>,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

diesel::table! {
    book_refs (id) {
        id -> Integer,
        name -> Text,
        price -> Nullable<Double>,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(cqrs_id = "book", tracked_fields(title), backends(sqlite))]
struct Book {
    id: i32,
    title: String,
    author: String,
    price: Option<f64>,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

#[derive(Debug, Clone, CqrsReplica)]
#[diesel(table_name = book_refs)]
#[cqrs(cqrs_id = "book", mapping(id = id, title = name, price = price), backends(sqlite))]
struct BookRef {
    id: i32,
    name: String,
    price: Option<f64>,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

#[test]
fn it_compiles() {
    let mut conn = SqliteConnection::cqrs_connect(":memory:").unwrap();
    conn.cqrs_setup().unwrap();
    let _ = Book::cqrs_filter(&serde_json::json!({"title__contains": "x"})).unwrap();
}
