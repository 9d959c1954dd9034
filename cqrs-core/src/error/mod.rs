//! Errors of cqrs-core.

use diesel::result::Error as DieselError;

use crate::filter::FilterError;
use crate::value::ValueError;

/// The result type of cqrs-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of a master write, the outbox, a setup step or a tool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A database statement failed. The caller's transaction is rolled back; nothing was sent.
    #[error("database error: {0}")]
    Database(#[from] DieselError),
    /// The database cannot be reached or opened. Check the URL and that the server runs.
    #[error("cannot connect to the database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    /// A row could not be serialized (a custom serializer returned an error or not an object).
    #[error("{model}: cannot serialize the row: {reason}")]
    Serialize {
        /// The model's type name.
        model: &'static str,
        /// Why.
        reason: String,
    },
    /// A model's `relate` function could not load the related data of its rows; the write
    /// is rolled back and nothing is sent.
    #[error("{model}: cannot load the related data of the rows")]
    Relate {
        /// The model's type name.
        model: &'static str,
        /// The `relate` function's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The row to update or sync does not exist.
    #[error("{model}: no row with primary key {pk}")]
    NotFound {
        /// The model's type name.
        model: &'static str,
        /// The primary key asked for.
        pk: String,
    },
    /// An insert returned no row (a trigger or a rule of the database dropped it); nothing was
    /// sent.
    #[error("{model}: the insert returned no row")]
    NotReturned {
        /// The model's type name.
        model: &'static str,
    },
    /// The row's message is larger than the configured maximum
    /// (`MasterSettings::max_message_bytes`); the write is rolled back.
    #[error("{model}: pk {pk}: the message has {bytes} bytes, more than the maximum of {max}")]
    MessageTooLarge {
        /// The model's type name.
        model: &'static str,
        /// The row's key.
        pk: String,
        /// The body's size.
        bytes: usize,
        /// The maximum.
        max: usize,
    },
    /// No model with this `cqrs_id` is registered in this binary.
    #[error("unknown cqrs_id `{cqrs_id}`; registered {kind} models: {known}")]
    UnknownCqrsId {
        /// The id asked for.
        cqrs_id: String,
        /// `master` or `replica`.
        kind: &'static str,
        /// The registered ids, comma-separated.
        known: String,
    },
    /// Two models of the same kind share a `cqrs_id` in this binary: every such pair.
    #[error("{}", DuplicateModels(duplicates))]
    DuplicateCqrsId {
        /// The pairs of models that share a `cqrs_id`.
        duplicates: Vec<DuplicateModel>,
    },
    /// A `--filter` / lookup object is invalid.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A value could not be converted.
    #[error("{context}: {source}")]
    Value {
        /// Where the value came from.
        context: String,
        /// What was wrong.
        #[source]
        source: ValueError,
    },
    /// Applying a message to a replica failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),

    /// Publishing an event, command or call failed (so that one transaction can write rows
    /// and publish events with `?` on both).
    #[error(transparent)]
    #[cfg(feature = "events")]
    Event(#[from] EventError),
    /// Writing a tool's output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being written.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database URL is empty or has a scheme the framework does not know.
    #[error("invalid database URL: {reason}")]
    BadDatabaseUrl {
        /// What is wrong (never the URL itself, which may hold a password).
        reason: String,
    },
    /// A setting (an environment variable) has a value the framework cannot use.
    #[error("{name}: `{value}` is not {expected}")]
    BadSetting {
        /// The setting's name.
        name: String,
        /// The value given (at most 40 characters of it).
        value: String,
        /// What it must be.
        expected: String,
    },
    /// A tool asked a replica without a table ([`crate::replica::RawReplica`]) for what
    /// only a table has.
    #[error("{cqrs_id} is a replica without a table: it has no {what}")]
    NoTable {
        /// The stream.
        cqrs_id: &'static str,
        /// What was asked for.
        what: String,
    },
    /// A partial save named a field the model cannot write that way.
    #[error("{model} has no field `{field}` a partial save can write (those it can: {valid})")]
    UnknownUpdateField {
        /// The model's Rust type.
        model: &'static str,
        /// The name given.
        field: String,
        /// The fields a partial save can write.
        valid: String,
    },
    /// The database URL names a backend this binary was built without. Enable the feature
    /// of `cqrs-core` (or of `cqrs-rabbit`, which forwards it) and rebuild.
    #[error(
        "this binary was built without {backend} support: enable the `{feature}` feature of \
         cqrs-core (or cqrs-rabbit) for database URLs like {example}"
    )]
    BackendNotCompiled {
        /// `SQLite` or `PostgreSQL`.
        backend: &'static str,
        /// The cargo feature.
        feature: &'static str,
        /// An example URL of that backend.
        example: &'static str,
    },
}

mod apply;
mod class;
mod duplicate;
#[cfg(feature = "events")]
mod event;

pub use apply::ApplyError;
pub use class::{ErrorClass, classify_diesel};
pub use duplicate::DuplicateModel;
use duplicate::DuplicateModels;
#[cfg(feature = "events")]
pub use event::{EventError, HandlerError};
