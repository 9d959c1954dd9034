//! `scripts/bench --scale`: how the cost grows with the work. Each point drains a pre-filled
//! outbox (the master's writes come before the clock) through relay processes, RabbitMQ and
//! consumer processes into one or more replicas, and reports messages/s and CPU per message
//! by process; one dimension moves at a time from a base point. The backlog runs publish a
//! 1,000,000-message outbox with no replica consumer (the queue is emptied as it fills), to compare the relay's rate with its rate on a
//! small outbox, and read its memory, its statement's plan and the outbox's size after.
#![allow(
    clippy::assigning_clones,
    reason = "clarity over one allocation in tests and examples"
)]
#![allow(
    clippy::similar_names,
    reason = "the names of a scenario's pairs (before/after, master/replica)"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use cqrs_core::db::{Backend, CqrsConnection, OutboxReader};
use cqrs_core::prelude::*;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use plotters::prelude::*;
use serde::Serialize;

use crate::models::{BenchItem, BenchItemRef, item};
use crate::{Child2, Env, consumer_command_of, proc, service_command, spawn, wait_consumer};

/// One drain: what moved from the base point, and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub backend: String,
    /// What varies: `table rows`, `message bytes`, `replica queues`, `consumer processes`,
    /// `relay processes`; `base` for the base point.
    pub dimension: String,
    pub value: u64,
    pub messages: usize,
    pub seconds: f64,
    /// CPU microseconds per message: relays, consumers, RabbitMQ, PostgreSQL.
    pub relay_us: f64,
    pub consumer_us: f64,
    pub broker_us: f64,
    pub database_us: f64,
    pub relay_rss_mb: f64,
    pub consumer_rss_mb: f64,
}

impl Point {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }

    fn cpu_us(&self) -> f64 {
        self.relay_us + self.consumer_us + self.broker_us + self.database_us
    }
}

/// A big outbox published with no replica consumer.
#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub backend: String,
    pub messages: usize,
    /// The relay's rate on this outbox, and on a small one (same run; the median of three).
    pub rate: f64,
    pub small_rate: f64,
    /// PostgreSQL: the rate on the same backlog while another session holds a snapshot open
    /// (a report's or `pg_dump`'s `REPEATABLE READ` transaction), so that no vacuum or index
    /// hint can remove the entries of the rows the relay deleted.
    pub rate_under_snapshot: Option<f64>,
    pub relay_rss_mb: f64,
    /// The plan of the relay's batch statement with the backlog in place.
    pub plan: String,
    /// The outbox's size (bytes): empty before, full, drained, and after the second backlog
    /// (SQLite: the file) or after `VACUUM` (PostgreSQL: table, index).
    pub sizes: Vec<(String, u64)>,
}

/// What to drain.
#[derive(Debug, Clone, Copy)]
struct Spec {
    messages: i32,
    table_rows: i64,
    body_bytes: usize,
    queues: usize,
    consumers: usize,
    relays: usize,
    /// Spread over this many models of the fleet (`fleet.rs`) instead of the bench's item.
    fleet: Option<usize>,
}

/// The sizes of a scale run.
pub struct ScaleSizes {
    pub messages: i32,
    pub backlog: i32,
    pub table_rows: Vec<i64>,
    /// Only these dimensions (their names with `-` for spaces, and `backlog`); empty: all.
    pub only: Vec<String>,
}

impl ScaleSizes {
    fn runs(&self, dimension: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|d| d.replace('-', " ") == dimension)
    }
}

