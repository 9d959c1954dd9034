//! What the notifications service handles: the catalogue's `book` / `published` event (every
//! reader hears of a new book, once per event: the inbox) and its `notify_reader` command
//! (one reader is told about one book; an expired command is never executed).
//!
//! The handlers are generic over the connection, so one function serves SQLite and
//! PostgreSQL; the one database write they share is the [`Store`] trait.

use cqrs_core::db::CqrsConnection;
use cqrs_core::event::{Command, Event, HandlerError};
use diesel::prelude::*;
use diesel::query_builder::InsertStatement;
use diesel::query_dsl::methods::ExecuteDsl;
use serde::Deserialize;

pub mod schema {
    diesel::table! {
        notifications (id) {
            id -> Integer,
            kind -> Text,
            book_id -> Integer,
            title -> Text,
            recipient -> Text,
            event_id -> Nullable<Text>,
            received -> Timestamp,
        }
    }
}

use schema::notifications;

pub const SQLITE_DDL: &str = "
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    book_id INTEGER NOT NULL,
    title TEXT NOT NULL,
    recipient TEXT NOT NULL,
    event_id TEXT,
    received TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
";

pub const POSTGRES_DDL: &str = "
CREATE TABLE IF NOT EXISTS notifications (
    id SERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    book_id INTEGER NOT NULL,
    title TEXT NOT NULL,
    recipient TEXT NOT NULL,
    event_id TEXT,
    received TIMESTAMP NOT NULL DEFAULT now()
);
";

/// The catalogue's event (this service's own copy of its shape: services share a wire
/// format, not a crate).
#[derive(Debug, Deserialize)]
pub struct BookPublished {
    pub book_id: i32,
    pub title: String,
}

/// The catalogue's command: tell one reader about one book.
#[derive(Debug, Deserialize)]
pub struct NotifyReader {
    pub book_id: i32,
    pub title: String,
    pub reader: String,
}

/// A notification, as written.
#[derive(Debug, Insertable)]
#[diesel(table_name = notifications)]
pub struct NewNotification {
    pub kind: &'static str,
    pub book_id: i32,
    pub title: String,
    pub recipient: String,
    pub event_id: Option<String>,
}

/// A connection this service can write a notification on: every backend cqrs-core supports.
pub trait Store: CqrsConnection {
    /// Writes a notification.
    fn record(&mut self, row: NewNotification) -> QueryResult<usize>;
}

impl<C> Store for C
where
    C: CqrsConnection,
    InsertStatement<
        notifications::table,
        <NewNotification as Insertable<notifications::table>>::Values,
    >: ExecuteDsl<C>,
{
    fn record(&mut self, row: NewNotification) -> QueryResult<usize> {
        diesel::insert_into(notifications::table)
            .values(row)
            .execute(self)
    }
}

/// A new book: every reader hears of it, once per event.
#[cqrs_core::handler(exchange = "book", routing_key = "published", inbox)]
fn book_published<C: Store>(conn: &mut C, event: Event<BookPublished>) -> Result<(), HandlerError> {
    if event.payload.title.trim().is_empty() {
        return Err(HandlerError::permanent("a published book needs a title"));
    }
    tracing::info!(book_id = event.payload.book_id, title = %event.payload.title, "new book: telling every reader");
    conn.record(NewNotification {
        kind: "book_published",
        book_id: event.payload.book_id,
        title: event.payload.title,
        recipient: "all readers".to_owned(),
        event_id: event.event_id,
    })?;
    Ok(())
}

/// A command from the catalogue: tell one reader about one book.
#[cqrs_core::handler(exchange = "notifications", routing_key = "notify_reader")]
fn notify_reader<C: Store>(
    conn: &mut C,
    command: Command<NotifyReader>,
) -> Result<(), HandlerError> {
    let NotifyReader {
        book_id,
        title,
        reader,
    } = command.arguments;
    if reader.trim().is_empty() {
        return Err(HandlerError::permanent("notify_reader needs a reader"));
    }
    tracing::info!(book_id, %reader, "telling a reader about a book");
    conn.record(NewNotification {
        kind: "notify_reader",
        book_id,
        title,
        recipient: reader,
        event_id: None,
    })?;
    Ok(())
}
