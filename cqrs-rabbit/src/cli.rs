//! The operations command line, compatible with django-cqrs's management commands. A service
//! embeds it in one line:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     cqrs_rabbit::cli::main_with("catalogue.sqlite3") // the default DATABASE_URL
//! }
//! ```
//!
//! or adds [`Command`] to its own clap command line and calls [`execute`].
//!
//! | subcommand | django-cqrs |
//! |---|---|
//! | `consume` | `cqrs_consume` |
//! | `relay` | (publishes the outbox; django-cqrs has none) |
//! | `bulk-dump`, `bulk-load` | `cqrs_bulk_dump`, `cqrs_bulk_load` |
//! | `sync` | `cqrs_sync` |
//! | `diff-master`, `diff-replica`, `diff-sync` | `cqrs_diff_master`, `cqrs_diff_replica`, `cqrs_diff_sync` |
//! | `deleted-diff-replica`, `deleted-diff-master`, `deleted-sync-replica` | `cqrs_deleted_*` |
//! | `dead-letters dump\|retry\|purge` | `cqrs_dead_letters` |
//! | `models` | (lists the models of the binary) |

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cqrs_core::db::{CqrsConnection, is_postgres_url};
use cqrs_core::filter::{Lookup, parse_filter_text};
use cqrs_core::message::{Message, SignalType};
use cqrs_core::registry;
use cqrs_core::replica::{BatchItem, apply_batch};
use cqrs_core::value::{format_datetime, now_micros};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::config::{BrokerUrl, Config};
use crate::error::{Error, Result};
use crate::{Consumer, Relay, dead_letters};

/// The command line of a service.
#[derive(Debug, Parser)]
#[command(version, about = "CQRS data-sync operations (django-cqrs compatible)", long_about = None)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every subcommand. Every other setting comes from the `CQRS_*`
/// environment variables (see [`Config`]).
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The database: a SQLite file path, or postgres://user@host/db.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The broker URL (amqp:// or amqps://).
    #[arg(long, global = true, env = "CQRS_BROKER_URL", hide_env_values = true)]
    pub broker_url: Option<String>,
    /// This service's replica queue.
    #[arg(long = "queue-name", global = true, env = "CQRS_QUEUE")]
    pub queue_name: Option<String>,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log: String,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Consume this service's queue into its replica models (until SIGINT/SIGTERM).
    Consume {
        /// Worker threads (each with its own database connection).
        #[arg(long, short = 'w')]
        workers: Option<usize>,
        /// Messages per database transaction, at most.
        #[arg(long, short = 'b')]
        batch_size: Option<usize>,
        /// Consume only these cqrs_ids (default: every replica model).
        #[arg(long = "cqrs-id", short = 'c', num_args = 1..)]
        cqrs_ids: Vec<String>,
    },
    /// Publish the outbox to the broker (until SIGINT/SIGTERM, or until empty with --once).
    Relay {
        /// Publish what is waiting, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Write every row of a master model to a dump file (django-cqrs format).
    BulkDump {
        /// The master model.
        #[arg(long, short = 'c')]
        cqrs_id: String,
        /// Output file, `-` for stdout (default `<cqrs_id>.dump`).
        #[arg(long, short = 'o')]
        output: Option<String>,
        /// Rows per query.
        #[arg(long, short = 'b', default_value_t = 10_000, value_parser = batch_size)]
        batch: usize,
        /// Show progress (a bar on a terminal, lines otherwise).
        #[arg(long, short = 'p')]
        progress: bool,
        /// Overwrite an existing output file.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Load a dump file into a replica model.
    BulkLoad {
        /// Input file, `-` for stdin.
        #[arg(long, short = 'i')]
        input: String,
        /// Delete the replica's rows first.
        #[arg(long, short = 'c', num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
        clear: Option<bool>,
        /// Lines per transaction.
        #[arg(long, short = 'b', default_value_t = 10_000, value_parser = batch_size)]
        batch: usize,
        /// Show progress.
        #[arg(long, short = 'p')]
        progress: bool,
    },
    /// Send SYNC messages for the master rows matching a filter, to every replica or one queue.
    Sync {
        /// The master model.
        #[arg(long, short = 'c')]
        cqrs_id: String,
        /// Django lookups as JSON, e.g. '{"id__in": [1, 2]}' (default: every row).
        #[arg(long, short = 'f')]
        filter: Option<String>,
        /// Send only to this replica queue.
        #[arg(long, short = 'q')]
        queue: Option<String>,
        /// Rows per transaction.
        #[arg(long, short = 'b', default_value_t = 10_000, value_parser = batch_size)]
        batch: usize,
        /// Show progress.
        #[arg(long, short = 'p')]
        progress: bool,
    },
    /// Master side of the diff pipeline: print `[pk, cqrs_revision]` batches.
    DiffMaster {
        /// The master model.
        #[arg(long, short = 'c')]
        cqrs_id: String,
        /// Django lookups as JSON.
        #[arg(long, short = 'f')]
        filter: Option<String>,
        /// Rows per batch line.
        #[arg(long, short = 'b', default_value_t = 10_000, value_parser = batch_size)]
        batch: usize,
    },
    /// Replica side of the diff pipeline: read diff-master's output on stdin, print the pks to
    /// re-sync.
    DiffReplica,
    /// Master side: read diff-replica's output on stdin and send SYNC for those pks.
    DiffSync {
        /// Rows per transaction.
        #[arg(long, short = 'b', default_value_t = 10_000, value_parser = batch_size)]
        batch: usize,
        /// Show progress.
        #[arg(long, short = 'p')]
        progress: bool,
    },
    /// Replica side of the deleted-rows pipeline: print the replica's pks.
    DeletedDiffReplica {
        /// The replica model.
        #[arg(long, short = 'c')]
        cqrs_id: String,
        /// Pks per batch line.
        #[arg(long, short = 'b', default_value_t = 10_000, value_parser = batch_size)]
        batch: usize,
    },
    /// Master side: read replica pks on stdin, print those the master no longer has.
    DeletedDiffMaster,
    /// Replica side: read deleted-diff-master's output on stdin and delete those rows.
    DeletedSyncReplica,
    /// Manage the dead-letter queue.
    DeadLetters {
        /// dump, retry or purge.
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// List the models registered in this binary.
    Models,
}

/// `dead-letters` actions.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum DeadLetterAction {
    /// Print every dead letter (one body per line) and leave them in the queue.
    Dump,
    /// Re-publish every dead letter to this service's queue with `retries` 0.
    Retry,
    /// Delete every dead letter.
    Purge,
}

fn batch_size(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a batch size from 1 to 1000000")),
    }
}

