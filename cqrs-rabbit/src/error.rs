//! Errors of cqrs-rabbit.

/// The result type of cqrs-rabbit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the relay, the consumer or the tools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid. Fix the setting named; nothing was started.
    #[error("invalid setting {setting}: {reason}")]
    Config {
        /// The setting (its environment variable).
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// The broker cannot be reached, refused the login, or closed the channel. The URL in the
    /// message never shows the password.
    #[error("RabbitMQ at {url}: {reason}")]
    Broker {
        /// The broker URL, without password.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The database failed.
    #[error(transparent)]
    Core(#[from] cqrs_core::Error),
    /// A message could not be published and confirmed.
    #[error("publish to `{routing_key}` failed: {reason}")]
    Publish {
        /// Where it was sent.
        routing_key: String,
        /// Why.
        reason: String,
    },
    /// An I/O error of a tool (reading or writing a file).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Bad input of a tool: an empty file, an unknown cqrs_id, a bad line format.
    #[error("{0}")]
    Input(String),
}

impl Error {
    pub(crate) fn config(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            setting,
            reason: reason.into(),
        }
    }

    pub(crate) fn broker(url: &crate::config::BrokerUrl, error: impl std::fmt::Display) -> Self {
        Self::Broker {
            url: url.to_string(),
            reason: url.redact(&error.to_string()),
        }
    }

    /// Whether the error is a lost connection to the broker (reconnect and go on).
    pub fn is_broker(&self) -> bool {
        matches!(self, Self::Broker { .. } | Self::Publish { .. })
    }
}

impl From<diesel::result::Error> for Error {
    fn from(error: diesel::result::Error) -> Self {
        Self::Core(cqrs_core::Error::Database(error))
    }
}
