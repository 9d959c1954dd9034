//! cqrs-core on PostgreSQL (a real server: scripts/test starts one and sets DATABASE_URL_PG).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ordering, scenarios};

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
    let url = common::pg_schema_url();
    let mut replica = diesel::PgConnection::cqrs_connect(&url).unwrap();
    replica.cqrs_setup().unwrap();
    diesel::connection::SimpleConnection::batch_execute(&mut replica, common::PG_DDL).unwrap();
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

/// Two relays on PostgreSQL never take the same messages (FOR UPDATE SKIP LOCKED).
#[test]
#[ignore = "needs PostgreSQL (DATABASE_URL_PG): run scripts/test"]
fn relays_share_the_outbox() {
    use cqrs_core::prelude::*;
    use diesel::Connection;
    let url = common::pg_schema_url();
    let mut a = diesel::PgConnection::cqrs_connect(&url).unwrap();
    a.cqrs_setup().unwrap();
    diesel::connection::SimpleConnection::batch_execute(&mut a, common::PG_DDL).unwrap();
    for i in 1..=10 {
        common::Book::new(i, "x").cqrs_insert(&mut a).unwrap();
    }
    let mut b = diesel::PgConnection::establish(&url).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<i64>>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let first = std::thread::spawn(move || {
        cqrs_core::outbox::relay_batch(&mut a, 4, |records| {
            tx.send(records.iter().map(|r| r.id).collect()).unwrap();
            go_rx.recv().unwrap(); // hold the lock until the other relay ran
            Ok::<_, cqrs_core::Error>(records.iter().map(|r| r.id).collect())
        })
        .unwrap()
    });
    let taken_by_first = rx.recv().unwrap();
    let mut taken_by_second = Vec::new();
    cqrs_core::outbox::relay_batch(&mut b, 100, |records| {
        taken_by_second = records.iter().map(|r| r.id).collect();
        Ok::<_, cqrs_core::Error>(taken_by_second.clone())
    })
    .unwrap();
    go_tx.send(()).unwrap();
    let first = first.join().unwrap();
    assert_eq!(first.published, 4);
    assert_eq!(taken_by_second.len(), 6);
    assert!(
        taken_by_first
            .iter()
            .all(|id| !taken_by_second.contains(id))
    );
    assert_eq!(b.outbox_pending().unwrap(), 0);
}
