//! The parking service: one service with a write model (the primary database) and a read
//! model (the replica database) of its parking slots, kept in step over RabbitMQ by the
//! framework's relay and consumer, and read through `cqrs_core::split::ReadWrite`.
//!
//! `parking serve` runs the HTTP API and page, with the relay and the consumer in-process
//! (`--no-relay`/`--no-consumer` leave them to `parking relay` and `parking consume`);
//! `create-parking-slot`, `parking-slot-list`, `book-parking-slot` and `release-parking-slot`
//! are the CLI; every other subcommand is the operations CLI of `cqrs-rabbit`, on the primary
//! for the master side (`relay`, `sync`, `diff-master`, ...) and on the replica for the
//! replica side (`consume`, `diff-replica`, `bulk-load`, ...).

#![allow(unreachable_pub, reason = "a binary: pub marks what the modules share")]
#![allow(
    clippy::needless_pass_by_value,
    reason = "handlers and helpers take what their callers hand over (a handler takes its message by value)"
)]

mod models;
mod service;
mod web;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cqrs_core::pool::PoolConfig;
use cqrs_rabbit::cli::{Command as Cqrs, Global};

use crate::models::{AVAILABLE, BOOKED};
use crate::service::Db;

#[derive(Debug, Parser)]
#[command(
    name = "parking",
    version,
    about = "The parking service: writes to a primary database, reads from a replica database"
)]
struct Cli {
    /// The write model's database: a SQLite file, or postgres://user@host/db.
    #[arg(
        long,
        global = true,
        env = "PARKING_PRIMARY_URL",
        hide_env_values = true,
        default_value = "parking-primary.sqlite3"
    )]
    primary_url: String,
    /// The read model's database (the same backend as the primary).
    #[arg(
        long,
        global = true,
        env = "PARKING_REPLICA_URL",
        hide_env_values = true,
        default_value = "parking-replica.sqlite3"
    )]
    replica_url: String,
    /// The broker URL (amqp:// or amqps://).
    #[arg(long, global = true, env = "CQRS_BROKER_URL", hide_env_values = true)]
    broker_url: Option<String>,
    /// The service's replica queue.
    #[arg(
        long = "queue-name",
        global = true,
        env = "CQRS_QUEUE",
        default_value = "parking"
    )]
    queue_name: String,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API and the page (with the relay and the consumer, unless told not to).
    Serve {
        /// The HTTP port (on 127.0.0.1).
        #[arg(long, default_value_t = 8003)]
        port: u16,
        /// Do not run the relay in this process (run `parking relay`).
        #[arg(long)]
        no_relay: bool,
        /// Do not run the consumer in this process (run `parking consume`).
        #[arg(long)]
        no_consumer: bool,
    },
    /// Create an available slot; prints it (uuid, name, status) as JSON.
    CreateParkingSlot {
        /// The slot's name.
        #[arg(long)]
        name: String,
    },
    /// Print every slot of the read model, one JSON object per line.
    ParkingSlotList,
    /// Book an available slot; prints it from the read model once the replica has it.
    BookParkingSlot {
        /// The slot's UUID.
        uuid: String,
        /// How long to wait for the read model, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        wait_ms: u64,
    },
    /// Release a booked slot; prints it from the read model once the replica has it.
    ReleaseParkingSlot {
        /// The slot's UUID.
        uuid: String,
        /// How long to wait for the read model, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        wait_ms: u64,
    },
    /// Create the tables in both databases (every command but `serve` does it too).
    Migrate {
        /// Delete every slot (and the framework's bookkeeping) in both databases first.
        #[arg(long)]
        fresh: bool,
    },
    #[command(flatten)]
    Cqrs(Cqrs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn global(cli: &Cli, database_url: &str) -> Global {
    Global {
        database_url: Some(database_url.to_owned()),
        broker_url: cli.broker_url.clone(),
        queue_name: Some(cli.queue_name.clone()),
        log: cli.log.clone(),
        ..Global::default()
    }
}

fn migrate(cli: &Cli) -> anyhow::Result<()> {
    for url in [&cli.primary_url, &cli.replica_url] {
        cqrs_examples::migrate(url, models::DDL, models::DDL)?;
    }
    Ok(())
}

#[allow(clippy::print_stdout, reason = "the CLI prints its results")]
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if !matches!(cli.command, Command::Serve { .. }) {
        migrate(&cli)?;
    }
    let pools = PoolConfig::from_env()?;
    match &cli.command {
        Command::Migrate { fresh } => {
            if *fresh {
                for url in [&cli.primary_url, &cli.replica_url] {
                    cqrs_examples::empty_tables(
                        url,
                        &[
                            "parking_slots",
                            "cqrs_outbox",
                            "cqrs_tombstones",
                            "cqrs_master_revisions",
                        ],
                    )?;
                }
            }
        }
        Command::CreateParkingSlot { name } => {
            let db = Db::open(&cli.primary_url, &cli.replica_url, &pools)?;
            let slot = db.create(name)?.slot;
            println!(
                "{}",
                serde_json::json!({"uuid": slot.uuid.to_string(), "name": slot.name, "status": slot.status})
            );
        }
        Command::ParkingSlotList => {
            let db = Db::open(&cli.primary_url, &cli.replica_url, &pools)?;
            for slot in db.list()? {
                println!("{}", slot.to_json());
            }
        }
        Command::BookParkingSlot { uuid, wait_ms }
        | Command::ReleaseParkingSlot { uuid, wait_ms } => {
            let to = if matches!(cli.command, Command::BookParkingSlot { .. }) {
                BOOKED
            } else {
                AVAILABLE
            };
            let db = Db::open(&cli.primary_url, &cli.replica_url, &pools)?;
            let changed = db.set_status(uuid, to)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let read = runtime
                .block_on(db.read_after(&changed.written, Duration::from_millis(*wait_ms)))
                // the write is committed either way: say so with the reason
                .map_err(|error| {
                    anyhow::anyhow!("the slot is {to} in the primary database; {error}")
                })?
                .context("the slot is gone from the read model")?;
            println!("{}", read.to_json());
        }
        Command::Serve {
            port,
            no_relay,
            no_consumer,
        } => {
            cqrs_examples::init_logs();
            // a database that is down must not stop the service: its requests fail instead
            if let Err(error) = migrate(&cli) {
                tracing::warn!("cannot prepare the databases yet: {error:#}");
            }
            let db = Db::open(&cli.primary_url, &cli.replica_url, &pools)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve(&cli, db, *port, !no_relay, !no_consumer))?;
        }
        Command::Cqrs(command) => {
            // the master side of the operations CLI works on the primary, the rest on the replica
            let url = match command {
                Cqrs::Relay { .. }
                | Cqrs::BulkDump { .. }
                | Cqrs::Sync { .. }
                | Cqrs::DiffMaster { .. }
                | Cqrs::DiffSync { .. }
                | Cqrs::DeletedDiffMaster
                | Cqrs::ReplayUnroutable => &cli.primary_url,
                _ => &cli.replica_url,
            };
            return Ok(cqrs_rabbit::cli::execute(
                command.clone(),
                &global(&cli, url),
                url,
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The page and the API, with the relay and the consumer as tasks, until SIGINT/SIGTERM.
async fn serve(cli: &Cli, db: Db, port: u16, relay: bool, consume: bool) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let mut config = cqrs_rabbit::Config::from_env()?;
    if let Some(url) = &cli.broker_url {
        config.url = cqrs_rabbit::BrokerUrl::parse(url)?;
    }
    config.queue = Some(cli.queue_name.clone());
    config.validate()?;
    let mut tasks = Vec::new();
    cqrs_core::with_backend!(&cli.primary_url, |Conn| {
        if consume {
            let consumer =
                cqrs_rabbit::Consumer::<Conn>::new(config.clone(), cli.replica_url.clone());
            // the queue first, so that the relay's first messages have somewhere to go (when
            // the replica is away, the consumer declares it once it can start)
            if let Err(error) = consumer.check().await {
                tracing::warn!(%error, "the consumer cannot start yet; it retries");
            }
            tasks.push(tokio::spawn(consumer.run(signal(stopped.clone()))));
        }
        if relay {
            let relay = cqrs_rabbit::Relay::<Conn>::new(config.clone(), cli.primary_url.clone());
            tasks.push(tokio::spawn(relay.run(signal(stopped.clone()))));
        }
    });
    tokio::spawn(async move {
        cqrs_examples::shutdown_signal().await;
        let _ = stop.send(true);
    });
    web::serve(db, port, signal(stopped)).await?;
    for task in tasks {
        task.await??;
    }
    Ok(())
}
