//! `cqrs-bench`: end-to-end replication throughput, latency and memory of the framework, side
//! by side in one run with the broker's own limit, an ideal hand-written pipeline and
//! django-cqrs. `scripts/bench` starts the servers and runs `cqrs-bench run`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]
#![allow(unreachable_pub, reason = "a binary")]
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "figures"
)]
#![allow(
    clippy::expect_used,
    reason = "a benchmark binary stops loudly on a broken set-up"
)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "handlers and helpers take what their callers hand over (a handler takes its message by value)"
)]
#![allow(
    clippy::similar_names,
    reason = "the names of a scenario's pairs (before/after, master/replica)"
)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario, page or report reads top to bottom"
)]

mod baseline;
mod events;
mod handwritten;
mod models;
mod proc;
mod producer;
mod recorder;
mod report;
mod scale;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use cqrs_core::db::{Backend, CqrsConnection};
use cqrs_core::master::MasterTable;
use cqrs_core::prelude::*;
use cqrs_core::replica::ReplicaTable;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use models::{BenchItem, BenchItemRef, LatencyItem, LatencyItemRef, RywItem, item};
use producer::Pipeline;
use report::{Latency, Report, Run};

#[derive(Parser)]
#[command(
    name = "cqrs-bench",
    about = "Replication benchmark (see scripts/bench)"
)]
struct Cli {
    #[command(flatten)]
    global: cqrs_rabbit::cli::Global,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// A tiny run that exercises every path (scripts/test); no targets checked.
    Smoke,
    /// The default: one run of each configuration.
    Quick,
    /// Larger runs, three repetitions each (medians).
    Full,
}

/// A part of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Row replication (master → replica), with its baselines and django-cqrs.
    Rows,
    /// Commit-to-applied latency and read-your-writes at paced write rates.
    Latency,
    /// Domain events (publish → handler), with django-microservices-communication.
    Events,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark and write target/bench/results.{md,json,svg}.
    Run {
        #[arg(long, value_enum, default_value = "quick")]
        mode: Mode,
        /// Output directory.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
        /// Backends to measure.
        #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
        backends: Vec<Backend>,
        /// What to measure: row replication, latencies, domain events.
        #[arg(long, value_delimiter = ',', default_value = "rows,latency,events")]
        parts: Vec<Part>,
        /// How many times each measurement runs (medians of rates, every latency run kept);
        /// the mode's own count when not given (3 for full, 1 otherwise).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=20))]
        repeats: Option<u16>,
    },
    /// Write target/bench/results.{md,json,svg} again from an earlier run's results.json, the
    /// targets checked by this version of the report.
    Render {
        /// The directory of the run's results.json.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// (internal) a baseline consumer: plain, or the ideal pipeline with --database.
    Baseline {
        #[arg(long)]
        exchange: String,
        #[arg(long)]
        queue: String,
        #[arg(long)]
        database: Option<String>,
        #[arg(long)]
        expect: usize,
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// (internal) only the master workload on a SQLite file, for profiling.
    #[command(hide = true)]
    WriteOnly {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 20000)]
        rows: i32,
        /// Count each statement's executions and prepares (diesel's instrumentation): a
        /// statement prepared at every execution is one diesel does not cache.
        #[arg(long)]
        statements: bool,
    },
    /// How the cost grows: drains with one dimension moved at a time, and a big backlog;
    /// writes target/bench/scale.{md,json,svg}.
    Scale {
        /// Output directory.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
        /// Backends to measure.
        #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
        backends: Vec<Backend>,
        /// Messages of the base point.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(i32).range(100..=10_000_000))]
        messages: i32,
        /// Messages of the backlog (written with no relay, then published).
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(i32).range(100..=100_000_000))]
        backlog: i32,
        /// Replica table sizes to drain into (rows already there).
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        table_rows: Vec<i64>,
        /// Only these dimensions (`table-rows`, `message-bytes`, `replica-queues`,
        /// `consumer-processes`, `relay-processes`, `models`, `backlog`; the base point runs
        /// with any drain); default: all.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// (internal) the master's side of a run: its writes and its relay, in their own process.
    #[command(hide = true)]
    Producer(producer::Args),
    #[command(flatten)]
    Cqrs(cqrs_rabbit::cli::Command),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Cqrs(command) => cqrs_rabbit::cli::execute(command, &cli.global, "bench.sqlite3"),
        Cmd::Producer(args) => match producer::run(&args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("producer: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Cmd::Baseline {
            exchange,
            queue,
            database,
            expect,
            batch,
        } => {
            let amqp = std::env::var("AMQP_ADDR").unwrap_or_default();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            match runtime.block_on(baseline::consume(
                &amqp,
                &exchange,
                &queue,
                database.as_deref(),
                expect,
                batch,
            )) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("baseline consumer: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Cmd::WriteOnly {
            db,
            rows,
            statements,
        } => {
            let _ = std::fs::remove_file(&db);
            let result = (|| -> anyhow::Result<()> {
                let mut conn = SqliteConnection::cqrs_connect(&db)?;
                CqrsConnection::cqrs_setup(&mut conn)?;
                diesel::connection::SimpleConnection::batch_execute(&mut conn, models::SQLITE_DDL)?;
                let counts = statements.then(|| statement_counts(&mut conn));
                let start = Instant::now();
                let writes = workload(&mut conn, rows)?;
                eprintln!(
                    "{writes} writes in {:.2} s = {:.0}/s",
                    start.elapsed().as_secs_f64(),
                    writes as f64 / start.elapsed().as_secs_f64()
                );
                if let Some(counts) = counts {
                    let counts = counts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                    for (sql, (runs, prepares)) in counts.iter() {
                        eprintln!("{runs:>8} runs {prepares:>8} cached prepares  {sql}");
                    }
                }
                Ok(())
            })();
            match result {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Cmd::Scale {
            out,
            backends,
            messages,
            backlog,
            table_rows,
            only,
        } => {
            let sizes = scale::ScaleSizes {
                messages,
                backlog,
                table_rows,
                only,
            };
            match scale_run(&out, &backends, &sizes) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bench --scale failed: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Cmd::Render { out } => match report::Report::render(&out) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench render failed: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Cmd::Run {
            mode,
            out,
            backends,
            parts,
            repeats,
        } => match run(mode, &out, &backends, &parts, repeats) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench failed: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

/// Per statement text: (executions, prepares into diesel's cache).
type StatementCounts =
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>>;

/// Counts `conn`'s statements (`write-only --statements`).
fn statement_counts(conn: &mut SqliteConnection) -> StatementCounts {
    use diesel::connection::{Instrumentation, InstrumentationEvent};
    let counts = StatementCounts::default();
    let sink = counts.clone();
    let instrumentation = move |event: InstrumentationEvent<'_>| {
        let Ok(mut counts) = sink.lock() else { return };
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let sql = query.to_string();
                let sql = sql.split(" -- binds").next().unwrap_or_default().to_owned();
                counts.entry(sql).or_default().0 += 1;
            }
            InstrumentationEvent::CacheQuery { sql, .. } => {
                counts.entry(sql.to_owned()).or_default().1 += 1;
            }
            _ => {}
        }
    };
    let boxed: Box<dyn Instrumentation> = Box::new(instrumentation);
    diesel::Connection::set_instrumentation(conn, boxed);
    counts
}

struct Sizes {
    rows: i32,
    django_rows: i32,
    events: i32,
    python_events: i32,
    repeats: usize,
    latency_secs: u64,
    configs: Vec<(usize, usize)>,
    /// Alternated runs with metrics off and on.
    metrics_pairs: usize,
    /// Rows of the runs on PostgreSQL with fsync on.
    durable_rows: i32,
}

fn sizes(mode: Mode) -> Sizes {
    match mode {
        Mode::Smoke => Sizes {
            rows: 200,
            django_rows: 60,
            events: 100,
            python_events: 30,
            repeats: 1,
            latency_secs: 1,
            configs: vec![(1, 1), (500, 2)],
            metrics_pairs: 1,
            durable_rows: 100,
        },
        Mode::Quick => Sizes {
            rows: 5000,
            django_rows: 1500,
            events: 5000,
            python_events: 1000,
            repeats: 1,
            latency_secs: 3,
            configs: vec![(1, 1), (1, 2), (500, 1), (500, 2)],
            metrics_pairs: 7,
            durable_rows: 2000,
        },
        Mode::Full => Sizes {
            rows: 10000,
            django_rows: 3000,
            events: 20000,
            python_events: 3000,
            repeats: 3,
            latency_secs: 10,
            configs: vec![(1, 1), (1, 2), (500, 1), (500, 2)],
            metrics_pairs: 7,
            durable_rows: 5000,
        },
    }
}

struct Env {
    amqp: String,
    pg: Option<String>,
    python: Option<String>,
    django_dir: PathBuf,
    bin: PathBuf,
    tmp: PathBuf,
    counter: std::cell::Cell<u32>,
    /// RabbitMQ and the PostgreSQL server, whose CPU a run charges to itself.
    servers: proc::Servers,
    /// `pg` is a server with PostgreSQL's defaults (`fsync=on`, `synchronous_commit=on`).
    durable: bool,
}

impl Env {
    /// How a run on `backend` is labelled: `postgres, fsync on` on the durable server.
    fn label(&self, backend: Backend) -> String {
        if self.durable && backend.is_postgres() {
            "postgres, fsync on".to_owned()
        } else {
            backend.name().to_owned()
        }
    }

    fn name(&self, what: &str) -> String {
        self.counter.set(self.counter.get() + 1);
        format!("bench_{what}_{}_{}", std::process::id(), self.counter.get())
    }

    /// A fresh database of the backend, with the benchmark's tables.
    fn database(&self, backend: Backend, name: &str) -> anyhow::Result<String> {
        let url = if backend.is_postgres() {
            let base = self.pg.clone().context("BENCH_PG_URL is not set")?;
            let mut admin = PgConnection::establish(&base)?;
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}")).execute(&mut admin)?;
            diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin)?;
            let (prefix, _) = base.rsplit_once('/').context("bad BENCH_PG_URL")?;
            format!("{prefix}/{name}")
        } else {
            let path = self.tmp.join(format!("{name}.sqlite3"));
            let _ = std::fs::remove_file(&path);
            path.to_str().context("path")?.to_owned()
        };
        cqrs_core::with_connection!(&url, |conn| {
            conn.cqrs_setup()?;
            let ddl = if backend.is_postgres() {
                models::POSTGRES_DDL
            } else {
                models::SQLITE_DDL
            };
            diesel::connection::SimpleConnection::batch_execute(conn, ddl)?;
        });
        Ok(url)
    }

    /// Drops a database [`Env::database`] made (best effort: the disk goes back).
    fn drop_database(&self, backend: Backend, url: &str) {
        if backend.is_postgres() {
            let (Some(base), Some((_, name))) = (self.pg.as_deref(), url.rsplit_once('/')) else {
                return;
            };
            if let Ok(mut admin) = PgConnection::establish(base) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        } else {
            let _ = std::fs::remove_file(url);
        }
    }

    fn config(&self, exchange: &str, queue: &str) -> anyhow::Result<cqrs_rabbit::Config> {
        Ok(cqrs_rabbit::Config {
            url: cqrs_rabbit::BrokerUrl::parse(&self.amqp)?,
            exchange: exchange.to_owned(),
            queue: Some(queue.to_owned()),
            ..cqrs_rabbit::Config::default()
        })
    }
}