/// Parses the process arguments and runs; `default_database_url` is used when neither
/// `--database-url` nor `DATABASE_URL` is given.
pub fn main_with(default_database_url: &str) -> ExitCode {
    main_from(std::env::args_os(), default_database_url)
}

/// [`main_with`] for explicit arguments.
pub fn main_from<I, T>(args: I, default_database_url: &str) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    execute(cli.command, &cli.global, default_database_url)
}

/// Runs one subcommand; prints a one-line reason and returns non-zero on failure.
pub fn execute(command: Command, global: &Global, default_database_url: &str) -> ExitCode {
    init_logs(&global.log);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            context: "cannot start the async runtime".to_owned(),
            source: e,
        })
        .and_then(|runtime| {
            let database_url = global
                .database_url
                .clone()
                .unwrap_or_else(|| default_database_url.to_owned());
            runtime.block_on(dispatch(command, global, &database_url))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // one line, whatever the underlying error looks like (libpq's span several)
            let text = error.to_string();
            eprintln!(
                "error: {}",
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::FAILURE
        }
    }
}

fn init_logs(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .try_init();
}

fn config(global: &Global) -> Result<Config> {
    let mut config = Config::from_env()?;
    if let Some(url) = &global.broker_url {
        config.url = BrokerUrl::parse(url)?;
    }
    if let Some(queue) = &global.queue_name {
        config.queue = Some(queue.clone());
    }
    config.validate()?;
    config.apply_master_settings();
    Ok(config)
}

