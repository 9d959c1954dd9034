//! cqrs-core on PostgreSQL (a real server: scripts/test starts one and sets DATABASE_URL_PG).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ordering, scenarios};
use cqrs_core::db::{OutboxReader, RevisionLedger};
use cqrs_core::outbox::OutboxCursor;

macro_rules! pg_tests {
    ($($name:ident: |$($conn:ident),*| $body:expr;)*) => {$(
        #[test]
        #[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
        fn $name() {
            common::logs();
            $(let mut $conn = common::pg();)*
            $body
        }
    )*};
}

common::core_scenarios!(pg_tests);

/// Two consumer processes applying one queue's messages of the same rows end equal to the
/// master (advisory row locks order their transactions).
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn two_consumers_on_one_replica_converge() {
    use cqrs_core::prelude::*;
    let (_, url) = common::pg_with_url();
    let mut master = common::pg();
    ordering::two_consumers_converge(&mut master, || {
        diesel::PgConnection::cqrs_connect(&url).unwrap()
    });
}

/// A batch failing at COMMIT falls back to one transaction per message.
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn commit_failure_falls_back_to_one_by_one() {
    let mut replica = common::pg();
    common::faults::commit_failure_falls_back_to_one_by_one(
        &mut replica,
        "CREATE TABLE known_authors (name TEXT PRIMARY KEY); INSERT INTO known_authors VALUES ('A');
         ALTER TABLE book_refs ADD CONSTRAINT book_refs_author FOREIGN KEY (author)
         REFERENCES known_authors (name) DEFERRABLE INITIALLY DEFERRED;",
    );
}

/// A relay that took a batch of up to `limit` on its own connection and holds it (its
/// transaction open) until [`HeldBatch::release`].
struct HeldBatch {
    /// The ids it took.
    taken: Vec<i64>,
    go: std::sync::mpsc::Sender<()>,
    relay: std::thread::JoinHandle<(diesel::PgConnection, cqrs_core::outbox::RelayedBatch)>,
}

impl HeldBatch {
    fn take(mut conn: diesel::PgConnection, limit: i64) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<i64>>();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let relay = std::thread::spawn(move || {
            let batch = cqrs_core::outbox::relay_batch(
                &mut conn,
                limit,
                &mut OutboxCursor::new(),
                |records| {
                    tx.send(records.iter().map(|r| r.id).collect()).unwrap();
                    go_rx.recv().unwrap(); // hold the locks until released
                    Ok::<_, cqrs_core::Error>(records.iter().map(|r| r.id).collect())
                },
            )
            .unwrap();
            (conn, batch)
        });
        let taken = rx.recv().unwrap();
        Self { taken, go, relay }
    }

    /// Lets the relay confirm and commit; its connection and what it did.
    fn release(self) -> (diesel::PgConnection, cqrs_core::outbox::RelayedBatch) {
        self.go.send(()).unwrap();
        self.relay.join().unwrap()
    }
}

/// One batch of up to `limit` from `cursor`, confirmed as `confirm` says: the ids taken, and
/// what the batch did.
fn take(
    conn: &mut diesel::PgConnection,
    limit: i64,
    cursor: &mut OutboxCursor,
    confirm: bool,
) -> (Vec<i64>, cqrs_core::outbox::RelayedBatch) {
    let mut ids = Vec::new();
    let batch = cqrs_core::outbox::relay_batch(conn, limit, cursor, |records| {
        ids = records.iter().map(|r| r.id).collect();
        Ok::<_, cqrs_core::Error>(if confirm { ids.clone() } else { Vec::new() })
    })
    .unwrap();
    (ids, batch)
}

/// The outbox's ids, oldest first.
fn outbox_ids(conn: &mut diesel::PgConnection) -> Vec<i64> {
    use diesel::prelude::*;
    cqrs_core::db::cqrs_outbox::table
        .select(cqrs_core::db::cqrs_outbox::id)
        .order(cqrs_core::db::cqrs_outbox::id)
        .load(conn)
        .unwrap()
}

