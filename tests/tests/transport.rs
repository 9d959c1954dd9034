//! cqrs-rabbit against a real RabbitMQ (scripts/test starts it and sets AMQP_ADDR), with
//! SQLite and PostgreSQL databases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::books::{master_rows, pg_db, replica_rows, sqlite_db};
use common::rabbit::{self, eventually};
use common::{Author, AuthorRef, Book, BookRef, Review, ReviewRef};
use cqrs_core::master::MasterTable;
use cqrs_core::prelude::*;
use cqrs_rabbit::{Config, Consumer, Relay};
use diesel::{PgConnection, SqliteConnection};
use serde_json::json;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_mins(1);

/// A running relay or consumer and the switch that stops it.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), cqrs_rabbit::Error>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops within 30 s")
            .unwrap()
            .expect("stops cleanly");
    }
}

fn relay<C: CqrsConnection>(
    config: &Config,
    url: &str,
) -> (Running, std::sync::Arc<cqrs_rabbit::RelayMetrics>) {
    let (stop, stopped) = oneshot::channel();
    let relay = Relay::<C>::new(config.clone(), url);
    let metrics = relay.metrics();
    let task = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    (
        Running {
            stop: Some(stop),
            task,
        },
        metrics,
    )
}

async fn consumer<C: cqrs_core::Registered>(
    config: &Config,
    url: &str,
) -> (Running, std::sync::Arc<cqrs_rabbit::ConsumerMetrics>) {
    let consumer = Consumer::<C>::new(config.clone(), url);
    consumer.check().await.unwrap();
    let metrics = consumer.metrics();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    (
        Running {
            stop: Some(stop),
            task,
        },
        metrics,
    )
}

