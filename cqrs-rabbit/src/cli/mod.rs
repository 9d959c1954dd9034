//! The operations command line, compatible with django-cqrs's management commands. A service
//! embeds it in one line:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     cqrs_rabbit::cli::main_with("catalogue.sqlite3") // the default DATABASE_URL
//! }
//! ```
//!
//! or adds [`Command`] to its own clap command line and calls [`execute`]. Behind the default
//! feature `cli` (clap, indicatif, tracing-subscriber): a service that embeds only the relay
//! and the consumer builds with `default-features = false`.
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
//! | `replay-unroutable` | (re-sends messages kept while no queue was bound; django-cqrs drops them) |
//! | `models` | (lists the models of the binary) |
//! | `status` | (outbox depth and age, queues, per-model counts and lag) |

use std::ffi::OsString;
use std::io;
use std::process::ExitCode;

use clap::Parser;
use cqrs_core::db::CqrsConnection;
use cqrs_core::filter::{Lookup, parse_filter_text};
use cqrs_core::registry::{self, Registered};

use crate::broker_url::BrokerUrl;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::{Consumer, Relay, telemetry};

mod args;
mod dead_letters;
mod diff;
mod dump;
mod progress;
mod status;
mod stream;
mod sync;

pub use args::{Cli, Command, Global, LogFormat};
pub use dead_letters::DeadLetterAction;

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
    let _exporter = init_logs(&global.log, global.log_format);
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

/// Installs the log subscriber: text or JSON lines on stderr, and with the feature `otel` the
/// OTLP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (its guard flushes at exit).
fn init_logs(filter: &str, format: LogFormat) -> Option<Box<dyn std::any::Any>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // lapin logs every returned (unroutable) message at WARN with its whole body; the relay
    // says it once per routing key instead
    let filter = match "lapin::returned_messages=error".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_target(false);
    let logs = match format {
        LogFormat::Text => logs.with_ansi(colour()).boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(logs);
    #[cfg(feature = "otel")]
    {
        let service = std::env::args()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "cqrs-rs".to_owned());
        match telemetry::otlp_layer(&service) {
            Ok(Some((layer, guard))) => {
                let _ = registry.with(layer).try_init();
                return Some(Box::new(guard));
            }
            Ok(None) => {}
            Err(error) => eprintln!("warning: {error}; spans are not exported"),
        }
    }
    let _ = registry.try_init();
    None
}

/// Colour in logs only on a terminal, and never with `NO_COLOR` set (<https://no-color.org>).
pub fn colour() -> bool {
    use std::io::IsTerminal;
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
    match command {
        Command::Models => return list_models(),
        Command::Schema => {
            cqrs_core::with_backend!(database_url, |Conn| print_schema::<Conn>());
            return Ok(());
        }
        _ => {}
    }
    let config = config(global)?;
    let health = telemetry::Health::with_max_outbox_age(std::time::Duration::from_secs_f64(
        global.ready_max_outbox_age,
    ));
    if command.runs_until_stopped()
        && let Some(addr) = global.metrics_addr
    {
        let recorder = telemetry::install_recorder()?;
        telemetry::serve(addr, health.clone(), Some(recorder), std::future::pending()).await?;
    }
    cqrs_core::with_backend!(database_url, |Conn| run::<Conn>(
        command,
        config,
        database_url,
        health
    )
    .await)
}

#[allow(clippy::print_stdout, reason = "a command line prints its output")]
fn list_models() -> Result<()> {
    registry::check()?;
    for model in registry::models() {
        println!("{}\t{}\t{}", model.kind, model.cqrs_id, model.type_name);
    }
    Ok(())
}

#[cfg(feature = "events")]
#[allow(clippy::print_stdout, reason = "a command line prints its output")]
fn list_handlers<C: Registered>() -> Result<()> {
    let entries = C::handler_entries();
    cqrs_core::event::Router::new(&entries).map_err(Error::Input)?;
    for e in entries {
        let key = if e.routing_key.is_empty() {
            "*"
        } else {
            e.routing_key
        };
        let inbox = if e.inbox { "inbox" } else { "-" };
        println!("{}\t{}\t{}\t{}\t{}", e.kind, e.exchange, key, inbox, e.name);
    }
    Ok(())
}

