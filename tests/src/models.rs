//! Models shared by the integration tests and the test service binary: they run on SQLite
//! and PostgreSQL (portable column types; `NaiveDateTime` timestamps taken as UTC).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![allow(
    clippy::missing_panics_doc,
    reason = "a test fixture: a panic is a failed test"
)]

use bigdecimal::BigDecimal;
use chrono::NaiveDateTime;
use cqrs_core::prelude::*;
use cqrs_core::replica::HookContext;
use cqrs_core::retry::RetryPolicy;
use serde_json::{Map, Value, json};

pub mod schema {
    diesel::table! {
        books (id) {
            id -> Integer,
            title -> Text,
            author -> Text,
            isbn -> Text,
            published -> Bool,
            price -> Nullable<Numeric>,
            created -> Timestamp,
            cover -> Nullable<Binary>,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        authors (id) {
            id -> Text,
            name -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        counters (id) {
            id -> Integer,
            value -> Integer,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        reviews (review_id) {
            review_id -> BigInt,
            book_id -> Integer,
            stars -> Integer,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        book_refs (id) {
            id -> Integer,
            name -> Text,
            author -> Text,
            published -> Bool,
            price -> Nullable<Numeric>,
            created -> Timestamp,
            note -> Text,
            local_flag -> Bool,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        author_refs (id) {
            id -> Text,
            name -> Text,
            #[sql_name = "meta_source"]
            source -> Nullable<Text>,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        review_refs (id) {
            id -> BigInt,
            book -> Integer,
            stars -> Integer,
            summary -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
}

use schema::{author_refs, authors, book_refs, books, counters, review_refs, reviews};

pub const SQLITE_DDL: &str = "
CREATE TABLE books (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, author TEXT NOT NULL,
    isbn TEXT NOT NULL, published BOOLEAN NOT NULL, price NUMERIC, created TIMESTAMP NOT NULL, cover BLOB,
    cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE authors (id TEXT PRIMARY KEY, name TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE reviews (review_id BIGINT PRIMARY KEY, book_id INTEGER NOT NULL, stars INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE book_refs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, author TEXT NOT NULL, published BOOLEAN NOT NULL,
    price NUMERIC, created TIMESTAMP NOT NULL, note TEXT NOT NULL, local_flag BOOLEAN NOT NULL,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE author_refs (id TEXT PRIMARY KEY, name TEXT NOT NULL CHECK (name <> 'check-fails'), meta_source TEXT,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE review_refs (id BIGINT PRIMARY KEY, book INTEGER NOT NULL, stars INTEGER NOT NULL, summary TEXT NOT NULL,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
";

pub const PG_DDL: &str = "
CREATE TABLE books (id SERIAL PRIMARY KEY, title TEXT NOT NULL, author TEXT NOT NULL,
    isbn TEXT NOT NULL, published BOOLEAN NOT NULL, price NUMERIC(10, 2), created TIMESTAMP NOT NULL, cover BYTEA,
    cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMP NOT NULL DEFAULT now());
CREATE TABLE authors (id TEXT PRIMARY KEY, name TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE reviews (review_id BIGINT PRIMARY KEY, book_id INTEGER NOT NULL, stars INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE book_refs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, author TEXT NOT NULL, published BOOLEAN NOT NULL,
    price NUMERIC(10, 2), created TIMESTAMP NOT NULL, note TEXT NOT NULL, local_flag BOOLEAN NOT NULL,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE author_refs (id TEXT PRIMARY KEY, name TEXT NOT NULL CHECK (name <> 'check-fails'), meta_source TEXT,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE review_refs (id BIGINT PRIMARY KEY, book INTEGER NOT NULL, stars INTEGER NOT NULL, summary TEXT NOT NULL,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
";

// ---------------------------------------------------------------- masters

/// The django-cqrs sample's book: a field left out (`cover`), a tracked field, a sync filter.
#[derive(Debug, Clone, PartialEq, CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(
    cqrs_id = "book",
    fields(id, title, author, isbn, published, price, created),
    tracked_fields(title),
    sync_filter = Book::visible
)]
pub struct Book {
    pub id: i32,
    pub title: String,
    pub author: String,
    pub isbn: String,
    pub published: bool,
    pub price: Option<BigDecimal>,
    pub created: NaiveDateTime,
    pub cover: Option<Vec<u8>>,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

impl Book {
    pub fn visible(&self) -> bool {
        !self.title.starts_with("draft:")
    }

    pub fn new(id: i32, title: &str) -> Self {
        Book {
            id,
            title: title.to_owned(),
            author: "Frank Herbert".to_owned(),
            isbn: format!("978044101359{}", id % 10),
            published: true,
            price: Some("9.99".parse().unwrap()),
            created: cqrs_core::value::now_micros().naive_utc(),
            cover: Some(vec![1, 2, 3]),
            cqrs_revision: 0,
            cqrs_updated: chrono::Utc::now().naive_utc(),
        }
    }
}

/// Text primary key, a meta function, a correlation function and delete data.
#[derive(Debug, Clone, PartialEq, CqrsMaster)]
#[diesel(table_name = authors)]
#[cqrs(
    cqrs_id = "author",
    meta = Author::meta,
    correlation_id = Author::correlation,
    delete_data = Author::delete_data
)]
pub struct Author {
    pub id: String,
    pub name: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

impl Author {
    pub fn meta(&self, ctx: &cqrs_core::settings::MetaContext<'_>) -> Value {
        json!({"source": "tests", "signal": ctx.signal_type.as_str(), "name": self.name})
    }

    pub fn correlation(&self, ctx: &cqrs_core::settings::CorrelationContext<'_>) -> Option<String> {
        Some(format!(
            "{}-{}-{}",
            ctx.cqrs_id,
            ctx.instance_pk,
            ctx.queue.unwrap_or("all")
        ))
    }

    pub fn delete_data(&self) -> Option<Value> {
        Some(json!({"name": self.name}))
    }

    pub fn new(id: &str, name: &str) -> Self {
        Author {
            id: id.to_owned(),
            name: name.to_owned(),
            cqrs_revision: 0,
            cqrs_updated: chrono::Utc::now().naive_utc(),
        }
    }
}

/// Bookkeeping without messages.
#[derive(Debug, Clone, PartialEq, CqrsMaster)]
#[diesel(table_name = counters)]
#[cqrs(cqrs_id = "counter", produce = false)]
pub struct Counter {
    pub id: i32,
    pub value: i32,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// Every field tracked (django-cqrs's `CQRS_TRACKED_FIELDS = ALL_BASIC_FIELDS`), on the
/// counters' table.
#[derive(Debug, Clone, PartialEq, CqrsMaster)]
#[diesel(table_name = counters)]
#[cqrs(cqrs_id = "gauge", tracked_fields = "__all__")]
pub struct Gauge {
    pub id: i32,
    pub value: i32,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// A custom serializer with related data (the reviewed book's title, loaded for a page of
/// reviews in one query) and a primary key not called `id`.
#[derive(Debug, Clone, PartialEq, CqrsMaster)]
#[diesel(table_name = reviews, primary_key(review_id))]
#[cqrs(
    cqrs_id = "review",
    serializer = Review::to_json,
    relate = Review::book_titles
)]
pub struct Review {
    pub review_id: i64,
    pub book_id: i32,
    pub stars: i32,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// What `Review::book_titles` cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum TitlesError {
    #[error("review {0}: a book id is never negative")]
    NegativeBook(i64),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

thread_local! {
    static TITLE_QUERIES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Review {
    /// The serializer: the review and the title of its book (`null` if there is none).
    pub fn to_json(&self, titles: &std::collections::HashMap<i32, String>) -> Value {
        json!({
            "id": self.review_id,
            "book": self.book_id,
            "book_title": titles.get(&self.book_id),
            "stars": self.stars,
            "summary": format!("{} stars", self.stars),
        })
    }

    /// `relate`: the titles of the books the `reviews` are about, in one query, on either
    /// backend. A negative book id is refused (to test that the write then rolls back).
    pub fn book_titles<C>(
        conn: &mut C,
        reviews: &[Review],
    ) -> Result<std::collections::HashMap<i32, String>, TitlesError>
    where
        C: diesel::Connection,
        for<'a> diesel::dsl::Filter<
            diesel::dsl::Select<books::table, (books::id, books::title)>,
            diesel::dsl::EqAny<books::id, Vec<i32>>,
        >: diesel::query_dsl::LoadQuery<'a, C, (i32, String)>,
    {
        use diesel::prelude::*;
        if let Some(bad) = reviews.iter().find(|r| r.book_id < 0) {
            return Err(TitlesError::NegativeBook(bad.review_id));
        }
        TITLE_QUERIES.with(|n| n.set(n.get() + 1));
        let ids: Vec<i32> = reviews.iter().map(|r| r.book_id).collect();
        let titles: Vec<(i32, String)> = books::table
            .select((books::id, books::title))
            .filter(books::id.eq_any(ids))
            .load(conn)?;
        Ok(titles.into_iter().collect())
    }

    /// How many title queries this thread ran.
    pub fn title_queries() -> usize {
        TITLE_QUERIES.with(std::cell::Cell::get)
    }
}

// ---------------------------------------------------------------- replicas

/// A mapping (title -> name), a defaulted field and a local (skipped) field.
#[derive(Debug, Clone, PartialEq, CqrsReplica)]
#[diesel(table_name = book_refs)]
#[cqrs(
    cqrs_id = "book",
    mapping(id = id, title = name, author = author, published = published, price = price, created = created)
)]
pub struct BookRef {
    pub id: i32,
    pub name: String,
    pub author: String,
    pub published: bool,
    pub price: Option<BigDecimal>,
    pub created: NaiveDateTime,
    #[cqrs(default)]
    pub note: String,
    #[cqrs(skip)]
    pub local_flag: bool,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// Custom hooks that read the meta, fail on purpose, and a retry policy.
#[derive(Debug, Clone, PartialEq, CqrsReplica)]
#[diesel(table_name = author_refs)]
#[cqrs(cqrs_id = "author", custom_hooks, meta, select_for_update)]
pub struct AuthorRef {
    pub id: String,
    pub name: String,
    #[diesel(column_name = source)]
    pub meta_source: Option<String>,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// How many times each `flaky<N>` author (by primary key) failed, in this process.
static FLAKY_FAILURES: std::sync::Mutex<std::collections::BTreeMap<String, u32>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// An author named `flaky<N> ...` fails N times (per primary key and process), then applies.
fn flaky(name: &str, pk: &str) -> bool {
    let Some(times) = name
        .strip_prefix("flaky")
        .and_then(|rest| rest.chars().next()?.to_digit(10))
    else {
        return false;
    };
    let mut failures = FLAKY_FAILURES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let count = failures.entry(pk.to_owned()).or_default();
    *count += 1;
    *count <= times
}

impl<C: CqrsConnection> ReplicaHooks<C> for AuthorRef
where
    AuthorRef: ReplicaStore<C>,
{
    fn cqrs_create(
        conn: &mut C,
        data: &Map<String, Value>,
        ctx: &HookContext<'_>,
    ) -> Result<(), ApplyError> {
        let name = data.get("name").and_then(Value::as_str).unwrap_or_default();
        if name == "reject me" {
            return Err(ApplyError::reject(
                "author",
                ctx.pk,
                "names may not be `reject me`",
            ));
        }
        if flaky(name, ctx.pk) {
            return Err(ApplyError::retry("author", ctx.pk, "flaky: try again"));
        }
        if name.starts_with("always failing") {
            return Err(ApplyError::retry("author", ctx.pk, "the hook always fails"));
        }
        let mut row = Self::cqrs_from_data(data, None, ctx.pk)?;
        row.meta_source = ctx
            .meta
            .and_then(|m| m.get("source"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Self::cqrs_insert_row(conn, &row).map_err(|e| ApplyError::database("author", ctx.pk, e))
    }

    fn cqrs_retry_delay(retries: u32, policy: &RetryPolicy) -> std::time::Duration {
        policy.delay * (retries + 1)
    }

    fn cqrs_should_retry(retries: u32, error: &ApplyError, policy: &RetryPolicy) -> bool {
        error.is_transient() && retries < policy.max_retries.unwrap_or(u32::MAX).min(5)
    }
}

/// Custom serialization: the hooks read the master's custom JSON; only direct syncs.
#[derive(Debug, Clone, PartialEq, CqrsReplica)]
#[diesel(table_name = review_refs)]
#[cqrs(cqrs_id = "review", custom_serialization, only_direct_syncs)]
pub struct ReviewRef {
    pub id: i64,
    pub book: i32,
    pub stars: i32,
    pub summary: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

impl ReviewRef {
    fn from_custom(data: &Map<String, Value>, pk: &str) -> Result<Self, ApplyError> {
        let int = |key: &str| {
            data.get(key).and_then(Value::as_i64).ok_or_else(|| {
                ApplyError::reject("review", pk, format!("`{key}` must be an integer"))
            })
        };
        Ok(ReviewRef {
            id: int("id")?,
            book: i32::try_from(int("book")?).unwrap_or_default(),
            stars: i32::try_from(int("stars")?).unwrap_or_default(),
            summary: data
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_uppercase(),
            cqrs_revision: i32::try_from(int("cqrs_revision")?).unwrap_or_default(),
            cqrs_updated: <NaiveDateTime as cqrs_core::value::CqrsValue>::from_cqrs(
                &data["cqrs_updated"],
            )
            .map_err(|e| ApplyError::reject("review", pk, e))?,
        })
    }
}

impl<C: CqrsConnection> ReplicaHooks<C> for ReviewRef
where
    ReviewRef: ReplicaStore<C>,
{
    fn cqrs_create(
        conn: &mut C,
        data: &Map<String, Value>,
        ctx: &HookContext<'_>,
    ) -> Result<(), ApplyError> {
        let row = Self::from_custom(data, ctx.pk)?;
        Self::cqrs_insert_row(conn, &row).map_err(|e| ApplyError::database("review", ctx.pk, e))
    }

    fn cqrs_update(
        conn: &mut C,
        _existing: Self,
        data: &Map<String, Value>,
        ctx: &HookContext<'_>,
    ) -> Result<(), ApplyError> {
        let row = Self::from_custom(data, ctx.pk)?;
        Self::cqrs_update_row(conn, &row).map_err(|e| ApplyError::database("review", ctx.pk, e))
    }
}

/// A replica without a table (django-cqrs's `RawReplicaMixin`): notes kept in memory with
/// their revisions. A note titled `flaky` fails once (a transient error, retried), one titled
/// `reject` fails for good (dead-lettered).
pub struct NoteIndex;

/// What [`NoteIndex`] holds: pk -> (revision, title).
pub static NOTES: std::sync::Mutex<std::collections::BTreeMap<String, (i32, String)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

static FLAKY_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl cqrs_core::replica::RawReplica for NoteIndex {
    const CQRS_ID: &'static str = "note";

    fn cqrs_save(
        message: &cqrs_core::message::Message,
        pk: &str,
    ) -> Result<bool, cqrs_core::ApplyError> {
        let title = message
            .instance_data
            .get("title")
            .and_then(Value::as_str)
            .ok_or_else(|| cqrs_core::ApplyError::reject("note", pk, "no title"))?;
        if title == "reject" {
            return Err(cqrs_core::ApplyError::reject("note", pk, "rejected"));
        }
        if title == "flaky" && !FLAKY_FAILED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(cqrs_core::ApplyError::retry(
                "note",
                pk,
                "the index is busy",
            ));
        }
        let revision = message
            .instance_data
            .get("cqrs_revision")
            .and_then(Value::as_i64)
            .and_then(|r| i32::try_from(r).ok())
            .unwrap_or_default();
        Ok(NOTES
            .lock()
            .unwrap()
            .insert(pk.to_owned(), (revision, title.to_owned()))
            .is_none())
    }

    fn cqrs_delete(
        _message: &cqrs_core::message::Message,
        pk: &str,
    ) -> Result<bool, cqrs_core::ApplyError> {
        Ok(NOTES.lock().unwrap().remove(pk).is_some())
    }

    fn cqrs_revision(pk: &str) -> Result<Option<i32>, cqrs_core::ApplyError> {
        Ok(NOTES.lock().unwrap().get(pk).map(|(revision, _)| *revision))
    }
}

cqrs_core::register_raw_replica!(NoteIndex);