/// Master writes of every kind reach the replica through outbox, relay, broker and consumer.
async fn end_to_end<C: cqrs_core::Registered>(master_url: String, replica_url: String, name: &str)
where
    Book: MasterStore<C>,
    BookRef: ReplicaStore<C>,
    Author: MasterStore<C>,
    AuthorRef: ReplicaStore<C>,
    Review: MasterStore<C>,
    ReviewRef: ReplicaStore<C>,
{
    common::logs();
    let config = rabbit::config(name);
    let (consumer_task, consumer_metrics) = consumer::<C>(&config, &replica_url).await;
    let (relay_task, relay_metrics) = relay::<C>(&config, &master_url);
    let queue = config.queue.clone().unwrap();
    {
        let mut master = C::cqrs_connect(&master_url).unwrap();
        for i in 1..=40 {
            Book::new(i, &format!("Book {i}"))
                .cqrs_insert(&mut master)
                .unwrap();
        }
        for i in (1..=40).step_by(3) {
            Book::cqrs_update(&mut master, &i, |b| b.title.push_str(" (2nd ed.)")).unwrap();
        }
        let filters = Book::cqrs_filter(&json!({"id__gt": 30})).unwrap();
        let _ = Book::cqrs_bulk_update_filtered(&mut master, filters, |b| b.isbn = "bulk".into())
            .unwrap();
        for i in (1..=40).step_by(5) {
            Book::cqrs_delete_pk(&mut master, &i).unwrap();
        }
        let book = Book::db_get(&mut master, &2, false).unwrap().unwrap();
        book.cqrs_sync(&mut master, SyncTarget::Broadcast).unwrap();
        book.cqrs_sync(&mut master, SyncTarget::Queue(&queue))
            .unwrap();
        Author::new("a-1", "Lem").cqrs_insert(&mut master).unwrap();
        Review {
            review_id: 1,
            book_id: 2,
            stars: 5,
            cqrs_revision: 0,
            cqrs_updated: chrono::Utc::now().naive_utc(),
        }
        .cqrs_insert(&mut master)
        .unwrap();
    }
    let expected = master_rows::<C>(&master_url);
    assert_eq!(expected.len(), 32);
    eventually(WAIT, "the replica to equal the master", || {
        replica_rows::<C>(&replica_url) == expected
    })
    .await;
    eventually(WAIT, "the outbox to be empty", || {
        C::cqrs_connect(&master_url)
            .unwrap()
            .outbox_pending()
            .unwrap()
            == 0
    })
    .await;
    let mut replica = C::cqrs_connect(&replica_url).unwrap();
    eventually(WAIT, "the author and review", || {
        AuthorRef::cqrs_count(&mut replica).unwrap() == 1
            && ReviewRef::cqrs_count(&mut replica).unwrap() == 1
    })
    .await;
    // 40 creates + 14 updates + 10 bulk updates + 8 deletes + 2 syncs + author + review
    assert_eq!(relay_metrics.published.load(Ordering::Relaxed), 76);
    eventually(WAIT, "every message handled", || {
        consumer_metrics.handled() == 76
    })
    .await;
    assert_eq!(consumer_metrics.dead_lettered.load(Ordering::Relaxed), 0);
    relay_task.stop().await;
    consumer_task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn end_to_end_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");
    end_to_end::<SqliteConnection>(master, replica, "e2e_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR) and PostgreSQL (DATABASE_URL_PG): run scripts/test"]
async fn end_to_end_postgres() {
    end_to_end::<PgConnection>(pg_db(), pg_db(), "e2e_pg").await;
}

/// Two replica services on one exchange: a direct sync reaches one; `only_direct_syncs`
/// replicas ignore broadcast syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn direct_sync_reaches_only_its_replica() {
    common::logs();
    let dir = tempfile::tempdir().unwrap();
    let master_url = sqlite_db(&dir, "master.sqlite3");
    let a_url = sqlite_db(&dir, "a.sqlite3");
    let b_url = sqlite_db(&dir, "b.sqlite3");
    let config_a = rabbit::config("direct_a");
    let mut config_b = config_a.clone();
    config_b.queue = Some(format!("{}_b", config_a.queue.as_ref().unwrap()));
    let (a, metrics_a) = consumer::<SqliteConnection>(&config_a, &a_url).await;
    let (b, metrics_b) = consumer::<SqliteConnection>(&config_b, &b_url).await;
    let (relay_task, _) = relay::<SqliteConnection>(&config_a, &master_url);
    let mut master = SqliteConnection::cqrs_connect(&master_url).unwrap();
    // created on the master before the replicas subscribed to reviews: nothing sent yet
    let review = Review {
        review_id: 7,
        book_id: 1,
        stars: 3,
        cqrs_revision: 0,
        cqrs_updated: chrono::Utc::now().naive_utc(),
    };
    diesel::connection::SimpleConnection::batch_execute(
        &mut master,
        "INSERT INTO reviews VALUES (7, 1, 3, 0, '2026-01-01 00:00:00')",
    )
    .unwrap();
    let mut a_conn = SqliteConnection::cqrs_connect(&a_url).unwrap();
    let mut b_conn = SqliteConnection::cqrs_connect(&b_url).unwrap();
    // broadcast sync: ReviewRef is only_direct_syncs, so both ignore it
    review
        .cqrs_sync(&mut master, SyncTarget::Broadcast)
        .unwrap();
    eventually(WAIT, "the broadcast sync handled", || {
        metrics_a.ignored.load(Ordering::Relaxed) == 1
            && metrics_b.ignored.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(ReviewRef::cqrs_count(&mut a_conn).unwrap(), 0);
    // direct sync to A only
    review
        .cqrs_sync(&mut master, config_a.queue.as_deref().into())
        .unwrap();
    eventually(WAIT, "the direct sync applied on A", || {
        ReviewRef::cqrs_count(&mut a_conn).unwrap() == 1
    })
    .await;
    // a direct sync of a book to B only
    Book::new(1, "Dune").cqrs_insert(&mut master).unwrap();
    eventually(WAIT, "the book on both", || {
        BookRef::cqrs_count(&mut a_conn).unwrap() == 1
            && BookRef::cqrs_count(&mut b_conn).unwrap() == 1
    })
    .await;
    let before_a = metrics_a.handled();
    Book::db_get(&mut master, &1, false)
        .unwrap()
        .unwrap()
        .cqrs_sync(&mut master, config_b.queue.as_deref().into())
        .unwrap();
    let before_b = metrics_b.handled();
    eventually(WAIT, "B handled the direct sync", || {
        metrics_b.handled() > before_b
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metrics_a.handled(), before_a, "A never saw B's direct sync");
    assert_eq!(ReviewRef::cqrs_count(&mut b_conn).unwrap(), 0);
    relay_task.stop().await;
    a.stop().await;
    b.stop().await;
}

fn author_message(id: &str, name: &str) -> serde_json::Value {
    json!({
        "signal_type": "SAVE", "cqrs_id": "author",
        "instance_data": {"id": id, "name": name, "cqrs_revision": 0, "cqrs_updated": "2026-11-22 06:20:48.557649+00:00"},
        "previous_data": null, "instance_pk": id, "correlation_id": null, "retries": 0,
        "expires": "2999-01-01T00:00:00+00:00", "meta": {}
    })
}

async fn publish_raw(config: &Config, routing_key: &str, body: &[u8]) {
    let (conn, channel) = rabbit::channel().await;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    cqrs_rabbit::broker::publish_confirmed(
        &channel,
        &config.exchange,
        routing_key,
        body,
        None,
        None,
    )
    .await
    .unwrap();
    conn.close(200, "".into()).await.unwrap();
}

/// A hook that fails twice then succeeds is applied after two retries; one that always fails
/// is dead-lettered after max retries; a permanent error is dead-lettered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn retries_then_dead_letters() {
    common::logs();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir, "replica.sqlite3");
    let mut config = rabbit::config("retries");
    config.max_retries = Some(3);
    config.retry_delay = Duration::from_millis(100);
    let (task, metrics) = consumer::<SqliteConnection>(&config, &url).await;
    publish_raw(
        &config,
        "author",
        author_message("f", "flaky2 Stanislaw")
            .to_string()
            .as_bytes(),
    )
    .await;
    let mut conn = SqliteConnection::cqrs_connect(&url).unwrap();
    eventually(WAIT, "the flaky author applied", || {
        AuthorRef::cqrs_get(&mut conn, &"f".to_owned())
            .unwrap()
            .is_some()
    })
    .await;
    assert_eq!(
        metrics.retried.load(Ordering::Relaxed),
        2,
        "applied after two retries"
    );

    publish_raw(
        &config,
        "author",
        author_message("x", "always failing").to_string().as_bytes(),
    )
    .await;
    publish_raw(
        &config,
        "author",
        author_message("r", "reject me").to_string().as_bytes(),
    )
    .await;
    eventually(WAIT, "two dead letters", || {
        metrics.dead_lettered.load(Ordering::Relaxed) == 2
    })
    .await;
    // 2 (flaky) + 3 (always failing; then retries are exhausted)
    assert_eq!(metrics.retried.load(Ordering::Relaxed), 5);
    task.stop().await;
    let (conn2, channel) = rabbit::channel().await;
    let dead = rabbit::drain(&channel, &config.dead_letter_queue().unwrap()).await;
    assert_eq!(dead.len(), 2);
    let dlq = config.dead_letter_queue().unwrap();
    let mut names = Vec::new();
    for (routing_key, body, expiration) in &dead {
        assert_eq!(routing_key, &format!("cqrs.{dlq}.author"));
        assert_eq!(
            expiration.as_deref(),
            Some("864000000"),
            "dead-message TTL in ms"
        );
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        names.push((
            body["instance_data"]["name"].as_str().unwrap().to_owned(),
            body["retries"].as_u64().unwrap(),
        ));
    }
    names.sort();
    assert_eq!(
        names,
        [
            ("always failing".to_owned(), 3),
            ("reject me".to_owned(), 0)
        ]
    );
    conn2.close(200, "".into()).await.unwrap();
}

/// A message waiting for its retry survives a consumer restart (the broker holds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn retry_survives_a_restart() {
    common::logs();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir, "replica.sqlite3");
    let mut config = rabbit::config("restart");
    config.retry_delay = Duration::from_secs(2);
    let (task, metrics) = consumer::<SqliteConnection>(&config, &url).await;
    publish_raw(
        &config,
        "author",
        author_message("s", "flaky1 Solaris").to_string().as_bytes(),
    )
    .await;
    eventually(WAIT, "the first failure", || {
        metrics.retried.load(Ordering::Relaxed) == 1
    })
    .await;
    task.stop().await;
    let (conn, channel) = rabbit::channel().await;
    assert_eq!(
        rabbit::queue_len(&channel, &config.delay_queue("author").unwrap()).await,
        1,
        "the retry waits in the broker"
    );
    conn.close(200, "".into()).await.unwrap();
    let (task, _) = consumer::<SqliteConnection>(&config, &url).await;
    let mut replica = SqliteConnection::cqrs_connect(&url).unwrap();
    eventually(WAIT, "the retried author applied after the restart", || {
        AuthorRef::cqrs_get(&mut replica, &"s".to_owned())
            .unwrap()
            .is_some()
    })
    .await;
    task.stop().await;
}

