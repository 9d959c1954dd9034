//! `cqrs-bench producer` (internal): the master's side of a run in its own process, so that
//! its CPU is its own: the workload on a writer thread and, in the same process as a service
//! would run it, the relay (the framework's, or the hand-written minimal one).
//!
//! It prints JSON lines on stdout: `{"start_us", "cpu_s"}` when the clock starts (for a drain,
//! after the writes), then `{"writes", "write_seconds", "writer_cpu_s"}` once the writes are
//! done (and, for a dual write, confirmed); then it runs until SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::ValueEnum;
use cqrs_core::db::CqrsConnection;
use cqrs_core::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use serde_json::json;

use crate::handwritten::{self, Publisher, Sink};
use crate::models::BenchItem;
use crate::proc;

/// Who writes the master's rows, and how their messages leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pipeline {
    /// The framework: `cqrs_insert`/`cqrs_update`/`cqrs_delete_pk`, the outbox, its relay.
    Framework,
    /// Hand-written: plain diesel, then a lapin publish after each commit.
    Dual,
    /// Hand-written: plain diesel and an outbox row per write, a minimal relay.
    Outbox,
    /// Hand-written: plain diesel, no messages.
    Plain,
}

impl Pipeline {
    pub fn name(self) -> &'static str {
        match self {
            Self::Framework => "framework",
            Self::Dual => "dual",
            Self::Outbox => "outbox",
            Self::Plain => "plain",
        }
    }
}

/// The producer's arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, value_enum)]
    pub pipeline: Pipeline,
    /// The master database.
    #[arg(long)]
    pub db: String,
    #[arg(long)]
    pub rows: i32,
    /// The exchange messages go to (`AMQP_ADDR` is the broker).
    #[arg(long, default_value = "bench")]
    pub exchange: String,
    /// No relay: the master's writes alone (a dual write still publishes).
    #[arg(long)]
    pub alone: bool,
    /// Write everything first, then start the relay (and the clock).
    #[arg(long)]
    pub drain: bool,
    /// The Prometheus recorder records in the relay.
    #[arg(long)]
    pub metrics: bool,
}

#[allow(clippy::print_stdout, reason = "the parent reads it")]
fn say(line: &serde_json::Value) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the producer until SIGTERM.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        if args.metrics {
            crate::recorder::install()?;
            crate::recorder::set(true);
        }
        if cqrs_core::db::Backend::of_url(&args.db)?.is_postgres() {
            produce::<PgConnection>(args).await
        } else {
            produce::<SqliteConnection>(args).await
        }
    })
}

/// The workload on a blocking thread; returns (writes, seconds, the thread's CPU seconds).
async fn write<C: CqrsConnection>(
    args: &Args,
    publisher: Option<Publisher>,
) -> anyhow::Result<(usize, f64, f64)>
where
    BenchItem: MasterStore<C>,
{
    let (pipeline, db, rows) = (args.pipeline, args.db.clone(), args.rows);
    tokio::task::spawn_blocking(move || {
        let cpu = proc::thread_cpu_seconds();
        let start = Instant::now();
        let writes = match (pipeline, publisher) {
            (Pipeline::Framework, _) => crate::workload(&mut C::cqrs_connect(&db)?, rows)?,
            (Pipeline::Dual, Some(mut publisher)) => {
                handwritten::workload(&db, rows, &mut Sink::Publish(&mut publisher))?
            }
            (Pipeline::Dual, None) => anyhow::bail!("a dual write needs a publisher"),
            (Pipeline::Outbox, _) => handwritten::workload(&db, rows, &mut Sink::Outbox)?,
            (Pipeline::Plain, _) => handwritten::workload(&db, rows, &mut Sink::None)?,
        };
        Ok((
            writes,
            start.elapsed().as_secs_f64(),
            proc::thread_cpu_seconds() - cpu,
        ))
    })
    .await?
}

async fn produce<C: CqrsConnection>(args: &Args) -> anyhow::Result<()>
where
    BenchItem: MasterStore<C>,
{
    let amqp = std::env::var("AMQP_ADDR").context("AMQP_ADDR is not set")?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop_flag = Arc::new(AtomicBool::new(false));
    let mut connections = Vec::new();
    let mut publisher = None;
    if args.pipeline == Pipeline::Dual {
        let (conn, p) = Publisher::connect(&amqp, &args.exchange).await?;
        connections.push(conn);
        publisher = Some(p);
    }
    let start_relay = || -> anyhow::Result<Option<tokio::task::JoinHandle<anyhow::Result<()>>>> {
        if args.alone {
            return Ok(None);
        }
        Ok(match args.pipeline {
            Pipeline::Framework => {
                let config = cqrs_rabbit::Config {
                    url: cqrs_rabbit::BrokerUrl::parse(&amqp)?,
                    exchange: args.exchange.clone(),
                    ..cqrs_rabbit::Config::default()
                };
                let mut stopped = stopped.clone();
                let relay = cqrs_rabbit::Relay::<C>::new(config, &args.db).run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                });
                Some(tokio::spawn(async move { Ok(relay.await?) }))
            }
            Pipeline::Outbox => {
                let (db, flag, amqp, exchange) = (
                    args.db.clone(),
                    stop_flag.clone(),
                    amqp.clone(),
                    args.exchange.clone(),
                );
                Some(tokio::spawn(async move {
                    let (conn, publisher) = Publisher::connect(&amqp, &exchange).await?;
                    tokio::task::spawn_blocking(move || handwritten::relay(&db, publisher, &flag))
                        .await??;
                    // the publisher's channel closed with it: the connection's close may
                    // find it closing
                    let _ = conn.close(200, "done".into()).await;
                    Ok(())
                }))
            }
            Pipeline::Dual | Pipeline::Plain => None,
        })
    };
    let started = |cpu: f64| {
        say(&json!({"start_us": chrono::Utc::now().timestamp_micros(), "cpu_s": cpu}));
    };
    let own = || proc::cpu_seconds(std::process::id());
    let (relay, (writes, seconds, writer_cpu)) = if args.drain {
        let written = write::<C>(args, publisher).await?;
        started(own());
        (start_relay()?, written)
    } else {
        let relay = start_relay()?;
        started(own());
        (relay, write::<C>(args, publisher).await?)
    };
    say(&json!({"writes": writes, "write_seconds": seconds, "writer_cpu_s": writer_cpu}));
    terminate.recv().await;
    let _ = stop.send(true);
    stop_flag.store(true, Ordering::Relaxed);
    if let Some(relay) = relay {
        relay.await??;
    }
    for conn in connections {
        let _ = conn.close(200, "done".into()).await;
    }
    Ok(())
}
