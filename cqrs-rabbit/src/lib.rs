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