async fn dispatch(command: Command, global: &Global, database_url: &str) -> Result<()> {
    if matches!(command, Command::Models) {
        return list_models();
    }
    let config = config(global)?;
    if is_postgres_url(database_url) {
        #[cfg(feature = "postgres")]
        return run::<diesel::PgConnection>(command, config, database_url).await;
        #[cfg(not(feature = "postgres"))]
        return Err(Error::Input(
            "this binary was built without PostgreSQL support (feature `postgres`)".to_owned(),
        ));
    }
    #[cfg(feature = "sqlite")]
    return run::<diesel::SqliteConnection>(command, config, database_url).await;
    #[cfg(not(feature = "sqlite"))]
    return Err(Error::Input(
        "this binary was built without SQLite support (feature `sqlite`)".to_owned(),
    ));
}

#[allow(clippy::print_stdout, reason = "a command line prints its output")]
fn list_models() -> Result<()> {
    registry::check()?;
    for model in registry::models() {
        println!("{}\t{}\t{}", model.kind, model.cqrs_id, model.type_name);
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("signal received: stopping");
}

async fn run<C: CqrsConnection>(
    command: Command,
    mut config: Config,
    database_url: &str,
) -> Result<()> {
    match command {
        Command::Consume {
            workers,
            batch_size,
            cqrs_ids,
        } => {
            if let Some(workers) = workers {
                config.workers = workers;
            }
            if let Some(batch_size) = batch_size {
                config.batch_size = batch_size;
            }
            config.validate()?;
            let consumer = Consumer::<C>::new(config, database_url).only(cqrs_ids);
            consumer.check().await?;
            consumer.run(shutdown_signal()).await
        }
        Command::Relay { once } => {
            let relay = Relay::<C>::new(config, database_url);
            relay.check().await?;
            if once {
                let published = relay.drain().await?;
                eprintln!("relay: published {published} message(s)");
                Ok(())
            } else {
                relay.run(shutdown_signal()).await
            }
        }
        Command::DeadLetters { action } => dead_letters::run(&config, action).await,
        other => {
            let job_url = database_url.to_owned();
            let job_config = config.clone();
            let written =
                tokio::task::spawn_blocking(move || tool::<C>(other, &job_config, &job_url))
                    .await
                    .map_err(|e| Error::Input(format!("the command failed: {e}")))??;
            if written > 0 {
                publish_outbox::<C>(config, database_url).await?;
            }
            Ok(())
        }
    }
}

async fn publish_outbox<C: CqrsConnection>(config: Config, database_url: &str) -> Result<()> {
    let relay = Relay::<C>::new(config, database_url);
    match relay.drain().await {
        Ok(published) => {
            eprintln!("outbox drained: {published} message(s) published by this command");
            Ok(())
        }
        Err(error) => Err(Error::Input(format!(
            "the SYNC messages are in the outbox, but publishing failed ({error}); a running relay will publish them"
        ))),
    }
}

/// Opens the database (a clear error if it cannot).
fn connect<C: CqrsConnection>(url: &str) -> Result<C> {
    let mut conn = C::cqrs_connect(url).map_err(|e| {
        Error::Input(format!(
            "cannot open the database {}: {e}",
            redact_db_url(url)
        ))
    })?;
    conn.cqrs_setup()?;
    Ok(conn)
}

/// A database URL without its password.
pub fn redact_db_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn filter(text: Option<&str>) -> Result<Vec<Lookup>> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => Ok(parse_filter_text(text).map_err(cqrs_core::Error::from)?),
    }
}

/// A progress display: a bar on a terminal, a line per 10% with `--progress` otherwise.
struct Progress {
    bar: ProgressBar,
    lines: bool,
    total: u64,
    next_line: u64,
    label: &'static str,
}

