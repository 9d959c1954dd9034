//! The notifications service: takes the catalogue's domain events and commands (no replicated
//! rows), and keeps what it sent to readers.
//!
//! `notifications events --events-queue notifications` runs its handlers (the `book` /
//! `published` event and the `notify_reader` command); `notifications serve` shows what they
//! recorded; every other subcommand is the operations CLI of `cqrs-rabbit`
//! (`notifications handlers`, ...).

#![allow(unreachable_pub, reason = "a binary: pub marks what the modules share")]

mod handlers;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const DEFAULT_DATABASE: &str = "notifications.sqlite3";

#[derive(Debug, Parser)]
#[command(
    name = "notifications",
    version,
    about = "The notifications service: handles the catalogue's events and commands"
)]
struct Cli {
    #[command(flatten)]
    global: cqrs_rabbit::cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the page and the JSON API of the notifications sent.
    Serve {
        /// The HTTP port (on 127.0.0.1).
        #[arg(long, default_value_t = 8003)]
        port: u16,
    },
    /// Create the tables (every command does it too).
    Migrate {
        /// Delete every row of this service's tables first (the demo starts clean).
        #[arg(long)]
        fresh: bool,
    },
    #[command(flatten)]
    Cqrs(cqrs_rabbit::cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let database_url = cli
        .global
        .database_url
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
    let result =
        cqrs_examples::migrate(&database_url, handlers::SQLITE_DDL, handlers::POSTGRES_DDL)
            .and_then(|()| match cli.command {
                Command::Migrate { fresh } => {
                    if fresh {
                        cqrs_examples::empty_tables(
                            &database_url,
                            &["notifications", "cqrs_inbox"],
                        )?;
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Command::Cqrs(command) => Ok(cqrs_rabbit::cli::execute(
                    command,
                    &cli.global,
                    DEFAULT_DATABASE,
                )),
                Command::Serve { port } => {
                    cqrs_examples::init_logs();
                    web::serve(database_url, port)?;
                    Ok(ExitCode::SUCCESS)
                }
            });
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}
