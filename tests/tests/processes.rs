//! Scaling out by processes: several relay processes on one PostgreSQL outbox, several
//! consumer processes on one replica queue (both backends), two master processes writing one
//! table. Each ends with the replica equal to the master; the relays' test also reads the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use cqrs_core::db::OutboxReader;
use std::collections::HashMap;
use std::time::Duration;

use common::Book;
use common::books::{Running, pg_db, sqlite_db, wait_equal_in};
use common::rabbit::{self, eventually};
use common::service::{self, Killable};
use cqrs_core::prelude::*;
use cqrs_rabbit::{Config, Relay};
use diesel::{PgConnection, RunQueryDsl, SqliteConnection};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

const WAIT: Duration = Duration::from_mins(2);

/// A free loopback address for a process's metrics endpoint.
fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// What a relay process says it published (`cqrs_relay_published_total`, every label).
fn published(addr: std::net::SocketAddr) -> f64 {
    let (status, body) = common::http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|line| line.starts_with("cqrs_relay_published_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Backends of this database that wait on `LISTEN cqrs_outbox`.
fn listeners(url: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = PgConnection::cqrs_connect(url).unwrap();
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND query = 'LISTEN cqrs_outbox'",
    )
    .get_result::<Count>(&mut conn)
    .unwrap()
    .n
}

/// A master's writes to books `first..first + rows`: created, renamed `rounds` times (a
/// transaction per round of 10 rows), every 4th deleted and created again. Returns how many
/// messages it wrote.
fn script<C>(conn: &mut C, first: i32, rows: i32, rounds: usize) -> usize
where
    C: cqrs_core::Registered,
    Book: MasterStore<C>,
{
    let ids: Vec<i32> = (first..first + rows).collect();
    let mut messages = 0;
    for chunk in ids.chunks(10) {
        let books = chunk.iter().map(|&id| Book::new(id, "v0")).collect();
        messages += Book::cqrs_bulk_insert(conn, books).unwrap().len();
    }
    for round in 1..=rounds {
        for chunk in ids.chunks(10) {
            cqrs_core::transaction(conn, |conn| {
                for id in chunk {
                    Book::cqrs_update(conn, id, |b| b.title = format!("v{round}"))?;
                }
                Ok::<_, cqrs_core::Error>(())
            })
            .unwrap();
            messages += chunk.len();
        }
    }
    for id in ids.iter().step_by(4) {
        assert!(Book::cqrs_delete_pk(conn, id).unwrap());
        let _ = Book::new(*id, "again").cqrs_insert(conn).unwrap();
        messages += 2;
    }
    messages
}

/// Three relay processes on one PostgreSQL outbox, each woken only by `NOTIFY` from another
/// process's commits (their poll is 10 minutes): they share the work, and every row's
/// messages reach the broker in revision order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ and PostgreSQL: run scripts/test"]
async fn relay_processes_share_the_outbox_in_row_order() {
    common::logs();
    // a database of its own: the notifications of other tests would wake these relays
    let url = common::pg_database_url();
    {
        let mut conn = PgConnection::cqrs_connect(&url).unwrap();
        conn.cqrs_setup().unwrap();
        diesel::connection::SimpleConnection::batch_execute(&mut conn, common::PG_DDL).unwrap();
    }
    let config = rabbit::config("relays3");
    // a queue that sees the wire in order
    let (_broker, channel) = rabbit::channel().await;
    let observed_queue = format!("observe_{}", config.exchange);
    channel
        .exchange_declare(
            config.exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            observed_queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            observed_queue.as_str().into(),
            config.exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
    let relays: Vec<Killable> = addrs
        .iter()
        .map(|addr| {
            service::spawn(
                &config,
                "relay",
                &url,
                &[
                    ("CQRS_RELAY_POLL_MS", "600000"),
                    ("CQRS_METRICS_ADDR", &addr.to_string()),
                ],
            )
        })
        .collect();
    eventually(WAIT, "three relays listening", || listeners(&url) == 3).await;

    // two writers, 100 rows each: 4,000 updates in transactions of 10 rows
    let writers: Vec<_> = [1, 1001]
        .into_iter()
        .map(|first| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut conn = PgConnection::cqrs_connect(&url).unwrap();
                script(&mut conn, first, 100, 20)
            })
        })
        .collect();
    let expected: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();

    let mut wire: Vec<(String, i64)> = Vec::new();
    let start = std::time::Instant::now();
    while wire.len() < expected {
        assert!(
            start.elapsed() < WAIT,
            "{} of {expected} messages on the wire after {WAIT:?}",
            wire.len()
        );
        for (_, body, _) in rabbit::drain(&channel, &observed_queue).await {
            let message: serde_json::Value = serde_json::from_slice(&body).unwrap();
            wire.push((
                message["instance_pk"].to_string(),
                message["instance_data"]["cqrs_revision"].as_i64().unwrap(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let late = rabbit::drain(&channel, &observed_queue).await.len();
    assert_eq!((wire.len(), late), (expected, 0), "each message once");

    // per row, the revisions on the wire only go up
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (pk, revision) in &wire {
        if let Some(before) = last.insert(pk, *revision) {
            assert!(
                *revision > before,
                "row {pk}: revision {revision} after {before} on the wire"
            );
        }
    }
    // every relay did part of the work, and nothing was published twice
    let counts: Vec<f64> = addrs.iter().map(|addr| published(*addr)).collect();
    eprintln!("{expected} messages; published by each relay: {counts:?}");
    assert!(counts.iter().all(|n| *n > 0.0), "{counts:?}");
    #[allow(clippy::cast_precision_loss, reason = "a few thousand")]
    let total = expected as f64;
    assert!(
        (counts.iter().sum::<f64>() - total).abs() < 0.5,
        "{counts:?}"
    );
    let mut conn = PgConnection::cqrs_connect(&url).unwrap();
    assert_eq!(conn.outbox_pending().unwrap(), 0);
    drop(relays);
}

/// Three consumer processes of two workers each on one replica queue, while the master
/// creates, renames (20 times), deletes and creates again: the replica ends equal to the
/// master, five runs in a row.
async fn consumer_processes_converge<C>(name: &str, databases: impl Fn() -> (String, String))
where
    C: cqrs_core::Registered + Send + 'static,
    Book: MasterStore<C>,
    common::BookRef: ReplicaStore<C>,
{
    common::logs();
    for run in 1..=5 {
        let config: Config = rabbit::config(&format!("{name}{run}"));
        let (master, replica) = databases();
        let consumers: Vec<Killable> = (0..3)
            .map(|_| service::spawn(&config, "consume", &replica, &[]))
            .collect();
        rabbit::wait_for_consumer(config.queue.as_ref().unwrap()).await;
        let mut relay = Running::new();
        let relay_config = config.clone();
        let relay_master = master.clone();
        relay.spawn(move |shutdown| Relay::<C>::new(relay_config, relay_master).run(shutdown));
        let writer_url = master.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut conn = C::cqrs_connect(&writer_url).unwrap();
            script(&mut conn, 1, 60, 20)
        })
        .await
        .unwrap();
        wait_equal_in::<C>(&master, &replica, WAIT).await;
        eprintln!("run {run}: {written} messages through 3 consumer processes, replica equal");
        relay.stop().await;
        drop(consumers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn consumer_processes_converge_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicU32::new(0);
    consumer_processes_converge::<SqliteConnection>("consumers3", || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (
            sqlite_db(&dir, &format!("master{n}.sqlite3")),
            sqlite_db(&dir, &format!("replica{n}.sqlite3")),
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ and PostgreSQL: run scripts/test"]
async fn consumer_processes_converge_postgres() {
    consumer_processes_converge::<PgConnection>("consumers3pg", || (pg_db(), pg_db())).await;
}

/// Two master processes churn the same books on PostgreSQL (random creates, renames, deletes
/// and re-creations of 40 keys, racing each other), while a relay and a consumer run: the
/// replica ends equal to the master. Revisions come from the rows, never from a clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ and PostgreSQL: run scripts/test"]
async fn master_processes_converge() {
    common::logs();
    let config = rabbit::config("masters2");
    let (master, replica) = (pg_db(), pg_db());
    let mut running = Running::new();
    let consumer = cqrs_rabbit::Consumer::<PgConnection>::new(config.clone(), &replica);
    consumer.check().await.unwrap();
    running.spawn(move |shutdown| consumer.run(shutdown));
    let relay = Relay::<PgConnection>::new(config.clone(), &master);
    running.spawn(move |shutdown| relay.run(shutdown));
    let masters: Vec<_> = [11_u64, 29]
        .into_iter()
        .map(|seed| {
            std::process::Command::new(service::SERVICE)
                .args(["churn", "1", "40", "3000", &seed.to_string()])
                .env("DATABASE_URL", &master)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        masters
            .into_iter()
            .map(|m| m.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for output in &outputs {
        assert!(output.status.success());
    }
    eprintln!(
        "two masters (done, lost races): {:?}",
        outputs
            .iter()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .collect::<Vec<_>>()
    );
    wait_equal_in::<PgConnection>(&master, &replica, WAIT).await;
    running.stop().await;
}
