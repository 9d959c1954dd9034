// A master whose derive fails is still usable: the write hooks below compile against the
// fallback, so the only error is the derive's own.
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

#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(cqrs_id = "book", tracked_fields(titel), backends(sqlite))]
struct Book { id: i32, title: String, cqrs_revision: i32, cqrs_updated: DateTime<Utc> }

fn writes(conn: &mut diesel::SqliteConnection) -> cqrs_core::Result<()> {
    let book = Book { id: 1, title: "Dune".into(), cqrs_revision: 0, cqrs_updated: Utc::now() }
        .cqrs_insert(conn)?;
    let book = Book::cqrs_update(conn, &book.id, |b| b.title.push('!'))?;
    book.cqrs_sync(conn, SyncTarget::Broadcast)?;
    Book::cqrs_delete_pk(conn, &1)?;
    Ok(())
}

fn main() {}
