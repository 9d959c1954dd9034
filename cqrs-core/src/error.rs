//! Errors of cqrs-core.

use std::fmt;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

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
    /// Two models of the same kind share a `cqrs_id` in this binary.
    #[error("{0}")]
    DuplicateCqrsId(String),
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
    Event(#[from] crate::event::EventError),
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

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The payload itself is bad: every retry fails the same way. Dead-letter it.
    Permanent,
    /// The database was busy, a related row had not arrived yet, a hook asked for a retry:
    /// retry after a delay.
    Transient,
    /// The database connection is gone: keep the message, reconnect, try again.
    Unavailable,
}

/// Why a message could not be applied to a replica.
///
/// Every variant names the model (`cqrs_id`) and, when known, the primary key and the field.
/// [`ApplyError::class`] says whether a retry can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The primary key is missing from the message (`instance_pk`, or `id` of a delete stub).
    #[error("{cqrs_id}: the primary key is missing from the message ({detail})")]
    MissingPk {
        /// The model.
        cqrs_id: &'static str,
        /// Which key was looked for.
        detail: &'static str,
    },
    /// `instance_pk` names another row than the key in `instance_data`: the message is
    /// rejected rather than written to one row while routed by the other.
    #[error("{cqrs_id}: instance_pk {instance_pk} differs from the key {data_pk} in the data")]
    PkMismatch {
        /// The model.
        cqrs_id: &'static str,
        /// `instance_pk`'s text form.
        instance_pk: String,
        /// The data's key, text form.
        data_pk: String,
    },
    /// A required field is missing from `instance_data`.
    #[error("{cqrs_id}: pk {pk}: required field `{field}` is missing")]
    MissingField {
        /// The model.
        cqrs_id: &'static str,
        /// The row.
        pk: String,
        /// The field.
        field: String,
    },
    /// A field has the wrong JSON type or cannot be parsed.
    #[error("{cqrs_id}: pk {pk}: field `{field}`: {source}")]
    BadValue {
        /// The model.
        cqrs_id: &'static str,
        /// The row.
        pk: String,
        /// The field.
        field: String,
        /// What was wrong.
        #[source]
        source: ValueError,
    },
    /// A master key named in the replica's `mapping` is absent from the data.
    #[error("{cqrs_id}: pk {pk}: bad mapping: master field `{field}` is not in the message")]
    BadMapping {
        /// The model.
        cqrs_id: &'static str,
        /// The row.
        pk: String,
        /// The master field.
        field: &'static str,
    },
    /// A database statement failed; [`ApplyError::class`] tells a constraint problem from a
    /// busy or lost database.
    #[error("{cqrs_id}: pk {pk}: database error: {source}")]
    Database {
        /// The model.
        cqrs_id: &'static str,
        /// The row.
        pk: String,
        /// The diesel error.
        #[source]
        source: DieselError,
    },
    /// A statement of a batch of rows failed (the consumer then applies the batch's
    /// messages one by one, so that the failing row is found).
    #[error("{cqrs_id}: database error in a batch write: {source}")]
    BatchDatabase {
        /// The model.
        cqrs_id: &'static str,
        /// The diesel error.
        #[source]
        source: DieselError,
    },
    /// The apply transaction itself could not begin, take a savepoint or commit (a deferred
    /// constraint or a serialization failure fails at COMMIT).
    #[error("the apply transaction failed: {source}")]
    Transaction {
        /// The diesel error.
        #[source]
        source: DieselError,
    },
    /// A message of a batch was left without a result (a bug of the batch transaction; the
    /// batch is undone and kept for later).
    #[error("a message of the batch was not processed")]
    Unprocessed,
    /// A user hook failed.
    #[error("{cqrs_id}: pk {pk}: {message}")]
    Hook {
        /// The model.
        cqrs_id: &'static str,
        /// The row.
        pk: String,
        /// What the hook said.
        message: String,
        /// Whether a retry may succeed.
        class: ErrorClass,
    },
}

impl ApplyError {
    /// A transient error from a user hook: the message is retried after the model's delay.
    pub fn retry(cqrs_id: &'static str, pk: impl fmt::Display, message: impl fmt::Display) -> Self {
        Self::Hook {
            cqrs_id,
            pk: pk.to_string(),
            message: message.to_string(),
            class: ErrorClass::Transient,
        }
    }