/// Bad bodies go to the dead-letter queue with a reason in the logs; what follows is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn malformed_messages_are_dead_lettered() {
    common::logs();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir, "replica.sqlite3");
    let config = rabbit::config("malformed");
    let (task, metrics) = consumer::<SqliteConnection>(&config, &url).await;
    let mut expired = author_message("e", "expired");
    expired["expires"] = json!("2020-01-01T00:00:00+00:00");
    let mut wrong_type = author_message("w", "wrong");
    wrong_type["instance_data"]["cqrs_revision"] = json!("zero");
    let mut unknown = author_message("u", "unknown");
    unknown["cqrs_id"] = json!("spaceship");
    let big = format!(
        "{{\"signal_type\":\"SAVE\",\"pad\":\"{}\"}}",
        "x".repeat(10 * 1024 * 1024)
    );
    // a valid message, but over CQRS_MAX_MESSAGE_BYTES (4 MiB): dead-lettered unread
    let mut valid_but_huge = author_message("h", "huge");
    valid_but_huge["instance_data"]["name"] = json!("h".repeat(5 * 1024 * 1024));
    let bad: Vec<Vec<u8>> = vec![
        b"this is not json".to_vec(),
        b"".to_vec(),
        b"[1,2,3]".to_vec(),
        br#"{"signal_type":"SAVE","cqrs_id":"author","instance_pk":"m"}"#.to_vec(),
        br#"{"signal_type":"FLY","cqrs_id":"author","instance_data":{},"instance_pk":"m"}"#
            .to_vec(),
        serde_json::to_vec(&wrong_type).unwrap(),
        serde_json::to_vec(&expired).unwrap(),
        serde_json::to_vec(&unknown).unwrap(),
        big.into_bytes(),
        vec![0xff, 0xfe, 0x00],
        serde_json::to_vec(&valid_but_huge).unwrap(),
        // nested past serde_json's recursion limit, truncated, and wrong envelope types
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        br#"{"signal_type":"SAVE","cqrs_id":"author","instance_data":{"id":"t""#.to_vec(),
        serde_json::to_vec(&with(&author_message("c", "x"), "cqrs_id", json!(""))).unwrap(),
        serde_json::to_vec(&with(&author_message("p", "x"), "instance_pk", json!({}))).unwrap(),
        serde_json::to_vec(&with(&author_message("r", "x"), "retries", json!(-1))).unwrap(),
        serde_json::to_vec(&with(
            &author_message("m", "x"),
            "monotonic_revisions",
            json!("yes"),
        ))
        .unwrap(),
        // instance_pk and the data's key disagree: permanent
        serde_json::to_vec(&with(
            &author_message("k", "x"),
            "instance_pk",
            json!("other"),
        ))
        .unwrap(),
    ];
    for body in &bad {
        publish_raw(&config, "author", body).await;
    }
    publish_raw(
        &config,
        "author",
        author_message("ok", "after the bad ones")
            .to_string()
            .as_bytes(),
    )
    .await;
    let mut replica = SqliteConnection::cqrs_connect(&url).unwrap();
    eventually(WAIT, "the good message applied", || {
        AuthorRef::cqrs_get(&mut replica, &"ok".to_owned())
            .unwrap()
            .is_some()
    })
    .await;
    eventually(WAIT, "every bad message dead-lettered", || {
        metrics.dead_lettered.load(Ordering::Relaxed) == bad.len() as u64
    })
    .await;
    task.stop().await;
    let (conn, channel) = rabbit::channel().await;
    let dead = rabbit::drain(&channel, &config.dead_letter_queue().unwrap()).await;
    assert_eq!(dead.len(), bad.len());
    let bodies: Vec<&Vec<u8>> = dead.iter().map(|(_, body, _)| body).collect();
    assert!(
        bodies.iter().any(|b| b.len() > 10 * 1024 * 1024),
        "the 10 MB body is kept whole"
    );
    assert!(bodies.contains(&&b"this is not json".to_vec()));
    assert!(
        AuthorRef::cqrs_get(&mut replica, &"h".to_owned())
            .unwrap()
            .is_none(),
        "the oversized message is not applied"
    );
    conn.close(200, "".into()).await.unwrap();
}

