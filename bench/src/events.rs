//! Domain events end to end (the publisher's commit → the handler's commit), the framework
//! against django-microservices-communication 2.6.9 with its own `runpublisher` and
//! `runconsumer`: the same workload (N events, each published in its own transaction; the
//! handler writes one row per event), the same broker and PostgreSQL, in one run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use cqrs_core::db::{Backend, CqrsConnection};
use cqrs_core::event::{self, Event, HandlerError};
use diesel::prelude::*;
use diesel::query_builder::InsertStatement;
use diesel::query_dsl::methods::ExecuteDsl;
use serde::{Deserialize, Serialize};

use crate::proc::{PssPeaks, group_peak_rss_kb};
use crate::report::EventRun;
use crate::{Aggregate, Child2, Env, service_command, spawn, wait_consumer};

/// The aggregate (exchange) and event type (routing key) of the workload, on both sides.
const AGGREGATE: &str = "bench_order";
const EVENT_TYPE: &str = "happened";

diesel::table! {
    bench_events (n) {
        n -> Integer,
        title -> Text,
    }
}

/// The handler's table, in the consumer's database.
const DDL: &str =
    "CREATE TABLE IF NOT EXISTS bench_events (n INTEGER PRIMARY KEY, title TEXT NOT NULL)";

/// The event's payload.
#[derive(Debug, Serialize, Deserialize, Insertable)]
#[diesel(table_name = bench_events)]
pub struct Happened {
    n: i32,
    title: String,
}

/// A connection the handler can write its row on (either backend).
pub trait Store: CqrsConnection {
    fn record(&mut self, row: Happened) -> QueryResult<usize>;
}

impl<C> Store for C
where
    C: CqrsConnection,
    InsertStatement<bench_events::table, <Happened as Insertable<bench_events::table>>::Values>:
        ExecuteDsl<C>,
{
    fn record(&mut self, row: Happened) -> QueryResult<usize> {
        diesel::insert_into(bench_events::table)
            .values(row)
            .execute(self)
    }
}

/// The framework's handler: one row per event, deduplicated by event id (the inbox), in the
/// transaction that acknowledges it.
#[cqrs_core::handler(exchange = "bench_order", routing_key = "happened", inbox)]
fn happened<C: Store>(conn: &mut C, event: Event<Happened>) -> Result<(), HandlerError> {
    conn.record(event.payload)?;
    Ok(())
}

/// How many events the handler wrote, and the sum of their numbers (1..=N exactly once each
/// when the sum is N(N+1)/2 and the count N).
fn handled(url: &str) -> anyhow::Result<(i64, i64)> {
    let query = diesel::sql_query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(n), 0) AS BIGINT) AS s FROM bench_events",
    );
    let row: Aggregate = cqrs_core::with_connection!(url, |conn| query.get_result(conn)?);
    Ok((row.n, row.s))
}

