//! Errors of cqrs-rabbit.

/// The result type of cqrs-rabbit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the relay, the consumer or the tools.
///
/// [`Error::is_recoverable`] tells an error that a retry later may clear (the broker or the
/// database is away) from one that needs a fix (a setting, the input).
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
    /// The broker cannot be reached, refused the login, or closed the channel. Reconnect
    /// later; the URL never shows the password.
    #[error("RabbitMQ at {url}: {action}: {detail}")]
    Broker {
        /// The broker URL, without password.
        url: String,
        /// What was being done (`connect`, `declare queue `x``, ...).
        action: String,
        /// lapin's message, without the password.
        detail: String,
        /// lapin's error.
        #[source]
        source: Box<lapin::Error>,
    },
    /// The broker did not answer in time.
    #[error("RabbitMQ at {url}: {action}: no answer after {seconds} s")]
    BrokerTimeout {
        /// The broker URL, without password.
        url: String,
        /// What was being done.
        action: &'static str,
        /// How long the framework waited.
        seconds: u64,
    },
    /// The broker closed the consumer (the queue was deleted, the node went down).
    #[error("RabbitMQ at {url}: the broker cancelled the consumer of queue `{queue}`")]
    ConsumerCancelled {
        /// The broker URL, without password.
        url: String,
        /// The queue.
        queue: String,
    },
    /// A message could not be published and confirmed: the channel failed.
    #[error("publish to `{routing_key}` failed: {source}")]
    Publish {
        /// Where it was sent.
        routing_key: String,
        /// lapin's error.
        #[source]
        source: Box<lapin::Error>,
    },
    /// The broker refused a message (a nack), or no queue is bound to its routing key.
    #[error("publish to `{routing_key}` failed: {reason}")]
    Refused {
        /// Where it was sent.
        routing_key: String,
        /// What the broker answered.
        reason: &'static str,
    },
    /// The broker refused every message of an outbox batch (nacks): they stay in the outbox.
    #[error(
        "the broker refused all {count} messages of an outbox batch (nack); they stay in the outbox"
    )]
    BatchRefused {
        /// How many messages the batch held.
        count: usize,
    },
    /// The database cannot be opened. Check the URL and that the server runs.
    #[error("cannot open the database {url}: {source}")]
    Database {
        /// The database URL, without password.
        url: String,
        /// What failed.
        #[source]
        source: Box<cqrs_core::Error>,
    },
    /// A tool wrote SYNC messages to the outbox but could not publish them; a running relay
    /// will.
    #[error(
        "the SYNC messages are in the outbox, but publishing failed ({source}); a running relay will publish them"
    )]
    OutboxNotPublished {
        /// Why publishing failed.
        #[source]
        source: Box<Error>,
    },
    /// The dead-letter queue does not exist: no consumer of the service's queue has run.
    #[error(
        "dead-letter queue `{dlq}` does not exist on {url} ({detail}); has a consumer of queue `{queue}` run?"
    )]
    NoDeadLetterQueue {
        /// The dead-letter queue.
        dlq: String,
        /// The service's queue.
        queue: String,
        /// The broker URL, without password.
        url: String,
        /// lapin's message, without the password.
        detail: String,
        /// lapin's error.
        #[source]
        source: Box<lapin::Error>,
    },
    /// A replica model cannot read its table (missing, or without a column the model maps):
    /// the consumer does not start.
    #[error(
        "replica model {type_name} (`{cqrs_id}`) cannot read its table: {source}; create it (the service's migrations) before starting the consumer"
    )]
    ReplicaTable {
        /// The model's stream id.
        cqrs_id: &'static str,
        /// The Rust type.
        type_name: &'static str,
        /// The database's answer.
        #[source]
        source: Box<cqrs_core::Error>,
    },
    /// The database or the models failed.
    #[error(transparent)]
    Core(#[from] cqrs_core::Error),
    /// An I/O error of a tool (reading or writing a file).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task panicked or was cancelled (a bug, or the runtime is shutting down).
    #[error("{what} failed: {source}")]
    Task {
        /// Which task.
        what: &'static str,
        /// tokio's error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// Every consumer worker stopped (their database work panicked): the consumer stops.
    #[error("every consumer worker stopped")]
    WorkersStopped,
    /// Bad input of a tool: an empty file, a bad line format, no model to consume.
    #[error("{0}")]
    Input(String),
    /// Another relay already publishes this database's outbox, where one relay per database
    /// is the rule (SQLite).
    #[error(
        "another relay already publishes the outbox of this SQLite database (it holds {}): run one relay per SQLite database",
        lock.display()
    )]
    RelayRunning {
        /// The lock file the other relay holds.
        lock: std::path::PathBuf,
    },
}

impl Error {
    pub(crate) fn config(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            setting,
            reason: reason.into(),
        }
    }

    /// A blocking task that failed.
    pub(crate) fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |source| Self::Task { what, source }
    }

    /// Whether the broker connection is lost or unusable: reconnect and go on.
    pub fn is_broker(&self) -> bool {
        matches!(
            self,
            Self::Broker { .. }
                | Self::BrokerTimeout { .. }
                | Self::ConsumerCancelled { .. }
                | Self::Publish { .. }
                | Self::Refused { .. }
        )
    }

    /// Whether retrying later may succeed (the broker or the database is away, a publish was
    /// refused), as opposed to an error that needs a fix (a setting, the input, the models).
    pub fn is_recoverable(&self) -> bool {
        match self {
            Self::Broker { source, .. } | Self::Publish { source, .. } => source.can_be_recovered(),
            Self::BrokerTimeout { .. }
            | Self::ConsumerCancelled { .. }
            | Self::Refused { .. }
            | Self::BatchRefused { .. }
            | Self::Core(cqrs_core::Error::Connection(_)) => true,
            Self::Core(cqrs_core::Error::Database(error)) => {
                cqrs_core::error::classify_diesel(error) != cqrs_core::ErrorClass::Permanent
            }
            _ => false,
        }
    }
}

impl From<diesel::result::Error> for Error {
    fn from(error: diesel::result::Error) -> Self {
        Self::Core(cqrs_core::Error::Database(error))
    }
}