impl Progress {
    fn new(label: &'static str, total: u64, requested: bool) -> Self {
        let terminal = io::stderr().is_terminal();
        let bar = if terminal {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>10} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(label);
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            lines: requested && !terminal,
            total,
            next_line: total / 10,
            label,
        }
    }

    fn set(&mut self, done: u64) {
        self.bar.set_position(done);
        if self.lines && done >= self.next_line && self.total > 0 {
            eprintln!(
                "{}: {done} of {} ({}%)",
                self.label,
                self.total,
                done * 100 / self.total
            );
            self.next_line = done + self.total / 10;
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn summary(command: &str, processed: u64, succeeded: u64, failed: u64) {
    eprintln!("{command}: processed {processed}, succeeded {succeeded}, failed {failed}");
}

/// The blocking tools; returns how many messages they wrote to the outbox.
#[allow(clippy::too_many_lines, reason = "one arm per tool")]
fn tool<C: CqrsConnection>(command: Command, config: &Config, database_url: &str) -> Result<u64> {
    match command {
        Command::BulkDump {
            cqrs_id,
            output,
            batch,
            progress,
            force,
        } => {
            let entry = registry::master::<C>(&cqrs_id)?;
            let output = output.unwrap_or_else(|| format!("{cqrs_id}.dump"));
            let mut conn = connect::<C>(database_url)?;
            let total = entry.ops.count(&mut conn, &[])?;
            let mut out: Box<dyn Write> = if output == "-" {
                Box::new(BufWriter::new(io::stdout().lock()))
            } else {
                let path = PathBuf::from(&output);
                if path.exists() && !force {
                    return Err(Error::Input(format!(
                        "file {output} exists; use --force to overwrite it"
                    )));
                }
                Box::new(BufWriter::new(File::create(&path).map_err(|e| {
                    Error::Io {
                        context: format!("cannot create {output}"),
                        source: e,
                    }
                })?))
            };
            let io_err = |e: io::Error| Error::Io {
                context: format!("cannot write {output}"),
                source: e,
            };
            out.write_all(cqrs_id.as_bytes()).map_err(io_err)?;
            let mut bar = Progress::new("dump", total, progress);
            let (mut processed, mut failed) = (0u64, 0u64);
            let filtered = entry.ops.dump(&mut conn, batch, &mut |row| {
                processed += 1;
                match row {
                    Ok(data) => {
                        let line = Value::Object(data).to_string();
                        out.write_all(b"\n")
                            .and_then(|()| out.write_all(line.as_bytes()))
                            .map_err(|e| cqrs_core::Error::Io {
                                context: "cannot write the dump".to_owned(),
                                source: e,
                            })?;
                    }
                    Err(error) => {
                        failed += 1;
                        eprintln!("dump: row {processed} failed: {error}");
                    }
                }
                bar.set(processed);
                Ok(())
            })?;
            out.flush().map_err(io_err)?;
            bar.finish();
            if filtered > 0 {
                eprintln!("bulk-dump: {filtered} row(s) left out by the model's sync filter");
            }
            summary("bulk-dump", processed, processed - failed, failed);
            Ok(0)
        }
        Command::BulkLoad {
            input,
            clear,
            batch,
            progress,
        } => {
            let reader = open_input(&input)?;
            let mut lines = reader.lines();
            let first = lines.next().transpose().map_err(|e| Error::Io {
                context: format!("cannot read {input}"),
                source: e,
            })?;
            let cqrs_id = first
                .as_deref()
                .map(str::trim)
                .unwrap_or_default()
                .to_owned();
            if cqrs_id.is_empty() {
                return Err(Error::Input(format!(
                    "file {input} is empty (the first line must be the cqrs_id)"
                )));
            }
            let entry = registry::replica::<C>(&cqrs_id)?;
            let mut conn = connect::<C>(database_url)?;
            if clear.unwrap_or(false) {
                let cleared = conn.cqrs_transaction(|conn| entry.ops.clear(conn))?;
                eprintln!("bulk-load: deleted {cleared} existing row(s) of {cqrs_id}");
            }
            let mut bar = Progress::new("load", 0, progress);
            let (mut processed, mut succeeded, mut failed) = (0u64, 0u64, 0u64);
            let mut pending: Vec<(usize, Message)> = Vec::with_capacity(batch);
            let flush = |conn: &mut C,
                         pending: &mut Vec<(usize, Message)>,
                         succeeded: &mut u64,
                         failed: &mut u64|
             -> Result<()> {
                if pending.is_empty() {
                    return Ok(());
                }
                let items: Vec<BatchItem<'_, C>> = pending
                    .iter()
                    .map(|(_, message)| BatchItem {
                        ops: entry.ops,
                        message,
                        direct: true,
                    })
                    .collect();
                let results = apply_batch(conn, &items).map_err(|e| Error::Core(e.into()))?;
                for ((line, _), result) in pending.iter().zip(results) {
                    match result {
                        Ok(_) => *succeeded += 1,
                        Err(error) => {
                            *failed += 1;
                            eprintln!("line {line}: cannot be saved: {error}");
                        }
                    }
                }
                pending.clear();
                Ok(())
            };
            for (index, line) in lines.enumerate() {
                let number = index + 2;
                let line = line.map_err(|e| Error::Io {
                    context: format!("cannot read {input} at line {number}"),
                    source: e,
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                processed += 1;
                match serde_json::from_str::<Value>(line.trim()) {
                    Ok(Value::Object(data)) => {
                        let pk = data.get("id").cloned().unwrap_or(Value::Null);
                        pending.push((
                            number,
                            Message::new(SignalType::Save, cqrs_id.clone(), data, pk),
                        ));
                    }
                    Ok(_) => {
                        failed += 1;
                        eprintln!("line {number}: not a JSON object");
                    }
                    Err(error) => {
                        failed += 1;
                        eprintln!("line {number}: cannot be parsed: {error}");
                    }
                }
                if pending.len() >= batch {
                    flush(&mut conn, &mut pending, &mut succeeded, &mut failed)?;
                }
                bar.set(processed);
            }
            flush(&mut conn, &mut pending, &mut succeeded, &mut failed)?;
            bar.finish();
            summary("bulk-load", processed, succeeded, failed);
            Ok(0)
        }
        Command::Sync {
            cqrs_id,
            filter: text,
            queue,
            batch,
            progress,
        } => {
            let entry = registry::master::<C>(&cqrs_id)?;
            let lookups = filter(text.as_deref())?;
            let mut conn = connect::<C>(database_url)?;
            let total = entry.ops.count(&mut conn, &lookups)?;
            if total == 0 {
                eprintln!("sync: no rows match the filter");
                summary("sync", 0, 0, 0);
                return Ok(0);
            }
            let mut bar = Progress::new("sync", total, progress);
            let sent =
                entry
                    .ops
                    .sync(&mut conn, &lookups, queue.as_deref(), batch, &mut |done| {
                        bar.set(done);
                    })?;
            bar.finish();
            summary("sync", total, sent, 0);
            if sent < total {
                eprintln!(
                    "sync: {} row(s) are excluded by the model's sync filter",
                    total - sent
                );
            }
            Ok(sent)
        }
        Command::DiffMaster {
            cqrs_id,
            filter: text,
            batch,
        } => {
            let entry = registry::master::<C>(&cqrs_id)?;
            let lookups = filter(text.as_deref())?;
            let mut conn = connect::<C>(database_url)?;
            let mut out = Stdout::new();
            out.line(format_args!("{cqrs_id},{}", format_datetime(&now_micros())))?;
            let mut rows = 0u64;
            entry
                .ops
                .versions(&mut conn, &lookups, batch, &mut |pairs| {
                    if pairs.is_empty() {
                        return Ok(());
                    }
                    rows += pairs.len() as u64;
                    out.line(Value::Array(
                        pairs
                            .into_iter()
                            .map(|(pk, rev)| Value::Array(vec![pk, Value::from(rev)]))
                            .collect(),
                    ))
                })?;
            out.flush()?;
            if rows == 0 {
                eprintln!("diff-master: no objects found for the filter");
            }
            summary("diff-master", rows, rows, 0);
            Ok(0)
        }
        Command::DiffReplica => {
            let mut input = StdinLines::new("diff-replica");
            let header = input.header()?;
            let entry = registry::replica::<C>(header_cqrs_id(&header))?;
            let mut conn = connect::<C>(database_url)?;
            let queue = config.queue.as_deref().unwrap_or("None");
            let mut out = Stdout::new();
            out.line(format_args!("{header},{queue}"))?;
            let (mut processed, mut differ, mut failed) = (0u64, 0u64, 0u64);
            while let Some((number, pairs)) = input.next_parsed(parse_pairs, &mut failed)? {
                processed += pairs.len() as u64;
                let pks: Vec<Value> = pairs.iter().map(|(pk, _)| pk.clone()).collect();
                let stored = match entry.ops.versions(&mut conn, &pks) {
                    Ok(stored) => stored,
                    Err(error) => {
                        failed += 1;
                        eprintln!("line {number}: {error}");
                        continue;
                    }
                };
                let diff: Vec<Value> = pairs
                    .into_iter()
                    .filter(|(pk, rev)| {
                        !stored
                            .iter()
                            .any(|(s, v)| same_pk(s, pk) && i64::from(v.revision) == *rev)
                    })
                    .map(|(pk, _)| pk)
                    .collect();
                if !diff.is_empty() {
                    differ += diff.len() as u64;
                    let line = Value::Array(diff);
                    out.line(&line)?;
                    eprintln!("PK to resync: {line}");
                }
            }
            out.flush()?;
            summary("diff-replica", processed, processed - differ, failed);
            Ok(0)
        }
        Command::DiffSync { batch, progress } => {
            let mut input = StdinLines::new("diff-sync");
            let header = input.header()?;
            let queue = header
                .rsplit(',')
                .next()
                .filter(|q| *q != "None" && header.matches(',').count() >= 2)
                .map(str::to_owned);
            let entry = registry::master::<C>(header_cqrs_id(&header))?;
            let mut conn = connect::<C>(database_url)?;
            let (mut processed, mut sent, mut failed) = (0u64, 0u64, 0u64);
            let mut bar = Progress::new("diff-sync", 0, progress);
            while let Some((number, pks)) = input.next_parsed(parse_pks, &mut failed)? {
                for chunk in pks.chunks(batch) {
                    processed += chunk.len() as u64;
                    match entry.ops.sync_pks(&mut conn, chunk, queue.as_deref()) {
                        Ok(n) => sent += n,
                        Err(error) => {
                            failed += chunk.len() as u64;
                            eprintln!("line {number}: {error}");
                        }
                    }
                    bar.set(processed);
                }
            }
            bar.finish();
            summary("diff-sync", processed, sent, failed);
            Ok(sent)
        }
        Command::DeletedDiffReplica { cqrs_id, batch } => {
            let entry = registry::replica::<C>(&cqrs_id)?;
            let mut conn = connect::<C>(database_url)?;
            let mut out = Stdout::new();
            out.line(format_args!("{cqrs_id},{}", format_datetime(&now_micros())))?;
            let mut after: Option<Value> = None;
            let mut total = 0u64;
            loop {
                let pks = entry.ops.pks(&mut conn, after.as_ref(), batch)?;
                let Some(last) = pks.last().cloned() else {
                    break;
                };
                total += pks.len() as u64;
                let full = pks.len() == batch;
                out.line(Value::Array(pks))?;
                if !full {
                    break;
                }
                after = Some(last);
            }
            out.flush()?;
            summary("deleted-diff-replica", total, total, 0);
            Ok(0)
        }
        Command::DeletedDiffMaster => {
            let mut input = StdinLines::new("deleted-diff-master");
            let header = input.header()?;
            let entry = registry::master::<C>(header_cqrs_id(&header))?;
            let mut conn = connect::<C>(database_url)?;
            let mut out = Stdout::new();
            out.line(&header)?;
            let (mut processed, mut missing_total, mut failed) = (0u64, 0u64, 0u64);
            while let Some((number, pks)) = input.next_parsed(parse_pks, &mut failed)? {
                processed += pks.len() as u64;
                match entry.ops.missing(&mut conn, &pks) {
                    Ok(missing) if !missing.is_empty() => {
                        missing_total += missing.len() as u64;
                        let line = Value::Array(missing);
                        out.line(&line)?;
                        eprintln!("PK to delete: {line}");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        failed += 1;
                        eprintln!("line {number}: {error}");
                    }
                }
            }
            out.flush()?;
            summary(
                "deleted-diff-master",
                processed,
                processed - missing_total,
                failed,
            );
            Ok(0)
        }
        Command::DeletedSyncReplica => {
            let mut input = StdinLines::new("deleted-sync-replica");
            let header = input.header()?;
            let entry = registry::replica::<C>(header_cqrs_id(&header))?;
            let mut conn = connect::<C>(database_url)?;
            let (mut processed, mut deleted, mut failed) = (0u64, 0u64, 0u64);
            while let Some((number, pks)) = input.next_parsed(parse_pks, &mut failed)? {
                processed += pks.len() as u64;
                match conn.cqrs_transaction(|conn| entry.ops.delete(conn, &pks)) {
                    Ok(n) => deleted += n,
                    Err(error) => {
                        failed += 1;
                        eprintln!("line {number}: {error}");
                    }
                }
            }
            summary("deleted-sync-replica", processed, deleted, failed);
            Ok(0)
        }
        Command::Consume { .. }
        | Command::Relay { .. }
        | Command::DeadLetters { .. }
        | Command::Models => Ok(0),
    }
}

/// Whether two primary keys are the same (JSON numbers and strings compare by their text, so
/// that `"1"` from a string-keyed stream matches `1`).
fn same_pk(a: &Value, b: &Value) -> bool {
    a == b || cqrs_core::value::pk_key(a) == cqrs_core::value::pk_key(b)
}

fn parse_pairs(line: &str) -> std::result::Result<Vec<(Value, i64)>, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Array(items) = value else {
        return Err("expected a JSON array of [pk, cqrs_revision] pairs".to_owned());
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Array(pair) if pair.len() == 2 => match (&pair[0], pair[1].as_i64()) {
                (pk @ (Value::Number(_) | Value::String(_)), Some(rev)) => Ok((pk.clone(), rev)),
                _ => Err(format!("bad pair {}", Value::Array(pair.clone()))),
            },
            other => Err(format!(
                "expected a [pk, cqrs_revision] pair, found {other}"
            )),
        })
        .collect()
}

fn parse_pks(line: &str) -> std::result::Result<Vec<Value>, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    match value {
        Value::Array(items) if items.iter().all(|i| i.is_number() || i.is_string()) => Ok(items),
        _ => Err("expected a JSON array of primary keys".to_owned()),
    }
}

fn open_input(input: &str) -> Result<Box<dyn BufRead>> {
    if input == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file = File::open(input).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::Input(format!("file {input} does not exist"))
        } else {
            Error::Io {
                context: format!("cannot open {input}"),
                source: e,
            }
        }
    })?;
    Ok(Box::new(BufReader::new(file)))
}