#[allow(clippy::print_stdout, reason = "a command line prints its output")]
fn print_schema<C: cqrs_core::CqrsConnection>() {
    println!("-- the framework's tables on {} (idempotent)", C::BACKEND);
    println!("{}", C::SETUP_SQL.trim());
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

/// The handlers' consumer of `events` and `consume --events-queue`.
#[cfg(feature = "events")]
fn event_consumer<C: Registered>(
    config: Config,
    database_url: &str,
    queue: String,
    topology: args::HandlerTopology,
) -> crate::EventConsumer<C> {
    let mut consumer = crate::EventConsumer::<C>::new(config, database_url, queue);
    for (exchange, key) in topology.binds {
        consumer = consumer.bind(exchange, key);
    }
    if topology.no_declare {
        consumer = consumer.no_declare();
    }
    consumer
}

#[allow(clippy::too_many_lines, reason = "one arm per subcommand")]
async fn run<C: Registered>(
    command: Command,
    mut config: Config,
    database_url: &str,
    health: telemetry::Health,
) -> Result<()> {
    match command {
        Command::Consume {
            workers,
            batch_size,
            cqrs_ids,
            #[cfg(feature = "events")]
            handlers,
            shutdown_timeout,
            sigkill_timeout,
            reload,
        } => {
            if reload {
                return Err(Error::Input(
                    "--reload has no meaning here: django-cqrs reloads changed Python files, \
                     a compiled service is restarted with its new build"
                        .to_owned(),
                ));
            }
            // django-cqrs waits up to sigint + sigkill timeouts before giving up on a worker
            let base = shutdown_timeout.or(config.shutdown_timeout.map(|d| d.as_secs_f64()));
            if let Some(base) = base {
                config.shutdown_timeout =
                    std::time::Duration::try_from_secs_f64(base + sigkill_timeout.unwrap_or(0.0))
                        .ok();
            }
            if let Some(workers) = workers {
                config.workers = workers;
            }
            if let Some(batch_size) = batch_size {
                config.batch_size = batch_size;
            }
            config.validate()?;
            let consumer = Consumer::<C>::new(config.clone(), database_url)
                .only(cqrs_ids)
                .with_health(health.clone());
            consumer.check().await?;
            #[cfg(feature = "events")]
            if let Some(queue) = handlers.queue {
                let events = event_consumer::<C>(config, database_url, queue, handlers.topology)
                    .with_health(health);
                events.check().await?;
                // one signal stops both; the first to fail ends the process with its error
                // (the supervisor restarts the pair)
                let stop = futures_util::FutureExt::shared(Box::pin(shutdown_signal()));
                return tokio::try_join!(consumer.run(stop.clone()), events.run(stop)).map(|_| ());
            }
            consumer.run(shutdown_signal()).await
        }
        Command::Relay { once } => {
            let relay = Relay::<C>::new(config, database_url).with_health(health);
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
        Command::Status { metrics_url } => {
            status::run::<C>(&config, database_url, metrics_url.as_deref()).await
        }
        Command::ReplayUnroutable => {
            let done = crate::replay_unroutable(&config).await?;
            eprintln!(
                "replay-unroutable: {} routed, {} still without a queue (kept), {} without a routing key (left in {})",
                done.routed,
                done.still_unroutable,
                done.unreadable,
                config.unroutable_queue()
            );
            progress::summary(
                "replay-unroutable",
                done.routed + done.still_unroutable + done.unreadable,
                done.routed,
                done.still_unroutable + done.unreadable,
            );
            Ok(())
        }
        Command::Models => list_models(),
        Command::Schema => {
            print_schema::<C>();
            Ok(())
        }
        #[cfg(feature = "events")]
        Command::Handlers => list_handlers::<C>(),
        #[cfg(feature = "events")]
        Command::Events { queue, topology } => {
            let consumer =
                event_consumer::<C>(config, database_url, queue, topology).with_health(health);
            consumer.check().await?;
            consumer.run(shutdown_signal()).await
        }
        Command::Outbox {
            action:
                args::OutboxAction::Check {
                    max_queue_size,
                    max_delay,
                },
        } => {
            let url = database_url.to_owned();
            let micros = std::time::Duration::try_from_secs_f64(max_delay)
                .ok()
                .and_then(|d| i64::try_from(d.as_micros()).ok())
                .unwrap_or(i64::MAX);
            let overdue = tokio::task::spawn_blocking(move || -> Result<(i64, i64)> {
                let mut conn = C::cqrs_connect(&url)?;
                conn.cqrs_setup()?;
                let overdue = conn
                    .outbox_overdue(micros)
                    .map_err(cqrs_core::Error::from)?;
                let pending = conn.outbox_pending().map_err(cqrs_core::Error::from)?;
                Ok((overdue, pending))
            })
            .await
            .map_err(Error::task("the outbox check"))??;
            let (overdue, pending) = overdue;
            eprintln!(
                "outbox: {pending} message(s) waiting, {overdue} older than {max_delay} s (tolerated: {max_queue_size})"
            );
            if overdue > i64::from(max_queue_size) {
                return Err(Error::Input(format!(
                    "outbox check failed: {overdue} message(s) older than {max_delay} s, more than {max_queue_size}: is the relay running?"
                )));
            }
            Ok(())
        }
        Command::BulkDump {
            cqrs_id,
            output,
            batch,
            progress,
            force,
        } => {
            blocking::<C>(config, database_url, move |url, _| {
                dump::bulk_dump::<C>(&cqrs_id, output, batch, progress, force, url)
            })
            .await
        }
        Command::BulkLoad {
            input,
            clear,
            batch,
            progress,
            allow_bad_lines,
        } => {
            blocking::<C>(config, database_url, move |url, _| {
                dump::bulk_load::<C>(&input, clear, batch, progress, allow_bad_lines, url)
            })
            .await
        }
        Command::Sync {
            cqrs_id,
            filter,
            queue,
            batch,
            progress,
        } => {
            if let Some(queue) = &queue {
                target_queue_exists(&config, queue).await?;
            }
            blocking::<C>(config, database_url, move |url, _| {
                sync::sync::<C>(
                    &cqrs_id,
                    filter.as_deref(),
                    queue.as_deref(),
                    batch,
                    progress,
                    url,
                )
            })
            .await
        }
        Command::DiffMaster {
            cqrs_id,
            filter,
            batch,
        } => {
            blocking::<C>(config, database_url, move |url, _| {
                diff::diff_master::<C>(&cqrs_id, filter.as_deref(), batch, url)
            })
            .await
        }
        Command::DiffReplica => {
            blocking::<C>(config, database_url, |url, config| {
                diff::diff_replica::<C>(config, url)
            })
            .await
        }
        Command::DiffSync { batch, progress } => {
            blocking::<C>(config, database_url, move |url, _| {
                diff::diff_sync::<C>(batch, progress, url)
            })
            .await
        }
        Command::DeletedDiffReplica {
            cqrs_id,
            filter,
            batch,
        } => {
            blocking::<C>(config, database_url, move |url, _| {
                diff::deleted_diff_replica::<C>(&cqrs_id, filter.as_deref(), batch, url)
            })
            .await
        }
        Command::DeletedDiffMaster => {
            blocking::<C>(config, database_url, |url, _| {
                diff::deleted_diff_master::<C>(url)
            })
            .await
        }
        Command::DeletedSyncReplica => {
            blocking::<C>(config, database_url, |url, _| {
                diff::deleted_sync_replica::<C>(url)
            })
            .await
        }
    }
}

/// Fails unless `queue` exists on the broker: a SYNC aimed at a queue nobody consumes would
/// reach no one.
async fn target_queue_exists(config: &Config, queue: &str) -> Result<()> {
    let connection = crate::broker::connect(&config.url, "cqrs-sync").await?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| config.url.error("open a channel", e))?;
    let found = crate::broker::inspect_queue(&channel, queue).await;
    let _ = connection.close(200, "done".into()).await;
    match found {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Input(format!(
            "queue `{queue}` does not exist on {}: no replica service consumes it; nothing was sent",
            config.url
        ))),
    }
}

