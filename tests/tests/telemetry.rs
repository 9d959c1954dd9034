//! Observability end to end, against the real broker (the chaos node, which this test stops
//! and starts): `/metrics` counts what happened, parsed by a Prometheus text parser, and
//! `/health/ready` turns unready while the broker is away and ready when it returns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]
#![allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
#![allow(
    clippy::float_cmp,
    reason = "metric values are exact small integers read back from the recorder"
)]
#![allow(
    clippy::items_after_statements,
    reason = "helper items sit next to their only use"
)]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::books::{Running, sqlite_db};
use common::{Book, BookRef};
use cqrs_core::prelude::*;
use cqrs_rabbit::telemetry::{self, Health};
use cqrs_rabbit::{BrokerUrl, Consumer, Relay};
use diesel::SqliteConnection;
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;

/// The scrape, parsed by a Prometheus text-format parser: value by `name{label=value,...}`
/// (labels sorted; histograms as `_count` and `_sum`).
fn scrape(addr: std::net::SocketAddr) -> HashMap<String, f64> {
    let (status, body) = common::http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    let mut out = HashMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let key = |name: &str| format!("{name}{{{}}}", labels.join(","));
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => {
                out.insert(key(&sample.metric), v);
            }
            prometheus_parse::Value::Histogram(buckets) => {
                let count = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
                out.insert(key(&format!("{}_count", sample.metric)), count);
            }
            prometheus_parse::Value::Summary(_) => {}
        }
    }
    out
}