    /// A permanent error from a user hook: the message goes to the dead-letter queue.
    pub fn reject(
        cqrs_id: &'static str,
        pk: impl fmt::Display,
        message: impl fmt::Display,
    ) -> Self {
        Self::Hook {
            cqrs_id,
            pk: pk.to_string(),
            message: message.to_string(),
            class: ErrorClass::Permanent,
        }
    }

    /// Wraps a database error of a statement on row `pk`.
    pub fn database(cqrs_id: &'static str, pk: impl fmt::Display, source: DieselError) -> Self {
        Self::Database {
            cqrs_id,
            pk: pk.to_string(),
            source,
        }
    }

    /// Whether retrying can help; see [`ErrorClass`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::MissingPk { .. }
            | Self::PkMismatch { .. }
            | Self::MissingField { .. }
            | Self::BadValue { .. }
            | Self::BadMapping { .. } => ErrorClass::Permanent,
            Self::Database { source, .. }
            | Self::BatchDatabase { source, .. }
            | Self::Transaction { source } => classify_diesel(source),
            Self::Unprocessed => ErrorClass::Transient,
            Self::Hook { class, .. } => *class,
        }
    }

    /// `true` when a retry cannot help.
    pub fn is_permanent(&self) -> bool {
        self.class() == ErrorClass::Permanent
    }

    /// `true` when the message should be retried later.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// `true` when the database connection is lost: the message must be kept, not retried.
    pub fn is_unavailable(&self) -> bool {
        self.class() == ErrorClass::Unavailable
    }
}

/// Classifies a diesel error.
///
/// * Constraint violations that depend on other rows (foreign keys, unique) are transient: the
///   related row may arrive later.
/// * `NOT NULL` and `CHECK` violations, bad values and serialization errors are permanent.
/// * Lost connections are [`ErrorClass::Unavailable`]; busy/locked databases and serialization
///   failures are transient.
pub fn classify_diesel(error: &DieselError) -> ErrorClass {
    match error {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                ErrorClass::Unavailable
            }
            DatabaseErrorKind::NotNullViolation | DatabaseErrorKind::CheckViolation => {
                ErrorClass::Permanent
            }
            _ => {
                let message = info.message().to_ascii_lowercase();
                if is_unavailable_message(&message) {
                    ErrorClass::Unavailable
                } else if message.contains("invalid input syntax")
                    || message.contains("invalid byte sequence")
                    || message.contains("numeric field overflow")
                    || message.contains("out of range")
                    || message.contains("value too long")
                    || message.contains("datatype mismatch")
                {
                    ErrorClass::Permanent
                } else {
                    ErrorClass::Transient
                }
            }
        },
        DieselError::SerializationError(_) | DieselError::DeserializationError(_) => {
            ErrorClass::Permanent
        }
        DieselError::BrokenTransactionManager => ErrorClass::Unavailable,
        _ => ErrorClass::Transient,
    }
}

fn is_unavailable_message(message: &str) -> bool {
    [
        "server closed the connection",
        "connection refused",
        "no connection to the server",
        "terminating connection",
        "could not connect",
        "connection to server",
        "unable to open database file",
        "disk i/o error",
        "the database system is shutting down",
        "the database system is starting up",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let bad = ApplyError::BadValue {
            cqrs_id: "book",
            pk: "1".into(),
            field: "price".into(),
            source: ValueError {
                expected: "a number",
                found: "string \"x\"".into(),
            },
        };
        assert!(bad.is_permanent());
        assert_eq!(
            bad.to_string(),
            "book: pk 1: field `price`: expected a number, found string \"x\""
        );
        assert!(ApplyError::retry("book", 1, "later").is_transient());
        assert!(ApplyError::reject("book", 1, "never").is_permanent());
        let closed = DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("gone".to_owned()),
        );
        assert_eq!(classify_diesel(&closed), ErrorClass::Unavailable);
        let fk = DieselError::DatabaseError(
            DatabaseErrorKind::ForeignKeyViolation,
            Box::new("fk".to_owned()),
        );
        assert_eq!(classify_diesel(&fk), ErrorClass::Transient);
        let locked = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        );
        assert_eq!(classify_diesel(&locked), ErrorClass::Transient);
        // PostgreSQL's words for a NUL in text and a number the column cannot hold: no retry
        // can make them fit
        for text in [
            "invalid byte sequence for encoding \"UTF8\": 0x00",
            "numeric field overflow",
            "value \"99999999999\" is out of range for type integer",
        ] {
            let error =
                DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(text.to_owned()));
            assert_eq!(classify_diesel(&error), ErrorClass::Permanent, "{text}");
        }
    }
}
