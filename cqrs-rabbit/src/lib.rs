//! RabbitMQ transport of the CQRS data-sync framework (`cqrs-core`), wire-compatible with
//! django-cqrs: the [`Relay`] publishes a master's transactional outbox with publisher
//! confirms; the [`Consumer`] applies messages to replica models, with durable retries and a
//! dead-letter queue. [`cli`] is the operations command line a service embeds.
//!
//! ```no_run
//! use cqrs_rabbit::{Config, Consumer, Relay};
//!
//! # async fn run() -> Result<(), cqrs_rabbit::Error> {
//! let config = Config::from_env()?; // CQRS_BROKER_URL, CQRS_QUEUE, ...
//! // in the master service
//! let relay = Relay::<diesel::SqliteConnection>::new(config.clone(), "catalogue.sqlite3");
//! tokio::spawn(relay.run(std::future::pending::<()>()));
//! // in the replica service
//! let consumer = Consumer::<diesel::SqliteConnection>::new(config, "recommendations.sqlite3");
//! consumer.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//! * `sqlite`: SQLite databases (`diesel::SqliteConnection`).
//! * `postgres`: PostgreSQL databases (`diesel::PgConnection`), with `LISTEN`/`NOTIFY`
//!   wake-ups of the relay.

#![warn(missing_docs, missing_debug_implementations)]

pub mod broker;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod dead_letters;
pub mod error;
#[cfg(feature = "postgres")]
mod pg_listen;
pub mod relay;

pub use config::{BrokerUrl, Config};
pub use consumer::{Consumer, ConsumerMetrics};
pub use error::{Error, Result};
pub use relay::{Relay, RelayMetrics};

/// Connects to the database and creates the framework's tables, off the async runtime: the
/// start-up check of the relay and of the consumer.
async fn setup_database<C: cqrs_core::db::CqrsConnection>(url: &str, who: &str) -> Result<()> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut conn = C::cqrs_connect(&url)?;
        conn.cqrs_setup()?;
        Ok(())
    })
    .await
    .map_err(|e| Error::Input(format!("{who} start-up failed: {e}")))?
}
