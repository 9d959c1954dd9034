//! The recommendations service's replica models: copies of the catalogue's books and authors.
//!
//! Strict lints here check the derives' expansion in a real crate (clippy does not run inside
//! the trybuild cases).
#![deny(warnings, unused_qualifications)]
#![deny(clippy::all, clippy::pedantic)]

use bigdecimal::BigDecimal;
use chrono::{NaiveDate, NaiveDateTime};
use cqrs_core::prelude::*;
use cqrs_core::replica::{HookContext, default_create, default_update};
use diesel::prelude::*;
use serde_json::{Map, Value};

pub mod schema {
    diesel::table! {
        book_refs (id) {
            id -> Integer,
            name -> Text,
            author_id -> Integer,
            price -> Nullable<Numeric>,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }

    diesel::table! {
        author_refs (id) {
            id -> Integer,
            name -> Text,
            born -> Nullable<Date>,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }

    diesel::table! {
        /// Derived from authors by the custom hooks: what the recommendation widgets show.
        author_cards (author_id) {
            author_id -> Integer,
            display_name -> Text,
            initials -> Text,
            revision -> Integer,
        }
    }
}

use schema::author_cards;

pub const SQLITE_DDL: &str = "
CREATE TABLE IF NOT EXISTS book_refs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, author_id INTEGER NOT NULL, price NUMERIC,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS author_refs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, born DATE,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS author_cards (
    author_id INTEGER PRIMARY KEY, display_name TEXT NOT NULL, initials TEXT NOT NULL, revision INTEGER NOT NULL);
";

pub const POSTGRES_DDL: &str = "
CREATE TABLE IF NOT EXISTS book_refs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, author_id INTEGER NOT NULL, price NUMERIC(10, 2),
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS author_refs (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, born DATE,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS author_cards (
    author_id INTEGER PRIMARY KEY, display_name TEXT NOT NULL, initials TEXT NOT NULL, revision INTEGER NOT NULL);
";

/// A replica of the catalogue's books, renaming `title` to `name` and keeping only what the
/// recommendations need (the mapping drops `isbn` and `published`).
#[derive(Debug, Clone, CqrsReplica)]
#[diesel(table_name = schema::book_refs)]
#[cqrs(cqrs_id = "book", mapping(id = id, title = name, author = author_id, price = price))]
pub struct BookRef {
    pub id: i32,
    pub name: String,
    pub author_id: i32,
    pub price: Option<BigDecimal>,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// A replica of the catalogue's authors, whose create and update hooks also maintain the
/// derived `author_cards` table, in the same transaction.
#[derive(Debug, Clone, CqrsReplica)]
#[diesel(table_name = schema::author_refs)]
#[cqrs(cqrs_id = "author", custom_hooks)]
pub struct AuthorRef {
    pub id: i32,
    pub name: String,
    pub born: Option<NaiveDate>,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// The card of an author: display name and initials.
pub fn card(name: &str) -> (String, String) {
    let display = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let initials: String = display
        .split(' ')
        .filter_map(|w| w.chars().next())
        .flat_map(char::to_uppercase)
        .collect();
    (display, initials)
}

/// Writes the derived card; the same code for both backends.
macro_rules! upsert_card {
    ($conn:expr, $data:expr, $ctx:expr) => {{
        let id = $data
            .get("id")
            .and_then(Value::as_i64)
            .and_then(|i| i32::try_from(i).ok());
        let name = $data
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let revision = $data
            .get("cqrs_revision")
            .and_then(Value::as_i64)
            .and_then(|i| i32::try_from(i).ok())
            .unwrap_or(0);
        let Some(id) = id else {
            return Err(ApplyError::reject(
                "author",
                $ctx.pk,
                "`id` must be an integer",
            ));
        };
        let (display, initials) = card(name);
        diesel::insert_into(author_cards::table)
            .values((
                author_cards::author_id.eq(id),
                author_cards::display_name.eq(&display),
                author_cards::initials.eq(&initials),
                author_cards::revision.eq(revision),
            ))
            .on_conflict(author_cards::author_id)
            .do_update()
            .set((
                author_cards::display_name.eq(&display),
                author_cards::initials.eq(&initials),
                author_cards::revision.eq(revision),
            ))
            .execute($conn)
            .map(drop)
            .map_err(|e| ApplyError::database("author", $ctx.pk, e))
    }};
}

macro_rules! author_hooks {
    ($conn_ty:ty) => {
        impl ReplicaHooks<$conn_ty> for AuthorRef {
            fn cqrs_create(
                conn: &mut $conn_ty,
                data: &Map<String, Value>,
                ctx: &HookContext<'_>,
            ) -> Result<(), ApplyError> {
                default_create::<Self, $conn_ty>(conn, data, ctx)?;
                upsert_card!(conn, data, ctx)
            }

            fn cqrs_update(
                conn: &mut $conn_ty,
                existing: Self,
                data: &Map<String, Value>,
                ctx: &HookContext<'_>,
            ) -> Result<(), ApplyError> {
                default_update::<Self, $conn_ty>(conn, existing, data, ctx)?;
                upsert_card!(conn, data, ctx)
            }

            fn cqrs_delete(
                conn: &mut $conn_ty,
                pk: &i32,
                ctx: &HookContext<'_>,
            ) -> Result<bool, ApplyError> {
                diesel::delete(author_cards::table.find(pk))
                    .execute(conn)
                    .map_err(|e| ApplyError::database("author", ctx.pk, e))?;
                Self::cqrs_delete_row(conn, pk)
                    .map_err(|e| ApplyError::database("author", ctx.pk, e))
            }
        }
    };
}

author_hooks!(SqliteConnection);
author_hooks!(PgConnection);
