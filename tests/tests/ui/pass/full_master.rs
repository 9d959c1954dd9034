//! Every master attribute at once.
use chrono::{DateTime, NaiveDateTime, Utc};
use cqrs_core::prelude::*;
use cqrs_core::settings::{CorrelationContext, MetaContext};
use serde_json::{Value, json};

diesel::table! {
    books (id) {
        id -> Integer,
        title -> Text,
        #[sql_name = "author_id"]
        author -> Integer,
        secret -> Text,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

diesel::table! {
    events (event_id) {
        event_id -> BigInt,
        at -> Timestamp,
        cqrs_revision -> Integer,
        cqrs_updated -> Timestamp,
    }
}

#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = books)]
#[cqrs(
    cqrs_id = "book",
    fields(id, title, author_id),
    produce = true,
    sync_filter = Book::is_public,
    tracked_fields(title, author_id),
    meta = Book::meta,
    correlation_id = Book::correlation,
    delete_data = Book::delete_data,
    backends(sqlite),
    crate = "::cqrs_core"
)]
struct Book {
    id: i32,
    title: String,
    #[cqrs(rename = "author")]
    #[diesel(column_name = author)]
    author_id: i32,
    #[cqrs(skip)]
    secret: String,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

impl Book {
    fn is_public(&self) -> bool {
        !self.secret.is_empty()
    }
    fn meta(&self, ctx: &MetaContext<'_>) -> Value {
        json!({"signal": ctx.signal_type.as_str()})
    }
    fn correlation(&self, ctx: &CorrelationContext<'_>) -> Option<String> {
        Some(ctx.cqrs_id.to_owned())
    }
    fn delete_data(&self) -> Option<Value> {
        Some(json!({"title": self.title}))
    }
}

/// A custom serializer, a naive timestamp, produce = false.
#[derive(CqrsMaster)]
#[diesel(table_name = events, primary_key(event_id))]
#[cqrs(cqrs_id = "event", serializer = Event::json, produce = false)]
struct Event {
    event_id: i64,
    at: NaiveDateTime,
    cqrs_revision: i32,
    cqrs_updated: NaiveDateTime,
}

impl Event {
    fn json(&self) -> Result<serde_json::Map<String, Value>, String> {
        let mut map = serde_json::Map::new();
        map.insert("id".into(), json!(self.event_id));
        Ok(map)
    }
}

/// A custom serializer with related data, one backend: `relate` takes its concrete
/// connection and returns any error type.
#[derive(CqrsMaster)]
#[diesel(table_name = events, primary_key(event_id))]
#[cqrs(
    cqrs_id = "dated_event",
    serializer = DatedEvent::json,
    relate = DatedEvent::relate,
    backends(sqlite)
)]
struct DatedEvent {
    event_id: i64,
    at: NaiveDateTime,
    cqrs_revision: i32,
    cqrs_updated: NaiveDateTime,
}

impl DatedEvent {
    fn relate(
        conn: &mut diesel::SqliteConnection,
        rows: &[Self],
    ) -> diesel::QueryResult<Vec<(i64, NaiveDateTime)>> {
        use diesel::prelude::*;
        let ids: Vec<i64> = rows.iter().map(|row| row.event_id).collect();
        events::table
            .select((events::event_id, events::at))
            .filter(events::event_id.eq_any(ids))
            .load(conn)
    }
    fn json(&self, related: &Vec<(i64, NaiveDateTime)>) -> Value {
        json!({"id": self.event_id, "siblings": related.len()})
    }
}

fn main() {
    assert_eq!(<Book as MasterModel>::TRACKED_FIELDS, ["title", "author"]);
    assert_eq!(<Event as MasterModel>::CQRS_ID, "event");
}
