//! The catalogue's master models: it owns authors and books.
//!
//! Strict lints here check the derives' expansion in a real crate (clippy does not run inside
//! the trybuild cases).
#![deny(warnings, unused_qualifications)]
#![deny(clippy::all, clippy::pedantic)]

use bigdecimal::BigDecimal;
use chrono::{NaiveDate, NaiveDateTime};
use cqrs_core::prelude::*;

pub mod schema {
    diesel::table! {
        authors (id) {
            id -> Integer,
            name -> Text,
            born -> Nullable<Date>,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }

    diesel::table! {
        books (id) {
            id -> Integer,
            title -> Text,
            author_id -> Integer,
            isbn -> Text,
            price -> Nullable<Numeric>,
            published -> Bool,
            notes -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }

    diesel::joinable!(books -> authors (author_id));
    diesel::allow_tables_to_appear_in_same_query!(authors, books);
}

use schema::{authors, books};

pub const SQLITE_DDL: &str = "
CREATE TABLE IF NOT EXISTS authors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    born DATE,
    cqrs_revision INTEGER NOT NULL DEFAULT 0,
    cqrs_updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS books (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    author_id INTEGER NOT NULL REFERENCES authors (id),
    isbn TEXT NOT NULL DEFAULT '',
    price NUMERIC,
    published BOOLEAN NOT NULL DEFAULT TRUE,
    notes TEXT NOT NULL DEFAULT '',
    cqrs_revision INTEGER NOT NULL DEFAULT 0,
    cqrs_updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
";

pub const POSTGRES_DDL: &str = "
CREATE TABLE IF NOT EXISTS authors (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    born DATE,
    cqrs_revision INTEGER NOT NULL DEFAULT 0,
    cqrs_updated TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS books (
    id SERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    author_id INTEGER NOT NULL REFERENCES authors (id),
    isbn TEXT NOT NULL DEFAULT '',
    price NUMERIC(10, 2),
    published BOOLEAN NOT NULL DEFAULT TRUE,
    notes TEXT NOT NULL DEFAULT '',
    cqrs_revision INTEGER NOT NULL DEFAULT 0,
    cqrs_updated TIMESTAMP NOT NULL DEFAULT now()
);
";

/// An author. Every field is replicated.
#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = authors)]
#[cqrs(cqrs_id = "author")]
pub struct Author {
    pub id: i32,
    pub name: String,
    pub born: Option<NaiveDate>,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// A book. The internal `notes` stay here (`fields(...)`), title changes carry the old title
/// (`tracked_fields`), unpublished books are not replicated at all (`sync_filter`), and the
/// author is sent as `author`, like a Django foreign key.
#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(
    cqrs_id = "book",
    fields(id, title, author_id, isbn, price, published),
    tracked_fields(title),
    sync_filter = Book::is_published
)]
pub struct Book {
    pub id: i32,
    pub title: String,
    #[cqrs(rename = "author")]
    pub author_id: i32,
    pub isbn: String,
    pub price: Option<BigDecimal>,
    pub published: bool,
    pub notes: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

impl Book {
    /// Drafts are not replicated.
    pub fn is_published(&self) -> bool {
        self.published
    }
}
