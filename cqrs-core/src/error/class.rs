//! Whether retrying can help: the class of an error, and of a diesel error.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

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
