//! Domain events, commands and calls through the outbox and a real RabbitMQ, handled by
//! `#[cqrs_core::handler]` functions: rollback sends nothing, the wire format is the Python
//! package's, expired commands are not run, a handler's failure rolls back its writes and its
//! outgoing messages, retries go through the delay queue, bad bodies are dead-lettered, the
//! inbox drops a redelivered event, calls are answered, future events wait and can be
//! cancelled.
//!
//! One test function: the handlers are registered for the whole binary, so the scenarios run
//! one after another on one queue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]
#![allow(
    clippy::default_trait_access,
    reason = "lapin's option structs read as `Default::default()`"
)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "handlers and helpers take what their callers hand over (a handler takes its message by value)"
)]
#![allow(
    clippy::unnecessary_wraps,
    reason = "the signature a handler must have"
)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use common::rabbit::{self, eventually};
use common::received::{count, received, record, sqlite_file};
use cqrs_core::event::{
    self, Call, CallResponse, Command, DomainEvent, Event, Expiry, HandlerError, Incoming,
};
use cqrs_core::prelude::*;
use cqrs_rabbit::{EventConsumer, Relay};
use diesel::SqliteConnection;
use lapin::options::{BasicGetOptions, BasicPublishOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
struct BookPublished {
    book_id: i64,
    title: String,
    author_name: String,
}

impl DomainEvent for BookPublished {
    const AGGREGATE: &'static str = "test_book";
    const EVENT_TYPE: &'static str = "published";
}

#[derive(Debug, Serialize, Deserialize)]
struct SendSms {
    phone_number: String,
    text: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PriceRequest {
    book_id: i64,
}

static FLAKY_FAILURES: AtomicU32 = AtomicU32::new(0);

#[cqrs_core::handler(exchange = "test_book", routing_key = "published", inbox)]
fn on_book_published(
    conn: &mut SqliteConnection,
    event: Event<BookPublished>,
) -> Result<(), HandlerError> {
    let key = event.payload.book_id.to_string();
    record(
        conn,
        "published",
        &key,
        &serde_json::to_value(&event.payload).unwrap(),
    )?;
    if event.payload.title == "fail after writing" {
        // its write and the event it publishes roll back with it
        event::publish_aggregate_event(conn, "test_book", "echo", &json!({"x": 1}))?;
        return Err(HandlerError::permanent("refused after writing"));
    }
    assert!(
        event.payload.title != "panic",
        "the handler panicked on purpose"
    );
    if event.payload.title == "flaky" && FLAKY_FAILURES.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(HandlerError::transient("not yet"));
    }
    if event.payload.title == "chain" {
        event::publish_aggregate_event(conn, "test_book", "echo", &json!({"from_book": key}))?;
    }
    Ok(())
}

#[cqrs_core::handler(exchange = "test_book")]
fn on_any_book_event(conn: &mut SqliteConnection, message: Incoming) -> Result<(), HandlerError> {
    record(
        conn,
        &format!("book.{}", message.routing_key),
        "",
        &message.body,
    )?;
    Ok(())
}

#[cqrs_core::handler(exchange = "test_sms", routing_key = "send_sms")]
fn on_send_sms(conn: &mut SqliteConnection, command: Command<SendSms>) -> Result<(), HandlerError> {
    let a = &command.arguments;
    record(conn, "sms", &a.phone_number, &json!({ "text": a.text }))?;
    Ok(())
}

#[cqrs_core::handler(exchange = "test_sms", routing_key = "price")]
fn on_price(_conn: &mut SqliteConnection, call: Call<PriceRequest>) -> Result<Value, HandlerError> {
    Ok(json!({ "book_id": call.data.book_id, "unit_price": 12.5 }))
}

/// Writes, then takes longer than the call's expiry: `check_expired_after` rolls it back.
#[cqrs_core::handler(exchange = "test_sms", routing_key = "slow_price", check_expired_after)]
fn on_slow_price(
    conn: &mut SqliteConnection,
    call: Call<PriceRequest>,
) -> Result<Value, HandlerError> {
    record(conn, "slow", &call.data.book_id.to_string(), &json!({}))?;
    std::thread::sleep(Duration::from_millis(600));
    Ok(json!({ "book_id": call.data.book_id }))
}

#[cqrs_core::handler(exchange = "test_replies")]
fn on_price_answer(
    conn: &mut SqliteConnection,
    answer: CallResponse<Value>,
) -> Result<(), HandlerError> {
    record(
        conn,
        "answer",
        &format!("{}.{}", answer.service, answer.method),
        &json!({"id": answer.id, "data": answer.data}),
    )?;
    Ok(())
}

struct Running(
    Option<oneshot::Sender<()>>,
    tokio::task::JoinHandle<Result<(), cqrs_rabbit::Error>>,
);

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, self.1)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// Publishes `body` to `test_book` / `published` as another service would, confirmed.
async fn publish_raw(channel: &lapin::Channel, body: &[u8]) {
    channel
        .basic_publish(
            "test_book".into(),
            "published".into(),
            BasicPublishOptions::default(),
            body,
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

fn spawn<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Running
where
    F: std::future::Future<Output = Result<(), cqrs_rabbit::Error>> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel();
    Running(Some(stop), tokio::spawn(run(stopped)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_commands_and_calls_end_to_end() {
    common::logs();
    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_file(&dir, "master.sqlite3");
    let handlers = sqlite_file(&dir, "handlers.sqlite3");
    let mut config = rabbit::config("events");
    config.max_retries = Some(5);
    config.retry_delay = Duration::from_millis(200);
    let queue = format!("events_{}", common::unique("q"));
    let dlq = format!("{queue}.dead_letter");

    // 1. publish in a transaction; a rolled-back one sends nothing; the wire format
    let mut conn = SqliteConnection::cqrs_connect(&master).unwrap();
    let committed = BookPublished {
        book_id: 1,
        title: "Dune".into(),
        author_name: "Frank Herbert".into(),
    };
    let event_id = cqrs_core::transaction(&mut conn, |c| event::publish(c, &committed)).unwrap();
    let rolled_back: Result<(), HandlerError> = cqrs_core::transaction(&mut conn, |c| {
        event::publish(
            c,
            &BookPublished {
                book_id: 2,
                title: "never".into(),
                author_name: String::new(),
            },
        )?;
        Err(HandlerError::permanent("roll back"))
    });
    assert!(rolled_back.is_err());
    let outbox = common::outbox(&mut conn);
    assert_eq!(
        outbox.len(),
        1,
        "the rolled-back event left nothing: {outbox:?}"
    );
    let body = &outbox[0].1;
    assert_eq!(body["eventId"], json!(event_id));
    assert_eq!(body["aggregate"], "test_book");
    assert_eq!(body["event_type"], "published");
    assert_eq!(
        body["payload"],
        json!({"bookId": 1, "title": "Dune", "authorName": "Frank Herbert"})
    );
    let time = body["event_time"].as_str().unwrap();
    assert!(
        time.ends_with('Z') && time.len() == 24,
        "Django's format: {time}"
    );

    // the broker is reached only now: nothing was lost in between
    let consumer =
        EventConsumer::<SqliteConnection>::new(config.clone(), handlers.clone(), queue.clone());
    consumer.check().await.unwrap();
    let metrics = consumer.metrics();
    let consuming = spawn(|stop| {
        consumer.run(async move {
            let _ = stop.await;
        })
    });
    let relay = Relay::<SqliteConnection>::new(config.clone(), master.clone());
    let relaying = spawn(|stop| {
        relay.run(async move {
            let _ = stop.await;
        })
    });
    // the handlers' service publishes too (chained events, call answers): its own relay
    let handler_relay = Relay::<SqliteConnection>::new(config.clone(), handlers.clone());
    let handler_published = handler_relay.metrics();
    let handler_relaying = spawn(|stop| {
        handler_relay.run(async move {
            let _ = stop.await;
        })
    });
    eventually(WAIT, "the event handled", || {
        count(&handlers, "published", "1") == 1
    })
    .await;
    let got = received(&handlers);
    assert_eq!(
        got[0].2,
        serde_json::to_value(&committed).unwrap(),
        "payload equal field by field"
    );

    // 2. the AMQP properties, seen by a raw queue bound to the aggregate's exchange
    let (_amqp, channel) = rabbit::channel().await;
    let probe = format!("{queue}_probe");
    channel
        .queue_declare(
            probe.as_str().into(),
            lapin::options::QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            probe.as_str().into(),
            "test_book".into(),
            "published".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    cqrs_core::transaction(&mut conn, |c| {
        event::publish(
            c,
            &BookPublished {
                book_id: 3,
                title: "chain".into(),
                author_name: "x".into(),
            },
        )
    })
    .unwrap();
    eventually(WAIT, "the chained event", || {
        count(&handlers, "book.echo", "") == 1
    })
    .await;
    let seen = channel
        .basic_get(probe.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a copy in the probe");
    assert_eq!(
        seen.properties
            .content_type()
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("text/json")
    );
    assert_eq!(*seen.properties.delivery_mode(), Some(2));
    assert_eq!(
        seen.properties
            .app_id()
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("anonymous")
    );
    assert_eq!(
        received(&handlers)
            .iter()
            .find(|r| r.0 == "book.echo")
            .unwrap()
            .2["payload"],
        json!({"from_book": "3"})
    );

    // 3. commands: one expired before it arrives is not run; a live one is
    let mut relay_stopped = Some(relaying);
    relay_stopped.take().unwrap().stop().await;
    cqrs_core::transaction(&mut conn, |c| {
        event::send_command(
            c,
            "test_sms",
            "send_sms",
            &SendSms {
                phone_number: "+100".into(),
                text: "late".into(),
            },
            Expiry::At(Utc::now() + chrono::Duration::milliseconds(300)),
        )?;
        event::send_command(
            c,
            "test_sms",
            "send_sms",
            &SendSms {
                phone_number: "+200".into(),
                text: "hi".into(),
            },
            Expiry::After(Duration::from_mins(1)),
        )
    })
    .unwrap();
    assert!(
        event::send_command(
            &mut conn,
            "test_sms",
            "send_sms",
            &SendSms {
                phone_number: "x".into(),
                text: "x".into()
            },
            Expiry::At(Utc::now() - chrono::Duration::seconds(1))
        )
        .is_err(),
        "an expiry in the past is refused"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let relay = Relay::<SqliteConnection>::new(config.clone(), master.clone());
    let relaying = spawn(|stop| {
        relay.run(async move {
            let _ = stop.await;
        })
    });
    eventually(WAIT, "the live command", || {
        count(&handlers, "sms", "+200") == 1
    })
    .await;
    let ignored_before = metrics.ignored.load(Ordering::Relaxed);
    assert!(
        ignored_before >= 1,
        "the expired command was counted as not executed"
    );
    assert_eq!(
        count(&handlers, "sms", "+100"),
        0,
        "the expired command was not executed"
    );

    // 3b. an immediate command (no outbox, publisher confirms) is run; a call that expires
    // while its `check_expired_after` handler runs is rolled back and never answered
    let publisher = cqrs_rabbit::Publisher::connect(config.clone())
        .await
        .unwrap();
    let id = publisher
        .send_command(
            "test_sms",
            "send_sms",
            &SendSms {
                phone_number: "+300".into(),
                text: "now".into(),
            },
            Expiry::After(Duration::from_mins(1)),
        )
        .await
        .unwrap();
    assert!(!id.is_empty());
    eventually(WAIT, "the immediate command", || {
        count(&handlers, "sms", "+300") == 1
    })
    .await;
    let ignored = metrics.ignored.load(Ordering::Relaxed);
    publisher
        .send_call(
            "test_sms",
            "slow_price",
            &PriceRequest { book_id: 77 },
            "test_replies",
            Expiry::After(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    eventually(WAIT, "the slow call ignored", || {
        metrics.ignored.load(Ordering::Relaxed) > ignored
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&handlers, "slow", "77"),
        0,
        "the slow call's writes were rolled back"
    );
    assert_eq!(
        count(&handlers, "answer", "test_sms.slow_price"),
        0,
        "an expired call is not answered"
    );
    publisher.close().await.unwrap();

    // 4. a handler's failure rolls back its writes and what it published; dead-lettered once
    let published_before = handler_published.published.load(Ordering::Relaxed);
    cqrs_core::transaction(&mut conn, |c| {
        event::publish(
            c,
            &BookPublished {
                book_id: 4,
                title: "fail after writing".into(),
                author_name: String::new(),
            },
        )
    })
    .unwrap();
    eventually(WAIT, "the dead letter", || {
        metrics.dead_lettered.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(
        count(&handlers, "published", "4"),
        0,
        "its write rolled back"
    );
    let mut handler_db = SqliteConnection::cqrs_connect(&handlers).unwrap();
    assert!(
        common::outbox(&mut handler_db).is_empty(),
        "its event rolled back"
    );
    assert_eq!(
        handler_published.published.load(Ordering::Relaxed),
        published_before,
        "and was never published"
    );
    let dead = channel
        .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("in the dead-letter queue");
    let headers = dead.properties.headers().clone().unwrap();
    let Some(lapin::types::AMQPValue::LongString(reason)) = headers.inner().get("x-cqrs-reason")
    else {
        panic!("no reason: {headers:?}")
    };
    assert!(
        reason.to_string().contains("refused after writing"),
        "{reason}"
    );

    // 5. a transient failure is retried through the delay queue, then succeeds
    cqrs_core::transaction(&mut conn, |c| {
        event::publish(
            c,
            &BookPublished {
                book_id: 5,
                title: "flaky".into(),
                author_name: String::new(),
            },
        )
    })
    .unwrap();
    eventually(WAIT, "the flaky event, after two retries", || {
        count(&handlers, "published", "5") == 1
    })
    .await;
    assert_eq!(metrics.retried.load(Ordering::Relaxed), 2);

    // 6. a body that is not JSON, and an envelope without payload: dead-lettered, the consumer goes on
    for body in [
        &b"not json{"[..],
        br#"{"eventId": 9, "aggregate": "test_book"}"#,
    ] {
        publish_raw(&channel, body).await;
    }
    eventually(WAIT, "two more dead letters", || {
        metrics.dead_lettered.load(Ordering::Relaxed) == 3
    })
    .await;

    // 7. the inbox: the same event delivered twice has its effect once
    let ignored_before = metrics.ignored.load(Ordering::Relaxed);
    let twice = json!({"eventId": "dup-1", "event_time": "2026-12-02T10:00:00.000Z", "aggregate": "test_book", "event_type": "published", "payload": {"bookId": 7, "title": "twice", "authorName": "a"}});
    for _ in 0..2 {
        publish_raw(&channel, twice.to_string().as_bytes()).await;
    }
    eventually(WAIT, "both copies taken", || {
        metrics.ignored.load(Ordering::Relaxed) > ignored_before
    })
    .await;
    assert_eq!(
        count(&handlers, "published", "7"),
        1,
        "the inbox kept the effect to one"
    );

    // 8. a call answered, the answer handled by the caller's call-response handler
    let call_id = cqrs_core::transaction(&mut conn, |c| {
        event::send_call(
            c,
            "test_sms",
            "price",
            &PriceRequest { book_id: 1 },
            "test_replies",
            Expiry::After(Duration::from_secs(30)),
        )
    })
    .unwrap();
    eventually(WAIT, "the call's answer", || {
        count(&handlers, "answer", "test_sms.price") == 1
    })
    .await;
    let answer = received(&handlers)
        .into_iter()
        .find(|r| r.0 == "answer")
        .unwrap()
        .2;
    assert_eq!(
        answer,
        json!({"id": call_id, "data": {"book_id": 1, "unit_price": 12.5}})
    );

    // 9. future events: sent only after their time; a cancelled one never
    let at = Utc::now() + chrono::Duration::milliseconds(1500);
    cqrs_core::transaction(&mut conn, |c| {
        event::publish_future_aggregate_event(
            c,
            "test_book",
            "published",
            at,
            &BookPublished {
                book_id: 10,
                title: "later".into(),
                author_name: String::new(),
            },
            &[("order", "10")],
        )?;
        event::publish_future_aggregate_event(
            c,
            "test_book",
            "published",
            at,
            &BookPublished {
                book_id: 11,
                title: "cancelled".into(),
                author_name: String::new(),
            },
            &[("order", "11"), ("kind", "reminder")],
        )
    })
    .unwrap();
    assert!(
        event::cancel_future_aggregate_event(&mut conn, "test_book", "published", &[]).is_err(),
        "cancelling needs tags"
    );
    assert_eq!(
        event::cancel_future_aggregate_event(
            &mut conn,
            "test_book",
            "published",
            &[("order", "11")]
        )
        .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        count(&handlers, "published", "10"),
        0,
        "not before its time"
    );
    eventually(WAIT, "the future event", || {
        count(&handlers, "published", "10") == 1
    })
    .await;
    assert!(Utc::now() >= at);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&handlers, "published", "11"),
        0,
        "the cancelled event never came"
    );
    assert_eq!(common::outbox(&mut conn).len(), 0);

    // 10. a backlog is taken in batches (one transaction, a savepoint per message): a failing
    // handler, a panicking one and a bad body in the middle of it cost only themselves
    consuming.stop().await;
    let mut bodies: Vec<Vec<u8>> = (100..120)
        .map(|book_id| {
            let title = match book_id {
                105 => "fail after writing",
                110 => "panic",
                _ => "backlog",
            };
            json!({"eventId": format!("backlog-{book_id}"), "event_time": "2026-12-02T10:00:00.000Z",
                "aggregate": "test_book", "event_type": "published",
                "payload": {"bookId": book_id, "title": title, "authorName": "b"}})
            .to_string()
            .into_bytes()
        })
        .collect();
    bodies.insert(12, b"{not json".to_vec());
    for body in &bodies {
        publish_raw(&channel, body).await;
    }
    let backlog =
        EventConsumer::<SqliteConnection>::new(config.clone(), handlers.clone(), queue.clone());
    let taken = backlog.metrics();
    let consuming = spawn(|stop| {
        backlog.run(async move {
            let _ = stop.await;
        })
    });
    eventually(WAIT, "the backlog taken", || {
        taken.applied.load(Ordering::Relaxed) + taken.dead_lettered.load(Ordering::Relaxed) == 21
    })
    .await;
    assert_eq!(taken.applied.load(Ordering::Relaxed), 18);
    assert_eq!(
        taken.dead_lettered.load(Ordering::Relaxed),
        3,
        "the failure, the panic, the bad body"
    );
    for book_id in 100..120 {
        let want = usize::from(book_id != 105 && book_id != 110);
        assert_eq!(
            count(&handlers, "published", &book_id.to_string()),
            want,
            "book {book_id}"
        );
    }
    let batches = taken.batches.load(Ordering::Relaxed);
    assert!(
        batches < 21,
        "{batches} batches for 21 messages: not batched"
    );
    let mut reasons = Vec::new();
    while let Some(dead) = channel
        .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let headers = dead.properties.headers().clone().unwrap_or_default();
        if let Some(lapin::types::AMQPValue::LongString(reason)) =
            headers.inner().get("x-cqrs-reason")
        {
            reasons.push(reason.to_string());
        }
    }
    assert!(
        reasons.iter().any(|r| r.contains("panicked on purpose")),
        "the panic is the dead letter's reason: {reasons:?}"
    );

    relaying.stop().await;
    handler_relaying.stop().await;
    consuming.stop().await;
}
