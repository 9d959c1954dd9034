//! RabbitMQ transport of the CQRS data-sync framework (`cqrs-core`), wire-compatible with
//! django-cqrs: the [`Relay`] publishes a master's transactional outbox with publisher
//! confirms; the [`Consumer`] applies messages to replica models, with durable retries and a
//! dead-letter queue. `cli` (feature `cli`, on by default) is the operations command line a
//! service embeds.
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
//! * `cli` (default): the operations command line, `cqrs_rabbit::cli` (clap, indicatif,
//!   tracing-subscriber). Without it the crate is the relay and the consumer only.
//! * `sqlite`: SQLite databases (`diesel::SqliteConnection`); turns on `cqrs-core/sqlite`.
//! * `postgres`: PostgreSQL databases (`diesel::PgConnection`), with `LISTEN`/`NOTIFY`
//!   wake-ups of the relay; turns on `cqrs-core/postgres`.
//! * `events`: domain events, commands and calls ([`EventConsumer`], [`Publisher`], the
//!   CLI's `events` and `handlers`); turns on `cqrs-core/events`.
//! * `prometheus` (with `cli`): the Prometheus recorder and the `/metrics` and `/health`
//!   endpoint ([`telemetry::serve`]).
//!
//! # Modules
//! The relay ([`Relay`]), the consumer ([`Consumer`]) and their settings ([`Config`]) are the
//! API; [`broker`] has two helpers for tools and tests. Retries and dead letters, the backoff
//! and the topology are internal.

#![warn(missing_docs, missing_debug_implementations)]

mod backoff;
pub mod broker;
mod broker_url;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
mod consumer;
mod error;
#[cfg(feature = "events")]
mod events;
mod linger;
mod notices;
#[cfg(feature = "postgres")]
mod pg_listen;
#[cfg(feature = "events")]
mod publisher;
mod relay;
mod relay_lock;
mod retry;
pub mod telemetry;
mod topology;
mod unroutable;

pub use broker_url::BrokerUrl;
pub use config::{
    Config, DEFAULT_DEAD_MESSAGE_TTL, DEFAULT_DELAY_QUEUE_MAX_SIZE, DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TOMBSTONE_TTL, Unroutable,
};
pub use consumer::Consumer;
pub use error::{Error, Result};
#[cfg(feature = "events")]
pub use events::EventConsumer;
#[cfg(feature = "events")]
pub use publisher::Publisher;
pub use relay::Relay;
pub use telemetry::{ConsumerMetrics, RelayMetrics};
pub use unroutable::{Replayed, replay as replay_unroutable};

/// Connects to the database and creates the framework's tables, off the async runtime: the
/// start-up check of the relay and of the consumer.
async fn setup_database<C: cqrs_core::db::CqrsConnection>(
    url: &str,
    who: &'static str,
) -> Result<()> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut conn = C::cqrs_connect(&url)?;
        conn.cqrs_setup()?;
        Ok(())
    })
    .await
    .map_err(Error::task(who))?
}