/// Waits until `url` holds the N events; returns when (microseconds since the epoch).
async fn wait_handled(url: &str, events: i64, what: &str) -> anyhow::Result<i64> {
    let start = Instant::now();
    let sum = events * (events + 1) / 2;
    loop {
        if let Ok((n, s)) = handled(url) {
            anyhow::ensure!(n <= events, "{what}: {n} rows for {events} events");
            if n == events {
                anyhow::ensure!(s == sum, "{what}: the events handled are not 1..={events}");
                return Ok(chrono::Utc::now().timestamp_micros());
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_mins(15),
                "{what}: only {n} of {events} events handled"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deletes the run's queues, so that later runs' events are not copied into them.
pub async fn delete_queues(amqp: &str, queues: &[String]) -> anyhow::Result<()> {
    let conn = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    for queue in queues {
        channel
            .queue_delete(
                queue.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await?;
    }
    let _ = conn.close(200, "".into()).await;
    Ok(())
}

/// The end of a run: the two processes' peak RSS and their peak PSS together, then they are
/// stopped and the run's queues deleted. `what`: backend, pipeline, events, microseconds from
/// the first write to the last handled, the writer's events/s.
async fn finish(
    env: &Env,
    what: (Backend, &str, i32, i64, f64),
    handlers: Child2,
    relay: Child2,
    pss: PssPeaks,
    queues: &[String],
) -> anyhow::Result<EventRun> {
    let (backend, pipeline, events, micros, write_rate) = what;
    let consumer_rss_mb = group_peak_rss_kb(handlers.0.id()) as f64 / 1024.0;
    let publisher_rss_mb = group_peak_rss_kb(relay.0.id()) as f64 / 1024.0;
    let (_, together_kb) = pss.finish();
    drop(handlers);
    drop(relay);
    delete_queues(&env.amqp, queues).await?;
    Ok(EventRun {
        backend: backend.name().to_owned(),
        pipeline: pipeline.to_owned(),
        events: usize::try_from(events)?,
        seconds: micros as f64 / 1e6,
        consumer_rss_mb,
        publisher_rss_mb,
        pss_mb: together_kb as f64 / 1024.0,
        write_rate,
    })
}

/// A copy of this binary for the service processes of the events runs: a file of its own, so
/// that the pages of its code they share are shared between the two of them (as a service's
/// relay and consumer share theirs) and not with this driver process, which would take a part
/// of their PSS.
fn service_binary(env: &Env) -> anyhow::Result<std::path::PathBuf> {
    let copy = env.tmp.join("cqrs-bench-service");
    if !copy.exists() {
        std::fs::copy(&env.bin, &copy)
            .with_context(|| format!("copying {} to {}", env.bin.display(), copy.display()))?;
    }
    Ok(copy)
}

/// This binary's `relay` and `events` commands on `publisher` and `consumer`; the events
/// written here, each in its own transaction.
pub async fn ours(env: &Env, backend: Backend, events: i32) -> anyhow::Result<EventRun> {
    let publisher = env.database(backend, &env.name("evp"))?;
    let consumer = env.database(backend, &env.name("evc"))?;
    cqrs_core::with_connection!(&consumer, |conn| {
        diesel::connection::SimpleConnection::batch_execute(conn, DDL)?;
    });
    let queue = env.name("evq");
    let exchange = env.name("x");
    let bin = service_binary(env)?;
    let mut handlers = service_command(&bin, env, "events", &consumer, &exchange);
    handlers.args(["--events-queue", &queue]);
    let handlers = spawn(handlers)?;
    wait_consumer(&env.amqp, &queue).await?;
    let relay = spawn(service_command(&bin, env, "relay", &publisher, &exchange))?;
    let pss = PssPeaks::watch(vec![handlers.0.id(), relay.0.id()]);
    let start = chrono::Utc::now().timestamp_micros();
    let url = publisher.clone();
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let start = Instant::now();
        cqrs_core::with_connection!(&url, |conn| {
            for n in 1..=events {
                cqrs_core::transaction(conn, |conn| {
                    event::publish_aggregate_event(
                        conn,
                        AGGREGATE,
                        EVENT_TYPE,
                        &Happened {
                            n,
                            title: format!("Order {n} paid"),
                        },
                    )
                    .map_err(cqrs_core::Error::from)
                })?;
            }
        });
        Ok(f64::from(events) / start.elapsed().as_secs_f64())
    });
    let done = wait_handled(&consumer, i64::from(events), "cqrs-rs").await?;
    let write_rate = writer.await??;
    let run = finish(
        env,
        (backend, "cqrs-rs", events, done - start, write_rate),
        handlers,
        relay,
        pss,
        &[
            queue.clone(),
            format!("{queue}.delay"),
            format!("{queue}.dead_letter"),
        ],
    )
    .await?;
    let (consumer_rss, publisher_rss) = (run.consumer_rss_mb, run.publisher_rss_mb);
    eprintln!(
        "   {events} events in {:.2} s = {:.0} events/s (written at {write_rate:.0}/s), consumer peak RSS {consumer_rss:.1} MB, relay {publisher_rss:.1} MB, both peak PSS {:.1} MB",
        run.seconds,
        run.rate(),
        run.pss_mb
    );
    Ok(run)
}

/// django-microservices-communication: its `runconsumer` and `runpublisher`, and a management
/// command writing the events, each in its own transaction (PostgreSQL: the package needs it).
pub async fn python(env: &Env, events: i32) -> anyhow::Result<EventRun> {
    let python = env.python.clone().context("BENCH_PYTHON")?;
    let pg = env.pg.clone().context("BENCH_PG_URL")?;
    let publisher = env.name("pyevp");
    let consumer = env.name("pyevc");
    env.database(Backend::Postgres, &publisher)?;
    env.database(Backend::Postgres, &consumer)?;
    let queue = env.name("pyevq");
    let django = |db: &str, args: &[&str]| {
        let mut cmd = Command::new(&python);
        cmd.arg(env.django_dir.join("manage.py"))
            .args(args)
            .env("BENCH_ROLE", "events")
            .env("BENCH_DB_ENGINE", "postgres")
            .env("BENCH_DB_NAME", db)
            .env("BENCH_PG_URL", &pg)
            .env("AMQP_URL", &env.amqp)
            .env("EVENTS_QUEUE", &queue)
            .env("CQRS_EXCHANGE", "unused")
            .env("CQRS_QUEUE", "unused");
        cmd
    };
    for db in [&publisher, &consumer] {
        let status = django(db, &["migrate", "--run-syncdb", "-v", "0"]).status()?;
        anyhow::ensure!(status.success(), "django migrate failed");
    }
    let handlers = spawn(django(&consumer, &["runconsumer"]))?;
    wait_consumer(&env.amqp, &queue).await?;
    let relay = spawn(django(&publisher, &["runpublisher"]))?;
    let pss = PssPeaks::watch(vec![handlers.0.id(), relay.0.id()]);
    let output = django(
        &publisher,
        &["bench_events_publish", "--events", &events.to_string()],
    )
    .stderr(Stdio::inherit())
    .output()?;
    anyhow::ensure!(output.status.success(), "bench_events_publish failed");
    let written: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let start = written["start_us"].as_i64().unwrap_or_default();
    let (prefix, _) = pg.rsplit_once('/').context("bad BENCH_PG_URL")?;
    let done = wait_handled(
        &format!("{prefix}/{consumer}"),
        i64::from(events),
        "django-microservices-communication",
    )
    .await?;
    let run = finish(
        env,
        (
            Backend::Postgres,
            "django-microservices-communication",
            events,
            done - start,
            written["events_per_s"].as_f64().unwrap_or_default(),
        ),
        handlers,
        relay,
        pss,
        &[queue],
    )
    .await?;
    let (consumer_rss, publisher_rss) = (run.consumer_rss_mb, run.publisher_rss_mb);
    eprintln!(
        "   {events} events in {:.2} s = {:.0} events/s (written at {:.0}/s), runconsumer peak RSS {consumer_rss:.1} MB, runpublisher {publisher_rss:.1} MB, both peak PSS {:.1} MB",
        run.seconds,
        run.rate(),
        written["events_per_s"].as_f64().unwrap_or_default(),
        run.pss_mb
    );
    Ok(run)
}