/// Runs every point on `backends`, then the backlogs; writes `scale.{md,json,svg}` to `out`.
pub fn run(
    env: &Env,
    runtime: &tokio::runtime::Runtime,
    backends: &[Backend],
    sizes: &ScaleSizes,
    out: &Path,
) -> anyhow::Result<()> {
    let mut points = Vec::new();
    let mut backlogs = Vec::new();
    for &backend in backends {
        let base = Spec {
            messages: sizes.messages,
            table_rows: 0,
            body_bytes: 400,
            queues: 1,
            consumers: 1,
            relays: 1,
            fleet: None,
        };
        let mut varied: Vec<(&str, u64, Spec)> = Vec::new();
        for &rows in &sizes.table_rows {
            varied.push((
                "table rows",
                rows.unsigned_abs(),
                Spec {
                    table_rows: rows,
                    ..base
                },
            ));
        }
        for bytes in [4 * 1024, 16 * 1024, 64 * 1024] {
            // about the same volume at each size
            let messages = (base.messages * 400 / i32::try_from(bytes)?).max(4_000);
            varied.push((
                "message bytes",
                bytes as u64,
                Spec {
                    messages: messages.min(base.messages),
                    body_bytes: bytes,
                    ..base
                },
            ));
        }
        for queues in [2, 4, 8] {
            varied.push(("replica queues", queues as u64, Spec { queues, ..base }));
        }
        for consumers in [2, 3] {
            varied.push((
                "consumer processes",
                consumers as u64,
                Spec { consumers, ..base },
            ));
        }
        for models in [1, 10, crate::fleet_models()] {
            varied.push((
                "models",
                models as u64,
                Spec {
                    fleet: Some(models),
                    ..base
                },
            ));
        }
        // one relay per SQLite file, by design
        if backend.is_postgres() {
            for relays in [2, 3] {
                varied.push(("relay processes", relays as u64, Spec { relays, ..base }));
            }
        }
        varied.retain(|(dimension, _, _)| sizes.runs(dimension));
        if varied.len() > 1 {
            varied.insert(0, ("base", 0, base));
        }
        for (dimension, value, spec) in varied {
            eprintln!("== {backend}: scale, {dimension} {value}");
            let mut point = runtime.block_on(drain(env, backend, spec))?;
            point.dimension = dimension.to_owned();
            point.value = if dimension == "base" { 0 } else { value };
            eprintln!(
                "   {} messages in {:.2} s = {:.0} msg/s, CPU {:.0} us/message (relay {:.0}, consumer {:.0}, RabbitMQ {:.0}, PostgreSQL {:.0})",
                point.messages,
                point.seconds,
                point.rate(),
                point.cpu_us(),
                point.relay_us,
                point.consumer_us,
                point.broker_us,
                point.database_us
            );
            points.push(point);
        }
        if sizes.runs("backlog") {
            eprintln!(
                "== {backend}: backlog of {} messages, no replica consumer",
                sizes.backlog
            );
            backlogs.push(runtime.block_on(backlog(env, backend, sizes.backlog))?);
        }
    }
    write(out, &points, &backlogs)
}

/// The base point's body, padded to `bytes`.
fn padded(id: i32, bytes: usize) -> BenchItem {
    let mut row = item(id);
    if row.body.len() < bytes {
        let pad = bytes - row.body.len();
        row.body.extend(std::iter::repeat_n('x', pad));
    }
    row
}

/// Fills a replica table with `rows` rows (keys above the workload's).
fn prefill(url: &str, backend: Backend, rows: i64) -> anyhow::Result<()> {
    if rows == 0 {
        return Ok(());
    }
    let sql = if backend.is_postgres() {
        format!(
            "INSERT INTO bench_item_refs (id, title, body, price, version, cqrs_revision, cqrs_updated)
             SELECT 10000000 + g, 'Item ' || g, repeat('y', 100), 1.5, 0, 0, now()
             FROM generate_series(1, {rows}) g"
        )
    } else {
        format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {rows})
             INSERT INTO bench_item_refs (id, title, body, price, version, cqrs_revision, cqrs_updated)
             SELECT 10000000 + n, 'Item ' || n, printf('%.100c', 'y'), 1.5, 0, 0, '2026-01-01 00:00:00'
             FROM g"
        )
    };
    // written out before the clock starts: no checkpoint of the fill during the drain
    let settle = if backend.is_postgres() {
        "ANALYZE bench_item_refs; CHECKPOINT"
    } else {
        "PRAGMA wal_checkpoint(TRUNCATE)"
    };
    cqrs_core::with_connection!(url, |conn| {
        diesel::sql_query(sql).execute(conn)?;
        diesel::connection::SimpleConnection::batch_execute(conn, settle)?;
    });
    Ok(())
}

