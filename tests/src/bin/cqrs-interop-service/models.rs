//! Replicas of the Django masters and masters for the Django replicas.

use bigdecimal::BigDecimal;
use chrono::{NaiveDate, NaiveDateTime};
use cqrs_core::prelude::*;
use cqrs_core::replica::{HookContext, default_create};
use serde_json::{Map, Value};

pub mod schema {
    diesel::table! { dj_publishers (id) { id -> Integer, name -> Text, founded -> Nullable<Date>, active -> Bool, cqrs_revision -> Integer, cqrs_updated -> Timestamp } }
    diesel::table! { dj_authors (id) { id -> Text, name -> Text, publisher -> Nullable<Integer>, birth_date -> Nullable<Date>, rating -> Numeric, cqrs_revision -> Integer, cqrs_updated -> Timestamp } }
    diesel::table! { dj_books (id) { id -> Integer, title -> Text, author -> Text, publisher -> Nullable<Integer>, price -> Nullable<Numeric>, published_at -> Timestamp, is_public -> Bool, pages -> Nullable<Integer>, cqrs_revision -> Integer, cqrs_updated -> Timestamp } }
    diesel::table! { dj_reviews (id) { id -> Integer, book -> Integer, stars -> Integer, text_upper -> Text, cqrs_revision -> Integer, cqrs_updated -> Timestamp } }
    diesel::table! { rs_authors (id) { id -> Text, name -> Text, cqrs_revision -> Integer, cqrs_updated -> Timestamp } }
    diesel::table! { rs_books (id) { id -> Integer, title -> Text, author_id -> Nullable<Text>, price -> Nullable<Numeric>, released -> Nullable<Date>, in_stock -> Bool, cqrs_revision -> Integer, cqrs_updated -> Timestamp } }
}

pub const DDL: &str = "
CREATE TABLE IF NOT EXISTS dj_publishers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, founded DATE, active BOOLEAN NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS dj_authors (id TEXT PRIMARY KEY, name TEXT NOT NULL, publisher INTEGER, birth_date DATE, rating TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS dj_books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author TEXT NOT NULL, publisher INTEGER, price TEXT, published_at TIMESTAMP NOT NULL, is_public BOOLEAN NOT NULL, pages INTEGER, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS dj_reviews (id INTEGER PRIMARY KEY, book INTEGER NOT NULL, stars INTEGER NOT NULL, text_upper TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS rs_authors (id TEXT PRIMARY KEY, name TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS rs_books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author_id TEXT, price TEXT, released DATE, in_stock BOOLEAN NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
";

/// Rejects publishers named in the file at `INTEROP_REJECT_FILE` (the dead-letter test).
#[derive(Debug, Clone, CqrsReplica)]
#[diesel(table_name = schema::dj_publishers)]
#[cqrs(cqrs_id = "dj_publisher", custom_hooks, backends(sqlite))]
pub struct PublisherRef {
    pub id: i32,
    pub name: String,
    pub founded: Option<NaiveDate>,
    pub active: bool,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

impl ReplicaHooks<diesel::SqliteConnection> for PublisherRef {
    fn cqrs_create(
        conn: &mut diesel::SqliteConnection,
        data: &Map<String, Value>,
        ctx: &HookContext<'_>,
    ) -> Result<(), ApplyError> {
        let name = data.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Ok(path) = std::env::var("INTEROP_REJECT_FILE")
            && std::path::Path::new(&path).exists()
            && name.starts_with("REJECT")
        {
            return Err(ApplyError::reject(
                "dj_publisher",
                ctx.pk,
                "rejected by the test flag",
            ));
        }
        default_create::<Self, _>(conn, data, ctx)
    }
}

#[derive(Debug, Clone, CqrsReplica)]
#[diesel(table_name = schema::dj_authors)]
#[cqrs(cqrs_id = "dj_author", backends(sqlite))]
pub struct AuthorRef {
    pub id: String,
    pub name: String,
    pub publisher: Option<i32>,
    pub birth_date: Option<NaiveDate>,
    pub rating: BigDecimal,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

#[derive(Debug, Clone, CqrsReplica)]
#[diesel(table_name = schema::dj_books)]
#[cqrs(cqrs_id = "dj_book", backends(sqlite))]
pub struct BookRef {
    pub id: i32,
    pub title: String,
    pub author: String,
    pub publisher: Option<i32>,
    pub price: Option<BigDecimal>,
    pub published_at: NaiveDateTime,
    pub is_public: bool,
    pub pages: Option<i32>,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// The Django master sends its custom serializer's object; these hooks read it.
#[derive(Debug, Clone, CqrsReplica)]
#[diesel(table_name = schema::dj_reviews)]
#[cqrs(cqrs_id = "dj_review", custom_serialization, backends(sqlite))]
pub struct ReviewRef {
    pub id: i32,
    pub book: i32,
    pub stars: i32,
    pub text_upper: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

impl ReplicaHooks<diesel::SqliteConnection> for ReviewRef {
    fn cqrs_create(
        conn: &mut diesel::SqliteConnection,
        data: &Map<String, Value>,
        ctx: &HookContext<'_>,
    ) -> Result<(), ApplyError> {
        let row = Self::cqrs_from_data(data, None, ctx.pk)?;
        Self::cqrs_insert_row(conn, &row).map_err(|e| ApplyError::database("dj_review", ctx.pk, e))
    }

    fn cqrs_update(
        conn: &mut diesel::SqliteConnection,
        existing: Self,
        data: &Map<String, Value>,
        ctx: &HookContext<'_>,
    ) -> Result<(), ApplyError> {
        let row = Self::cqrs_from_data(data, Some(existing), ctx.pk)?;
        Self::cqrs_update_row(conn, &row).map_err(|e| ApplyError::database("dj_review", ctx.pk, e))
    }
}

#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = schema::rs_authors)]
#[cqrs(cqrs_id = "rs_author", backends(sqlite))]
pub struct RsAuthor {
    pub id: String,
    pub name: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = schema::rs_books)]
#[cqrs(cqrs_id = "rs_book", tracked_fields(title), backends(sqlite))]
pub struct RsBook {
    pub id: i32,
    pub title: String,
    #[cqrs(rename = "author")]
    pub author_id: Option<String>,
    pub price: Option<BigDecimal>,
    pub released: Option<NaiveDate>,
    pub in_stock: bool,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}
