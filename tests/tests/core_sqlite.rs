//! cqrs-core on SQLite: master hooks, wire format, outbox, filters, apply rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ordering, scenarios};
use cqrs_core::db::OutboxReader;

macro_rules! sqlite_tests {
    ($($name:ident: |$($conn:ident),*| $body:expr;)*) => {$(
        #[test]
        fn $name() {
            common::logs();
            $(let ($conn, _guard) = common::sqlite(); let mut $conn = $conn;)*
            $body
        }
    )*};
}

common::core_scenarios!(sqlite_tests);

#[test]
fn registry_lists_every_model() {
    use cqrs_core::registry::{self, ModelKind};
    registry::check().unwrap();
    let models: Vec<_> = registry::models()
        .iter()
        .map(|m| (m.kind, m.cqrs_id))
        .collect();
    assert_eq!(
        models,
        [
            (ModelKind::Master, "author"),
            (ModelKind::Master, "book"),
            (ModelKind::Master, "counter"),
            (ModelKind::Master, "gauge"),
            (ModelKind::Master, "review"),
            (ModelKind::Replica, "author"),
            (ModelKind::Replica, "book"),
            (ModelKind::Replica, "note"),
            (ModelKind::Replica, "review"),
        ]
    );
    assert!(registry::models()[1].type_name.ends_with("models::Book"));
    let err = registry::replica::<diesel::SqliteConnection>("nope")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown cqrs_id `nope`; registered replica models: author, book, note, review"
    );
    assert!(registry::master::<diesel::SqliteConnection>("counter").is_ok());
}

/// Two consumer processes applying one queue's messages of the same rows end equal to the
/// master (SQLite's write transactions run one at a time).
#[test]
fn two_consumers_on_one_replica_converge() {
    use cqrs_core::db::CqrsConnection;
    use diesel::sqlite::SqliteConnection;
    let (mut master, _m) = common::sqlite();
    let (_replica, dir) = common::sqlite();
    let url = dir.path().join("db.sqlite3").to_str().unwrap().to_owned();
    ordering::two_consumers_converge(&mut master, || {
        SqliteConnection::cqrs_connect(&url).unwrap()
    });
}

/// A batch failing at COMMIT falls back to one transaction per message.
#[test]
fn commit_failure_falls_back_to_one_by_one() {
    let (mut replica, _dir) = common::sqlite();
    // SQLite cannot add a constraint to a table: build book_refs again with it
    let ddl = common::SQLITE_DDL;
    let start = ddl.find("CREATE TABLE book_refs").unwrap();
    let end = start + ddl[start..].find(");").unwrap();
    let deferred = format!(
        "CREATE TABLE known_authors (name TEXT PRIMARY KEY); INSERT INTO known_authors VALUES ('A');
         DROP TABLE book_refs; {}, FOREIGN KEY (author) REFERENCES known_authors (name)
         DEFERRABLE INITIALLY DEFERRED);",
        &ddl[start..end]
    );
    common::faults::commit_failure_falls_back_to_one_by_one(&mut replica, &deferred);
}