/// Writes `messages` creates (transactions of 500) to the master's outbox.
fn fill<C: CqrsConnection>(url: &str, messages: i32, body_bytes: usize) -> anyhow::Result<()>
where
    BenchItem: MasterStore<C>,
{
    let mut conn = C::cqrs_connect(url)?;
    let ids: Vec<i32> = (1..=messages).collect();
    for chunk in ids.chunks(500) {
        let rows = chunk.iter().map(|&id| padded(id, body_bytes)).collect();
        let _ = BenchItem::cqrs_bulk_insert(&mut conn, rows)?;
    }
    Ok(())
}

/// Waits until the replica holds the workload's rows (keys `1..=messages`): a range of the
/// Waits until `count` (a query of one `BIGINT` column `n`, and `s`) on `url` reaches
/// `messages`; `what` names the rows in the error when it does not within 20 minutes.
async fn wait_count(
    url: &str,
    count: &str,
    what: &str,
    messages: i32,
    start: Instant,
) -> anyhow::Result<()> {
    cqrs_core::with_connection!(url, |conn| {
        loop {
            let row: crate::Aggregate = diesel::sql_query(count).get_result(conn)?;
            if row.n >= i64::from(messages) {
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_mins(20),
                "{what} did not fill: {} of {messages} rows",
                row.n
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    Ok(())
}

/// Waits until the replica holds `messages` rows.
async fn wait_filled(url: &str, messages: i32, start: Instant) -> anyhow::Result<()> {
    let count = format!(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(0 AS BIGINT) AS s FROM bench_item_refs \
         WHERE id BETWEEN 1 AND {messages}"
    );
    wait_count(url, &count, "the replica", messages, start).await
}

/// The fleet's binary, beside this one.
fn fleet_bin(env: &Env) -> std::path::PathBuf {
    env.bin.with_file_name("cqrs-bench-fleet")
}

/// `cqrs-bench-fleet COMMAND ARGS`, which must succeed.
fn fleet_run(env: &Env, args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new(fleet_bin(env))
        .args(args)
        .env("RUST_LOG", "error")
        .status()
        .context("cqrs-bench-fleet")?;
    anyhow::ensure!(status.success(), "cqrs-bench-fleet {args:?} failed");
    Ok(())
}

/// Waits until the fleet's replica tables hold `messages` rows between them.
async fn wait_fleet(url: &str, messages: i32, start: Instant) -> anyhow::Result<()> {
    let tables: Vec<String> = (1..=crate::fleet_models())
        .map(|n| format!("(SELECT COUNT(*) FROM fleet_{n:02}_refs)"))
        .collect();
    let count = format!(
        "SELECT CAST({} AS BIGINT) AS n, CAST(0 AS BIGINT) AS s",
        tables.join(" + ")
    );
    wait_count(url, &count, "the fleet's replica", messages, start).await
}

async fn drain(env: &Env, backend: Backend, spec: Spec) -> anyhow::Result<Point> {
    if backend.is_postgres() {
        drain_on::<PgConnection>(env, backend, spec).await
    } else {
        drain_on::<SqliteConnection>(env, backend, spec).await
    }
}

async fn drain_on<C: CqrsConnection>(
    env: &Env,
    backend: Backend,
    spec: Spec,
) -> anyhow::Result<Point>
where
    BenchItem: MasterStore<C>,
    BenchItemRef: ReplicaStore<C>,
{
    let exchange = env.name("x");
    let master = env.database(backend, &env.name("smaster"))?;
    let mut replicas = Vec::new();
    for _ in 0..spec.queues {
        let url = env.database(backend, &env.name("sreplica"))?;
        prefill(&url, backend, spec.table_rows)?;
        replicas.push(url);
    }
    // the models dimension runs the fleet's binary, the others this one
    let bin = if let Some(models) = spec.fleet {
        for url in std::iter::once(&master).chain(&replicas) {
            fleet_run(env, &["setup", url])?;
        }
        let (models, messages) = (models.to_string(), spec.messages.to_string());
        fleet_run(env, &["fill", &master, &models, &messages])?;
        fleet_bin(env)
    } else {
        let (url, messages, bytes) = (master.clone(), spec.messages, spec.body_bytes);
        tokio::task::spawn_blocking(move || fill::<C>(&url, messages, bytes)).await??;
        env.bin.clone()
    };
    let mut consumers: Vec<Child2> = Vec::new();
    for replica in &replicas {
        let queue = env.name("sq");
        for _ in 0..spec.consumers {
            let mut cmd = consumer_command_of(&bin, env, replica, &exchange, &queue);
            cmd.env("CQRS_BATCH_SIZE", "500");
            consumers.push(spawn(cmd)?);
        }
        wait_consumer(&env.amqp, &queue).await?;
    }
    let servers = env.servers.sample();
    let start = Instant::now();
    let relays: Vec<Child2> = (0..spec.relays)
        .map(|_| spawn(service_command(&bin, env, "relay", &master, &exchange)))
        .collect::<anyhow::Result<_>>()?;
    for replica in &replicas {
        if spec.fleet.is_some() {
            wait_fleet(replica, spec.messages, start).await?;
        } else {
            wait_filled(replica, spec.messages, start).await?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let (broker, database) = env.servers.sample().since(servers);
    let cpu =
        |children: &[Child2]| -> f64 { children.iter().map(|c| proc::cpu_seconds(c.0.id())).sum() };
    let rss = |children: &[Child2]| -> f64 {
        children
            .iter()
            .map(|c| proc::peak_rss_kb(c.0.id()))
            .max()
            .unwrap_or(0) as f64
            / 1024.0
    };
    let n = f64::from(spec.messages);
    let point = Point {
        backend: backend.name().to_owned(),
        dimension: String::new(),
        value: 0,
        messages: usize::try_from(spec.messages)?,
        seconds,
        relay_us: 1e6 * cpu(&relays) / n,
        consumer_us: 1e6 * cpu(&consumers) / n,
        broker_us: 1e6 * broker / n,
        database_us: 1e6 * database / n,
        relay_rss_mb: rss(&relays),
        consumer_rss_mb: rss(&consumers),
    };
    drop(relays);
    drop(consumers);
    for url in std::iter::once(&master).chain(&replicas) {
        env.drop_database(backend, url);
    }
    Ok(point)
}

/// The outbox's size on disk: (name, bytes) for PostgreSQL's table and index, SQLite's file.
fn outbox_size(url: &str, backend: Backend) -> anyhow::Result<Vec<(String, u64)>> {
    #[derive(QueryableByName)]
    struct Sizes {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        table_bytes: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        index_bytes: i64,
    }
    if backend.is_postgres() {
        let mut conn = PgConnection::cqrs_connect(url)?;
        let sizes: Sizes = diesel::sql_query(
            "SELECT pg_table_size('cqrs_outbox') AS table_bytes, \
             pg_indexes_size('cqrs_outbox') AS index_bytes",
        )
        .get_result(&mut conn)?;
        Ok(vec![
            ("table".to_owned(), sizes.table_bytes.unsigned_abs()),
            ("index".to_owned(), sizes.index_bytes.unsigned_abs()),
        ])
    } else {
        let bytes = std::fs::metadata(cqrs_core::db::sqlite::path_of(url))?.len();
        Ok(vec![("file".to_owned(), bytes)])
    }
}

/// The plan of the relay's batch statement (PostgreSQL: its `DELETE ... SKIP LOCKED`;
/// SQLite: its fetch), one line per node.
fn plan(url: &str, backend: Backend) -> anyhow::Result<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    #[derive(QueryableByName)]
    struct SqliteLine {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let now = chrono::Utc::now().timestamp_micros();
    if backend.is_postgres() {
        let mut conn = PgConnection::cqrs_connect(url)?;
        let sql = cqrs_core::db::postgres::OUTBOX_TAKE
            .replace("$1", "500")
            .replace("$2", &now.to_string())
            .replace("$3", "0");
        let lines: Vec<Line> = diesel::sql_query(format!("EXPLAIN {sql}")).load(&mut conn)?;
        Ok(lines
            .into_iter()
            .map(|l| l.line.trim().to_owned())
            .filter(|l| l.contains("Scan") || l.contains("Delete") || l.contains("Lock"))
            .collect::<Vec<_>>()
            .join("; "))
    } else {
        let mut conn = SqliteConnection::cqrs_connect(url)?;
        let lines: Vec<SqliteLine> = diesel::sql_query(format!(
            "EXPLAIN QUERY PLAN SELECT * FROM cqrs_outbox \
             WHERE not_before IS NULL OR not_before <= {now} ORDER BY id LIMIT 500"
        ))
        .load(&mut conn)?;
        Ok(lines
            .into_iter()
            .map(|l| l.detail)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// Writes `messages` row messages straight to the outbox (1,000 rows' messages over and
/// over, 1,000 per statement): the outbox a master leaves while the broker is away.
fn write_backlog<C: CqrsConnection>(url: &str, messages: i32) -> anyhow::Result<()>
where
    BenchItem: MasterStore<C>,
{
    let mut conn = C::cqrs_connect(url)?;
    let rows: Vec<cqrs_core::db::OutboxMessage> = (1..=1000)
        .map(|id| {
            cqrs_core::master::message(
                &mut conn,
                &item(id),
                cqrs_core::SignalType::Save,
                None,
                None,
            )
        })
        .collect::<Result<_, _>>()?;
    let mut left = messages;
    while left > 0 {
        let n = usize::try_from(left.min(1000))?;
        let chunk = rows.get(..n).context("chunk")?;
        cqrs_core::transaction(&mut conn, |conn| cqrs_core::outbox::enqueue(conn, chunk))?;
        left -= i32::try_from(n)?;
    }
    Ok(())
}

/// The relay alone (a queue bound and emptied as it fills, no replica consumer) until every
/// message arrived: messages/s, peak RSS.
async fn publish_all(
    env: &Env,
    backend: Backend,
    master: &str,
    messages: i32,
) -> anyhow::Result<(f64, f64)> {
    let exchange = env.name("x");
    let queue = env.name("bq");
    // A consumer that takes each message off the queue at once and counts it: the broker
    // holds no more in the backlog run than in the small one (a 1,000,000-message queue
    // grew RabbitMQ to 3 GB and cost it more per message), and the drain's end is seen
    // without counting the outbox (`COUNT(*)` of a 600 MB table every 50 ms took a core).
    let conn =
        lapin::Connection::connect(&env.amqp, lapin::ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    crate::baseline::declare(&channel, &exchange, &queue, "#").await?;
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await?;
    let start = Instant::now();
    let relay = spawn(service_command(&env.bin, env, "relay", master, &exchange))?;
    let mut delivered = 0;
    while delivered < messages {
        let next = tokio::time::timeout_at(
            (start + Duration::from_mins(30)).into(),
            futures_util::StreamExt::next(&mut deliveries),
        )
        .await;
        match next {
            Ok(Some(delivery)) => {
                delivery?;
                delivered += 1;
            }
            Ok(None) => anyhow::bail!("backlog on {backend}: the queue's consumer was cancelled"),
            Err(_) => anyhow::bail!(
                "backlog on {backend}: {delivered} of {messages} messages arrived in 30 minutes"
            ),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let rss = proc::peak_rss_kb(relay.0.id()) as f64 / 1024.0;
    drop(relay);
    let pending = cqrs_core::with_connection!(master, |conn| conn.outbox_pending()?);
    anyhow::ensure!(
        pending == 0,
        "backlog on {backend}: {pending} messages left in the outbox after the drain"
    );
    let _ = conn.close(200, "".into()).await;
    crate::events::delete_queues(&env.amqp, &[queue]).await?;
    Ok((f64::from(messages) / seconds, rss))
}

async fn backlog(env: &Env, backend: Backend, messages: i32) -> anyhow::Result<Backlog> {
    let master = env.database(backend, &env.name("backlog"))?;
    let mut sizes = Vec::new();
    let sized = |label: &str, sizes: &mut Vec<(String, u64)>| -> anyhow::Result<()> {
        for (what, bytes) in outbox_size(&master, backend)? {
            sizes.push((format!("{label} ({what})"), bytes));
        }
        Ok(())
    };
    sized("empty", &mut sizes)?;
    let fill_on = |url: String, n: i32| async move {
        tokio::task::spawn_blocking(move || {
            if backend.is_postgres() {
                write_backlog::<PgConnection>(&url, n)
            } else {
                write_backlog::<SqliteConnection>(&url, n)
            }
        })
        .await?
    };
    // the relay's rate on a small outbox first: the median of three (a run takes 2 s)
    let small = 20_000.min(messages);
    let mut small_rates = Vec::new();
    for _ in 0..3 {
        fill_on(master.clone(), small).await?;
        small_rates.push(publish_all(env, backend, &master, small).await?.0);
    }
    small_rates.sort_by(f64::total_cmp);
    let small_rate = small_rates[1];
    let started = Instant::now();
    fill_on(master.clone(), messages).await?;
    eprintln!(
        "   {messages} messages written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    sized("full", &mut sizes)?;
    let plan = plan(&master, backend)?;
    let (rate, relay_rss_mb) = publish_all(env, backend, &master, messages).await?;
    sized("drained", &mut sizes)?;
    let mut rate_under_snapshot = None;
    if backend.is_postgres() {
        cqrs_core::with_connection!(&master, |conn| {
            diesel::sql_query("VACUUM cqrs_outbox").execute(conn)?;
        });
        sized("after VACUUM", &mut sizes)?;
        fill_on(master.clone(), messages).await?;
        let mut reader = PgConnection::cqrs_connect(&master)?;
        diesel::connection::SimpleConnection::batch_execute(
            &mut reader,
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM cqrs_outbox;",
        )?;
        let (rate, _) = publish_all(env, backend, &master, messages).await?;
        diesel::connection::SimpleConnection::batch_execute(&mut reader, "COMMIT")?;
        eprintln!("   relay with a snapshot held open: {rate:.0} msg/s");
        rate_under_snapshot = Some(rate);
    } else {
        // a second backlog reuses the freed pages
        fill_on(master.clone(), messages).await?;
        let _ = publish_all(env, backend, &master, messages).await?;
        sized("after a second backlog", &mut sizes)?;
    }
    eprintln!(
        "   relay: {rate:.0} msg/s on the backlog, {small_rate:.0} msg/s on {small} messages ({:.0}%), peak RSS {relay_rss_mb:.1} MB; plan: {plan}; sizes: {sizes:?}",
        100.0 * rate / small_rate.max(1e-9)
    );
    env.drop_database(backend, &master);
    Ok(Backlog {
        backend: backend.name().to_owned(),
        messages: usize::try_from(messages)?,
        rate,
        small_rate,
        rate_under_snapshot,
        relay_rss_mb,
        plan,
        sizes,
    })
}

fn write(out: &Path, points: &[Point], backlogs: &[Backlog]) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut md = String::from("# How the cost grows (scripts/bench --scale)\n\n");
    md.push_str(
        "Each point drains a pre-filled outbox through relay processes, RabbitMQ and consumer processes (batches of 500); one dimension moves at a time from the base point (20,000 messages of about 400 bytes, an empty replica table, 1 queue, 1 consumer, 1 relay). CPU is per message, by process.\n\n",
    );
    md.push_str("| backend | dimension | value | messages | msg/s | vs base | CPU us/msg | relay | consumer | RabbitMQ | PostgreSQL | relay RSS | consumer RSS |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in points {
        let base = points
            .iter()
            .find(|b| b.backend == p.backend && b.dimension == "base")
            .map_or(1.0, Point::rate);
        writeln!(
            md,
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} MB | {:.1} MB |",
            p.backend,
            p.dimension,
            p.value,
            p.messages,
            p.rate(),
            p.rate() / base.max(1e-9),
            p.cpu_us(),
            p.relay_us,
            p.consumer_us,
            p.broker_us,
            p.database_us,
            p.relay_rss_mb,
            p.consumer_rss_mb
        )?;
    }
    md.push_str("\n| backlog | messages | relay msg/s | on 20,000 | ratio | with a snapshot held | ratio | relay peak RSS | plan of the batch statement | outbox size |\n|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for b in backlogs {
        let sizes: Vec<String> = b
            .sizes
            .iter()
            .map(|(what, bytes)| format!("{what}: {:.1} MB", *bytes as f64 / 1_048_576.0))
            .collect();
        let (held, held_ratio) = b.rate_under_snapshot.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |rate| {
                (
                    format!("{rate:.0}"),
                    format!("{:.2}", rate / b.small_rate.max(1e-9)),
                )
            },
        );
        writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {held} | {held_ratio} | {:.1} MB | {} | {} |",
            b.backend,
            b.messages,
            b.rate,
            b.small_rate,
            b.rate / b.small_rate.max(1e-9),
            b.relay_rss_mb,
            b.plan,
            sizes.join(", ")
        )?;
    }
    std::fs::write(out.join("scale.md"), &md)?;
    std::fs::write(
        out.join("scale.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "points": points,
            "backlogs": backlogs,
        }))?,
    )?;
    chart(points, &out.join("scale.svg"))?;
    eprintln!("{md}");
    eprintln!(
        "wrote {0}/scale.md, {0}/scale.json and {0}/scale.svg",
        out.display()
    );
    Ok(())
}

/// One panel per dimension: messages/s against the value, a line per backend.
fn chart(points: &[Point], path: &Path) -> anyhow::Result<()> {
    let dimensions = [
        "table rows",
        "message bytes",
        "replica queues",
        "consumer processes",
        "relay processes",
        "models",
    ];
    let root = SVGBackend::new(path, (1200, 800)).into_drawing_area();
    // 2 x 3 panels
    root.fill(&WHITE)?;
    let root = root.titled(
        "How the cost grows: messages/s as one dimension moves from the base point",
        ("sans-serif", 20),
    )?;
    let panels = root.split_evenly((2, 3));
    for (panel, dimension) in panels.iter().zip(dimensions) {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for backend in ["sqlite", "postgres"] {
            let base = points
                .iter()
                .find(|p| p.backend == backend && p.dimension == "base");
            let Some(base) = base else { continue };
            let base_value = match dimension {
                "table rows" => 0.0,
                "message bytes" => 400.0,
                _ => 1.0,
            };
            // the models' line starts at its own one-model point
            let mut line = if dimension == "models" {
                Vec::new()
            } else {
                vec![(base_value, base.rate())]
            };
            line.extend(
                points
                    .iter()
                    .filter(|p| p.backend == backend && p.dimension == dimension)
                    .map(|p| (p.value as f64, p.rate())),
            );
            if line.len() > 1 {
                series.push((backend.to_owned(), line));
            }
        }
        let x_max = series
            .iter()
            .flat_map(|(_, l)| l.iter().map(|p| p.0))
            .fold(1.0, f64::max);
        let y_max = series
            .iter()
            .flat_map(|(_, l)| l.iter().map(|p| p.1))
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(dimension, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&|v| {
                if *v >= 1_000_000.0 {
                    format!("{:.1}M", v / 1_000_000.0)
                } else if *v >= 1_000.0 {
                    format!("{:.0}k", v / 1_000.0)
                } else {
                    format!("{v:.0}")
                }
            })
            .y_desc("msg/s")
            .draw()?;
        for (backend, line) in series {
            let color = if backend == "postgres" { BLUE } else { RED };
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                .label(backend)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
            chart.draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