/// The run's services and paths, from the variables `scripts/bench` sets.
fn bench_env(
    tmp: &Path,
    pg: Option<String>,
    pg_pid_file: Option<String>,
    durable: bool,
) -> anyhow::Result<Env> {
    let var = |name: &str| std::env::var(name).ok();
    Ok(Env {
        amqp: std::env::var("AMQP_ADDR").context("AMQP_ADDR is not set (scripts/bench sets it)")?,
        pg,
        python: var("BENCH_PYTHON"),
        django_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("django"),
        bin: std::env::current_exe()?,
        tmp: tmp.to_owned(),
        counter: std::cell::Cell::new(0),
        servers: proc::Servers::new(
            var("BENCH_RABBIT_PID_FILE").as_deref(),
            pg_pid_file.as_deref(),
        ),
        durable,
    })
}

/// `scripts/bench --scale`: the curves of [`scale`], written to `out/scale.{md,json,svg}`.
fn scale_run(out: &Path, backends: &[Backend], sizes: &scale::ScaleSizes) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let tmp = out.join("tmp-scale");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let var = |name: &str| std::env::var(name).ok();
    let env = bench_env(&tmp, var("BENCH_PG_URL"), var("BENCH_PG_PID_FILE"), false)?;
    let runtime = tokio::runtime::Runtime::new()?;
    scale::run(&env, &runtime, backends, sizes, out)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

