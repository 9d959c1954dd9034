//! Shared fixtures of the integration tests: databases and a set of models that run on both
//! SQLite and PostgreSQL (portable column types, `NaiveDateTime` timestamps taken as UTC).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use cqrs_core::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use serde_json::Value;

pub use cqrs_tests::models::*;

// ---------------------------------------------------------------- databases

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_subsec_micros()
    )
}

/// A fresh SQLite database file with the framework's and the models' tables. The directory
/// lives as long as the returned guard.
pub fn sqlite() -> (SqliteConnection, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("db.sqlite3");
    let mut conn = SqliteConnection::cqrs_connect(url.to_str().unwrap()).unwrap();
    conn.cqrs_setup().unwrap();
    conn.batch_execute(SQLITE_DDL).unwrap();
    (conn, dir)
}

/// The PostgreSQL server of the test script, or `None` when `DATABASE_URL_PG` is unset.
pub fn pg_base_url() -> Option<String> {
    std::env::var("DATABASE_URL_PG")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A URL of a fresh, empty schema on the test server (its `search_path` is set in the URL).
pub fn pg_schema_url() -> String {
    let base = pg_base_url().expect("DATABASE_URL_PG is not set: run scripts/test");
    let schema = unique("t");
    let mut admin = <PgConnection as diesel::Connection>::establish(&base).unwrap();
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// A URL of a fresh, empty database on the test server: for what is database-wide, such as
/// the outbox's `NOTIFY` channel, which tests in schemas of one database would share.
#[allow(dead_code, reason = "not every test binary uses it")]
pub fn pg_database_url() -> String {
    let base = pg_base_url().expect("DATABASE_URL_PG is not set: run scripts/test");
    let name = unique("db");
    let mut admin = <PgConnection as diesel::Connection>::establish(&base).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (head, query) = base
        .split_once('?')
        .map_or((base.as_str(), String::new()), |(h, q)| {
            (h, format!("?{q}"))
        });
    let server = head.rsplit_once('/').map_or(head, |(server, _)| server);
    format!("{server}/{name}{query}")
}

/// GET `path` on a process's metrics and health endpoint: (status, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent.get(&format!("http://{addr}{path}")).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// A fresh schema with the framework's and the models' tables.
pub fn pg() -> PgConnection {
    pg_with_url().0
}

/// [`pg`], with its schema's URL (for more connections to the same tables).
pub fn pg_with_url() -> (PgConnection, String) {
    let url = pg_schema_url();
    let mut conn = PgConnection::cqrs_connect(&url).unwrap();
    conn.cqrs_setup().unwrap();
    conn.batch_execute(PG_DDL).unwrap();
    (conn, url)
}

/// Reads the outbox (oldest first) as parsed JSON bodies with their routing keys.
pub fn outbox<C: CqrsConnection>(conn: &mut C) -> Vec<(String, Value)> {
    conn.outbox_fetch(100_000)
        .unwrap()
        .into_iter()
        .map(|r| (r.routing_key, serde_json::from_str(&r.body).unwrap()))
        .collect()
}

/// Empties the outbox.
pub fn clear_outbox<C: CqrsConnection>(conn: &mut C) {
    let ids: Vec<i64> = conn
        .outbox_fetch(100_000)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    conn.outbox_delete(&ids).unwrap();
}

/// The batch items of `messages` for one replica model (none sent to one queue only).
pub fn items<'a, C>(
    ops: &'static dyn cqrs_core::registry::ReplicaOps<C>,
    messages: &'a [cqrs_core::Message],
) -> Vec<cqrs_core::batch::BatchItem<'a, C>> {
    messages
        .iter()
        .map(|message| cqrs_core::batch::BatchItem {
            ops,
            message,
            direct: false,
        })
        .collect()
}

/// Applies `messages` in consecutive batches whose sizes `size` picks; each message's result.
pub fn apply_in_batches<C: CqrsConnection>(
    conn: &mut C,
    ops: &'static dyn cqrs_core::registry::ReplicaOps<C>,
    messages: &[cqrs_core::Message],
    mut size: impl FnMut() -> usize,
) -> Vec<Result<cqrs_core::Outcome, cqrs_core::ApplyError>> {
    let mut results = Vec::with_capacity(messages.len());
    let mut rest = messages;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(size().clamp(1, rest.len()));
        results.extend(cqrs_core::batch::apply_batch(conn, &items(ops, chunk)).unwrap());
        rest = tail;
    }
    results
}

/// Parses a message body.
pub fn message(body: &Value) -> cqrs_core::Message {
    cqrs_core::Message::from_value(body.clone(), None).unwrap()
}

/// The django-cqrs samples: `../shared/samples` next to the project when it is there, else
/// the copy in `tests/samples`.
pub fn samples_dir() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../../shared/samples");
    if shared.join("messages.jsonl").exists() {
        shared
    } else {
        root.join("samples")
    }
}

/// The messages of samples/messages.jsonl: (routing key, body).
pub fn sample_messages() -> Vec<(String, Value)> {
    std::fs::read_to_string(samples_dir().join("messages.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                v["routing_key"].as_str().unwrap().to_owned(),
                v["body"].clone(),
            )
        })
        .collect()
}

/// Installs a test log subscriber once (RUST_LOG controls it).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
pub mod books;
pub mod faults;
pub mod ordering;
pub mod rabbit;
pub mod received;
pub mod scenarios;
pub mod service;

/// Runs `cmd` to its end with `stdin` on its standard input (none: `/dev/null`), capturing
/// its standard output and error.
pub fn output_with_stdin(
    cmd: &mut std::process::Command,
    stdin: Option<&[u8]>,
) -> std::process::Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Calls `$tests! { name: |connections| body; ... }` with every backend-independent core
/// scenario, so that each backend's test file runs the same list.
#[allow(unused_macros)]
macro_rules! core_scenarios {
    ($tests:ident) => {
        $tests! {
            wire_format_matches_django: |master| scenarios::wire_format_matches_django(&mut master);
            master_bookkeeping: |master| scenarios::master_bookkeeping(&mut master);
            outbox_is_transactional: |master| scenarios::outbox_is_transactional(&mut master);
            master_attributes: |master| scenarios::master_attributes(&mut master);
            filters: |master| scenarios::filters(&mut master);
            revision_rules: |replica| scenarios::revision_rules(&mut replica);
            bad_payloads: |replica| scenarios::bad_payloads(&mut replica);
            hooks_and_flags: |replica| scenarios::hooks_and_flags(&mut replica);
            batch_with_savepoints: |replica| scenarios::batch_with_savepoints(&mut replica);
            end_to_end_in_memory: |master, replica| scenarios::end_to_end_in_memory(&mut master, &mut replica);
            one_message_per_transaction: |master, replica| scenarios::one_message_per_transaction(&mut master, &mut replica);
            related_data: |master| scenarios::related_data(&mut master);
            batch_matches_sequential: |a, b| scenarios::batch_matches_sequential(&mut a, &mut b);
            revisions_never_restart: |master| ordering::revisions_never_restart(&mut master);
            revision_order_from_raw_messages: |a, b| ordering::revision_order_from_raw_messages(&mut a, &mut b);
            skewed_masters_converge: |master, a, b| ordering::skewed_masters_converge(&mut master, &mut a, &mut b);
        }
    };
}
#[allow(unused_imports)]
pub(crate) use core_scenarios;
