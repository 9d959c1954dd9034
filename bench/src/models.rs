//! The benchmark's models: a master and its replica for the throughput runs, and a pair whose
//! replica stamps the apply time for the latency runs.

use chrono::NaiveDateTime;
use cqrs_core::prelude::*;

pub mod schema {
    diesel::table! {
        bench_items (id) {
            id -> Integer,
            title -> Text,
            body -> Text,
            price -> Double,
            version -> Integer,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        bench_item_refs (id) {
            id -> Integer,
            title -> Text,
            body -> Text,
            price -> Double,
            version -> Integer,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        latency_items (id) {
            id -> Integer,
            payload -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        ryw_items (id) {
            id -> Integer,
            payload -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        ryw_item_refs (id) {
            id -> Integer,
            payload -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        latency_item_refs (id) {
            id -> Integer,
            payload -> Text,
            applied_us -> BigInt,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        hand_outbox (id) {
            id -> BigInt,
            routing_key -> Text,
            body -> Text,
        }
    }
    diesel::table! {
        ideal_items (id) {
            id -> Integer,
            title -> Text,
            body -> Text,
            price -> Double,
            version -> Integer,
            revision -> Integer,
        }
    }
}

pub const SQLITE_DDL: &str = "
CREATE TABLE IF NOT EXISTS bench_items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, price DOUBLE NOT NULL, version INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS bench_item_refs (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, price DOUBLE NOT NULL, version INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS latency_items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS latency_item_refs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, applied_us BIGINT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS ryw_items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS ryw_item_refs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS ideal_items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, price DOUBLE NOT NULL, version INTEGER NOT NULL, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hand_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, routing_key TEXT NOT NULL, body TEXT NOT NULL);
";

pub const POSTGRES_DDL: &str = "
CREATE TABLE IF NOT EXISTS bench_items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, price DOUBLE PRECISION NOT NULL, version INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS bench_item_refs (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, price DOUBLE PRECISION NOT NULL, version INTEGER NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS latency_items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS latency_item_refs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, applied_us BIGINT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS ryw_items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS ryw_item_refs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS ideal_items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, price DOUBLE PRECISION NOT NULL, version INTEGER NOT NULL, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hand_outbox (id BIGSERIAL PRIMARY KEY, routing_key TEXT NOT NULL, body TEXT NOT NULL);
";

/// A web-app row: a title that changes (tracked), a body that pads messages to ~400 bytes.
#[derive(Debug, Clone, PartialEq, CqrsMaster, diesel::Queryable)]
#[diesel(table_name = schema::bench_items)]
#[cqrs(cqrs_id = "bench_item", tracked_fields(title))]
pub struct BenchItem {
    pub id: i32,
    pub title: String,
    pub body: String,
    pub price: f64,
    pub version: i32,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, CqrsReplica)]
#[diesel(table_name = schema::bench_item_refs)]
#[cqrs(cqrs_id = "bench_item")]
pub struct BenchItemRef {
    pub id: i32,
    pub title: String,
    pub body: String,
    pub price: f64,
    pub version: i32,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = schema::latency_items)]
#[cqrs(cqrs_id = "bench_latency")]
pub struct LatencyItem {
    pub id: i32,
    pub payload: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// The read-your-writes row: a service's own model, with the generated hooks on both sides
/// (so the consumer applies its batches with multi-row statements, as it would in a service).
#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = schema::ryw_items)]
#[cqrs(cqrs_id = "bench_ryw")]
pub struct RywItem {
    pub id: i32,
    pub payload: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// The replica of [`RywItem`].
#[derive(Debug, Clone, CqrsReplica)]
#[diesel(table_name = schema::ryw_item_refs)]
#[cqrs(cqrs_id = "bench_ryw")]
pub struct RywItemRef {
    pub id: i32,
    pub payload: String,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// The replica of [`LatencyItem`]: a service's model, with the generated hooks (so the
/// consumer applies its batches with multi-row statements, as it would in a service), and a
/// local column stamped when the consumer builds the row, for commit-to-applied latency.
#[derive(Debug, Clone, CqrsReplica)]
#[diesel(table_name = schema::latency_item_refs)]
#[cqrs(cqrs_id = "bench_latency")]
pub struct LatencyItemRef {
    pub id: i32,
    pub payload: String,
    #[cqrs(skip)]
    pub applied_us: AppliedAt,
    pub cqrs_revision: i32,
    pub cqrs_updated: NaiveDateTime,
}

/// When the consumer built a replica row from its message (wall clock, microseconds), inside
/// the transaction that applies it: the `Default` the generated create gives a `skip` column.
/// A custom hook could stamp it too, but a model with custom hooks is applied a message at a
/// time, each in its own savepoint, which is not what a service's model pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::BigInt)]
pub struct AppliedAt(pub i64);

impl Default for AppliedAt {
    fn default() -> Self {
        Self(chrono::Utc::now().timestamp_micros())
    }
}

/// A replica's filters (`sync_filter`, the CLI's) may name any column: as an integer.
impl cqrs_core::value::CqrsValue for AppliedAt {
    fn to_cqrs(&self) -> serde_json::Value {
        self.0.to_cqrs()
    }

    fn from_cqrs(value: &serde_json::Value) -> Result<Self, cqrs_core::value::ValueError> {
        i64::from_cqrs(value).map(Self)
    }
}

impl<DB> diesel::serialize::ToSql<diesel::sql_types::BigInt, DB> for AppliedAt
where
    DB: diesel::backend::Backend,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
{
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, DB>,
    ) -> diesel::serialize::Result {
        self.0.to_sql(out)
    }
}

impl<DB> diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB> for AppliedAt
where
    DB: diesel::backend::Backend,
    i64: diesel::deserialize::FromSql<diesel::sql_types::BigInt, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        i64::from_sql(bytes).map(Self)
    }
}

/// The row a benchmark writes: ~400-byte messages.
pub fn item(id: i32) -> BenchItem {
    BenchItem {
        id,
        title: format!("Item {id}"),
        body: format!(
            "{id:08} lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore"
        ),
        price: f64::from(id % 1000) + 0.99,
        version: 0,
        cqrs_revision: 0,
        cqrs_updated: chrono::Utc::now().naive_utc(),
    }
}
