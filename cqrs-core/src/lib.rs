//! Replicate rows between services, eventually consistent, over a message broker: the CQRS
//! data-sync pattern of django-cqrs, wire-compatible with it, on diesel.
//!
//! A *master* service owns a table; `#[derive(CqrsMaster)]` gives its diesel struct write
//! hooks that keep `cqrs_revision`/`cqrs_updated` and write each change's message to a
//! transactional outbox in the same transaction. A *replica* service keeps a copy;
//! `#[derive(CqrsReplica)]` gives its struct the apply rules (revision ordering, tombstones for
//! deletes) and overridable create/update/delete hooks. The `cqrs-rabbit` crate publishes the
//! outbox to RabbitMQ and consumes messages into replicas.
//!
//! ```
//! # #[cfg(all(feature = "sqlite", feature = "derive"))] {
//! use chrono::{DateTime, Utc};
//! use cqrs_core::db::OutboxReader; // the outbox, as tools and tests read it
//! use cqrs_core::prelude::*;
//! use diesel::prelude::*;
//!
//! diesel::table! {
//!     books (id) {
//!         id -> Integer,
//!         title -> Text,
//!         cqrs_revision -> Integer,
//!         cqrs_updated -> TimestamptzSqlite,
//!     }
//! }
//!
//! #[derive(Debug, Clone, CqrsMaster)]
//! #[diesel(table_name = books)]
//! #[cqrs(cqrs_id = "book", tracked_fields(title), backends(sqlite))]
//! struct Book {
//!     id: i32,
//!     title: String,
//!     cqrs_revision: i32,
//!     cqrs_updated: DateTime<Utc>,
//! }
//!
//! let mut conn = SqliteConnection::cqrs_connect(":memory:")?;
//! conn.cqrs_setup()?;
//! diesel::sql_query("CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL,
//!     cqrs_revision INTEGER NOT NULL, cqrs_updated TEXT NOT NULL)").execute(&mut conn)?;
//!
//! let book = Book { id: 1, title: "Dune".into(), cqrs_revision: 0, cqrs_updated: Utc::now() }
//!     .cqrs_insert(&mut conn)?;
//! let book = Book::cqrs_update(&mut conn, &book.id, |b| b.title = "Dune Messiah".into())?;
//! assert_eq!(book.cqrs_revision, 1);
//! assert_eq!(conn.outbox_pending()?, 2); // SAVE (create) and SAVE (update), not yet published
//! # }
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//! * `derive` (default): re-exports `#[derive(CqrsMaster)]` and `#[derive(CqrsReplica)]`.
//! * `sqlite`: the SQLite backend (`diesel::SqliteConnection`).
//! * `postgres`: the PostgreSQL backend (`diesel::PgConnection`).
//! * `events`: domain events, commands and calls ([`event`], `#[handler]`), in
//!   django-microservices-communication's wire format. A service that only replicates rows
//!   compiles none of it.
//! * `otel`: a message's `traceparent` continues the current OpenTelemetry trace.
//!
//! Generated code reaches its dependencies through this crate, so a service depends on
//! `cqrs-core` (and `cqrs-rabbit`) and diesel, never on `inventory` or `serde_json` for it.

#![warn(missing_docs, missing_debug_implementations)]
// Without a backend feature the database plumbing has no user; it still compiles.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_macros, unused_imports)
)]

extern crate self as cqrs_core;

pub mod applied;
#[doc(hidden)]
pub mod batch;
mod column_type;
pub mod db;
pub mod error;
#[cfg(feature = "events")]
pub mod event;
mod fallback;
pub mod filter;
pub mod master;
pub mod memory;
pub mod message;
pub mod registry;
pub mod replica;
pub mod retry;
pub mod rules;
pub mod settings;
pub mod types;
pub mod value;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[doc(hidden)]
pub mod doc;

pub mod outbox;
pub mod pool;
mod signal;
pub mod split;
pub mod trace;
mod written;

pub use db::CqrsConnection;
pub use error::{ApplyError, Error, ErrorClass, Result};
pub use master::{MasterModel, MasterStore, SyncTarget, transaction};
pub use message::{Message, SignalType};
pub use registry::Registered;
pub use replica::{ReplicaHooks, ReplicaModel, ReplicaStore};
pub use rules::{Order, Outcome, Version};
pub use written::Written;

#[cfg(all(feature = "derive", feature = "events"))]
pub use cqrs_derive::handler;
#[cfg(feature = "derive")]
pub use cqrs_derive::{CqrsMaster, CqrsReplica};

/// Everything a service needs in scope to call the hooks.
pub mod prelude {
    pub use crate::db::CqrsConnection;
    pub use crate::error::ApplyError;
    pub use crate::master::{MasterModel, MasterStore, SyncTarget};
    pub use crate::replica::{ReplicaHooks, ReplicaModel, ReplicaStore};
    #[cfg(feature = "derive")]
    pub use cqrs_derive::{CqrsMaster, CqrsReplica};
}
