//! The catalogue service: owns authors and books (CQRS masters) and publishes their changes.
//!
//! `catalogue serve` runs the web page and JSON API (`--relay` also runs the outbox relay);
//! every other subcommand is the operations CLI of `cqrs-rabbit` (`catalogue relay`,
//! `catalogue sync`, `catalogue bulk-dump`, ...).

#![allow(unreachable_pub, reason = "a binary: pub marks what the modules share")]

mod events;
mod models;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const DEFAULT_DATABASE: &str = "catalogue.sqlite3";

#[derive(Debug, Parser)]
#[command(
    name = "catalogue",
    version,
    about = "The catalogue service: books and authors (CQRS masters)"
)]
struct Cli {
    #[command(flatten)]
    global: cqrs_rabbit::cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web page and the JSON API.
    Serve {
        /// The HTTP port (on 127.0.0.1).
        #[arg(long, default_value_t = 8001)]
        port: u16,
        /// Also run the outbox relay in this process.
        #[arg(long)]
        relay: bool,
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
    if let Err(error) =
        cqrs_examples::migrate(&database_url, models::SQLITE_DDL, models::POSTGRES_DDL)
    {
        eprintln!("error: {error:#}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Migrate { fresh: false } => ExitCode::SUCCESS,
        Command::Migrate { fresh: true } => {
            match cqrs_examples::empty_tables(&database_url, &["books", "authors", "cqrs_outbox"]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Cqrs(command) => cqrs_rabbit::cli::execute(command, &cli.global, DEFAULT_DATABASE),
        Command::Serve { port, relay } => {
            cqrs_examples::init_logs();
            match web::serve(database_url, port, relay) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
