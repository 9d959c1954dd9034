//! The command line's arguments (clap).

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::dead_letters::DeadLetterAction;

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
/// environment variables (see [`Config`](crate::Config)).
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The database: a SQLite file path, or postgres://user@host/db.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The broker URL (amqp:// or amqps://).
    #[arg(long, global = true, env = "CQRS_BROKER_URL", hide_env_values = true)]
    pub broker_url: Option<String>,
    /// This service's own replica queue (the one it consumes; not a target).
    #[arg(long = "queue-name", global = true, env = "CQRS_QUEUE")]
    pub queue_name: Option<String>,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log: String,
    /// Log lines as text, or as one JSON object per line (with the fields cqrs_id, pk,
    /// revision, correlation_id, reason as keys).
    #[arg(long, global = true, env = "CQRS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Serve /metrics (Prometheus), /health/live and /health/ready on this address while
    /// `consume`, `relay` or `events` runs (for example 0.0.0.0:9464). Off by default.
    #[arg(long, global = true, env = "CQRS_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// /health/ready fails while the relay's first due outbox message is older than this
    /// (seconds; the same rule as `outbox check --max-delay`).
    #[arg(long, global = true, env = "CQRS_READY_MAX_OUTBOX_AGE", default_value_t = 60.0,
        value_parser = seconds)]
    pub ready_max_outbox_age: f64,
}