/// Runs a blocking tool (it returns how many messages it wrote to the outbox), then publishes
/// what it wrote.
async fn blocking<C: Registered>(
    config: Config,
    database_url: &str,
    tool: impl FnOnce(&str, &Config) -> Result<u64> + Send + 'static,
) -> Result<()> {
    let job_url = database_url.to_owned();
    let job_config = config.clone();
    let written = tokio::task::spawn_blocking(move || tool(&job_url, &job_config))
        .await
        .map_err(Error::task("the command"))??;
    if written > 0 {
        publish_outbox::<C>(config, database_url).await?;
    }
    Ok(())
}

async fn publish_outbox<C: Registered>(config: Config, database_url: &str) -> Result<()> {
    let relay = Relay::<C>::new(config, database_url);
    match relay.drain().await {
        Ok(published) => {
            eprintln!("outbox drained: {published} message(s) published by this command");
            Ok(())
        }
        // the service's relay runs (SQLite: one per database): it publishes them
        Err(Error::RelayRunning { .. }) => {
            eprintln!("outbox: the service's running relay publishes these messages");
            Ok(())
        }
        Err(error) => Err(Error::OutboxNotPublished {
            source: Box::new(error),
        }),
    }
}

/// Opens the database (a clear error if it cannot).
fn connect<C: CqrsConnection>(url: &str) -> Result<C> {
    let mut conn = C::cqrs_connect(url).map_err(|source| Error::Database {
        url: redact_db_url(url),
        source: Box::new(source),
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

/// The lookups of a `--filter` argument (none: every row).
fn filter(text: Option<&str>) -> Result<Vec<Lookup>> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => Ok(parse_filter_text(text).map_err(cqrs_core::Error::from)?),
    }
}