fn value(scrape: &HashMap<String, f64>, key: &str) -> f64 {
    scrape.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the chaos RabbitMQ node (AMQP_ADDR_CHAOS, RABBITMQ_CHAOS_NODE): run scripts/test"]
async fn metrics_count_what_happened_and_ready_follows_the_broker() {
    common::logs();
    let node = std::env::var("RABBITMQ_CHAOS_NODE").expect("RABBITMQ_CHAOS_NODE");
    let amqp = std::env::var("AMQP_ADDR_CHAOS").expect("AMQP_ADDR_CHAOS");
    let mut config = common::rabbit::config("telemetry");
    config.url = BrokerUrl::parse(&amqp).unwrap();
    let dlq = config.dead_letter_queue().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");

    // the endpoint, as `CQRS_METRICS_ADDR` starts it in the CLI
    let recorder = telemetry::install_recorder().unwrap();
    let health = Health::new();
    let endpoint = telemetry::serve(
        "127.0.0.1:0".parse().unwrap(),
        health.clone(),
        Some(recorder),
        std::future::pending(),
    )
    .await
    .unwrap();
    let addr = endpoint.local_addr();
    assert_eq!(
        common::http_get(addr, "/health/ready").0,
        503,
        "nothing runs yet"
    );

    // book 1's first version, kept to be sent again later (stale by then)
    let mut conn = SqliteConnection::cqrs_connect(&master).unwrap();
    Book::new(1, "Book 1").cqrs_insert(&mut conn).unwrap();
    let (_, first_version) = common::outbox(&mut conn).remove(0);

    let consumer =
        Consumer::<SqliteConnection>::new(config.clone(), &replica).with_health(health.clone());
    consumer.check().await.unwrap();
    let relay = Relay::<SqliteConnection>::new(config.clone(), &master).with_health(health.clone());
    let consumer_metrics = consumer.metrics();
    let mut running = Running::new();
    running.spawn(|stop| consumer.run(stop));
    running.spawn(|stop| relay.run(stop));

    // N master writes: 19 more creates and one update of book 1
    const N: u64 = 21;
    for id in 2..=20 {
        Book::new(id, &format!("Book {id}"))
            .cqrs_insert(&mut conn)
            .unwrap();
    }
    Book::cqrs_update(&mut conn, &1, |b| b.title.push('+')).unwrap();
    common::rabbit::eventually(
        Duration::from_mins(1),
        "the replica has every write",
        || consumer_metrics.handled() >= N,
    )
    .await;
    let mut rconn = SqliteConnection::cqrs_connect(&replica).unwrap();
    assert_eq!(
        BookRef::cqrs_pks(&mut rconn, None, i64::MAX).unwrap().len(),
        20
    );

    // one stale message and one malformed one, straight to the queue's routing key
    let broker = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = broker.create_channel().await.unwrap();
    for body in [first_version.to_string(), "{not json".to_owned()] {
        channel
            .basic_publish(
                config.exchange.as_str().into(),
                "book".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let _ = broker.close(200, "done".into()).await;
    common::rabbit::eventually(Duration::from_secs(30), "the consumer took both", || {
        consumer_metrics.handled() >= N + 2
    })
    .await;

    let exchange = &config.exchange;
    let scraped = scrape(addr);
    let published = value(
        &scraped,
        &format!("cqrs_relay_published_total{{cqrs_id=book,exchange={exchange}}}"),
    );
    assert_eq!(published, N as f64, "{scraped:#?}");
    let applied = value(
        &scraped,
        "cqrs_consumer_applied_total{cqrs_id=book,outcome=created}",
    ) + value(
        &scraped,
        "cqrs_consumer_applied_total{cqrs_id=book,outcome=updated}",
    );
    assert_eq!(applied, N as f64, "{scraped:#?}");
    assert_eq!(
        value(
            &scraped,
            "cqrs_consumer_ignored_total{cqrs_id=book,reason=stale}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &scraped,
            "cqrs_consumer_dead_lettered_total{cqrs_id=unknown,reason=malformed}"
        ),
        1.0
    );
    assert_eq!(
        value(&scraped, "cqrs_consumer_received_total{cqrs_id=book}"),
        (N + 1) as f64
    );
    assert_eq!(
        value(&scraped, "cqrs_replication_lag_seconds_count{cqrs_id=book}"),
        N as f64,
        "one lag sample per applied message"
    );
    assert!(scraped.contains_key("cqrs_replication_lag_last_seconds{cqrs_id=book}"));
    assert!(value(&scraped, "cqrs_relay_confirm_seconds_count{}") >= N as f64);
    assert!(value(&scraped, "cqrs_consumer_batch_messages_count{}") >= 1.0);
    // the dead-letter queue's depth and the outbox's, refreshed every few seconds
    let dlq_key = format!("cqrs_queue_messages{{queue={dlq}}}");
    let mut scraped = scraped;
    let start = Instant::now();
    while value(&scraped, &dlq_key) != 1.0 || !scraped.contains_key("cqrs_outbox_messages{}") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "queue and outbox gauges: {scraped:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        scraped = scrape(addr);
    }
    assert_eq!(value(&scraped, "cqrs_outbox_messages{}"), 0.0);
    assert_eq!(value(&scraped, "cqrs_outbox_oldest_age_seconds{}"), 0.0);

    // `status` shows the same numbers: the outbox, the queues, the consumer's counts and lag
    let output = Command::new(env!("CARGO_BIN_EXE_cqrs-test-service"))
        .args(["status", "--metrics-url", &format!("http://{addr}/metrics")])
        .env("DATABASE_URL", &master)
        .env("CQRS_BROKER_URL", &amqp)
        .env("CQRS_EXCHANGE", &config.exchange)
        .env("CQRS_QUEUE", config.queue.as_deref().unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    eprintln!("status:\n{text}");
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("outbox: 0 message(s) waiting"), "{text}");
    assert!(text.contains(&format!("dead letters ({dlq}): 1")), "{text}");
    let book = text
        .lines()
        .find(|l| l.starts_with("book "))
        .unwrap_or_else(|| panic!("no book row: {text}"));
    let cells: Vec<&str> = book.split_whitespace().collect();
    assert_eq!(
        &cells[1..5],
        ["21", "1", "0", "0"],
        "applied, ignored, retried, dead: {text}"
    );
    assert_eq!(cells[7], "0", "no retry waits: {text}");

    // readiness follows the broker
    let (status, body) = common::http_get(addr, "/health/ready");
    assert_eq!(status, 200, "{body}");
    common::rabbit::rabbitmqctl(&node, "stop_app");
    let mut seen = String::new();
    common::rabbit::eventually(
        Duration::from_secs(30),
        "/health/ready turns unready",
        || {
            let (status, body) = common::http_get(addr, "/health/ready");
            seen = body;
            status == 503
        },
    )
    .await;
    assert!(seen.contains("\"check\":\"broker\""), "{seen}");
    assert_eq!(
        common::http_get(addr, "/health/live").0,
        200,
        "the loops still run"
    );
    common::rabbit::rabbitmqctl(&node, "start_app");
    common::rabbit::eventually(
        Duration::from_secs(90),
        "/health/ready is ready again",
        || common::http_get(addr, "/health/ready").0 == 200,
    )
    .await;
    let reconnects = value(&scrape(addr), "cqrs_relay_reconnects_total{cause=broker}")
        + value(&scrape(addr), "cqrs_consumer_reconnects_total{}");
    assert!(reconnects >= 1.0, "the outage was counted");

    running.stop().await;
    let (status, body) = common::http_get(addr, "/health/live");
    assert_eq!(status, 503, "stopped components are not live: {body}");
}

/// The Grafana dashboard in docs/ is a dashboard Grafana imports (its `__inputs` data source,
/// panels with unique ids, positions and queries) and asks only for metrics the framework
/// exports.
#[test]
fn the_dashboard_uses_only_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/cqrs-rs.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(dashboard["__inputs"][0]["pluginId"], "prometheus");
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut ids = std::collections::HashSet::new();
    let mut used = std::collections::BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "unique panel ids"
        );
        for key in ["x", "y", "w", "h"] {
            assert!(panel["gridPos"][key].is_u64(), "{panel}");
        }
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "balanced: {expr}"
            );
            let mut rest = expr;
            while let Some(at) = rest.find("cqrs_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                // a metric is followed by its selector or range; a label (cqrs_id) is not
                if rest.starts_with(['{', '[']) {
                    used.insert(name);
                }
            }
        }
    }
    for name in &used {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| telemetry::names::ALL.contains(base))
            .unwrap_or(name);
        assert!(
            telemetry::names::ALL.contains(&base),
            "the dashboard asks for {name}, which is not exported"
        );
    }
    for needed in [
        telemetry::names::REPLICATION_LAG,
        telemetry::names::OUTBOX_OLDEST_AGE,
        telemetry::names::CONSUMER_RETRIED,
        telemetry::names::QUEUE_MESSAGES,
    ] {
        assert!(
            used.iter().any(|u| u.starts_with(needed)),
            "the dashboard shows {needed}"
        );
    }
}
