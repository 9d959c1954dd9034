//! The recommendations service: keeps replicas of the catalogue's books and authors.
//!
//! `recommendations serve` shows them on a self-refreshing page (`--consume` also runs the
//! consumer in this process); every other subcommand is the operations CLI of `cqrs-rabbit`
//! (`recommendations consume`, `recommendations bulk-load`, ...).

#![allow(unreachable_pub, reason = "a binary: pub marks what the modules share")]

mod models;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const DEFAULT_DATABASE: &str = "recommendations.sqlite3";

#[derive(Debug, Parser)]
#[command(
    name = "recommendations",
    version,
    about = "The recommendations service: replicas of books and authors"
)]
struct Cli {
    #[command(flatten)]
    global: cqrs_rabbit::cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the page and the JSON API of the replicated rows.
    Serve {
        /// The HTTP port (on 127.0.0.1).
        #[arg(long, default_value_t = 8002)]
        port: u16,
        /// Also run the consumer in this process.
        #[arg(long)]
        consume: bool,
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
        Command::Migrate { fresh: true } => match cqrs_examples::empty_tables(
            &database_url,
            &[
                "author_cards",
                "book_refs",
                "author_refs",
                "cqrs_tombstones",
            ],
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Cqrs(command) => cqrs_rabbit::cli::execute(command, &cli.global, DEFAULT_DATABASE),
        Command::Serve { port, consume } => {
            cqrs_examples::init_logs();
            match web::serve(database_url, port, consume, cli.global.queue_name.clone()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