/// `message` with one envelope key replaced.
fn with(message: &serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut message = message.clone();
    message[key] = value;
    message
}

/// Quorum queues (for a cluster) work the same, retries included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn quorum_queues() {
    common::logs();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir, "replica.sqlite3");
    let mut config = rabbit::config("quorum");
    config.quorum_queues = true;
    let (task, metrics) = consumer::<SqliteConnection>(&config, &url).await;
    publish_raw(
        &config,
        "author",
        author_message("q", "flaky1 quorum").to_string().as_bytes(),
    )
    .await;
    let mut replica = SqliteConnection::cqrs_connect(&url).unwrap();
    eventually(
        WAIT,
        "applied after a retry through a quorum delay queue",
        || {
            AuthorRef::cqrs_get(&mut replica, &"q".to_owned())
                .unwrap()
                .is_some()
        },
    )
    .await;
    assert_eq!(metrics.retried.load(Ordering::Relaxed), 1);
    task.stop().await;
    // declaring the same queue as classic is refused with a clear reason
    let mut classic = config.clone();
    classic.quorum_queues = false;
    let err = Consumer::<SqliteConnection>::new(classic, url)
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("CQRS_QUORUM_QUEUES"), "{err}");
}

/// Bad settings and unreachable services fail at start-up with a clear reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn start_up_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir, "replica.sqlite3");
    let mut config = rabbit::config("startup");
    config.url = cqrs_rabbit::BrokerUrl::parse("amqp://guest:hunter22@127.0.0.1:1/%2f").unwrap();
    let err = Consumer::<SqliteConnection>::new(config.clone(), &url)
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("RabbitMQ at amqp://guest:****@127.0.0.1:1/%2f"),
        "{err}"
    );
    assert!(!err.contains("hunter22"));
    let mut config = rabbit::config("startup");
    config.queue = None;
    let err = Consumer::<SqliteConnection>::new(config, &url)
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("CQRS_QUEUE"), "{err}");
    let config = rabbit::config("startup");
    let err = Consumer::<SqliteConnection>::new(config.clone(), "/nonexistent/dir/db.sqlite3")
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("database"), "{err}");
    let err = Consumer::<SqliteConnection>::new(config, &url)
        .only(vec!["nope".into()])
        .check()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown cqrs_id `nope`"), "{err}");
}

