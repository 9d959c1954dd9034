//! What the catalogue tells other services besides its rows: the domain event `book` /
//! `published` when a book is published (created published, or a draft published), and the
//! command `notify_reader` to the notifications service. Both are written to the outbox in
//! the transaction of the write that causes them, and published by the same relay as the
//! rows.

use cqrs_core::db::CqrsConnection;
use cqrs_core::event::{self, DomainEvent, Expiry};
use serde::Serialize;

use crate::models::Book;

/// A book was published.
#[derive(Debug, Serialize)]
pub struct BookPublished {
    pub book_id: i32,
    pub title: String,
    pub author_id: i32,
}

impl DomainEvent for BookPublished {
    const AGGREGATE: &'static str = "book";
    const EVENT_TYPE: &'static str = "published";
}

impl BookPublished {
    pub fn of(book: &Book) -> Self {
        Self {
            book_id: book.id,
            title: book.title.clone(),
            author_id: book.author_id,
        }
    }
}

/// The service that executes `notify_reader`.
pub const NOTIFICATIONS: &str = "notifications";

/// How long a `notify_reader` command stays worth executing: a reader told a day late is
/// worse than one not told.
pub const NOTIFY_EXPIRY: std::time::Duration = std::time::Duration::from_mins(10);

/// The arguments of `notify_reader`.
#[derive(Debug, Serialize)]
struct NotifyReader<'a> {
    book_id: i32,
    title: &'a str,
    reader: &'a str,
}

/// Sends `notify_reader` for `book` to `reader`, in the caller's transaction; returns the
/// command's id.
pub fn notify_reader<C: CqrsConnection>(
    conn: &mut C,
    book: &Book,
    reader: &str,
) -> Result<String, event::EventError> {
    event::send_command(
        conn,
        NOTIFICATIONS,
        "notify_reader",
        &NotifyReader {
            book_id: book.id,
            title: &book.title,
            reader,
        },
        Expiry::After(NOTIFY_EXPIRY),
    )
}