/// Two relays on PostgreSQL never take the same messages (FOR UPDATE SKIP LOCKED).
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn relays_share_the_outbox() {
    use cqrs_core::prelude::*;
    use diesel::Connection;
    let (mut a, url) = common::pg_with_url();
    for i in 1..=10 {
        common::Book::new(i, "x").cqrs_insert(&mut a).unwrap();
    }
    let mut b = diesel::PgConnection::establish(&url).unwrap();
    let first = HeldBatch::take(a, 4);
    let taken_by_first = first.taken.clone();
    let (taken_by_second, _) = take(&mut b, 100, &mut OutboxCursor::new(), true);
    let (_, first) = first.release();
    assert_eq!(first.published, 4);
    assert_eq!(taken_by_second.len(), 6);
    assert!(
        taken_by_first
            .iter()
            .all(|id| !taken_by_second.contains(id))
    );
    assert_eq!(b.outbox_pending().unwrap(), 0);
}

/// Relays sharing the outbox keep each row's order: a message waits while an earlier one of
/// its row is in another relay's hands, and a message the broker did not confirm goes back
/// under its own id, before its row's later messages.
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn relays_keep_each_rows_order() {
    use cqrs_core::prelude::*;
    use diesel::Connection;
    let (mut a, url) = common::pg_with_url();
    // ids 1..=4: book 1 created, book 2 created, book 1 renamed, book 3 created
    common::Book::new(1, "a").cqrs_insert(&mut a).unwrap();
    common::Book::new(2, "b").cqrs_insert(&mut a).unwrap();
    common::Book::cqrs_update(&mut a, &1, |b| b.title = "a2".into()).unwrap();
    common::Book::new(3, "c").cqrs_insert(&mut a).unwrap();
    let ids = outbox_ids(&mut a);
    assert_eq!(ids.len(), 4);
    let mut b = diesel::PgConnection::establish(&url).unwrap();
    // the first relay takes books 1 and 2 and holds them
    let first = HeldBatch::take(a, 2);
    assert_eq!(first.taken, ids[..2]);
    // the second takes book 3, not book 1's rename
    let (second, batch) = take(&mut b, 100, &mut OutboxCursor::new(), true);
    assert_eq!(second, [ids[3]]);
    assert_eq!((batch.fetched, batch.held_back), (1, 1));
    assert_eq!(first.release().1.published, 2);
    // book 1 is free now: its rename goes; unconfirmed, it comes back under its own id
    let (taken, batch) = take(&mut b, 100, &mut OutboxCursor::new(), false);
    assert_eq!(taken, [ids[2]]);
    assert_eq!((batch.fetched, batch.published, batch.held_back), (1, 0, 0));
    assert_eq!(outbox_ids(&mut b), [ids[2]]);
}

/// A relay draining full batches reads on from past what it took (so that a long drain does
/// not walk the index entries of everything it deleted), yet never from past a message in
/// another relay's hands (its row's later messages stay held back), and a message committed
/// late under a lower id is found by the next look from the start.
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn a_draining_relay_reads_on_from_its_cursor() {
    use cqrs_core::prelude::*;
    use diesel::prelude::*;
    let (mut a, url) = common::pg_with_url();
    // ids: book 1 created, books 2 and 3, book 1 renamed, books 4 to 7
    common::Book::new(1, "a").cqrs_insert(&mut a).unwrap();
    common::Book::new(2, "b").cqrs_insert(&mut a).unwrap();
    common::Book::new(3, "c").cqrs_insert(&mut a).unwrap();
    common::Book::cqrs_update(&mut a, &1, |b| b.title = "a2".into()).unwrap();
    for i in 4..=7 {
        common::Book::new(i, "x").cqrs_insert(&mut a).unwrap();
    }
    let ids = outbox_ids(&mut a);
    assert_eq!(ids.len(), 8);
    let mut b = diesel::PgConnection::establish(&url).unwrap();
    // the first relay takes book 1's create and holds it
    let first = HeldBatch::take(a, 1);
    assert_eq!(first.taken, ids[..1]);
    // the second drains in full batches of 2; its cursor stays at the held message
    let mut cursor = OutboxCursor::new();
    let drain = |b: &mut diesel::PgConnection, cursor: &mut OutboxCursor| {
        let (taken, batch) = take(b, 2, cursor, true);
        (taken, batch.held_back)
    };
    assert_eq!(drain(&mut b, &mut cursor), (ids[1..3].to_vec(), 0));
    assert_eq!(
        cursor.from(),
        ids[0],
        "the message in the other relay's hands"
    );
    // book 1's rename is held back behind its create, book 4 goes
    assert_eq!(drain(&mut b, &mut cursor), (vec![ids[4]], 1));
    assert_eq!(cursor.from(), ids[0]);
    let (mut a, batch) = first.release();
    assert_eq!(batch.published, 1);
    // book 1's create is gone: its rename goes, then the cursor reads on past book 5
    assert_eq!(drain(&mut b, &mut cursor), (vec![ids[3], ids[5]], 0));
    assert_eq!(cursor.from(), ids[5] + 1);
    // a message committed late under a lower id: the cursor passes it while it is not
    // visible, and the look from the start that follows the drain takes it
    let (late_tx, late_rx) = std::sync::mpsc::channel::<i64>();
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<()>();
    let late = std::thread::spawn(move || {
        a.transaction(|conn| {
            common::Book::new(8, "late").cqrs_insert(conn)?;
            let id: i64 = cqrs_core::db::cqrs_outbox::table
                .select(diesel::dsl::max(cqrs_core::db::cqrs_outbox::id))
                .first::<Option<i64>>(conn)?
                .unwrap_or(0);
            late_tx.send(id).unwrap();
            commit_rx.recv().unwrap();
            Ok::<_, cqrs_core::Error>(())
        })
        .unwrap();
    });
    let late_id = late_rx.recv().unwrap();
    for i in 9..=12 {
        common::Book::new(i, "x").cqrs_insert(&mut b).unwrap();
    }
    assert_eq!(drain(&mut b, &mut cursor), (vec![ids[6], ids[7]], 0));
    let (next, _) = drain(&mut b, &mut cursor);
    assert_eq!(next, [late_id + 1, late_id + 2]);
    assert!(cursor.from() > late_id);
    commit_tx.send(()).unwrap();
    late.join().unwrap();
    let mut rest = Vec::new();
    for _ in 0..10 {
        let (ids, _) = drain(&mut b, &mut cursor);
        rest.extend(ids);
    }
    rest.sort_unstable();
    assert_eq!(rest, [late_id, late_id + 3, late_id + 4]);
    assert_eq!(b.outbox_pending().unwrap(), 0);
}