/// 100 rows written before the replica's queue existed are not lost: the relay keeps them in
/// the unroutable queue, `replay-unroutable` sends them once the replica declared its queue.
/// With `CQRS_UNROUTABLE=drop` they are counted and dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ: run scripts/test"]
async fn unroutable_messages_are_kept_then_replayed() {
    common::logs();
    let dir = tempfile::tempdir().unwrap();
    let master_url = sqlite_db(&dir, "master.sqlite3");
    let replica_url = sqlite_db(&dir, "replica.sqlite3");
    let config = rabbit::config("late");
    {
        let mut master = SqliteConnection::cqrs_connect(&master_url).unwrap();
        for i in 1..=100 {
            Book::new(i, &format!("early {i}"))
                .cqrs_insert(&mut master)
                .unwrap();
        }
    }
    let relay = Relay::<SqliteConnection>::new(config.clone(), &master_url);
    let metrics = relay.metrics();
    assert_eq!(relay.drain().await.unwrap(), 100);
    assert_eq!(metrics.unroutable.load(Ordering::Relaxed), 100);
    let (_conn, channel) = rabbit::channel().await;
    assert_eq!(
        rabbit::queue_len(&channel, &config.unroutable_queue()).await,
        100,
        "kept, not lost"
    );
    // nothing to route yet: replaying keeps them
    let done = cqrs_rabbit::replay_unroutable(&config).await.unwrap();
    assert_eq!((done.routed, done.still_unroutable), (0, 100));
    // the replica service starts: its queue exists now
    let (consumer_task, _) = consumer::<SqliteConnection>(&config, &replica_url).await;
    let done = cqrs_rabbit::replay_unroutable(&config).await.unwrap();
    assert_eq!((done.routed, done.still_unroutable), (100, 0));
    let expected = master_rows::<SqliteConnection>(&master_url);
    eventually(WAIT, "the early rows on the replica", || {
        replica_rows::<SqliteConnection>(&replica_url) == expected
    })
    .await;
    assert_eq!(
        rabbit::queue_len(&channel, &config.unroutable_queue()).await,
        0
    );
    consumer_task.stop().await;

    // drop: counted, not kept
    let drop_config = Config {
        unroutable: cqrs_rabbit::Unroutable::Drop,
        ..rabbit::config("dropped")
    };
    {
        let mut master = SqliteConnection::cqrs_connect(&master_url).unwrap();
        Book::new(500, "nobody listens")
            .cqrs_insert(&mut master)
            .unwrap();
    }
    let relay = Relay::<SqliteConnection>::new(drop_config.clone(), &master_url);
    let metrics = relay.metrics();
    assert_eq!(relay.drain().await.unwrap(), 1);
    assert_eq!(metrics.unroutable.load(Ordering::Relaxed), 1);
    assert!(
        rabbit::queue_state(&drop_config.unroutable_queue())
            .await
            .is_none(),
        "drop mode declares no unroutable queue"
    );
}