fn run(
    mode: Mode,
    out: &Path,
    backends: &[Backend],
    parts: &[Part],
    repeats: Option<u16>,
) -> anyhow::Result<()> {
    let mut sizes = sizes(mode);
    if let Some(repeats) = repeats {
        sizes.repeats = usize::from(repeats);
    }
    recorder::install()?;
    std::fs::create_dir_all(out)?;
    let tmp = out.join("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let var = |name: &str| std::env::var(name).ok();
    let env_on = |pg: Option<String>, pg_pid_file: Option<String>, durable: bool| {
        bench_env(&tmp, pg, pg_pid_file, durable)
    };
    let env = env_on(var("BENCH_PG_URL"), var("BENCH_PG_PID_FILE"), false)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut report = Report::new(mode_name(mode), sizes.rows, sizes.django_rows);
    if parts.contains(&Part::Rows) {
        rows(&env, &runtime, &sizes, backends, &mut report)?;
        // the production-like figure: a PostgreSQL server with its defaults
        if let Some(url) = var("BENCH_PG_DURABLE_URL")
            && backends.contains(&Backend::Postgres)
        {
            let durable = env_on(Some(url), var("BENCH_PG_DURABLE_PID_FILE"), true)?;
            durable_rows(&durable, &runtime, &sizes, &mut report)?;
        }
    }
    if parts.contains(&Part::Latency) {
        latencies(&env, &runtime, &sizes, backends, &mut report)?;
    }
    if parts.contains(&Part::Events) {
        for repeat in 0..sizes.repeats {
            for &backend in backends {
                eprintln!("== {backend}: domain events, cqrs-rs (run {})", repeat + 1);
                report
                    .events
                    .push(runtime.block_on(events::ours(&env, backend, sizes.events))?);
            }
            if env.python.is_some() && backends.contains(&Backend::Postgres) {
                eprintln!(
                    "== postgres: domain events, django-microservices-communication 2.6.9 (run {})",
                    repeat + 1
                );
                report
                    .events
                    .push(runtime.block_on(events::python(&env, sizes.python_events))?);
            }
        }
    }
    report.write(out, mode != Mode::Smoke)?;
    let _ = std::fs::remove_dir_all(&env.tmp);
    Ok(())
}

/// Row replication: the master's writes, the baselines, the framework's configurations and
/// django-cqrs, per backend (the latencies are [`latencies`]).
fn rows(
    env: &Env,
    runtime: &tokio::runtime::Runtime,
    sizes: &Sizes,
    backends: &[Backend],
    report: &mut Report,
) -> anyhow::Result<()> {
    for &backend in backends {
        eprintln!("== {backend}: the messages the workload produces");
        let messages = master_messages(env, backend, sizes.rows)?;
        let body_bytes =
            messages.iter().map(|(_, b)| b.len()).sum::<usize>() / messages.len().max(1);
        report.message_bytes = body_bytes;
        eprintln!(
            "   {} messages of {} bytes on average",
            messages.len(),
            body_bytes
        );
        for repeat in 0..sizes.repeats {
            master_alone_rates(env, runtime, backend, sizes.rows, report)?;
            eprintln!("== {backend}: hand-written peers (run {})", repeat + 1);
            for pipeline in [Pipeline::Dual, Pipeline::Outbox] {
                report
                    .runs
                    .push(runtime.block_on(hand_run(env, backend, pipeline, sizes.rows))?);
            }
            eprintln!("== {backend}: baselines (run {})", repeat + 1);
            report
                .runs
                .push(runtime.block_on(baseline_run(env, backend, "plain", None, &messages, 500))?);
            report.runs.push(runtime.block_on(baseline_run(
                env,
                backend,
                "ideal",
                Some(1),
                &messages,
                1,
            ))?);
            report.runs.push(runtime.block_on(baseline_run(
                env,
                backend,
                "ideal",
                Some(500),
                &messages,
                500,
            ))?);
            for &(batch, workers) in &sizes.configs {
                eprintln!(
                    "== {backend}: framework, batch {batch}, {workers} worker(s) (run {})",
                    repeat + 1
                );
                report.runs.push(runtime.block_on(ours_on(
                    env,
                    backend,
                    sizes.rows,
                    batch,
                    workers,
                    Extra::None,
                ))?);
            }
            // metrics off and on, alternated: the medians of several pairs, since one pair
            // differs by the machine's noise (about 10% at this size)
            // in the first repetition only: the pairs' own median is what they report
            let pairs = if repeat == 0 { sizes.metrics_pairs } else { 0 };
            for pair in 0..pairs {
                eprintln!(
                    "== {backend}: batch 500, 1 worker, metrics off and on, in alternating order (Prometheus recorder in the relay and the consumer; pair {} of {})",
                    pair + 1,
                    sizes.metrics_pairs
                );
                // the order alternates, so that what one run leaves behind (dirty pages, the
                // broker's and the database's housekeeping) weighs on both sides alike
                let run =
                    |extra| runtime.block_on(ours_on(env, backend, sizes.rows, 500, 1, extra));
                let (off, on) = if pair % 2 == 0 {
                    let off = run(Extra::None)?;
                    (off, run(Extra::Metrics)?)
                } else {
                    let on = run(Extra::Metrics)?;
                    (run(Extra::None)?, on)
                };
                report.runs.push(off.clone());
                report.runs.push(on.clone());
                report
                    .metrics_pairs
                    .push((backend.name().to_owned(), off, on));
            }
            eprintln!(
                "== {backend}: framework, outbox drain only (the master wrote first), batch 500, 1 worker"
            );
            report.runs.push(runtime.block_on(ours_on(
                env,
                backend,
                sizes.rows,
                500,
                1,
                Extra::Drain,
            ))?);
            if env.python.is_some() {
                eprintln!("== {backend}: django-cqrs 3.1.0 (run {})", repeat + 1);
                report
                    .runs
                    .push(runtime.block_on(django_run(env, backend, sizes.django_rows))?);
            }
        }
    }
    Ok(())
}

/// One row per pipeline on a PostgreSQL server with its defaults (`fsync=on`,
/// `synchronous_commit=on`, `full_page_writes=on`): every commit waits for the disk, so the
/// runs are smaller (`Sizes::durable_rows`).
fn durable_rows(
    env: &Env,
    runtime: &tokio::runtime::Runtime,
    sizes: &Sizes,
    report: &mut Report,
) -> anyhow::Result<()> {
    let backend = Backend::Postgres;
    let rows = sizes.durable_rows;
    let messages = master_messages(env, backend, rows)?;
    for repeat in 0..sizes.repeats {
        master_alone_rates(env, runtime, backend, rows, report)?;
        eprintln!(
            "== {}: the pipelines, {rows} rows (run {})",
            env.label(backend),
            repeat + 1
        );
        report.runs.push(runtime.block_on(baseline_run(
            env,
            backend,
            "ideal",
            Some(500),
            &messages,
            500,
        ))?);
        for pipeline in [Pipeline::Dual, Pipeline::Outbox] {
            report
                .runs
                .push(runtime.block_on(hand_run(env, backend, pipeline, rows))?);
        }
        for extra in [Extra::None, Extra::Drain] {
            report
                .runs
                .push(runtime.block_on(ours_on(env, backend, rows, 500, 1, extra))?);
        }
    }
    Ok(())
}

/// Commit-to-applied latency at 1,000 writes/s, and read-your-writes at 100 and 1,000 writes/s,
/// per backend, `sizes.repeats` times each (interleaved, so that a slow minute of the machine
/// falls on one run of each rather than on every run of one).
fn latencies(
    env: &Env,
    runtime: &tokio::runtime::Runtime,
    sizes: &Sizes,
    backends: &[Backend],
    report: &mut Report,
) -> anyhow::Result<()> {
    let secs = sizes.latency_secs;
    for &backend in backends {
        for repeat in 1..=sizes.repeats {
            let run = format!("run {repeat} of {}", sizes.repeats);
            eprintln!(
                "== {backend}: commit-to-applied latency at 1,000 writes/s for {secs} s, {run}"
            );
            let latency = if backend.is_postgres() {
                runtime.block_on(latency::<PgConnection>(env, backend, secs))?
            } else {
                runtime.block_on(latency::<SqliteConnection>(env, backend, secs))?
            };
            report
                .latency
                .entry(backend.name().to_owned())
                .or_default()
                .0
                .push(latency);
            for rate in [100, 1000] {
                eprintln!(
                    "== {backend}: read-your-writes (commit to wait_applied), {rate} writes/s for {secs} s, {run}"
                );
                let ryw = if backend.is_postgres() {
                    runtime.block_on(read_your_writes::<PgConnection>(env, backend, rate, secs))?
                } else {
                    runtime.block_on(read_your_writes::<SqliteConnection>(
                        env, backend, rate, secs,
                    ))?
                };
                report
                    .read_your_writes
                    .entry(format!("{} {rate}/s", backend.name()))
                    .or_default()
                    .0
                    .push(ryw);
            }
        }
    }
    Ok(())
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Smoke => "smoke",
        Mode::Quick => "quick",
        Mode::Full => "full",
    }
}

