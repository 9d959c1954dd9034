// A replica with custom hooks whose derive fails: the user's hook impl and the uses of the
// model compile against the fallback, so the only error is the derive's own.
#![allow(unused_imports, dead_code)]
use chrono::{DateTime, Utc};
use cqrs_core::prelude::*;
use cqrs_core::replica::HookContext;
use serde_json::{Map, Value};

diesel::table! {
    titles (id) {
        id -> Integer,
        title -> Text,
        cqrs_revision -> Integer,
        cqrs_updated -> TimestamptzSqlite,
    }
}

#[derive(CqrsReplica)]
#[diesel(table_name = titles)]
#[cqrs(cqrs_id = "book", custom_hooks, only_direct_sync, backends(sqlite))]
struct Title { id: i32, title: String, cqrs_revision: i32, cqrs_updated: DateTime<Utc> }

impl<C: CqrsConnection> ReplicaHooks<C> for Title where Title: ReplicaStore<C> {
    fn cqrs_create(conn: &mut C, data: &Map<String, Value>, ctx: &HookContext<'_>)
        -> Result<(), ApplyError>
    {
        cqrs_core::replica::default_create::<Self, C>(conn, data, ctx)
    }
}

fn count(conn: &mut diesel::SqliteConnection) -> diesel::QueryResult<i64> {
    Title::cqrs_count(conn)
}

fn main() {}