impl Default for Global {
    /// What the command line gives with no option and no environment: for a service that
    /// builds its own `Global` (`Global { database_url, ..Global::default() }`).
    fn default() -> Self {
        Self {
            database_url: None,
            broker_url: None,
            queue_name: None,
            log: "info".to_owned(),
            log_format: LogFormat::Text,
            metrics_addr: None,
            ready_max_outbox_age: crate::telemetry::DEFAULT_MAX_OUTBOX_AGE.as_secs_f64(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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
        /// Also run this binary's event, command and call handlers, on this queue, in the
        /// same process (what the `events` subcommand runs on its own).
        #[cfg(feature = "events")]
        #[command(flatten)]
        handlers: HandlerArgs,
        /// After SIGINT/SIGTERM, how long (seconds) to finish the batches in hand before
        /// exiting without acknowledging the rest (default: CQRS_SHUTDOWN_TIMEOUT, or 25).
        /// `--sigint-timeout` is django-cqrs's name for it.
        #[arg(long, visible_alias = "sigint-timeout", value_parser = seconds)]
        shutdown_timeout: Option<f64>,
        /// django-cqrs's wait after its SIGKILL: added to --shutdown-timeout (one process
        /// here, nothing to kill).
        #[arg(long, value_parser = seconds)]
        sigkill_timeout: Option<f64>,
        /// Not supported: django-cqrs reloads changed Python files; a compiled service is
        /// restarted with its new build instead. Given, the command stops with this reason.
        #[arg(long, short = 'r')]
        reload: bool,
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
        /// Exit 0 even when some lines could not be loaded (they are reported either way).
        #[arg(long)]
        allow_bad_lines: bool,
    },
    /// Send SYNC messages for the master rows matching a filter, to every replica or one queue.
    Sync {
        /// The master model.
        #[arg(long, short = 'c')]
        cqrs_id: String,
        /// Django lookups as JSON, e.g. '{"id__in": [1, 2]}' (default: every row).
        #[arg(long, short = 'f')]
        filter: Option<String>,
        /// Send only to the replica service consuming this queue (another service's queue;
        /// `--queue` as in django-cqrs's `cqrs_sync`). Default: every replica.
        #[arg(long = "target-queue", visible_alias = "queue", short = 'q')]
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
        /// Django lookups as JSON on the replica's fields, e.g. '{"id__gt": 100}' (default:
        /// every row).
        #[arg(long, short = 'f')]
        filter: Option<String>,
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
    /// Publish again the messages kept in the unroutable queue (`CQRS_UNROUTABLE_QUEUE`);
    /// those that still have no queue are kept.
    ReplayUnroutable,
    /// List the models registered in this binary.
    Models,
    /// List the event, command and call handlers registered in this binary for the
    /// database's backend: kind, exchange, routing key (`*`: every key), inbox, function.
    #[cfg(feature = "events")]
    Handlers,
    /// Run this binary's event, command and call handlers on a queue (until SIGINT/SIGTERM).
    #[cfg(feature = "events")]
    Events {
        /// The queue of this service's handlers.
        #[arg(long = "events-queue", env = "CQRS_EVENTS_QUEUE")]
        queue: String,
        /// Where the handlers' messages come from.
        #[command(flatten)]
        topology: HandlerTopology,
    },
    /// What replication looks like now: the outbox's depth and age, this service's queues,
    /// and per cqrs_id a running consumer's applied, ignored, retried and dead-lettered
    /// messages and its lag (from its /metrics).
    Status {
        /// A running consumer's metrics endpoint (http://HOST:PORT/metrics).
        #[arg(long)]
        metrics_url: Option<String>,
    },
    /// Look at the outbox.
    Outbox {
        /// check
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Print the DDL of the framework's own tables (cqrs_outbox, cqrs_tombstones,
    /// cqrs_master_revisions) for the database's backend, to put in a migration. The relay,
    /// the consumer and `cqrs_setup` create them when missing.
    Schema,
}

/// The handlers' queue of `consume`: none unless `--events-queue` names one (no environment
/// variable, so that a service whose `events` process reads `CQRS_EVENTS_QUEUE` does not get
/// a second one inside `consume`).
#[cfg(feature = "events")]
#[derive(Debug, Clone, Args)]
pub struct HandlerArgs {
    /// The queue of this service's handlers (`CQRS_EVENTS_QUEUE` is not read here).
    #[arg(long = "events-queue")]
    pub queue: Option<String>,
    /// Where the handlers' messages come from.
    #[command(flatten)]
    pub topology: HandlerTopology,
}

/// Bindings and declarations of a handlers' queue, as the Python package configures them.
#[cfg(feature = "events")]
#[derive(Debug, Clone, Args)]
pub struct HandlerTopology {
    /// Extra bindings of the handlers' queue, `exchange:routing_key` (the Python package's
    /// `BINDS`).
    #[arg(long = "bind", value_parser = bind, requires = "queue")]
    pub binds: Vec<(String, String)>,
    /// Declare nothing for the handlers: their queue, exchanges and bindings belong to the
    /// infrastructure.
    #[arg(long, requires = "queue")]
    pub no_declare: bool,
}

impl Command {
    /// Whether the command runs until a signal stops it (and so serves `--metrics-addr`).
    pub fn runs_until_stopped(&self) -> bool {
        match self {
            Self::Consume { .. } | Self::Relay { once: false } => true,
            #[cfg(feature = "events")]
            Self::Events { .. } => true,
            _ => false,
        }
    }
}

/// What `outbox` does.
#[derive(Debug, Clone, Subcommand)]
pub enum OutboxAction {
    /// Exit non-zero when more than N messages (rows or events) are older than S seconds and
    /// still unpublished (the Python package's `checkpublisher`): a liveness probe.
    Check {
        /// How many overdue messages are tolerated.
        #[arg(long, default_value_t = 0)]
        max_queue_size: u32,
        /// How old (seconds) an unpublished message may be.
        #[arg(long, default_value_t = 60.0, value_parser = seconds)]
        max_delay: f64,
    },
}

#[cfg(feature = "events")]
fn bind(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((exchange, key)) if !exchange.is_empty() => Ok((
            exchange.to_owned(),
            if key.is_empty() {
                "#".to_owned()
            } else {
                key.to_owned()
            },
        )),
        _ => Err(format!("`{text}` is not exchange:routing_key")),
    }
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=31_536_000.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "`{text}` is not a number of seconds from 0 to 31536000"
        )),
    }
}

fn batch_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a batch size from 1 to 1000000")),
    }
}
