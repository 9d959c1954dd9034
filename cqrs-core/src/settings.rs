//! Process-wide settings of the master side (django-cqrs's `CQRS['master']`).

use std::sync::RwLock;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::message::SignalType;

/// What a meta function receives (django-cqrs's `get_cqrs_meta(**kwargs)`).
#[derive(Debug, Clone, Copy)]
pub struct MetaContext<'a> {
    /// The message's signal.
    pub signal_type: SignalType,
    /// The model's `cqrs_id`.
    pub cqrs_id: &'a str,
    /// The serialized row (or delete stub).
    pub instance_data: &'a Map<String, Value>,
    /// The tracked fields' old values, if any.
    pub previous_data: Option<&'a Map<String, Value>>,
}

/// What a correlation-id function receives (django-cqrs's
/// `correlation_function(signal_type, cqrs_id, instance_pk, queue)`).
#[derive(Debug, Clone, Copy)]
pub struct CorrelationContext<'a> {
    /// The message's signal.
    pub signal_type: SignalType,
    /// The model's `cqrs_id`.
    pub cqrs_id: &'a str,
    /// The row's primary key.
    pub instance_pk: &'a Value,
    /// The target queue of a direct sync.
    pub queue: Option<&'a str>,
}

/// A process-wide meta function: the `meta` of every message whose model has no `meta`
/// attribute. Without one, `meta` is `{}` as in django-cqrs.
pub type MetaFn = fn(&MetaContext<'_>) -> Value;

/// A process-wide correlation-id function.
pub type CorrelationFn = fn(&CorrelationContext<'_>) -> Option<String>;

/// Settings of the master side.
#[derive(Debug, Clone, Copy)]
pub struct MasterSettings {
    /// Lifetime of a message (`expires` = write time + this); `None` never expires.
    /// Default 86400 s (`CQRS_MESSAGE_TTL`).
    pub message_ttl: Option<Duration>,
    /// The correlation-id function, if any.
    pub correlation_id: Option<CorrelationFn>,
    /// The meta function, if any.
    pub meta: Option<MetaFn>,
    /// The largest message body a master write may produce, in bytes
    /// (`CQRS_MAX_MESSAGE_BYTES`); a larger one fails the write with
    /// [`crate::Error::MessageTooLarge`], and nothing is written. Default 4 MiB.
    pub max_message_bytes: usize,
    /// Whether a partial save ([`crate::master::MasterStore::cqrs_save_fields`]) that does not
    /// say otherwise bumps `cqrs_revision` and sets `cqrs_updated` (django-cqrs's
    /// `CQRS_AUTO_UPDATE_FIELDS`; default `false`, as there).
    pub auto_update_fields: bool,
    /// Whether, inside [`crate::transaction`], a row written several times sends one message
    /// with its final state and its revision bumped once, as django-cqrs does (default
    /// `true`; `false`: every write bumps and sends, so replicas see every intermediate
    /// state). `CQRS_ONE_MESSAGE_PER_TRANSACTION`.
    pub one_message_per_transaction: bool,
}

/// The default largest message body: 4 MiB (replicas dead-letter larger ones unread).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// django-cqrs's default message TTL: one day.
pub const DEFAULT_MESSAGE_TTL: Duration = Duration::from_hours(24);

impl Default for MasterSettings {
    fn default() -> Self {
        Self {
            message_ttl: Some(DEFAULT_MESSAGE_TTL),
            correlation_id: None,
            meta: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            auto_update_fields: false,
            one_message_per_transaction: true,
        }
    }
}

static SETTINGS: RwLock<MasterSettings> = RwLock::new(MasterSettings {
    message_ttl: Some(DEFAULT_MESSAGE_TTL),
    correlation_id: None,
    meta: None,
    max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
    auto_update_fields: false,
    one_message_per_transaction: true,
});

/// Replaces the master settings of this process.
///
/// ```
/// use std::time::Duration;
/// cqrs_core::settings::configure_master(cqrs_core::settings::MasterSettings {
///     message_ttl: Some(Duration::from_secs(3600)),
///     ..Default::default()
/// });
/// assert_eq!(cqrs_core::settings::master().message_ttl, Some(Duration::from_secs(3600)));
/// # cqrs_core::settings::configure_master(Default::default());
/// ```
pub fn configure_master(settings: MasterSettings) {
    match SETTINGS.write() {
        Ok(mut guard) => *guard = settings,
        Err(poisoned) => *poisoned.into_inner() = settings,
    }
}

/// The master settings of this process.
pub fn master() -> MasterSettings {
    match SETTINGS.read() {
        Ok(guard) => *guard,
        Err(poisoned) => *poisoned.into_inner(),
    }
}
