//! Every replica attribute.
use chrono::{DateTime, NaiveDateTime, Utc};
use cqrs_core::prelude::*;
use cqrs_core::replica::HookContext;
use cqrs_core::retry::RetryPolicy;
use serde_json::{Map, Value};

diesel::table! {
    book_refs (id) {
        id -> Integer,
        name -> Text,
        counter -> Integer,
        local -> Nullable<Text>,
        cqrs_revision -> Integer,
        cqrs_updated -> Timestamp,
    }
}

diesel::table! {
    author_refs (id) {
        id -> Text,
        payload -> Text,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

#[derive(CqrsReplica)]
#[diesel(table_name = book_refs)]
#[cqrs(
    cqrs_id = "book",
    mapping(id = id, title = name),
    only_direct_syncs,
    select_for_update = true,
    meta,
    custom_hooks,
    backends(sqlite)
)]
struct BookRef {
    id: i32,
    name: String,
    #[cqrs(default)]
    counter: i32,
    #[cqrs(skip)]
    local: Option<String>,
    cqrs_revision: i32,
    cqrs_updated: NaiveDateTime,
}

impl<C: CqrsConnection> ReplicaHooks<C> for BookRef
where
    BookRef: ReplicaStore<C>,
{
    fn cqrs_delete(conn: &mut C, pk: &i32, ctx: &HookContext<'_>) -> Result<bool, ApplyError> {
        Self::cqrs_delete_row(conn, pk).map_err(|e| ApplyError::database("book", ctx.pk, e))
    }
    fn cqrs_should_retry(retries: u32, _error: &ApplyError, _policy: &RetryPolicy) -> bool {
        retries < 3
    }
}

#[derive(CqrsReplica)]
#[diesel(table_name = author_refs)]
#[cqrs(cqrs_id = "author", custom_serialization, backends(sqlite))]
struct AuthorRef {
    id: String,
    payload: String,
    cqrs_revision: i32,
    cqrs_updated: DateTime<Utc>,
}

impl ReplicaHooks<diesel::SqliteConnection> for AuthorRef {
    fn cqrs_create(
        conn: &mut diesel::SqliteConnection,
        data: &Map<String, Value>,
        ctx: &HookContext<'_>,
    ) -> Result<(), ApplyError> {
        let row = AuthorRef {
            id: ctx.pk.to_owned(),
            payload: Value::Object(data.clone()).to_string(),
            cqrs_revision: 0,
            cqrs_updated: Utc::now(),
        };
        Self::cqrs_insert_row(conn, &row).map_err(|e| ApplyError::database("author", ctx.pk, e))
    }
    fn cqrs_update(
        conn: &mut diesel::SqliteConnection,
        mut existing: Self,
        data: &Map<String, Value>,
        ctx: &HookContext<'_>,
    ) -> Result<(), ApplyError> {
        existing.payload = Value::Object(data.clone()).to_string();
        Self::cqrs_update_row(conn, &existing).map_err(|e| ApplyError::database("author", ctx.pk, e))
    }
}

fn main() {
    assert!(<BookRef as ReplicaModel>::ONLY_DIRECT_SYNCS);
    assert_eq!(<BookRef as ReplicaModel>::REQUIRED, ["id", "name", "cqrs_revision", "cqrs_updated"]);
    assert!(<AuthorRef as ReplicaModel>::CUSTOM_SERIALIZATION);
}
