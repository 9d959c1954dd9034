//! What publishing and handling events can fail with.

use super::class::{ErrorClass, classify_diesel};

/// A publish refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// An exchange, routing key, command or method name that is empty or longer than 255
    /// bytes.
    #[error("{what} must be 1 to 255 bytes, not {name:?}")]
    BadName {
        /// Which name (`the exchange`, `the command name`, ...).
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// A command's timeout that no time can hold.
    #[error("the command timeout is out of range")]
    TimeoutOutOfRange,
    /// An expiry time that has passed.
    #[error("the expiry time {} is in the past", crate::event::format_time(*at))]
    ExpiryInPast {
        /// The expiry time given.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// A future event's tag that its stored form cannot hold.
    #[error("tag {key:?}={value:?}: a key may not contain `|` or `=`, a value not `|`")]
    BadTag {
        /// The tag's key.
        key: String,
        /// The tag's value.
        value: String,
    },
    /// Cancelling future events without a tag (which would cancel them all).
    #[error("cancelling future events needs at least one tag")]
    NoTags,
    /// Arguments or a payload that do not serialize to a JSON object.
    #[error("{what} must serialize to a JSON object")]
    NotAnObject {
        /// What was serialized.
        what: &'static str,
    },
    /// The outbox write failed.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

/// Why a handler did not take a message. The consumer retries a transient error through the
/// delay queue and dead-letters a permanent one, with the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The message is not what the handler takes (not JSON, envelope fields missing, a payload
    /// of the wrong shape): never retried.
    #[error("unreadable message: {0}")]
    Malformed(String),
    /// A failure the handler says is final: never retried. Holds the handler's error (or its
    /// words, for a `&str` or `String`).
    #[error(transparent)]
    Permanent(Box<dyn std::error::Error + Send + Sync>),
    /// A failure worth retrying later (a service away, a lock), with the handler's error.
    #[error(transparent)]
    Transient(Box<dyn std::error::Error + Send + Sync>),
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
            | Self::Publish(
                EventError::Serialize { .. }
                | EventError::BadName { .. }
                | EventError::TimeoutOutOfRange
                | EventError::ExpiryInPast { .. }
                | EventError::BadTag { .. }
                | EventError::NoTags
                | EventError::NotAnObject { .. },
            ) => true,
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

    /// A permanent error: the handler's own error, kept as it is, or its words (`&str`,
    /// `String`).
    pub fn permanent(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Permanent(error.into())
    }

    /// A transient error: the handler's own error, kept as it is, or its words (`&str`,
    /// `String`).
    pub fn transient(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Transient(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the mail server said no")]
    struct Refused;

    #[test]
    fn a_handlers_error_is_kept_as_it_is() {
        let error = HandlerError::permanent(Refused);
        assert!(error.is_permanent());
        assert_eq!(error.to_string(), "the mail server said no");
        let HandlerError::Permanent(inner) = &error else {
            panic!("not permanent: {error:?}");
        };
        assert!(inner.downcast_ref::<Refused>().is_some());
        // words work as before
        let words = HandlerError::transient("not yet");
        assert!(!words.is_permanent());
        assert_eq!(words.to_string(), "not yet");
    }

    #[test]
    fn input_errors_are_structured_and_permanent() {
        let error = EventError::BadName {
            what: "the exchange",
            name: String::new(),
        };
        assert_eq!(
            error.to_string(),
            "the exchange must be 1 to 255 bytes, not \"\""
        );
        assert!(HandlerError::Publish(error).is_permanent());
        assert!(HandlerError::Publish(EventError::NoTags).is_permanent());
    }
}
