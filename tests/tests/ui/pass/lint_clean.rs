//! The expansion compiles warning-free under strict lints.
#![deny(warnings, unused_qualifications, missing_debug_implementations, unreachable_pub)]
#![deny(clippy::all, clippy::pedantic)]

use chrono::{DateTime, Utc};
use cqrs_core::prelude::*;

diesel::table! {
    books (id) {
        id -> Integer,
        title -> Text,
        price -> Nullable<Double>,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

diesel::table! {
    book_refs (id) {
        id -> Integer,
        title -> Text,
        price -> Nullable<Double>,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

/// A master.
#[derive(Debug, CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(cqrs_id = "book", tracked_fields(title), backends(sqlite))]
pub struct Book {
    id: i32,
    title: String,
    price: Option<f64>,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

/// A replica.
#[derive(Debug, CqrsReplica)]
#[diesel(table_name = book_refs)]
#[cqrs(cqrs_id = "book", backends(sqlite))]
pub struct BookRef {
    id: i32,
    title: String,
    price: Option<f64>,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

fn main() {}
