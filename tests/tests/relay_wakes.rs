//! The relay's wakes on PostgreSQL, in a test binary of its own: the in-process wake of
//! master writes is process-wide, so other tests' writes would wake this relay too.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::similar_names,
    reason = "the names of a scenario's pairs (before/after, master/replica)"
)]

mod common;

use cqrs_core::db::OutboxReader;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::Book;
use common::rabbit::{self, eventually};
use cqrs_core::prelude::*;
use cqrs_rabbit::Relay;
use diesel::PgConnection;

const WAIT: Duration = Duration::from_mins(1);

/// On PostgreSQL a commit of any process wakes the relay (`LISTEN`/`NOTIFY`, no poll), and
/// the notification of messages the relay took already costs it no look at the outbox: one
/// look per write here (three before: the write's wake, an immediate second look, the
/// notification's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ and PostgreSQL: run scripts/test"]
async fn postgres_notifications_wake_the_relay_once() {
    common::logs();
    // a database of its own: the other tests' notifications would wake this relay
    let url = common::pg_database_url();
    let mut conn = PgConnection::cqrs_connect(&url).unwrap();
    conn.cqrs_setup().unwrap();
    diesel::connection::SimpleConnection::batch_execute(&mut conn, common::PG_DDL).unwrap();
    let mut config = rabbit::config("pgwake");
    // no look at the outbox but when woken
    config.relay_poll = Some(Duration::from_mins(10));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = Relay::<PgConnection>::new(config, &url);
    let metrics = relay.metrics();
    let task = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    let looks = || metrics.looks.load(Ordering::Relaxed);
    // no replica queue: the messages go to the unroutable queue (kept, and counted there)
    let sent =
        || metrics.published.load(Ordering::Relaxed) + metrics.unroutable.load(Ordering::Relaxed);
    eventually(WAIT, "the relay's first look", || looks() >= 1).await;
    // a message written by "another process": no wake of this process, only the NOTIFY
    let message = cqrs_core::master::message(
        &mut conn,
        &Book::new(900, "raw"),
        cqrs_core::SignalType::Sync,
        None,
        None,
    )
    .unwrap();
    cqrs_core::outbox::enqueue(&mut conn, &[message]).unwrap();
    eventually(
        Duration::from_secs(20),
        "the notified message published",
        || sent() == 1,
    )
    .await;
    assert_eq!(conn.outbox_pending().unwrap(), 0);

    // writes of this process, spaced: each wakes the relay twice (here and by NOTIFY)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = looks();
    for id in 1..=20 {
        Book::new(id, "t").cqrs_insert(&mut conn).unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    eventually(WAIT, "20 messages published", || sent() == 21).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spent = looks() - before;
    assert!(
        (20..=24).contains(&spent),
        "{spent} looks at the outbox for 20 writes"
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