fn note(signal: &str, pk: &str, revision: i64, title: &str) -> Vec<u8> {
    json!({
        "signal_type": signal, "cqrs_id": "note",
        "instance_data": {"id": pk, "title": title, "cqrs_revision": revision, "cqrs_updated": "2026-12-06 06:20:48.557649+00:00"},
        "previous_data": null, "instance_pk": pk, "correlation_id": null, "retries": 0,
        "expires": "2999-01-01T00:00:00+00:00", "meta": {}
    })
    .to_string()
    .into_bytes()
}

/// A replica without a table (`RawReplica`, django-cqrs's `RawReplicaMixin`): the consumer
/// hands it every message, with the revision rules on the versions it keeps, the same retries
/// and the same dead letters; on both backends' consumers.
async fn raw_replica<C: cqrs_core::Registered>(url: &str, tag: &str) {
    use cqrs_rabbit::telemetry::ConsumerMetrics;
    let mut config = rabbit::config(&format!("raw_{tag}"));
    config.retry_delay = Duration::from_millis(100);
    let (task, metrics) = consumer::<C>(&config, url).await;
    let pk = |n: &str| format!("{tag}-{n}");
    let stored = |pk: &str| common::NOTES.lock().unwrap().get(pk).cloned();
    let applied = |m: &ConsumerMetrics| m.applied.load(Ordering::Relaxed);
    for body in [
        note("SAVE", &pk("a"), 0, "first"),
        note("SAVE", &pk("a"), 0, "first again"), // a duplicate: ignored
        note("SAVE", &pk("a"), 2, "third"),
        note("SAVE", &pk("a"), 1, "second, late"), // stale: ignored
        note("SAVE", &pk("b"), 0, "to delete"),
        note("DELETE", &pk("b"), 1, ""),
        note("SAVE", &pk("c"), 0, "reject"),
    ] {
        publish_raw(&config, "note", &body).await;
    }
    eventually(WAIT, "the notes applied and one dead letter", || {
        metrics.dead_lettered.load(Ordering::Relaxed) == 1 && applied(&metrics) >= 3
    })
    .await;
    eventually(WAIT, "the delete applied", || stored(&pk("b")).is_none()).await;
    assert_eq!(stored(&pk("a")), Some((2, "third".to_owned())));
    assert_eq!(stored(&pk("c")), None);
    assert_eq!(
        metrics.ignored.load(Ordering::Relaxed),
        2,
        "duplicate and stale"
    );
    task.stop().await;
    let (conn, channel) = rabbit::channel().await;
    let dead = rabbit::drain(&channel, &config.dead_letter_queue().unwrap()).await;
    assert_eq!(dead.len(), 1);
    conn.close(200, "".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn raw_replica_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    raw_replica::<SqliteConnection>(&sqlite_db(&dir, "replica.sqlite3"), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ and PostgreSQL: run scripts/test"]
async fn raw_replica_postgres() {
    raw_replica::<PgConnection>(&pg_db(), "postgres").await;
    // a transient failure is retried, then applied
    let mut config = rabbit::config("raw_flaky");
    config.retry_delay = Duration::from_millis(100);
    let (task, metrics) = consumer::<PgConnection>(&config, &pg_db()).await;
    publish_raw(&config, "note", &note("SAVE", "flaky-1", 0, "flaky")).await;
    eventually(WAIT, "the flaky note applied after a retry", || {
        common::NOTES.lock().unwrap().contains_key("flaky-1")
    })
    .await;
    assert_eq!(metrics.retried.load(Ordering::Relaxed), 1);
    task.stop().await;
}

/// Rows with a 64 KB text field go through outbox, relay, broker and consumer on both
/// backends, created and renamed, and the replica holds them byte for byte.
async fn large_rows<C: cqrs_core::Registered>(master: String, replica: String, name: &str)
where
    Book: MasterStore<C>,
    BookRef: ReplicaStore<C>,
{
    common::logs();
    let config = rabbit::config(name);
    let (consumer_task, consumer_metrics) = consumer::<C>(&config, &replica).await;
    let (relay_task, _) = relay::<C>(&config, &master);
    let big = |id: i32, round: usize| {
        // about 64 KB, some of it in two-byte characters
        let unit = format!("{id}-{round}-ü-");
        unit.chars().cycle().take(60 * 1024).collect::<String>()
    };
    {
        let mut conn = C::cqrs_connect(&master).unwrap();
        for id in 1..=40 {
            Book::new(id, &big(id, 0)).cqrs_insert(&mut conn).unwrap();
        }
        for id in (1..=40).step_by(2) {
            Book::cqrs_update(&mut conn, &id, |b| b.title = big(id, 1)).unwrap();
        }
    }
    let expected = master_rows::<C>(&master);
    assert!(
        expected
            .iter()
            .all(|(_, title, _)| title.len() >= 64 * 1024)
    );
    eventually(WAIT, "the replica to hold the 64 KB rows", || {
        replica_rows::<C>(&replica) == expected
    })
    .await;
    assert_eq!(consumer_metrics.dead_lettered.load(Ordering::Relaxed), 0);
    relay_task.stop().await;
    consumer_task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn large_rows_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (master, replica) = (
        sqlite_db(&dir, "master.sqlite3"),
        sqlite_db(&dir, "replica.sqlite3"),
    );
    large_rows::<SqliteConnection>(master, replica, "large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ and PostgreSQL: run scripts/test"]
async fn large_rows_postgres() {
    large_rows::<PgConnection>(pg_db(), pg_db(), "largepg").await;
}
