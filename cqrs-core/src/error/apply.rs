//! Why a message could not be applied to a replica.

use std::fmt;

use diesel::result::Error as DieselError;

use super::class::{ErrorClass, classify_diesel};
use crate::value::ValueError;

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
        /// The hook's own error, when it gave one ([`ApplyError::retry_because`],
        /// [`ApplyError::reject_because`]): kept for error reports and logs.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
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
            source: None,
        }
    }

    /// A transient error from a user hook, keeping the hook's error as the source: the
    /// message is retried after the model's delay.
    pub fn retry_because(
        cqrs_id: &'static str,
        pk: impl fmt::Display,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::hook_error(cqrs_id, pk, error, ErrorClass::Transient)
    }

    /// A permanent error from a user hook, keeping the hook's error as the source: the
    /// message goes to the dead-letter queue.
    pub fn reject_because(
        cqrs_id: &'static str,
        pk: impl fmt::Display,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::hook_error(cqrs_id, pk, error, ErrorClass::Permanent)
    }

    fn hook_error(
        cqrs_id: &'static str,
        pk: impl fmt::Display,
        error: impl std::error::Error + Send + Sync + 'static,
        class: ErrorClass,
    ) -> Self {
        Self::Hook {
            cqrs_id,
            pk: pk.to_string(),
            message: error.to_string(),
            class,
            source: Some(Box::new(error)),
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
            source: None,
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

#[cfg(test)]
mod tests {
    use diesel::result::DatabaseErrorKind;

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
        // a hook's own error is kept as the source
        let io = std::io::Error::other("disk full");
        let kept = ApplyError::retry_because("book", 1, io);
        assert!(kept.is_transient());
        assert_eq!(kept.to_string(), "book: pk 1: disk full");
        let source = std::error::Error::source(&kept).expect("the hook's error");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(ApplyError::reject_because("book", 1, std::io::Error::other("x")).is_permanent());
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
