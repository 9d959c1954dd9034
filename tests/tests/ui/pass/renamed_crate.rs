//! `crate = "..."` for a renamed or re-exported cqrs-core.
use chrono::{DateTime, Utc};

mod reexport {
    pub use cqrs_core as cqrs;
}

diesel::table! {
    books (id) {
        id -> Integer,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

#[derive(cqrs_core::CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(cqrs_id = "book", crate = "crate::reexport::cqrs", backends(sqlite))]
struct Book {
    id: i32,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

fn main() {}