/// The master workload: `rows` creates, an update of each (the tracked title changes), deletes
/// of 10%, each write its own transaction.
fn workload<C: CqrsConnection>(conn: &mut C, rows: i32) -> anyhow::Result<usize>
where
    BenchItem: MasterStore<C>,
{
    let mut writes = 0;
    for id in 1..=rows {
        item(id).cqrs_insert(conn)?;
        writes += 1;
    }
    for id in 1..=rows {
        BenchItem::cqrs_update(conn, &id, |b| {
            b.title = format!("Item {id} (revised)");
            b.version += 1;
        })?;
        writes += 1;
    }
    for id in (1..=rows).step_by(10) {
        BenchItem::cqrs_delete_pk(conn, &id)?;
        writes += 1;
    }
    Ok(writes)
}

fn expected_rows(rows: i32) -> i64 {
    i64::from(rows) - i64::from((rows + 9) / 10)
}

/// Routing key and body of each message, in outbox order.
type Messages = Vec<(String, String)>;

/// Runs the workload on a scratch master; returns the outbox's messages (what the baselines
/// publish).
fn master_messages(env: &Env, backend: Backend, rows: i32) -> anyhow::Result<Messages> {
    let url = env.database(backend, &env.name("scratch"))?;
    if backend.is_postgres() {
        scratch::<PgConnection>(&url, rows)
    } else {
        scratch::<SqliteConnection>(&url, rows)
    }
}

fn scratch<C: CqrsConnection>(url: &str, rows: i32) -> anyhow::Result<Messages>
where
    BenchItem: MasterStore<C>,
{
    let mut conn = C::cqrs_connect(url)?;
    workload(&mut conn, rows)?;
    Ok(conn
        .outbox_fetch(i64::MAX)?
        .into_iter()
        .map(|r| (r.routing_key, r.body))
        .collect())
}

pub struct Child2(Child);

