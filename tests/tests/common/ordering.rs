//! Ordering without clocks: revisions that never restart for a primary key, and replicas that
//! order a row's versions by them, whatever the master hosts' clocks say (shared by the SQLite
//! and PostgreSQL test files).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines
)]
#![allow(
    clippy::items_after_statements,
    reason = "helper items sit next to their only use"
)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::SeqCst;

use chrono::{DateTime, Duration, Utc};
use cqrs_core::Registered;
use cqrs_core::batch::{apply_batch, apply_one};
use cqrs_core::master::MasterTable;
use cqrs_core::prelude::*;
use cqrs_core::replica::{IgnoreReason, Outcome};
use cqrs_core::value::CqrsValue;
use cqrs_core::{Message, SignalType, registry};
use serde_json::json;

use super::*;

/// The outbox's messages, parsed, and the outbox emptied.
fn drain<C: CqrsConnection>(master: &mut C) -> Vec<Message> {
    let messages = outbox(master).iter().map(|(_, b)| message(b)).collect();
    clear_outbox(master);
    messages
}

fn revision(m: &Message) -> i64 {
    m.instance_data["cqrs_revision"].as_i64().unwrap()
}

/// A row deleted and created again under the same key continues its revisions above the
/// DELETE's, through every insert path; every message says so.
pub fn revisions_never_restart<C>(master: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
    Counter: MasterStore<C>,
{
    let book = Book::new(1, "first life").cqrs_insert(master).unwrap();
    Book::cqrs_update(master, &1, |b| b.title = "first life, v1".into()).unwrap();
    Book::cqrs_update(master, &1, |b| b.title = "first life, v2".into()).unwrap();
    assert!(book.cqrs_delete(master).unwrap());
    let reborn = Book::new(1, "second life").cqrs_insert(master).unwrap();
    assert_eq!(reborn.cqrs_revision, 4, "one above the DELETE's revision 3");
    let messages = drain(master);
    let revisions: Vec<_> = messages
        .iter()
        .map(|m| (m.signal_type, revision(m)))
        .collect();
    assert_eq!(
        revisions,
        [
            (SignalType::Save, 0),
            (SignalType::Save, 1),
            (SignalType::Save, 2),
            (SignalType::Delete, 3),
            (SignalType::Save, 4),
        ]
    );
    assert!(messages.iter().all(|m| m.monotonic_revisions));

    // the caller's own insert statement (database-generated keys reuse keys too)
    Book::cqrs_delete_pk(master, &1).unwrap();
    let created = Book::cqrs_create(master, |conn| {
        conn.batch_execute(
            "INSERT INTO books (id, title, author, isbn, published, created, cqrs_revision, cqrs_updated)
             VALUES (1, 'third life', 'A', '1', TRUE, '2026-01-01 00:00:00', 0, '2026-01-01 00:00:00')",
        )?;
        Ok(1)
    })
    .unwrap();
    assert_eq!(created.cqrs_revision, 6, "DELETE at 5, re-created at 6");

    // bulk inserts: each key continues its own history, new keys start at 0
    Book::cqrs_delete_pk(master, &1).unwrap();
    let rows =
        Book::cqrs_bulk_insert(master, vec![Book::new(1, "bulk"), Book::new(2, "new")]).unwrap();
    assert_eq!(
        rows.iter().map(|b| b.cqrs_revision).collect::<Vec<_>>(),
        [8, 0]
    );
    // the record of a deleted key is gone once the key lives again
    assert!(
        master
            .deleted_revisions_take("book", &["1".to_owned()])
            .unwrap()
            .is_empty()
    );
    // a model that sends nothing keeps the same bookkeeping
    let counter = |value| Counter {
        id: 5,
        value,
        cqrs_revision: 0,
        cqrs_updated: Utc::now().naive_utc(),
    };
    counter(1)
        .cqrs_insert(master)
        .unwrap()
        .cqrs_delete(master)
        .unwrap();
    assert_eq!(counter(2).cqrs_insert(master).unwrap().cqrs_revision, 2);
    assert!(outbox(master).iter().all(|(key, _)| key != "counter"));
}

pub fn book_save(id: i32, title: &str, revision: i32, updated: DateTime<Utc>) -> Message {
    let data = json!({
        "id": id, "title": title, "author": "A", "isbn": "i", "published": true, "price": 1.5,
        "created": "2026-11-22 06:20:48.557649+00:00",
        "cqrs_revision": revision,
        "cqrs_updated": updated.to_cqrs(),
    });
    let mut m = Message::new(
        SignalType::Save,
        "book",
        data.as_object().unwrap().clone(),
        json!(id),
    );
    m.monotonic_revisions = true;
    m
}

pub fn book_delete(id: i32, revision: i32, updated: DateTime<Utc>) -> Message {
    let data = json!({"id": id, "cqrs_revision": revision, "cqrs_updated": updated.to_cqrs()});
    let mut m = Message::new(
        SignalType::Delete,
        "book",
        data.as_object().unwrap().clone(),
        json!(id),
    );
    m.monotonic_revisions = true;
    m
}

/// The clock cases of the adversarial run, from raw messages of a master whose revisions
/// never restart: each ends as the master did, one by one and in one batch.
pub fn revision_order_from_raw_messages<C>(sequential: &mut C, batched: &mut C)
where
    C: Registered,
    BookRef: ReplicaStore<C>,
{
    let t0 = Utc::now() - Duration::minutes(10);
    let t = |ms: i64| t0 + Duration::milliseconds(ms);
    let far = DateTime::parse_from_rfc3339("9999-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    use Outcome::{Created, Deleted, Ignored, Updated};
    let cases: Vec<(Message, Outcome)> = vec![
        // 1: a DELETE stamped 5 s before the row's last SAVE (a slower host) deletes it
        (book_save(1, "a", 0, t(10_000)), Created),
        (book_save(1, "a1", 1, t(10_001)), Updated),
        (book_delete(1, 2, t(5_000)), Deleted),
        // 2: a late pre-delete SAVE cannot overwrite the re-created row
        (book_save(2, "old", 0, t(0)), Created),
        (book_delete(2, 1, t(1)), Deleted),
        (book_save(2, "reborn", 2, t(2)), Created),
        (
            book_save(2, "old, late", 0, t(0)),
            Ignored(IgnoreReason::Stale),
        ),
        (book_delete(2, 1, t(1)), Ignored(IgnoreReason::StaleDelete)),
        // 3: a re-delivered rev 5 stamped by a fast host does not go back over rev 6
        (book_save(3, "v6", 6, t(100)), Created),
        (
            book_save(3, "v5 fast", 5, t(900_000)),
            Ignored(IgnoreReason::Stale),
        ),
        // 4: a row saved with cqrs_updated in year 9999 can still be deleted
        (book_save(4, "future", 0, far), Created),
        (book_delete(4, 1, t(5)), Deleted),
        // 5: re-created in the delete's microsecond, and on a clock that stepped back
        (book_save(5, "x", 0, t(50)), Created),
        (book_delete(5, 1, t(60)), Deleted),
        (book_save(5, "same microsecond", 2, t(60)), Created),
        (book_delete(5, 3, t(70)), Deleted),
        (book_save(5, "clock stepped back", 4, t(20)), Created),
        // 6: an old incarnation's SAVE arriving after the tombstone of a later delete
        (book_delete(6, 7, t(1)), Outcome::AlreadyAbsent),
        (
            book_save(6, "older", 6, t(999_999)),
            Ignored(IgnoreReason::Deleted),
        ),
    ];
    let ops = registry::replica::<C>("book").unwrap().ops;
    for (m, expected) in &cases {
        assert_eq!(
            apply_one(sequential, ops, m, false).unwrap(),
            *expected,
            "{}",
            m.to_json()
        );
    }
    let messages: Vec<Message> = cases.iter().map(|(m, _)| m.clone()).collect();
    let outcomes: Vec<Outcome> = apply_in_batches(batched, ops, &messages, || messages.len())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let expected: Vec<Outcome> = cases.iter().map(|(_, o)| *o).collect();
    assert_eq!(outcomes, expected, "the batch decides as one by one");
    for conn in [sequential, batched] {
        let names: BTreeMap<i32, String> = (1..=6)
            .filter_map(|id| BookRef::cqrs_get(conn, &id).unwrap())
            .map(|b| (b.id, b.name))
            .collect();
        assert_eq!(
            names,
            BTreeMap::from([
                (2, "reborn".to_owned()),
                (3, "v6".to_owned()),
                (5, "clock stepped back".to_owned()),
            ])
        );
    }
}

/// Property: random creates, updates, deletes and re-creates on a real master, stamped by two
/// hosts whose clocks disagree by seconds, delivered shuffled and duplicated, end on the
/// replica exactly as on the master, applied one by one and in batches.
pub fn skewed_masters_converge<C>(master: &mut C, sequential: &mut C, batched: &mut C)
where
    C: Registered,
    Book: MasterStore<C>,
    BookRef: ReplicaStore<C>,
{
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let ops = registry::replica::<C>("book").unwrap().ops;
    for round in 0..4 {
        let keys = 1..=30;
        let mut messages = Vec::new();
        for step in 0..400 {
            let id = i32::try_from(1 + next(30)).unwrap();
            let exists = Book::db_get(master, &id, false).unwrap().is_some();
            match (exists, next(4)) {
                (false, _) => {
                    Book::new(id, &format!("{id} born at {round}.{step}"))
                        .cqrs_insert(master)
                        .unwrap();
                }
                (true, 0) => {
                    Book::cqrs_delete_pk(master, &id).unwrap();
                }
                (true, _) => {
                    Book::cqrs_update(master, &id, |b| b.title = format!("{id} at {round}.{step}"))
                        .unwrap();
                }
            }
            // host A is 5 s behind host B; each write lands on either, with jitter
            let skew = if next(2) == 0 { -5_000 } else { 0 };
            let jitter = i64::try_from(next(3_000)).unwrap();
            for mut m in drain(master) {
                let at = Utc::now() + Duration::milliseconds(skew + jitter);
                m.instance_data.insert("cqrs_updated".into(), at.to_cqrs());
                messages.push(m);
            }
        }
        // delivery: shuffled, with redeliveries
        for i in (1..messages.len()).rev() {
            let j = usize::try_from(next(u64::try_from(i + 1).unwrap())).unwrap();
            messages.swap(i, j);
        }
        for _ in 0..60 {
            let i = usize::try_from(next(messages.len() as u64)).unwrap();
            messages.push(messages[i].clone());
        }
        for m in &messages {
            apply_one(sequential, ops, m, false).unwrap();
        }
        for outcome in apply_in_batches(batched, ops, &messages, || {
            usize::try_from(1 + next(80)).unwrap()
        }) {
            outcome.unwrap();
        }
        let expected: Vec<(i32, String, i32)> = keys
            .clone()
            .filter_map(|id| Book::db_get(master, &id, false).unwrap())
            .map(|b| (b.id, b.title, b.cqrs_revision))
            .collect();
        assert!(expected.len() > 5, "round {round}: a live table");
        for (name, conn) in [("one by one", &mut *sequential), ("batched", &mut *batched)] {
            let got: Vec<(i32, String, i32)> = keys
                .clone()
                .filter_map(|id| BookRef::cqrs_get(conn, &id).unwrap())
                .map(|b| (b.id, b.name, b.cqrs_revision))
                .collect();
            assert_eq!(
                got, expected,
                "round {round}, {name}: replica equals master"
            );
        }
    }
}

/// A master history on a few hot rows (updates, deletes, re-creations), as its messages.
pub fn hot_rows_history<C>(master: &mut C, keys: i32, writes: usize) -> Vec<Message>
where
    C: Registered,
    Book: MasterStore<C>,
{
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for step in 0..writes {
        let id = i32::try_from(1 + next(u64::try_from(keys).unwrap())).unwrap();
        let exists = Book::db_get(master, &id, false).unwrap().is_some();
        match (exists, next(10)) {
            (false, _) => drop(Book::new(id, &format!("{id} born {step}")).cqrs_insert(master)),
            (true, 0) => drop(Book::cqrs_delete_pk(master, &id)),
            (true, _) => drop(Book::cqrs_update(master, &id, |b| {
                b.title = format!("{id} at {step}");
            })),
        }
    }
    drain(master)
}

/// The master's rows, as the replica must hold them: (id, title, revision).
pub fn master_state<C>(master: &mut C, keys: i32) -> Vec<(i32, String, i32)>
where
    C: Registered,
    Book: MasterStore<C>,
{
    (1..=keys)
        .filter_map(|id| Book::db_get(master, &id, false).unwrap())
        .map(|b| (b.id, b.title, b.cqrs_revision))
        .collect()
}

/// The replica's rows: (id, name, revision).
pub fn replica_state<C>(replica: &mut C, keys: i32) -> Vec<(i32, String, i32)>
where
    C: Registered,
    BookRef: ReplicaStore<C>,
{
    (1..=keys)
        .filter_map(|id| BookRef::cqrs_get(replica, &id).unwrap())
        .map(|b| (b.id, b.name, b.cqrs_revision))
        .collect()
}

/// Two consumers of one queue (two processes: two connections, two threads) take batches of
/// the same rows' messages in turn and apply them at the same time; the replica ends equal to
/// the master. Without a row lock, one could read a row's version before the other's newer
/// write committed, then write its older version over it.
pub fn two_consumers_converge<C>(master: &mut C, connect: impl Fn() -> C + Sync)
where
    C: Registered,
    Book: MasterStore<C>,
    BookRef: ReplicaStore<C>,
{
    const KEYS: i32 = 4;
    let messages = hot_rows_history(master, KEYS, 3_000);
    let queue = std::sync::Mutex::new(std::collections::VecDeque::from(messages));
    let ops = registry::replica::<C>("book").unwrap().ops;
    let retried = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for worker in 0..2_u64 {
            let (queue, connect, retried) = (&queue, &connect, &retried);
            scope.spawn(move || {
                let mut conn = connect();
                let mut size = 1 + worker;
                loop {
                    let batch: Vec<Message> = {
                        let mut queue = queue.lock().unwrap();
                        let n = usize::try_from(size).unwrap().min(queue.len());
                        queue.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        break;
                    }
                    size = 1 + (size * 7 + worker) % 23;
                    let items = items(ops, &batch);
                    match apply_batch(&mut conn, &items) {
                        Ok(results) => {
                            // a failed message goes back to the queue, as a retry does
                            for (m, r) in batch.iter().zip(results) {
                                if let Err(error) = r {
                                    eprintln!("retried: {error}");
                                    retried.fetch_add(1, SeqCst);
                                    queue.lock().unwrap().push_back(m.clone());
                                }
                            }
                        }
                        Err(error) => {
                            eprintln!("batch kept: {error}");
                            retried.fetch_add(1, SeqCst);
                            queue.lock().unwrap().extend(batch.iter().cloned());
                        }
                    }
                }
            });
        }
    });
    assert_eq!(
        retried.load(SeqCst),
        0,
        "locked in one order, two consumers never deadlock"
    );
    let mut replica = connect();
    assert_eq!(
        replica_state(&mut replica, KEYS),
        master_state(master, KEYS)
    );
}