/// The `cqrs_id` of a diff stream's header line (`<cqrs_id>,<timestamp>[,<queue>]`).
fn header_cqrs_id(header: &str) -> &str {
    header.split(',').next().unwrap_or_default()
}

/// Buffered standard output for the diff streams.
struct Stdout(BufWriter<io::StdoutLock<'static>>);

impl Stdout {
    fn new() -> Self {
        Self(BufWriter::new(io::stdout().lock()))
    }

    fn line(&mut self, line: impl std::fmt::Display) -> std::result::Result<(), cqrs_core::Error> {
        writeln!(self.0, "{line}").map_err(stdout_error)
    }

    fn flush(&mut self) -> std::result::Result<(), cqrs_core::Error> {
        self.0.flush().map_err(stdout_error)
    }
}

fn stdout_error(source: io::Error) -> cqrs_core::Error {
    cqrs_core::Error::Io {
        context: "cannot write to stdout".to_owned(),
        source,
    }
}

/// Numbered, non-empty lines of standard input.
struct StdinLines {
    command: &'static str,
    lines: io::Lines<BufReader<io::Stdin>>,
    number: usize,
}

impl StdinLines {
    fn new(command: &'static str) -> Self {
        Self {
            command,
            lines: BufReader::new(io::stdin()).lines(),
            number: 0,
        }
    }

    fn header(&mut self) -> Result<String> {
        match self.next_line()? {
            Some((_, line)) => Ok(line),
            None => Err(Error::Input(format!(
                "{}: standard input is empty (expected the header line `<cqrs_id>,<timestamp>`)",
                self.command
            ))),
        }
    }

    fn next_line(&mut self) -> Result<Option<(usize, String)>> {
        for line in self.lines.by_ref() {
            self.number += 1;
            let line = line.map_err(|e| Error::Io {
                context: format!("cannot read standard input at line {}", self.number),
                source: e,
            })?;
            let line = line.trim();
            if !line.is_empty() {
                return Ok(Some((self.number, line.to_owned())));
            }
        }
        Ok(None)
    }

    /// The next line that `parse` accepts, with its number; the lines it refuses are reported
    /// on stderr and counted in `failed`.
    fn next_parsed<T>(
        &mut self,
        parse: fn(&str) -> std::result::Result<T, String>,
        failed: &mut u64,
    ) -> Result<Option<(usize, T)>> {
        while let Some((number, line)) = self.next_line()? {
            match parse(&line) {
                Ok(parsed) => return Ok(Some((number, parsed))),
                Err(reason) => {
                    *failed += 1;
                    eprintln!("line {number}: {reason}");
                }
            }
        }
        Ok(None)
    }
}