impl Drop for Child2 {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn spawn(mut cmd: Command) -> anyhow::Result<Child2> {
    use std::os::unix::process::CommandExt;
    Ok(Child2(cmd.process_group(0).stdin(Stdio::null()).spawn()?))
}

/// Waits until somebody consumes `queue`.
async fn wait_consumer(amqp: &str, queue: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let conn = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        let declared = cqrs_rabbit::broker::inspect_queue(&channel, queue).await;
        let _ = conn.close(200, "".into()).await;
        if declared.is_ok_and(|q| q.consumer_count() > 0) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_mins(1) {
            bail!("nobody consumes {queue}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `cqrs-bench producer` child and the JSON lines it prints.
struct ProducerChild {
    child: Child2,
    lines: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    /// A line read while waiting for another.
    seen: Vec<serde_json::Value>,
}

/// How a producer runs besides its pipeline.
#[derive(Debug, Clone, Copy, Default)]
struct ProducerMode {
    alone: bool,
    drain: bool,
    metrics: bool,
}

impl ProducerChild {
    fn spawn(
        env: &Env,
        pipeline: Pipeline,
        db: &str,
        rows: i32,
        exchange: &str,
        mode: ProducerMode,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(&env.bin);
        cmd.args([
            "producer",
            "--pipeline",
            pipeline.name(),
            "--db",
            db,
            "--rows",
            &rows.to_string(),
            "--exchange",
            exchange,
        ])
        .env("AMQP_ADDR", &env.amqp)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped());
        for (on, flag) in [
            (mode.alone, "--alone"),
            (mode.drain, "--drain"),
            (mode.metrics, "--metrics"),
        ] {
            if on {
                cmd.arg(flag);
            }
        }
        let mut child = spawn(cmd)?;
        let stdout = child.0.stdout.take().context("the producer's stdout")?;
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str(&line)
                    && tx.send(value).is_err()
                {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// The line with `key`, waiting for it (10 minutes at most).
    async fn line(&mut self, key: &str) -> anyhow::Result<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_mins(10);
        loop {
            if let Some(at) = self.seen.iter().position(|l| l.get(key).is_some()) {
                return Ok(self.seen.remove(at));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                Ok(None) => bail!("the producer ended before it said {key}"),
                Err(_) => bail!("the producer did not say {key} in 10 minutes"),
            }
        }
    }

    /// The line with `key` if it came already.
    fn try_line(&mut self, key: &str) -> Option<serde_json::Value> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let at = self.seen.iter().position(|l| l.get(key).is_some())?;
        Some(self.seen.remove(at))
    }

    fn cpu_seconds(&self) -> f64 {
        proc::cpu_seconds(self.child.0.id())
    }
}

/// A producer's clock start: (wall clock in microseconds, its CPU seconds then).
fn started(line: &serde_json::Value) -> (i64, f64) {
    (
        line["start_us"].as_i64().unwrap_or_default(),
        line["cpu_s"].as_f64().unwrap_or_default(),
    )
}

/// The master's writes alone (no relay, no consumer), for each writer: plain diesel, the
/// framework (outbox included), the hand-written outbox and the hand-written dual write
/// (publishing after each commit). Records writes/s.
fn master_alone_rates(
    env: &Env,
    runtime: &tokio::runtime::Runtime,
    backend: Backend,
    rows: i32,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!(
        "== {}: the master's writes alone, no relay, no consumer",
        env.label(backend)
    );
    for pipeline in [
        Pipeline::Plain,
        Pipeline::Framework,
        Pipeline::Outbox,
        Pipeline::Dual,
    ] {
        let rate = runtime.block_on(master_alone(env, backend, pipeline, rows))?;
        eprintln!("   {}: {rate:.0} writes/s", pipeline.name());
        report
            .master_write
            .entry(env.label(backend))
            .or_default()
            .entry(pipeline.name().to_owned())
            .or_default()
            .push(rate);
    }
    Ok(())
}

async fn master_alone(
    env: &Env,
    backend: Backend,
    pipeline: Pipeline,
    rows: i32,
) -> anyhow::Result<f64> {
    let db = env.database(backend, &env.name("alone"))?;
    let exchange = env.name("x");
    let queue = env.name("q");
    // a dual write's messages land in a durable queue, as they would with a consumer
    let broker =
        lapin::Connection::connect(&env.amqp, lapin::ConnectionProperties::default()).await?;
    let channel = broker.create_channel().await?;
    baseline::declare(&channel, &exchange, &queue, handwritten::ROUTING_KEY).await?;
    let mode = ProducerMode {
        alone: true,
        ..ProducerMode::default()
    };
    let mut producer = ProducerChild::spawn(env, pipeline, &db, rows, &exchange, mode)?;
    let written = producer.line("writes").await?;
    drop(producer);
    channel
        .queue_delete(
            queue.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await?;
    let _ = broker.close(200, "done".into()).await;
    Ok(written["writes"].as_f64().unwrap_or_default()
        / written["write_seconds"].as_f64().unwrap_or(1.0).max(1e-9))
}

/// A hand-written peer end to end: its master (dual write, or outbox and minimal relay) in a
/// producer process, the ideal consumer (batches of up to 500, one transaction each, ack after
/// the commit) in another.
async fn hand_run(
    env: &Env,
    backend: Backend,
    pipeline: Pipeline,
    rows: i32,
) -> anyhow::Result<Run> {
    let exchange = env.name("x");
    let queue = env.name("q");
    let master = env.database(backend, &env.name("hmaster"))?;
    let replica = env.database(backend, &env.name("hreplica"))?;
    let expect = 2 * rows as usize + ((rows + 9) / 10) as usize;
    let mut cmd = Command::new(&env.bin);
    cmd.args([
        "baseline",
        "--exchange",
        &exchange,
        "--queue",
        &queue,
        "--expect",
        &expect.to_string(),
        "--batch",
        "500",
        "--database",
        &replica,
    ])
    .env("AMQP_ADDR", &env.amqp)
    .stdout(Stdio::piped());
    let mut consumer = cmd.stdin(Stdio::null()).spawn()?;
    wait_consumer(&env.amqp, &queue).await?;
    let servers = env.servers.sample();
    let mut producer = ProducerChild::spawn(
        env,
        pipeline,
        &master,
        rows,
        &exchange,
        ProducerMode::default(),
    )?;
    let (start_us, producer_cpu_at_start) = started(&producer.line("start_us").await?);
    let output = tokio::task::spawn_blocking(move || {
        let status = consumer.wait()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut consumer.stdout.take().context("stdout")?, &mut text)?;
        anyhow::ensure!(status.success(), "the baseline consumer failed");
        Ok::<_, anyhow::Error>(text)
    })
    .await??;
    let done: serde_json::Value = serde_json::from_str(output.trim())?;
    let written = producer.line("writes").await?;
    let producer_cpu = producer.cpu_seconds() - producer_cpu_at_start;
    let relay_rss_mb = proc::peak_rss_kb(producer.child.0.id()) as f64 / 1024.0;
    let (broker, database) = env.servers.sample().since(servers);
    drop(producer);
    let seconds = (done["done_us"].as_i64().unwrap_or_default() - start_us) as f64 / 1e6;
    let writer_cpu = written["writer_cpu_s"].as_f64().unwrap_or_default();
    let cpu = proc::Cpu {
        master: writer_cpu,
        relay: (producer_cpu - writer_cpu).max(0.0),
        consumer: done["cpu_s"].as_f64().unwrap_or_default(),
        broker,
        database,
    };
    let equal = ideal_aggregate(&replica)? == (expected_rows(rows), expected_rows(rows));
    anyhow::ensure!(
        equal,
        "the hand-written {} replica differs",
        pipeline.name()
    );
    eprintln!(
        "   {}: {expect} messages in {seconds:.2} s = {:.0} msg/s, CPU {:.0} us/message",
        pipeline.name(),
        expect as f64 / seconds,
        1e6 * cpu.total() / expect as f64
    );
    Ok(Run {
        backend: env.label(backend),
        pipeline: format!("hand-{}", pipeline.name()),
        batch: 500,
        workers: 1,
        messages: expect,
        seconds,
        rss_mb: done["rss_kb"].as_u64().unwrap_or_default() as f64 / 1024.0,
        relay_rss_mb,
        cpu,
        equal,
    })
}

/// The ideal consumer's table: its row count and revision sum.
fn ideal_aggregate(url: &str) -> anyhow::Result<(i64, i64)> {
    let query = diesel::sql_query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(revision), 0) AS BIGINT) AS s FROM ideal_items",
    );
    let row: Aggregate = if Backend::of_url(url)?.is_postgres() {
        query.get_result(&mut PgConnection::cqrs_connect(url)?)?
    } else {
        query.get_result(&mut SqliteConnection::cqrs_connect(url)?)?
    };
    Ok((row.n, row.s))
}

async fn baseline_run(
    env: &Env,
    backend: Backend,
    kind: &str,
    transaction: Option<usize>,
    messages: &[(String, String)],
    batch: usize,
) -> anyhow::Result<Run> {
    let exchange = env.name("x");
    let queue = env.name("q");
    let mut cmd = Command::new(&env.bin);
    cmd.args([
        "baseline",
        "--exchange",
        &exchange,
        "--queue",
        &queue,
        "--expect",
        &messages.len().to_string(),
        "--batch",
        &batch.to_string(),
    ])
    .env("AMQP_ADDR", &env.amqp)
    .stdout(Stdio::piped());
    if transaction.is_some() {
        cmd.arg("--database")
            .arg(env.database(backend, &env.name("ideal"))?);
    }
    let mut child = cmd.stdin(Stdio::null()).spawn()?;
    wait_consumer(&env.amqp, &queue).await?;
    let servers = env.servers.sample();
    // the publisher runs in this process, which does nothing else meanwhile
    let publisher_cpu = proc::cpu_seconds(std::process::id());
    let start_us = chrono::Utc::now().timestamp_micros();
    baseline::publish_all(&env.amqp, &exchange, messages).await?;
    let publisher_cpu = proc::cpu_seconds(std::process::id()) - publisher_cpu;
    let output = tokio::task::spawn_blocking(move || {
        let status = child.wait()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().context("stdout")?, &mut text)?;
        anyhow::ensure!(status.success(), "the baseline consumer failed");
        Ok::<_, anyhow::Error>(text)
    })
    .await??;
    let (broker, database) = env.servers.sample().since(servers);
    let done: serde_json::Value = serde_json::from_str(output.trim())?;
    let seconds = (done["done_us"].as_i64().unwrap_or_default() - start_us) as f64 / 1e6;
    eprintln!(
        "   {kind}{}: {} messages in {seconds:.2} s = {:.0} msg/s",
        transaction.map_or(String::new(), |t| format!(" ({t} per transaction)")),
        messages.len(),
        messages.len() as f64 / seconds
    );
    Ok(Run {
        backend: env.label(backend),
        pipeline: kind.to_owned(),
        batch,
        workers: 1,
        messages: messages.len(),
        seconds,
        rss_mb: done["rss_kb"].as_u64().unwrap_or_default() as f64 / 1024.0,
        cpu: proc::Cpu {
            master: 0.0,
            relay: publisher_cpu,
            consumer: done["cpu_s"].as_f64().unwrap_or_default(),
            broker,
            database,
        },
        relay_rss_mb: 0.0,
        equal: true,
    })
}