/// The set-up of a relay or consumer starting while a long transaction has read the outbox (a
/// report, `pg_dump`) takes no lock that waits for it: it used to wait for the reader's
/// `ACCESS SHARE` lock with an `ACCESS EXCLUSIVE` one, and every master write queued behind.
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn setup_does_not_wait_for_a_long_reader() {
    use cqrs_core::prelude::*;
    use diesel::connection::SimpleConnection;
    let (mut reader, url) = common::pg_with_url();
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM cqrs_outbox;")
        .unwrap();
    let mut starting = diesel::PgConnection::cqrs_connect(&url).unwrap();
    starting.batch_execute("SET lock_timeout = '2s'").unwrap();
    starting.cqrs_setup().unwrap();
    common::Book::new(1, "a")
        .cqrs_insert(&mut starting)
        .unwrap();
    reader.batch_execute("COMMIT").unwrap();
    assert_eq!(starting.outbox_pending().unwrap(), 1);
}

/// A key created again by one master process while another's DELETE of it commits continues
/// above the DELETE's revision: the create waits for the DELETE and then reads its revision.
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn create_racing_a_delete_continues_its_revision() {
    use cqrs_core::prelude::*;
    let url = common::books::pg_db();
    let mut a = diesel::PgConnection::cqrs_connect(&url).unwrap();
    let book = common::Book::new(5, "first").cqrs_insert(&mut a).unwrap();
    let book = common::Book::cqrs_update(&mut a, &book.id, |b| b.title = "second".into()).unwrap();
    assert_eq!(book.cqrs_revision, 1);
    let (deleted_tx, deleted_rx) = std::sync::mpsc::channel::<()>();
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<()>();
    let deleter = std::thread::spawn(move || {
        cqrs_core::transaction(&mut a, |conn| {
            assert!(common::Book::cqrs_delete_pk(conn, &5)?);
            deleted_tx.send(()).unwrap();
            commit_rx.recv().unwrap();
            Ok::<_, cqrs_core::Error>(())
        })
        .unwrap();
    });
    deleted_rx.recv().unwrap();
    let creator_url = url.clone();
    let creator = std::thread::spawn(move || {
        let mut b = diesel::PgConnection::cqrs_connect(&creator_url).unwrap();
        common::Book::new(5, "reborn").cqrs_insert(&mut b).unwrap()
    });
    // the create waits on the deleted row's key
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!creator.is_finished());
    commit_tx.send(()).unwrap();
    deleter.join().unwrap();
    let reborn = creator.join().unwrap();
    assert_eq!(reborn.cqrs_revision, 3, "one above the DELETE's revision 2");
    // the create's message, written before its revision was known, carries it too
    let mut conn = diesel::PgConnection::cqrs_connect(&url).unwrap();
    let revisions: Vec<(String, i64)> = conn
        .outbox_fetch(100)
        .unwrap()
        .iter()
        .map(|m| {
            let body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
            let signal = body["signal_type"].as_str().unwrap().to_owned();
            (
                signal,
                body["instance_data"]["cqrs_revision"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [("SAVE", 0), ("SAVE", 1), ("DELETE", 2), ("SAVE", 3)];
    assert_eq!(revisions, expected.map(|(s, r)| (s.to_owned(), r)));
    // and the recorded revision was taken
    assert_eq!(
        conn.deleted_revisions_take("book", &["5".into()]).unwrap(),
        []
    );
}

/// A single-row master write on PostgreSQL is four statements, as a hand-written outbox's:
/// `BEGIN`, the row, the message (carrying a create's revision take, a delete's revision
/// record, or an update's `UPDATE` itself), `COMMIT`.
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn single_row_writes_are_four_statements() {
    use std::sync::{Arc, Mutex};

    use common::Book;
    use cqrs_core::prelude::*;
    use diesel::connection::{Connection, Instrumentation, InstrumentationEvent};
    let mut master = common::pg();
    let statements: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = statements.clone();
    let instrumentation: Box<dyn Instrumentation> =
        Box::new(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                let sql = query.to_string();
                let sql = sql.split(" -- binds").next().unwrap().to_owned();
                sink.lock().unwrap().push(sql);
            }
        });
    master.set_instrumentation(instrumentation);
    let mut count = |write: &mut dyn FnMut(&mut diesel::PgConnection)| {
        statements.lock().unwrap().clear();
        write(&mut master);
        statements.lock().unwrap().clone()
    };
    for id in 1..=3 {
        let create = count(&mut |c| drop(Book::new(id, "draft").cqrs_insert(c).unwrap()));
        let update =
            count(&mut |c| drop(Book::cqrs_update(c, &id, |b| b.title = "edited".into()).unwrap()));
        let delete = count(&mut |c| assert!(Book::cqrs_delete_pk(c, &id).unwrap()));
        for (what, sql) in [("create", create), ("update", update), ("delete", delete)] {
            assert_eq!(sql.len(), 4, "{what}: {sql:#?}");
            assert!(sql[2].contains("cqrs_outbox"), "{what}: {sql:#?}");
        }
    }
    // the messages are those the separate statements wrote
    let bodies = common::outbox(&mut master);
    let revisions: Vec<(&str, i64, &str)> = bodies
        .iter()
        .map(|(_, body)| {
            (
                body["signal_type"].as_str().unwrap(),
                body["instance_data"]["cqrs_revision"].as_i64().unwrap(),
                body["instance_data"]["title"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        &revisions[..3],
        [
            ("SAVE", 0, "draft"),
            ("SAVE", 1, "edited"),
            ("DELETE", 2, "")
        ]
    );
    // re-created keys continue their revisions (ids 1-3 again)
    for id in 1..=3 {
        let book = Book::new(id, "again").cqrs_insert(&mut master).unwrap();
        assert_eq!(book.cqrs_revision, 3);
    }
}

/// An update whose stored row differs from the row written (here a trigger rewrites the
/// title) sends the stored row: the message built before the `UPDATE` is written again.
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn an_update_changed_by_a_trigger_sends_the_stored_row() {
    use common::Book;
    use cqrs_core::prelude::*;
    use diesel::connection::SimpleConnection;
    let mut master = common::pg();
    master
        .batch_execute(
            "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN NEW.title := upper(NEW.title); RETURN NEW; END $$;
             CREATE TRIGGER books_shout BEFORE UPDATE ON books FOR EACH ROW EXECUTE FUNCTION shout();",
        )
        .unwrap();
    Book::new(7, "quiet").cqrs_insert(&mut master).unwrap();
    let stored = Book::cqrs_update(&mut master, &7, |b| b.title = "loud".into()).unwrap();
    assert_eq!((stored.title.as_str(), stored.cqrs_revision), ("LOUD", 1));
    let bodies = common::outbox(&mut master);
    let (_, last) = bodies.last().unwrap();
    assert_eq!(last["instance_data"]["title"], "LOUD");
    assert_eq!(last["instance_data"]["cqrs_revision"], 1);
    assert_eq!(bodies.len(), 2, "one message per write");
}
