//! What test event handlers received: `(kind, key, body)` rows of a SQLite table `received`,
//! written in the handler's transaction (so a rolled-back handler leaves none).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use cqrs_core::CqrsConnection;
use diesel::connection::SimpleConnection;
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};
use serde_json::Value;

/// A SQLite file with the framework's tables and `received`.
pub fn sqlite_file(dir: &tempfile::TempDir, name: &str) -> String {
    let url = dir.path().join(name).to_str().unwrap().to_owned();
    let mut conn = SqliteConnection::cqrs_connect(&url).unwrap();
    conn.cqrs_setup().unwrap();
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS received (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL)",
    )
    .unwrap();
    url
}

/// Records one received message (from a handler, in its transaction).
pub fn record(
    conn: &mut SqliteConnection,
    kind: &str,
    key: &str,
    body: &Value,
) -> diesel::QueryResult<()> {
    diesel::sql_query("INSERT INTO received (kind, key, body) VALUES (?, ?, ?)")
        .bind::<diesel::sql_types::Text, _>(kind)
        .bind::<diesel::sql_types::Text, _>(key)
        .bind::<diesel::sql_types::Text, _>(body.to_string())
        .execute(conn)
        .map(drop)
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    key: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    body: String,
}

/// Every received message, oldest first.
pub fn received(url: &str) -> Vec<(String, String, Value)> {
    let mut conn = SqliteConnection::cqrs_connect(url).unwrap();
    let rows: Vec<Row> = diesel::sql_query("SELECT kind, key, body FROM received ORDER BY rowid")
        .load(&mut conn)
        .unwrap();
    rows.into_iter()
        .map(|r| (r.kind, r.key, serde_json::from_str(&r.body).unwrap()))
        .collect()
}

/// How many messages of `kind` with `key` were received.
pub fn count(url: &str, kind: &str, key: &str) -> usize {
    received(url)
        .iter()
        .filter(|(k, kk, _)| k == kind && kk == key)
        .count()
}