/// The replica's row count and revision sum (on one connection, polled every 20 ms: the
/// harness must not steal the machine from what it measures).
fn replica_aggregate<C: CqrsConnection>(conn: &mut C) -> anyhow::Result<(i64, i64)>
where
    BenchItemRef: ReplicaStore<C>,
{
    let n = BenchItemRef::cqrs_count(conn)?;
    if n == 0 {
        return Ok((0, 0));
    }
    let pks = BenchItemRef::cqrs_pks(conn, None, i64::MAX)?;
    let mut revisions = 0;
    for chunk in pks.chunks(500) {
        revisions += BenchItemRef::db_get_many(conn, chunk, false)?
            .iter()
            .map(|r| i64::from(r.cqrs_revision))
            .sum::<i64>();
    }
    Ok((n, revisions))
}

/// The framework: master writes with an in-process relay, a consumer process. With `drain`,
/// the master writes first and the clock starts when the relay starts: the relay, broker and
/// consumer alone, comparable with the ideal pipeline (which publishes ready-made messages).
/// What a framework run does besides the plain end-to-end run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    None,
    /// The master writes first; the relay and the consumer then drain the outbox.
    Drain,
    /// Metrics on: the Prometheus recorder records in the relay and in the consumer.
    Metrics,
}

/// [`ours`] on the backend's connection type.
async fn ours_on(
    env: &Env,
    backend: Backend,
    rows: i32,
    batch: usize,
    workers: usize,
    extra: Extra,
) -> anyhow::Result<Run> {
    if backend.is_postgres() {
        ours::<PgConnection>(env, backend, rows, batch, workers, extra).await
    } else {
        ours::<SqliteConnection>(env, backend, rows, batch, workers, extra).await
    }
}