/// Opening a connection while another one writes waits for the lock instead of failing with
/// "database is locked" (the busy timeout is set before the pragmas that lock).
#[test]
fn connecting_during_a_write_waits() {
    use cqrs_core::db::CqrsConnection;
    use diesel::connection::SimpleConnection;
    use diesel::sqlite::SqliteConnection;
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("db.sqlite3").to_str().unwrap().to_owned();
    // a database still in rollback-journal mode: the switch to WAL needs the exclusive lock
    let mut writer = <SqliteConnection as diesel::Connection>::establish(&url).unwrap();
    writer
        .batch_execute("CREATE TABLE t (x INTEGER); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1)")
        .unwrap();
    let opener = {
        let url = url.clone();
        std::thread::spawn(move || SqliteConnection::cqrs_connect(&url).map(drop))
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    writer.batch_execute("COMMIT").unwrap();
    opener.join().unwrap().unwrap();
}

/// `cqrs_bulk_update` takes a diesel predicate, as a diesel user writes it; one revision and
/// one SAVE per matching row.
#[test]
fn bulk_update_takes_diesel_predicates() {
    use common::Book;
    use cqrs_core::prelude::*;
    use cqrs_tests::models::schema::books;
    use diesel::{BoolExpressionMethods, ExpressionMethods};
    let (mut master, _guard) = common::sqlite();
    let rows = Book::cqrs_bulk_insert(
        &mut master,
        (1..=6).map(|i| Book::new(i, "draft")).collect(),
    )
    .unwrap();
    assert_eq!(rows.len(), 6);
    common::clear_outbox(&mut master);
    let bumped = Book::cqrs_bulk_update(&mut master, books::id.ge(2).and(books::id.lt(5)), |b| {
        b.title = "edited".into();
    })
    .unwrap();
    let ids: Vec<(i32, i32)> = bumped.iter().map(|b| (b.id, b.cqrs_revision)).collect();
    assert_eq!(ids, [(2, 1), (3, 1), (4, 1)]);
    let sent: Vec<i64> = common::outbox(&mut master)
        .iter()
        .map(|(_, body)| body["instance_pk"].as_i64().unwrap())
        .collect();
    assert_eq!(sent, [2, 3, 4]);
}

/// A master write whose message would exceed the maximum size fails with a typed error and
/// writes nothing (replicas would dead-letter it unread).
#[test]
fn oversized_messages_are_refused_at_the_master() {
    use common::Book;
    use cqrs_core::master::MasterTable;
    use cqrs_core::prelude::*;
    let (mut master, _guard) = common::sqlite();
    let huge = Book::new(
        1,
        &"t".repeat(cqrs_core::settings::DEFAULT_MAX_MESSAGE_BYTES + 1),
    );
    let err = huge.cqrs_insert(&mut master).unwrap_err();
    assert!(
        matches!(err, cqrs_core::Error::MessageTooLarge { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("more than the maximum of 4194304"),
        "{err}"
    );
    assert_eq!(master.outbox_pending().unwrap(), 0);
    assert_eq!(Book::db_count(&mut master, vec![]).unwrap(), 0);
    let _ = Book::new(2, "small").cqrs_insert(&mut master).unwrap();
}

/// An apply never writes a `#[cqrs(skip)]` column after the insert (one by one or batched), so
/// a value the replica service writes there is never undone by a racing apply. A trigger
/// refuses any UPDATE whose SET names the column.
#[test]
fn skipped_columns_are_never_written_by_an_apply() {
    use cqrs_core::batch::{BatchItem, apply_batch, apply_one};
    use cqrs_core::registry;
    use cqrs_core::{Message, SignalType};
    use diesel::connection::SimpleConnection;
    use serde_json::json;
    let (mut replica, _guard) = common::sqlite();
    let save = |id: i32, revision: i32| {
        let data = json!({
            "id": id, "title": "t", "author": "A", "isbn": "i", "published": true, "price": 1.5,
            "created": "2026-11-22 06:20:48.557649+00:00", "cqrs_revision": revision,
            "cqrs_updated": "2026-11-22 06:20:48.557649+00:00",
        });
        Message::new(
            SignalType::Save,
            "book",
            data.as_object().unwrap().clone(),
            json!(id),
        )
    };
    let entry = registry::replica::<diesel::SqliteConnection>("book").unwrap();
    for id in [1, 2, 3] {
        apply_one(&mut replica, entry.ops, &save(id, 0), false).unwrap();
    }
    replica
        .batch_execute(
            "UPDATE book_refs SET local_flag = 1;
             CREATE TRIGGER keep_local BEFORE UPDATE OF local_flag ON book_refs
             BEGIN SELECT RAISE(ABORT, 'an apply wrote local_flag'); END;",
        )
        .unwrap();
    apply_one(&mut replica, entry.ops, &save(1, 1), false).unwrap();
    let messages = [save(2, 1), save(3, 1)];
    let items: Vec<BatchItem<'_, _>> = messages
        .iter()
        .map(|message| BatchItem {
            ops: entry.ops,
            message,
            direct: false,
        })
        .collect();
    for result in apply_batch(&mut replica, &items).unwrap() {
        result.unwrap();
    }
    let flags: Vec<(i32, bool, i32)> = {
        use cqrs_tests::models::schema::book_refs::dsl;
        use diesel::prelude::*;
        dsl::book_refs
            .select((dsl::id, dsl::local_flag, dsl::cqrs_revision))
            .order(dsl::id)
            .load(&mut replica)
            .unwrap()
    };
    assert_eq!(flags, [(1, true, 1), (2, true, 1), (3, true, 1)]);
}

/// A single-row master write prepares each of its statements once per connection (diesel
/// caches no `UPDATE`, upsert or `IN (...)` list by itself; `cqrs_core`'s `db/cached.rs`).
#[test]
fn single_row_writes_prepare_each_statement_once() {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use common::Book;
    use cqrs_core::prelude::*;
    use diesel::connection::{Connection, Instrumentation, InstrumentationEvent};
    let (mut master, _guard) = common::sqlite();
    // per statement: (executions, prepares into the cache)
    let counts: Arc<Mutex<BTreeMap<String, (u32, u32)>>> = Arc::default();
    let sink = counts.clone();
    let instrumentation: Box<dyn Instrumentation> =
        Box::new(move |event: InstrumentationEvent<'_>| {
            let mut counts = sink.lock().unwrap();
            match event {
                InstrumentationEvent::StartQuery { query, .. } => {
                    let sql = query.to_string();
                    let sql = sql.split(" -- binds").next().unwrap().to_owned();
                    counts.entry(sql).or_default().0 += 1;
                }
                InstrumentationEvent::CacheQuery { sql, .. } => {
                    counts.entry(sql.to_owned()).or_default().1 += 1;
                }
                _ => {}
            }
        });
    master.set_instrumentation(instrumentation);
    for round in 0..2 {
        for id in 1..=4 {
            Book::new(id, "draft").cqrs_insert(&mut master).unwrap();
            Book::cqrs_update(&mut master, &id, |b| b.title = format!("edited {round}")).unwrap();
            Book::cqrs_delete_pk(&mut master, &id).unwrap();
        }
    }
    let counts = counts.lock().unwrap();
    let statements: Vec<_> = counts
        .iter()
        // transaction control goes through `batch_execute`, never prepared
        .filter(|(sql, _)| !sql.starts_with("BEGIN") && !sql.starts_with("COMMIT"))
        .collect();
    assert!(statements.len() >= 5, "{statements:#?}");
    for (sql, (runs, prepares)) in statements {
        assert!(*runs >= 4, "{sql}: {runs} runs");
        assert_eq!(
            *prepares, 1,
            "{sql}: prepared {prepares} times in {runs} runs"
        );
    }
}
