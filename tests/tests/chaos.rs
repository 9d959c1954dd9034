//! Failures that must lose nothing: the broker stopped while the master writes, a consumer
//! killed with SIGKILL in the middle of a stream. The broker restart runs on a second private
//! node (scripts/test starts it: AMQP_ADDR_CHAOS, RABBITMQ_CHAOS_NODE).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]
#![allow(
    clippy::similar_names,
    reason = "the names of a scenario's pairs (before/after, master/replica)"
)]

mod common;

use cqrs_core::db::OutboxReader;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::Book;
use common::books::{rows_master, rows_replica, sqlite_db, wait_equal};
use common::rabbit;
use common::service::{self, Killable};
use cqrs_core::prelude::*;
use cqrs_rabbit::{BrokerUrl, Consumer, Relay};
use diesel::SqliteConnection;

/// The tests that stop or freeze the chaos node take turns.
static CHAOS_NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A consumer of `replica` and a relay of `master`, running.
struct Pipeline {
    consumer_metrics: std::sync::Arc<cqrs_rabbit::ConsumerMetrics>,
    relay_metrics: std::sync::Arc<cqrs_rabbit::RelayMetrics>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), cqrs_rabbit::Error>>>,
}

impl Pipeline {
    async fn start(config: &cqrs_rabbit::Config, master: &str, replica: &str) -> Self {
        let consumer = Consumer::<SqliteConnection>::new(config.clone(), replica);
        consumer.check().await.unwrap();
        let relay = Relay::<SqliteConnection>::new(config.clone(), master);
        let (consumer_metrics, relay_metrics) = (consumer.metrics(), relay.metrics());
        let (stop_consumer, consumer_stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
        let tasks = vec![
            tokio::spawn(consumer.run(async move {
                let _ = consumer_stopped.await;
            })),
            tokio::spawn(relay.run(async move {
                let _ = relay_stopped.await;
            })),
        ];
        Self {
            consumer_metrics,
            relay_metrics,
            stops: vec![stop_consumer, stop_relay],
            tasks,
        }
    }

    async fn stop(self) {
        for stop in self.stops {
            stop.send(()).unwrap();
        }
        for task in self.tasks {
            task.await.unwrap().unwrap();
        }
    }
}

/// A config on the chaos node.
fn chaos_config(name: &str) -> cqrs_rabbit::Config {
    let mut config = rabbit::config(name);
    config.url =
        BrokerUrl::parse(&std::env::var("AMQP_ADDR_CHAOS").expect("AMQP_ADDR_CHAOS")).unwrap();
    config
}

/// After a broker outage: the replica ends equal, the outbox drains, the relay and the
/// consumer both saw the outage and every write was published at least once.
async fn recovered(pipeline: &Pipeline, master: &str, replica: &str, writes: u64) {
    wait_equal(master, replica, Duration::from_mins(2)).await;
    let mut conn = SqliteConnection::cqrs_connect(master).unwrap();
    let start = Instant::now();
    while conn.outbox_pending().unwrap() > 0 {
        assert!(
            start.elapsed() < Duration::from_mins(1),
            "the outbox drains"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (relay, consumer) = (&pipeline.relay_metrics, &pipeline.consumer_metrics);
    assert!(
        relay.reconnects.load(Ordering::Relaxed) > 0,
        "the relay saw the outage"
    );
    assert!(
        consumer.reconnects.load(Ordering::Relaxed) > 0,
        "the consumer saw the outage"
    );
    assert!(
        relay.published.load(Ordering::Relaxed) >= writes,
        "every write was published at least once"
    );
}

/// The broker stops while the master keeps writing and the relay runs; it comes back: every
/// message arrives, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the chaos RabbitMQ node (AMQP_ADDR_CHAOS, RABBITMQ_CHAOS_NODE): run scripts/test"]
async fn broker_restart_loses_nothing() {
    common::logs();
    let _node = CHAOS_NODE.lock().await;
    let node = std::env::var("RABBITMQ_CHAOS_NODE").expect("RABBITMQ_CHAOS_NODE");
    let config = chaos_config("chaos");
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");

    let pipeline = Pipeline::start(&config, &master, &replica).await;
    let (consumer_metrics, relay_metrics) = (
        std::sync::Arc::clone(&pipeline.consumer_metrics),
        std::sync::Arc::clone(&pipeline.relay_metrics),
    );

    // the master writes for ~6 s, creating and updating rows, whatever the broker does
    let writer_url = master.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::cqrs_connect(&writer_url).unwrap();
        let start = Instant::now();
        let mut writes = 0;
        let mut id = 0;
        while start.elapsed() < Duration::from_secs(6) {
            id += 1;
            Book::new(id, &format!("Book {id}"))
                .cqrs_insert(&mut conn)
                .unwrap();
            if id > 3 {
                Book::cqrs_update(&mut conn, &(id - 3), |b| b.title.push('+')).unwrap();
                writes += 1;
            }
            writes += 1;
            std::thread::sleep(Duration::from_millis(4));
        }
        writes
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let published_before = relay_metrics.published.load(Ordering::Relaxed);
    assert!(
        published_before > 0,
        "the relay published before the outage"
    );
    common::rabbit::rabbitmqctl(&node, "stop_app");
    tokio::time::sleep(Duration::from_secs(3)).await;
    common::rabbit::rabbitmqctl(&node, "start_app");
    let writes = writer.await.unwrap();

    recovered(&pipeline, &master, &replica, writes).await;
    eprintln!(
        "broker restart: {writes} writes, {} published, {} handled by the consumer",
        relay_metrics.published.load(Ordering::Relaxed),
        consumer_metrics.handled()
    );
    pipeline.stop().await;
}

/// A frozen broker (SIGSTOP: the process holds its sockets and answers nothing) is detected
/// by the heartbeat within about 20 s, the relay and the consumer say so and reconnect, and
/// once it thaws everything written meanwhile arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the chaos RabbitMQ node (RABBITMQ_CHAOS_PID_FILE): run scripts/test"]
async fn frozen_broker_is_detected() {
    common::logs();
    let _node = CHAOS_NODE.lock().await;
    let pid_file = std::env::var("RABBITMQ_CHAOS_PID_FILE").expect("RABBITMQ_CHAOS_PID_FILE");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success(),
            "kill {sig}"
        );
    };
    let config = chaos_config("frozen");
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");
    let pipeline = Pipeline::start(&config, &master, &replica).await;
    let (consumer_metrics, relay_metrics) = (
        std::sync::Arc::clone(&pipeline.consumer_metrics),
        std::sync::Arc::clone(&pipeline.relay_metrics),
    );
    let mut conn = SqliteConnection::cqrs_connect(&master).unwrap();
    Book::new(1, "before").cqrs_insert(&mut conn).unwrap();
    wait_equal(&master, &replica, Duration::from_secs(30)).await;

    signal("-STOP");
    let frozen = Instant::now();
    for id in 2..=20 {
        Book::new(id, "while frozen")
            .cqrs_insert(&mut conn)
            .unwrap();
    }
    let detected = loop {
        if consumer_metrics.reconnects.load(Ordering::Relaxed) > 0
            && relay_metrics.reconnects.load(Ordering::Relaxed) > 0
        {
            break frozen.elapsed();
        }
        if frozen.elapsed() > Duration::from_mins(1) {
            signal("-CONT");
            panic!("a broker frozen for 60 s went unnoticed");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    signal("-CONT");
    eprintln!("frozen broker detected by relay and consumer after {detected:?}");
    wait_equal(&master, &replica, Duration::from_mins(2)).await;
    pipeline.stop().await;
}

fn consume_process(config: &cqrs_rabbit::Config, replica: &str) -> Killable {
    service::spawn(config, "consume", replica, &[])
}

/// The relay process SIGKILLed and restarted over and over while the master writes 3,000
/// times: every write arrives (some twice, none lost), and the replica ends equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn relay_sigkill_loop_loses_nothing() {
    common::logs();
    let config = rabbit::config("relaykill");
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");
    let consumer = Consumer::<SqliteConnection>::new(config.clone(), &replica);
    consumer.check().await.unwrap();
    let (stop_consumer, consumer_stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer_task = tokio::spawn(consumer.run(async move {
        let _ = consumer_stopped.await;
    }));
    let writer_url = master.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::cqrs_connect(&writer_url).unwrap();
        for i in 1..=1_000 {
            Book::new(i, "v0").cqrs_insert(&mut conn).unwrap();
            Book::cqrs_update(&mut conn, &i, |b| b.title = "v1".into()).unwrap();
            if i % 3 == 0 {
                Book::cqrs_delete_pk(&mut conn, &i).unwrap();
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    let mut kills = 0;
    while !writer.is_finished() {
        let relay = service::spawn(&config, "relay", &master, &[]);
        let pause = Duration::from_millis(150 + (kills * 37) % 300);
        tokio::time::sleep(pause).await;
        drop(relay); // SIGKILL
        kills += 1;
    }
    writer.await.unwrap();
    let relay = service::spawn(&config, "relay", &master, &[]);
    wait_equal(&master, &replica, Duration::from_mins(2)).await;
    drop(relay);
    eprintln!("relay SIGKILLed {kills} times during 3,000 writes: replica equal");
    assert!(kills >= 8, "the relay was killed while the master wrote");
    stop_consumer.send(()).unwrap();
    consumer_task.await.unwrap().unwrap();
}

/// A consumer killed with SIGKILL in the middle of 10,000 updates, then restarted: the replica
/// ends identical to the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn consumer_sigkill_mid_stream() {
    common::logs();
    let config = rabbit::config("sigkill");
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");
    let mut consumer = consume_process(&config, &replica);
    // wait for the consumer, so that nothing is published before its queue is bound
    rabbit::wait_for_consumer(config.queue.as_ref().unwrap()).await;
    let (conn, _) = rabbit::channel().await;
    let relay = Relay::<SqliteConnection>::new(config.clone(), &master);
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay_task = tokio::spawn(relay.run(async move {
        let _ = relay_stopped.await;
    }));

    // 100 rows, then 10,000 updates (100 per row), in transactions of 100 updates
    let writer_url = master.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::cqrs_connect(&writer_url).unwrap();
        Book::cqrs_bulk_insert(&mut conn, (1..=100).map(|i| Book::new(i, "v0")).collect()).unwrap();
        for round in 1..=100 {
            cqrs_core::transaction(&mut conn, |conn| {
                for id in 1..=100 {
                    Book::cqrs_update(conn, &id, |b| b.title = format!("v{round}"))?;
                }
                Ok::<_, cqrs_core::Error>(())
            })
            .unwrap();
        }
    })
    .await
    .unwrap();

    // kill the consumer once it is well into the stream
    let start = Instant::now();
    loop {
        let done: i32 = rows_replica(&replica).iter().map(|r| r.2).sum();
        if done > 2_000 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_mins(2),
            "the consumer makes progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.0.kill().unwrap(); // SIGKILL
    consumer.0.wait().unwrap();
    let applied: i32 = rows_replica(&replica).iter().map(|r| r.2).sum();
    assert!(
        applied < 10_000,
        "killed in the middle ({applied} revisions applied)"
    );
    let _consumer = consume_process(&config, &replica);
    wait_equal(&master, &replica, Duration::from_mins(3)).await;
    assert!(
        rows_master(&master)
            .iter()
            .all(|r| r.1 == "v100" && r.2 == 100)
    );
    stop_relay.send(()).unwrap();
    relay_task.await.unwrap().unwrap();
    conn.close(200, "".into()).await.unwrap();
}

/// The replica's database becomes unreachable (its role may not log in, its sessions are
/// killed) while messages arrive: nothing is acknowledged or dead-lettered meanwhile, no retry
/// is spent, and everything is applied once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR) and PostgreSQL (DATABASE_URL_PG): run scripts/test"]
async fn database_outage_keeps_messages() {
    use diesel::connection::SimpleConnection;
    common::logs();
    let base = common::pg_base_url().expect("DATABASE_URL_PG");
    let role = common::unique("outage");
    let mut admin = <diesel::PgConnection as diesel::Connection>::establish(&base).unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {role} OWNER {role}"))
        .unwrap();
    let (prefix, _) = base.split_once("://").unwrap();
    let host = base.rsplit_once('@').map_or("127.0.0.1/x", |(_, h)| h);
    let host = host.rsplit_once('/').map_or(host, |(h, _)| h);
    let url = format!("{prefix}://{role}@{host}/{role}");
    {
        let mut conn = diesel::PgConnection::cqrs_connect(&url).unwrap();
        conn.cqrs_setup().unwrap();
        conn.batch_execute(common::PG_DDL).unwrap();
    }
    let config = rabbit::config("dboutage");
    let consumer = Consumer::<diesel::PgConnection>::new(config.clone(), &url);
    consumer.check().await.unwrap();
    let metrics = consumer.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    rabbit::wait_for_consumer(config.queue.as_ref().unwrap()).await;
    let (conn, channel) = rabbit::channel().await;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let publish = |id: usize| {
        let body = serde_json::json!({
            "signal_type": "SAVE", "cqrs_id": "author",
            "instance_data": {"id": format!("a{id}"), "name": format!("Author {id}"), "cqrs_revision": 0,
                "cqrs_updated": "2026-11-22 06:20:48+00:00"},
            "instance_pk": format!("a{id}"), "expires": null
        })
        .to_string();
        let channel = channel.clone();
        let exchange = config.exchange.clone();
        async move {
            cqrs_rabbit::broker::publish_confirmed(
                &channel,
                &exchange,
                "author",
                body.as_bytes(),
                None,
                None,
            )
            .await
            .unwrap();
        }
    };
    for id in 0..10 {
        publish(id).await;
    }
    let start = Instant::now();
    while metrics.handled() < 10 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first messages are applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the outage
    admin
        .batch_execute(&format!(
            "ALTER ROLE {role} NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';"
        ))
        .unwrap();
    for id in 10..30 {
        publish(id).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        metrics.handled(),
        10,
        "nothing is acknowledged while the database is down"
    );
    assert_eq!(
        metrics.retried.load(Ordering::Relaxed),
        0,
        "an outage spends no retry"
    );
    // back
    admin
        .batch_execute(&format!("ALTER ROLE {role} LOGIN;"))
        .unwrap();
    let start = Instant::now();
    while metrics.handled() < 30 {
        assert!(
            start.elapsed() < Duration::from_mins(1),
            "everything is applied after the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metrics.dead_lettered.load(Ordering::Relaxed), 0);
    let mut check = diesel::PgConnection::cqrs_connect(&url).unwrap();
    assert_eq!(common::AuthorRef::cqrs_count(&mut check).unwrap(), 30);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    conn.close(200, "".into()).await.unwrap();
}

/// Starts the chaos node again, on its port, after it was killed (scripts/lib/services.sh).
fn restart_chaos_node(pid_file: &std::path::Path) {
    let dir = pid_file.parent().unwrap();
    let port = std::fs::read_to_string(dir.join("port")).unwrap();
    let node = std::env::var("RABBITMQ_CHAOS_NODE").expect("RABBITMQ_CHAOS_NODE");
    let name = node.split('@').next().unwrap();
    let services = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lib/services.sh");
    let status = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$0" && start_rabbitmq "$1" "$2""#)
        .arg(services)
        .arg(name)
        .arg(port.trim())
        .env("SERVICES_DIR", dir.parent().unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "the chaos node starts again");
}

/// RabbitMQ's own process SIGKILLed (no clean shutdown: what it confirmed must be on disk)
/// while the master writes and the relay and the consumer run; the node is started again:
/// the replica ends equal to the master and the outbox drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the chaos RabbitMQ node (RABBITMQ_CHAOS_PID_FILE): run scripts/test"]
async fn broker_sigkill_mid_stream_loses_nothing() {
    common::logs();
    let _node = CHAOS_NODE.lock().await;
    let pid_file =
        std::path::PathBuf::from(std::env::var("RABBITMQ_CHAOS_PID_FILE").expect("pid file"));
    let config = chaos_config("brokerkill");
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");
    let pipeline = Pipeline::start(&config, &master, &replica).await;
    let (consumer_metrics, relay_metrics) = (
        std::sync::Arc::clone(&pipeline.consumer_metrics),
        std::sync::Arc::clone(&pipeline.relay_metrics),
    );

    // the master writes for ~8 s: creates, updates, deletes and re-creates
    let writer_url = master.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::cqrs_connect(&writer_url).unwrap();
        let start = Instant::now();
        let mut writes = 0_u64;
        let mut id = 0;
        while start.elapsed() < Duration::from_secs(8) {
            id += 1;
            let key = id % 400 + 1;
            if id <= 400 {
                Book::new(key, "v0").cqrs_insert(&mut conn).unwrap();
            } else if id % 7 == 0 {
                Book::cqrs_delete_pk(&mut conn, &key).unwrap();
                Book::new(key, &format!("again {id}"))
                    .cqrs_insert(&mut conn)
                    .unwrap();
                writes += 1;
            } else {
                Book::cqrs_update(&mut conn, &key, |b| b.title = format!("v{id}")).unwrap();
            }
            writes += 1;
            std::thread::sleep(Duration::from_millis(3));
        }
        writes
    });
    // kill it while messages are in flight both ways
    let start = Instant::now();
    while consumer_metrics.handled() < 300 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the pipeline runs before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let killed = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -KILL {pid}");
    let handled_at_kill = consumer_metrics.handled();
    tokio::time::sleep(Duration::from_secs(2)).await;
    restart_chaos_node(&pid_file);
    let writes = writer.await.unwrap();

    recovered(&pipeline, &master, &replica, writes).await;
    eprintln!(
        "broker SIGKILL: {writes} writes, killed after {handled_at_kill} applied, {} published, \
         {} handled: replica equal",
        relay_metrics.published.load(Ordering::Relaxed),
        consumer_metrics.handled()
    );
    pipeline.stop().await;
}

/// One relay per SQLite master file, enforced: while the pipeline's relay runs, a second one
/// on the same file is refused at once (it would publish the messages twice: a SQLite relay
/// takes no row lock); the running relay carries the writes to an equal replica, and once it
/// stops, another relay may start on the file and publishes what was written meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn two_relays_on_one_sqlite_file() {
    common::logs();
    let config = rabbit::config("tworelays");
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");
    let pipeline = Pipeline::start(&config, &master, &replica).await;
    // once the pipeline's relay has published a first write, it holds the lock: a second
    // relay is refused, one-shot or running (trying earlier could take the lock from it)
    {
        let mut conn = SqliteConnection::cqrs_connect(&master).unwrap();
        Book::new(1, "v0").cqrs_insert(&mut conn).unwrap();
    }
    wait_equal(&master, &replica, Duration::from_mins(1)).await;
    let second = Relay::<SqliteConnection>::new(config.clone(), &master);
    let refused = second.drain().await.unwrap_err();
    assert!(
        matches!(refused, cqrs_rabbit::Error::RelayRunning { .. }),
        "{refused}"
    );
    let second = Relay::<SqliteConnection>::new(config.clone(), &master);
    assert!(matches!(
        second.run(std::future::pending::<()>()).await,
        Err(cqrs_rabbit::Error::RelayRunning { .. })
    ));
    assert!(
        refused
            .to_string()
            .contains("another relay already publishes"),
        "{refused}"
    );
    let writer_url = master.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::cqrs_connect(&writer_url).unwrap();
        // book 1 is written: 199 more creates and 400 updates, 600 writes in all
        for id in 2..=200 {
            Book::new(id, "v0").cqrs_insert(&mut conn).unwrap();
        }
        for i in 201..=600 {
            let key = i % 200 + 1;
            Book::cqrs_update(&mut conn, &key, |b| b.title = format!("v{i}")).unwrap();
        }
    });
    writer.await.unwrap();
    wait_equal(&master, &replica, Duration::from_mins(2)).await;
    let published = pipeline.relay_metrics.published.load(Ordering::Relaxed);
    assert_eq!(published, 600, "one relay: each message once");
    pipeline.stop().await;
    // the lock went with the stopped relay: another one publishes what came meanwhile
    {
        let mut conn = SqliteConnection::cqrs_connect(&master).unwrap();
        Book::cqrs_update(&mut conn, &1, |b| b.title = "after the takeover".into()).unwrap();
    }
    let next = Relay::<SqliteConnection>::new(config.clone(), &master);
    assert_eq!(next.drain().await.unwrap(), 1);
}