async fn ours<C: CqrsConnection>(
    env: &Env,
    backend: Backend,
    rows: i32,
    batch: usize,
    workers: usize,
    extra: Extra,
) -> anyhow::Result<Run>
where
    BenchItem: MasterStore<C>,
    BenchItemRef: ReplicaStore<C>,
{
    let exchange = env.name("x");
    let queue = env.name("q");
    let master = env.database(backend, &env.name("master"))?;
    let replica = env.database(backend, &env.name("replica"))?;
    let mut cmd = consumer_command(env, &replica, &exchange, &queue);
    cmd.env("CQRS_BATCH_SIZE", batch.to_string())
        .env("CQRS_WORKERS", workers.to_string());
    if extra == Extra::Metrics {
        cmd.env("CQRS_METRICS_ADDR", "127.0.0.1:0");
    }
    let child = spawn(cmd)?;
    wait_consumer(&env.amqp, &queue).await?;
    let servers = env.servers.sample();
    let mode = ProducerMode {
        alone: false,
        drain: extra == Extra::Drain,
        metrics: extra == Extra::Metrics,
    };
    let mut producer =
        ProducerChild::spawn(env, Pipeline::Framework, &master, rows, &exchange, mode)?;
    let (start_us, producer_cpu_at_start) = started(&producer.line("start_us").await?);
    let expected = expected_rows(rows);
    let start = Instant::now();
    let deadline = Duration::from_mins(10);
    let mut poll = C::cqrs_connect(&replica)?;
    let mut written = None;
    loop {
        if written.is_none() {
            written = producer.try_line("writes");
        }
        // count first (cheap); the revisions only once every row is there
        let n = BenchItemRef::cqrs_count(&mut poll)?;
        if n == expected
            && written.is_some()
            && replica_aggregate(&mut poll)? == (expected, expected)
        {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < deadline,
            "the replica did not converge ({n} rows)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = (chrono::Utc::now().timestamp_micros() - start_us) as f64 / 1e6;
    let written = written.unwrap_or_default();
    let writes = written["writes"].as_u64().unwrap_or_default() as usize;
    let write_seconds = written["write_seconds"].as_f64().unwrap_or_default();
    let rss_mb = proc::peak_rss_kb(child.0.id()) as f64 / 1024.0;
    let relay_rss_mb = proc::peak_rss_kb(producer.child.0.id()) as f64 / 1024.0;
    let consumer_cpu = proc::cpu_seconds(child.0.id());
    let producer_cpu = producer.cpu_seconds() - producer_cpu_at_start;
    let (broker, database) = env.servers.sample().since(servers);
    drop(producer);
    drop(child);
    // a drain's writes came before the clock started
    let writer_cpu = if extra == Extra::Drain {
        0.0
    } else {
        written["writer_cpu_s"].as_f64().unwrap_or_default()
    };
    let cpu = proc::Cpu {
        master: writer_cpu,
        relay: (producer_cpu - writer_cpu).max(0.0),
        consumer: consumer_cpu,
        broker,
        database,
    };
    let equal = same_state::<C>(&master, &replica)?;
    anyhow::ensure!(equal, "the replica differs from the master");
    eprintln!(
        "   {writes} messages in {seconds:.2} s = {:.0} msg/s (the master wrote for {write_seconds:.2} s), consumer peak RSS {rss_mb:.1} MB, master process (writes and relay) peak RSS {relay_rss_mb:.1} MB, CPU {:.0} us/message (consumer {:.0}), replica equal",
        writes as f64 / seconds,
        1e6 * cpu.total() / writes.max(1) as f64,
        1e6 * consumer_cpu / writes.max(1) as f64
    );
    let pipeline = match extra {
        Extra::None => "ours",
        Extra::Drain => "ours-drain",
        Extra::Metrics => "ours-metrics",
    };
    Ok(Run {
        backend: env.label(backend),
        pipeline: pipeline.to_owned(),
        batch,
        workers,
        messages: writes,
        seconds,
        rss_mb,
        relay_rss_mb,
        cpu,
        equal,
    })
}

/// Whether the replica holds exactly the master's rows and revisions.
fn same_state<C: CqrsConnection>(master: &str, replica: &str) -> anyhow::Result<bool>
where
    BenchItem: MasterStore<C>,
    BenchItemRef: ReplicaStore<C>,
{
    let mut m = C::cqrs_connect(master)?;
    let mut r = C::cqrs_connect(replica)?;
    let masters = BenchItem::db_page(&mut m, vec![], None, i64::MAX)?;
    let pks = BenchItemRef::cqrs_pks(&mut r, None, i64::MAX)?;
    if pks.len() != masters.len() {
        return Ok(false);
    }
    for row in masters {
        let Some(copy) = BenchItemRef::cqrs_get(&mut r, &row.id)? else {
            return Ok(false);
        };
        if (
            copy.title,
            copy.body,
            copy.version,
            copy.cqrs_revision,
            copy.cqrs_updated,
        ) != (
            row.title,
            row.body,
            row.version,
            row.cqrs_revision,
            row.cqrs_updated,
        ) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `cqrs-bench consume` (this binary) on `replica`, bound to `exchange` through `queue`.
fn consumer_command(env: &Env, replica: &str, exchange: &str, queue: &str) -> Command {
    consumer_command_of(&env.bin, env, replica, exchange, queue)
}

/// `bin COMMAND` (a service binary's `relay`, `consume`, `events`: this one, or the scale
/// run's fleet) on `database`, with this run's broker and `exchange`.
fn service_command(
    bin: &Path,
    env: &Env,
    command: &str,
    database: &str,
    exchange: &str,
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg(command)
        .env("DATABASE_URL", database)
        .env("CQRS_BROKER_URL", &env.amqp)
        .env("CQRS_EXCHANGE", exchange)
        .env("RUST_LOG", "error");
    cmd
}

/// `consume` of the service binary `bin` on `replica`, bound to `exchange` through `queue`.
fn consumer_command_of(
    bin: &Path,
    env: &Env,
    replica: &str,
    exchange: &str,
    queue: &str,
) -> Command {
    let mut cmd = service_command(bin, env, "consume", replica, exchange);
    cmd.env("CQRS_QUEUE", queue);
    cmd
}

/// Commit-to-applied latency at a paced 1,000 writes/s.
async fn latency<C: CqrsConnection>(
    env: &Env,
    backend: Backend,
    seconds: u64,
) -> anyhow::Result<Latency>
where
    LatencyItem: MasterStore<C>,
    LatencyItemRef: ReplicaStore<C>,
{
    let exchange = env.name("x");
    let queue = env.name("q");
    let master = env.database(backend, &env.name("lmaster"))?;
    let replica = env.database(backend, &env.name("lreplica"))?;
    let child = spawn(consumer_command(env, &replica, &exchange, &queue))?;
    wait_consumer(&env.amqp, &queue).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(
        cqrs_rabbit::Relay::<C>::new(env.config(&exchange, &queue)?, &master).run(async move {
            let _ = stopped.await;
        }),
    );
    // Steady state only: one write through the whole pipeline before the clock starts, so
    // that the relay's and the consumer's start-up (connections, topology) is not counted.
    {
        let mut conn = C::cqrs_connect(&master)?;
        LatencyItem {
            id: 0,
            payload: String::new(),
            cqrs_revision: 0,
            cqrs_updated: chrono::Utc::now().naive_utc(),
        }
        .cqrs_insert(&mut conn)?;
        let start = Instant::now();
        let mut conn = C::cqrs_connect(&replica)?;
        while LatencyItemRef::cqrs_get(&mut conn, &0)?.is_none() {
            anyhow::ensure!(
                start.elapsed() < Duration::from_mins(1),
                "the latency warm-up write never reached the replica"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let total = i32::try_from(seconds * 1000)?;
    let writer_url = master.clone();
    let commits = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<i64>> {
        let mut conn = C::cqrs_connect(&writer_url)?;
        let start = Instant::now();
        let mut commits = Vec::with_capacity(usize::try_from(total)?);
        for k in 0..total {
            let due = start + Duration::from_micros(u64::try_from(k)? * 1000);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            LatencyItem {
                id: k + 1,
                payload: format!("{k:0>300}"),
                cqrs_revision: 0,
                cqrs_updated: chrono::Utc::now().naive_utc(),
            }
            .cqrs_insert(&mut conn)?;
            commits.push(chrono::Utc::now().timestamp_micros());
        }
        Ok(commits)
    })
    .await??;
    let start = Instant::now();
    let applied: Vec<(i32, i64)> = loop {
        let rows = {
            let mut conn = C::cqrs_connect(&replica)?;
            // the paced writes: ids from 1 (the warm-up write is id 0)
            let pks = LatencyItemRef::cqrs_pks(&mut conn, Some(&0), i64::MAX)?;
            if pks.len() == commits.len() {
                pks.iter()
                    .filter_map(|pk| LatencyItemRef::cqrs_get(&mut conn, pk).ok().flatten())
                    .map(|r| (r.id, r.applied_us.0))
                    .collect()
            } else {
                Vec::new()
            }
        };
        if !rows.is_empty() {
            break rows;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_mins(2),
            "the latency run did not converge"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = stop.send(());
    relay.await??;
    drop(child);
    let latencies: Vec<f64> = applied
        .iter()
        .map(|(id, at)| {
            (*at - commits[usize::try_from(*id - 1).unwrap_or_default()]) as f64 / 1000.0
        })
        .collect();
    let result = Latency::of(latencies);
    eprintln!(
        "   {} writes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        result.writes, result.p50_ms, result.p99_ms, result.max_ms
    );
    Ok(result)
}

/// Read-your-writes latency in one service (`cqrs_core::split::ReadWrite`, relay and consumer
/// in-process): from a master write's commit to the return of its `wait_applied`, with writes
/// paced at `rate` per second and one concurrent wait per write.
async fn read_your_writes<C>(
    env: &Env,
    backend: Backend,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<Latency>
where
    C: cqrs_core::Registered + diesel::r2d2::R2D2Connection,
    RywItem: MasterStore<C>,
{
    use cqrs_core::Written;
    use cqrs_core::split::ReadWrite;
    let exchange = env.name("x");
    let queue = env.name("q");
    let master = env.database(backend, &env.name("rmaster"))?;
    let replica = env.database(backend, &env.name("rreplica"))?;
    let config = env.config(&exchange, &queue)?;
    let db = ReadWrite::<C>::connect(&master, &replica, &cqrs_core::pool::PoolConfig::default())?;
    // the stages' own figures (the framework's metrics), to see where a tail comes from: on
    // before the consumer and the relay register their handles
    recorder::set(true);
    let consumer = cqrs_rabbit::Consumer::<C>::new(config.clone(), replica.as_str())
        .only(vec!["bench_ryw".to_owned()]);
    consumer.check().await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let consuming = tokio::spawn(consumer.run(until_stopped(stopped.clone())));
    let relaying = tokio::spawn(
        cqrs_rabbit::Relay::<C>::new(config, master.as_str()).run(until_stopped(stopped)),
    );
    let write = |db: &ReadWrite<C>, id: i32| -> anyhow::Result<Written> {
        let row = RywItem {
            id,
            payload: format!("{id:0>300}"),
            cqrs_revision: 0,
            cqrs_updated: chrono::Utc::now().naive_utc(),
        }
        .cqrs_insert(&mut *db.primary()?)?;
        Ok(Written::of(&row))
    };
    // steady state only: one write through the whole pipeline before the clock starts
    let warm = write(&db, 0)?;
    db.wait_applied(&warm, Duration::from_mins(1)).await?;
    let _ = recorder::render();

    let total = i32::try_from(seconds * u64::from(rate))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Written, Instant)>();
    let writer_db = db.clone();
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let start = Instant::now();
        let step = Duration::from_secs(1) / rate;
        for k in 1..=total {
            let due = start + step * u32::try_from(k)?;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let written = write(&writer_db, k)?;
            let _ = tx.send((written, Instant::now()));
        }
        Ok(())
    });
    let mut waits = tokio::task::JoinSet::new();
    while let Some((written, committed)) = rx.recv().await {
        let db = db.clone();
        waits.spawn(async move {
            db.wait_applied(&written, Duration::from_secs(30)).await?;
            Ok::<f64, cqrs_core::split::SplitError>(committed.elapsed().as_secs_f64() * 1000.0)
        });
    }
    writer.await??;
    let mut latencies = Vec::with_capacity(usize::try_from(total)?);
    while let Some(done) = waits.join_next().await {
        latencies.push(done??);
    }
    let _ = stop.send(true);
    consuming.await??;
    relaying.await??;
    let result = Latency::of(latencies);
    let stages = recorder::render();
    recorder::set(false);
    let p99 = |metric: &str| {
        recorder::quantile(&stages, metric, 0.99)
            .map_or_else(|| "-".to_owned(), |s| format!("<= {:.1} ms", s * 1000.0))
    };
    eprintln!(
        "   {} writes at {rate}/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (p99 by stage: relay confirm {}, replica batch {}, master commit to replica commit {})",
        result.writes,
        result.p50_ms,
        result.p99_ms,
        result.max_ms,
        p99("cqrs_relay_confirm_seconds"),
        p99("cqrs_consumer_batch_seconds"),
        p99("cqrs_replication_lag_seconds"),
    );
    Ok(result)
}

/// django-cqrs 3.1.0: its master writes (publishing after each commit) and its own
/// `cqrs_consume`, same workload, same broker.
async fn django_run(env: &Env, backend: Backend, rows: i32) -> anyhow::Result<Run> {
    let python = env.python.clone().context("BENCH_PYTHON")?;
    let exchange = env.name("x");
    let queue = env.name("q");
    let databases: Vec<(String, String)> = ["djm", "djr"]
        .iter()
        .map(|role| {
            let name = env.name(role);
            if backend.is_postgres() {
                env.database(backend, &name).map(|_| (name, String::new()))
            } else {
                Ok((
                    env.tmp
                        .join(format!("{name}.sqlite3"))
                        .to_str()
                        .unwrap_or_default()
                        .to_owned(),
                    String::new(),
                ))
            }
        })
        .collect::<anyhow::Result<_>>()?;
    let pg = env.pg.clone().unwrap_or_default();
    let django = |db: &str, args: &[&str]| {
        let mut cmd = Command::new(&python);
        cmd.arg(env.django_dir.join("manage.py"))
            .args(args)
            .env("BENCH_DB_ENGINE", backend.name())
            .env("BENCH_DB_NAME", db)
            .env("BENCH_PG_URL", &pg)
            .env("AMQP_URL", &env.amqp)
            .env("CQRS_EXCHANGE", &exchange)
            .env("CQRS_QUEUE", &queue);
        cmd
    };
    for (db, _) in &databases {
        let status = django(db, &["migrate", "--run-syncdb", "-v", "0"]).status()?;
        anyhow::ensure!(status.success(), "django migrate failed");
    }
    let consumer = spawn(django(&databases[1].0, &["cqrs_consume", "--workers", "1"]))?;
    wait_consumer(&env.amqp, &queue).await?;
    let servers = env.servers.sample();
    // the master runs to its end: its CPU is what this process's reaped children gained
    let master_cpu = proc::reaped_children_cpu_seconds();
    let output = django(
        &databases[0].0,
        &["bench_write", "--rows", &rows.to_string()],
    )
    .stderr(Stdio::inherit())
    .output()?;
    let master_cpu = proc::reaped_children_cpu_seconds() - master_cpu;
    anyhow::ensure!(output.status.success(), "django bench_write failed");
    let written: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let start_us = written["start_us"].as_i64().unwrap_or_default();
    let expected = expected_rows(rows);
    let replica_url = if backend.is_postgres() {
        format!(
            "{}/{}",
            pg.rsplit_once('/').map(|p| p.0).unwrap_or_default(),
            databases[1].0
        )
    } else {
        databases[1].0.clone()
    };
    let start = Instant::now();
    let done_us = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Ok((n, s)) = django_aggregate(&replica_url) else {
            continue;
        };
        if n == expected && s == expected {
            break chrono::Utc::now().timestamp_micros();
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_mins(15),
            "django-cqrs did not converge ({n} rows, revisions {s})"
        );
    };
    let rss_mb = proc::group_peak_rss_kb(consumer.0.id()) as f64 / 1024.0;
    let consumer_cpu = proc::group_cpu_seconds(consumer.0.id());
    let (broker, database) = env.servers.sample().since(servers);
    drop(consumer);
    let messages = usize::try_from(2 * i64::from(rows) + i64::from((rows + 9) / 10))?;
    let seconds = (done_us - start_us) as f64 / 1e6;
    eprintln!(
        "   {messages} messages in {seconds:.2} s = {:.0} msg/s, consumer RSS {rss_mb:.0} MB (master wrote at {:.0} writes/s)",
        messages as f64 / seconds,
        written["writes_per_s"].as_f64().unwrap_or_default()
    );
    Ok(Run {
        backend: backend.name().to_owned(),
        pipeline: "django-cqrs".to_owned(),
        batch: 1,
        workers: 1,
        messages,
        seconds,
        rss_mb,
        relay_rss_mb: 0.0,
        cpu: proc::Cpu {
            master: master_cpu,
            relay: 0.0,
            consumer: consumer_cpu,
            broker,
            database,
        },
        equal: true,
    })
}

/// How many models `cqrs-bench-fleet` has (`fleet.rs`, which only that binary compiles).
const fn fleet_models() -> usize {
    50
}

/// A count and a sum (`n`, `s`) read back from a benchmark table.
#[derive(QueryableByName)]
pub struct Aggregate {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub s: i64,
}

fn django_aggregate(url: &str) -> anyhow::Result<(i64, i64)> {
    let query = diesel::sql_query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(cqrs_revision), 0) AS BIGINT) AS s FROM bench_django_item_refs",
    );
    let row: Aggregate = if cqrs_core::db::Backend::of_url(url)?.is_postgres() {
        query.get_result(&mut PgConnection::establish(url)?)?
    } else {
        // no journal-mode switch here (Django owns the file): only wait for its locks
        let mut conn = SqliteConnection::establish(url)?;
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            "PRAGMA busy_timeout = 15000;",
        )?;
        query.get_result(&mut conn)?
    };
    Ok((row.n, row.s))
}
