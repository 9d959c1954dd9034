//! What publishing and handling events can fail with.

use super::class::{ErrorClass, classify_diesel};

/// A publish refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The payload or arguments could not be serialized.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was serialized.
        what: &'static str,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// An argument is unusable (an empty name, an expiry in the past, ...).
    #[error("{0}")]
    BadInput(String),
    /// The outbox write failed.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

/// Why a handler did not take a message. The consumer retries a transient error through the
/// delay queue and dead-letters a permanent one, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The message is not what the handler takes (not JSON, envelope fields missing, a payload
    /// of the wrong shape): never retried.
    #[error("unreadable message: {0}")]
    Malformed(String),
    /// A failure the handler says is final: never retried.
    #[error("{0}")]
    Permanent(String),
    /// A failure worth retrying later (a service away, a lock).
    #[error("{0}")]
    Transient(String),
    /// The handler's database work failed: retried.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// Publishing from the handler failed.
    #[error(transparent)]
    Publish(#[from] EventError),
}

impl HandlerError {
    /// Whether retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Malformed(_)
            | Self::Permanent(_)
            | Self::Publish(EventError::Serialize { .. } | EventError::BadInput(_)) => true,
            Self::Transient(_) | Self::Database(_) | Self::Publish(EventError::Database(_)) => {
                false
            }
        }
    }

    /// Whether the database is gone (the message is kept for later, not retried as its own
    /// failure).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(error) | Self::Publish(EventError::Database(error)) => {
                classify_diesel(error) == ErrorClass::Unavailable
            }
            _ => false,
        }
    }

    /// A permanent error from anything displayable.
    pub fn permanent(error: impl std::fmt::Display) -> Self {
        Self::Permanent(error.to_string())
    }

    /// A transient error from anything displayable.
    pub fn transient(error: impl std::fmt::Display) -> Self {
        Self::Transient(error.to_string())
    }
}
