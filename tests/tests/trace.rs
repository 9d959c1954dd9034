//! Trace context across services: the `traceparent` a master write carries arrives, through
//! the outbox, the relay and the broker, in the replica's `cqrs.apply` span, against the real
//! broker of the test script.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Book;
use common::books::{Running, sqlite_db};
use cqrs_core::prelude::*;
use cqrs_core::trace::{TraceParent, with_parent};
use cqrs_rabbit::{Consumer, Relay};
use diesel::SqliteConnection;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The fields of every `cqrs.apply` span opened in this process.
static APPLY_SPANS: Mutex<Vec<HashMap<String, String>>> = Mutex::new(Vec::new());

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// A layer that keeps the fields of the apply spans.
struct Capture;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: Context<'_, S>,
    ) {
        if attrs.metadata().name() == "cqrs.apply" {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            APPLY_SPANS.lock().unwrap().push(fields);
        }
    }
}

fn apply_span_of(pk: &str) -> Option<HashMap<String, String>> {
    APPLY_SPANS
        .lock()
        .unwrap()
        .iter()
        .find(|f| f.get("pk").map(String::as_str) == Some(pk))
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn the_master_writes_traceparent_reaches_the_replica_apply_span() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture)).unwrap();
    let config = common::rabbit::config("trace");
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");
    let consumer = Consumer::<SqliteConnection>::new(config.clone(), &replica);
    consumer.check().await.unwrap();
    let relay = Relay::<SqliteConnection>::new(config.clone(), &master);
    let mut running = Running::new();
    running.spawn(|stop| consumer.run(stop));
    running.spawn(|stop| relay.run(stop));

    // an incoming request's context (as a web framework hands it over), and a write without
    let request =
        TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
    let mut conn = SqliteConnection::cqrs_connect(&master).unwrap();
    with_parent(request, || Book::new(7, "Traced").cqrs_insert(&mut conn)).unwrap();
    Book::new(8, "Untraced").cqrs_insert(&mut conn).unwrap();

    let start = Instant::now();
    while apply_span_of("7").is_none() || apply_span_of("8").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no apply spans: {:?}",
            APPLY_SPANS.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let traced = apply_span_of("7").unwrap();
    assert_eq!(
        traced["trace_id"], "0af7651916cd43dd8448eb211c80319c",
        "the request's trace: {traced:?}"
    );
    let carried = TraceParent::parse(&traced["traceparent"]).unwrap();
    assert_eq!(carried.trace_id, request.trace_id);
    assert_ne!(
        carried.parent_id, request.parent_id,
        "the write is a span of its own"
    );
    assert_eq!(traced["cqrs_id"], "book");
    assert_eq!(traced["revision"], "0");

    let untraced = apply_span_of("8").unwrap();
    let own =
        TraceParent::parse(&untraced["traceparent"]).expect("a write outside any trace starts one");
    assert_ne!(own.trace_id, request.trace_id);

    running.stop().await;
}

/// What the collector received: (path, body) of each request.
type Received = std::sync::Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A stand-in OTLP/HTTP collector on loopback: answers 200 to every request and keeps
/// (path, body).
fn collector() -> (std::net::SocketAddr, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = std::sync::Arc::new(Mutex::new(Vec::new()));
    let keep = std::sync::Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let keep = std::sync::Arc::clone(&keep);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_owned();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    keep.lock().unwrap().push((path, body));
                    let _ = writer.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                }
            });
        }
    });
    (addr, received)
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, a consumer process exports its apply spans by
/// OTLP/HTTP, in the trace the master write started (the trace id's 16 bytes are in the
/// protobuf body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn a_consumer_exports_its_spans_by_otlp() {
    let (addr, received) = collector();
    let config = common::rabbit::config("otlp");
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");
    let consumer = std::process::Command::new(env!("CARGO_BIN_EXE_cqrs-test-service"))
        .arg("consume")
        .env("DATABASE_URL", &replica)
        .env("CQRS_BROKER_URL", config.url.expose())
        .env("CQRS_EXCHANGE", &config.exchange)
        .env("CQRS_QUEUE", config.queue.as_ref().unwrap())
        .env("RUST_LOG", "info")
        .env("CQRS_LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_SERVICE_NAME", "otlp-test-replica")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::rabbit::wait_for_consumer(config.queue.as_ref().unwrap()).await;

    let request = TraceParent::random();
    let mut conn = SqliteConnection::cqrs_connect(&master).unwrap();
    with_parent(request, || Book::new(1, "Exported").cqrs_insert(&mut conn)).unwrap();
    let published = Relay::<SqliteConnection>::new(config.clone(), &master)
        .drain()
        .await
        .unwrap();
    assert_eq!(published, 1);
    let mut rconn = SqliteConnection::cqrs_connect(&replica).unwrap();
    let start = Instant::now();
    while common::BookRef::cqrs_get(&mut rconn, &1).unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "the row arrives");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGTERM: the consumer stops and its exporter sends what it holds
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &consumer.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = consumer.wait_with_output().unwrap();
    assert!(output.status.success());
    // the logs were JSON lines, with the stable fields as keys
    let logs = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let started = lines
        .iter()
        .find(|l| l["message"] == "consumer started")
        .unwrap_or_else(|| panic!("{logs}"));
    assert_eq!(started["queue"], config.queue.clone().unwrap().as_str());
    assert_eq!(started["level"], "INFO");
    let trace_id = request.trace_id.to_be_bytes();
    let got = received.lock().unwrap().clone();
    let traces: Vec<&Vec<u8>> = got
        .iter()
        .filter(|(path, _)| path == "/v1/traces")
        .map(|(_, body)| body)
        .collect();
    assert!(
        !traces.is_empty(),
        "no POST /v1/traces: {:?}",
        got.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    let contains = |body: &[u8], needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(
        traces
            .iter()
            .any(|body| contains(body, &trace_id) && contains(body, b"cqrs.apply")),
        "the apply span, in the master's trace"
    );
    assert!(
        traces
            .iter()
            .any(|body| contains(body, b"otlp-test-replica"))
    );
}

/// With the feature `otel`, a master write inside an OpenTelemetry span (a request's) carries
/// that span's trace and span id: the replica's apply becomes the span's child.
#[test]
fn a_write_inside_an_opentelemetry_span_continues_its_trace() {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("request");
        let _inside = request.enter();
        let context = request.context();
        let span = context.span();
        let expected = span.span_context();
        assert!(expected.is_valid());
        let carried = cqrs_core::trace::for_message();
        assert_eq!(
            carried.trace_id.to_be_bytes(),
            expected.trace_id().to_bytes()
        );
        assert_eq!(
            carried.parent_id.to_be_bytes(),
            expected.span_id().to_bytes()
        );
    });
}
