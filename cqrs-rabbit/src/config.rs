//! The transport configuration, with django-cqrs's defaults, from code or from environment
//! variables.
//!
//! | setting | environment variable | default |
//! |---|---|---|
//! | broker URL (`amqp://` or `amqps://`; a cluster's nodes comma-separated) | `CQRS_BROKER_URL` (or `AMQP_ADDR`) | `amqp://guest:guest@localhost:5672/%2f` |
//! | or its parts | `CQRS_BROKER_HOST`, `_PORT`, `_USER`, `_PASSWORD`, `_VHOST` | `localhost`, 5672, `guest`, `guest`, `/` |
//! | TLS with the parts (`amqps`) | `CQRS_BROKER_TLS` | false |
//! | exchange | `CQRS_EXCHANGE` | `cqrs` |
//! | replica queue | `CQRS_QUEUE` | none (required to consume) |
//! | dead-letter queue | `CQRS_DEAD_LETTER_QUEUE` | `dead_letter_<queue>` |
//! | message TTL (s, `none` = never) | `CQRS_MESSAGE_TTL` | 86400 |
//! | max retries (`none` = forever) | `CQRS_MAX_RETRIES` | 30 |
//! | retry delay (s) | `CQRS_RETRY_DELAY` | 2 |
//! | delayed-messages cap | `CQRS_DELAY_QUEUE_MAX_SIZE` | 1000 |
//! | dead-message TTL (s, `none` = never) | `CQRS_DEAD_MESSAGE_TTL` | 864000 |
//! | prefetch | `CQRS_PREFETCH` | cap + 1 |
//! | workers | `CQRS_WORKERS` | 1 |
//! | batch size | `CQRS_BATCH_SIZE` | 500 |
//! | quorum queues | `CQRS_QUORUM_QUEUES` | false |
//! | tombstone TTL (s) | `CQRS_TOMBSTONE_TTL` | 2592000 (30 days) |
//! | event inbox TTL (s) | `CQRS_INBOX_TTL` | 2592000 (30 days) |
//! | relay batch | `CQRS_RELAY_BATCH` | 500 |
//! | relay poll (ms) | `CQRS_RELAY_POLL_MS` | 25 on SQLite, 1000 on PostgreSQL |
//! | relay linger (ms) after a partial batch, while the master writes fast | `CQRS_RELAY_LINGER_MS` | 5 |
//! | largest message (bytes), both sides | `CQRS_MAX_MESSAGE_BYTES` | 4194304 (4 MiB) |
//! | after SIGTERM, how long (s, `none` = as long as it takes) the consumers finish the batches in hand | `CQRS_SHUTDOWN_TIMEOUT` | 25 |
//! | longest replica statement (ms, PostgreSQL; 0 = no limit) | `CQRS_QUERY_TIMEOUT` | 0 |
//! | a master's partial save bumps the revision unless told otherwise | `CQRS_AUTO_UPDATE_FIELDS` | false |
//! | a master transaction sends one message per row, with its final state | `CQRS_ONE_MESSAGE_PER_TRANSACTION` | true |
//! | a message no queue is bound for: `keep` it in a queue, or `drop` it (counted) | `CQRS_UNROUTABLE` | `keep` |
//! | where kept unroutable messages wait (`replay-unroutable` re-sends them) | `CQRS_UNROUTABLE_QUEUE` | `<exchange>_unroutable` |

use std::fmt;
use std::time::Duration;

use cqrs_core::retry::{DEFAULT_MAX_RETRIES, DEFAULT_RETRY_DELAY, RetryPolicy};
use cqrs_core::settings::{DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MESSAGE_TTL};

use crate::broker_url::BrokerUrl;
use crate::error::{Error, Result};

/// django-cqrs's default lifetime of dead letters (`CQRS_DEAD_MESSAGE_TTL`): 10 days.
pub const DEFAULT_DEAD_MESSAGE_TTL: Duration = Duration::from_hours(240);

/// django-cqrs's default cap of delayed messages (`CQRS_DELAY_QUEUE_MAX_SIZE`).
pub const DEFAULT_DELAY_QUEUE_MAX_SIZE: u32 = 1000;

/// The default age after which replica tombstones are purged: 30 days.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_hours(720);

/// The default time the consumers take after a stop signal to finish the batches in hand:
/// 25 s, within Kubernetes' default 30 s grace period, so that the process exits by itself
/// before it is killed.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(25);

/// The default broker.
const DEFAULT_URL: &str = "amqp://guest:guest@localhost:5672/%2f";

/// What the relay does with a message no queue is bound for (no replica has declared a queue
/// for its routing key yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unroutable {
    /// Keep it in the durable unroutable queue, with its routing key, until
    /// `replay-unroutable` sends it again (for example once the replica's queue exists).
    Keep,
    /// Drop it, counted (`RelayMetrics::unroutable`) and logged once per routing key.
    Drop,
}

/// The transport configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The broker.
    pub url: BrokerUrl,
    /// The topic exchange shared by all services.
    pub exchange: String,
    /// This service's replica queue (required to consume).
    pub queue: Option<String>,
    /// The dead-letter queue; default `dead_letter_<queue>`.
    pub dead_letter_queue: Option<String>,
    /// Lifetime of messages written by masters; `None` never expires.
    pub message_ttl: Option<Duration>,
    /// Retries before a failing message is dead-lettered; `None` retries forever.
    pub max_retries: Option<u32>,
    /// Delay before a retry (the default of the per-model policy).
    pub retry_delay: Duration,
    /// django-cqrs's cap of delayed messages per worker. Retries wait in the broker here, so
    /// the cap only sets the default prefetch (cap + 1).
    pub delay_queue_max_size: u32,
    /// Lifetime of dead letters; `None` keeps them.
    pub dead_message_ttl: Option<Duration>,
    /// Unacknowledged messages the broker may send ahead; default cap + 1.
    pub prefetch: Option<u16>,
    /// Consumer workers (each with its own database connection).
    pub workers: usize,
    /// Messages applied per database transaction, at most.
    pub batch_size: usize,
    /// Declare the queues as quorum queues (for a RabbitMQ cluster).
    pub quorum_queues: bool,
    /// Age after which replica tombstones are purged.
    pub tombstone_ttl: Duration,
    /// Age after which the event consumer forgets the event ids its `inbox` handlers took
    /// (a redelivery older than this would run again).
    pub inbox_ttl: Duration,
    /// Messages the relay publishes per batch.
    pub relay_batch: usize,
    /// The relay's fallback poll interval; `None` picks per backend.
    pub relay_poll: Option<Duration>,
    /// After a partial batch, while the master writes fast enough that this wait gathers 8
    /// messages or more on PostgreSQL, 16 on SQLite (1,600 and 3,200 messages/s at the
    /// default 5 ms), how long the relay lets messages gather before the next batch (fewer,
    /// fuller batches under load; at most this much added latency; zero turns it off). A
    /// slower master's messages go out at once.
    pub relay_linger: Duration,
    /// The largest message body, in bytes: a consumer dead-letters a larger delivery without
    /// parsing it, and a master write refuses to produce one (see
    /// [`Config::apply_master_settings`]).
    pub max_message_bytes: usize,
    /// What the relay does with a message no queue is bound for.
    pub unroutable: Unroutable,
    /// The queue of kept unroutable messages; default `<exchange>_unroutable`.
    pub unroutable_queue: Option<String>,
    /// After a stop signal, how long the consumers finish the batches in hand (apply, commit,
    /// acknowledge) before they give up on them and return; what is left unacknowledged the
    /// broker delivers again. `None`: as long as they take. django-cqrs's `--sigint-timeout`.
    pub shutdown_timeout: Option<Duration>,
    /// The longest a replica statement may run before PostgreSQL cancels it: the message
    /// then fails like any other (retried, then dead-lettered) and the timeout is logged.
    /// django-cqrs's `CQRS_QUERY_TIMEOUT` (milliseconds; 0 or unset: no limit). SQLite has
    /// no statement timeout: a consumer on SQLite refuses to start with one.
    pub query_timeout: Option<Duration>,
    /// Whether a master's partial save bumps the revision unless it says otherwise
    /// (django-cqrs's `CQRS_AUTO_UPDATE_FIELDS`; see [`Config::apply_master_settings`]).
    pub auto_update_fields: bool,
    /// Whether a master's transaction sends one message per row, with its final state
    /// (django-cqrs's rule; default `true`; see [`Config::apply_master_settings`]).
    pub one_message_per_transaction: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            url: BrokerUrl::parse(DEFAULT_URL).unwrap_or_else(|_| BrokerUrl::localhost()),
            exchange: "cqrs".to_owned(),
            queue: None,
            dead_letter_queue: None,
            message_ttl: Some(DEFAULT_MESSAGE_TTL),
            max_retries: Some(DEFAULT_MAX_RETRIES),
            retry_delay: DEFAULT_RETRY_DELAY,
            delay_queue_max_size: DEFAULT_DELAY_QUEUE_MAX_SIZE,
            dead_message_ttl: Some(DEFAULT_DEAD_MESSAGE_TTL),
            prefetch: None,
            workers: 1,
            batch_size: 500,
            quorum_queues: false,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            inbox_ttl: DEFAULT_TOMBSTONE_TTL,
            relay_batch: 500,
            relay_poll: None,
            relay_linger: Duration::from_millis(5),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            unroutable: Unroutable::Keep,
            unroutable_queue: None,
            shutdown_timeout: Some(DEFAULT_SHUTDOWN_TIMEOUT),
            query_timeout: None,
            auto_update_fields: false,
            one_message_per_transaction: true,
        }
    }
}

/// Reads a variable from a lookup function (the environment, or a map in tests).
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, key: &str) -> Option<String> {
        (self.0)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, key: &'static str, what: &str) -> Result<Option<T>>
    where
        T::Err: fmt::Display,
    {
        self.get(key)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| Error::config(key, format!("`{v}` is not {what} ({e})")))
            })
            .transpose()
    }

    #[allow(
        clippy::option_option,
        reason = "three states a setting has: unset, `none`, a duration"
    )]
    fn seconds(&self, key: &'static str) -> Result<Option<Option<Duration>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        if v.eq_ignore_ascii_case("none") {
            return Ok(Some(None));
        }
        let secs: f64 = v.parse().map_err(|_| {
            Error::config(key, format!("`{v}` is not a number of seconds or `none`"))
        })?;
        if !secs.is_finite() || secs <= 0.0 {
            return Err(Error::config(
                key,
                format!("`{v}` must be a positive number of seconds"),
            ));
        }
        Ok(Some(Some(Duration::from_secs_f64(secs))))
    }

    fn flag(&self, key: &'static str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(Error::config(key, format!("`{v}` is not true or false"))),
            })
            .transpose()
    }
}

impl Config {
    /// The configuration from environment variables over the defaults (see the module docs),
    /// validated.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(&|key| std::env::var(key).ok())
    }

    /// Like [`Config::from_env`], reading variables through `lookup`.
    #[allow(clippy::too_many_lines, reason = "one line per setting")]
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let env = Env(lookup);
        let mut config = Self::default();
        if lookup("CQRS_BROKER_URL").is_some_and(|v| v.trim().is_empty()) {
            return Err(Error::config(
                "CQRS_BROKER_URL",
                "is set but empty; unset it to use AMQP_ADDR or the CQRS_BROKER_* parts",
            ));
        }
        if let Some(url) = env.get("CQRS_BROKER_URL").or_else(|| env.get("AMQP_ADDR")) {
            config.url = BrokerUrl::parse(&url)?;
        } else if ["HOST", "PORT", "USER", "PASSWORD", "VHOST"]
            .iter()
            .any(|p| env.get(&format!("CQRS_BROKER_{p}")).is_some())
        {
            let port = env
                .parse::<u16>("CQRS_BROKER_PORT", "a port number")?
                .unwrap_or(5672);
            config.url = BrokerUrl::from_parts(
                env.flag("CQRS_BROKER_TLS")?.unwrap_or(false),
                &env.get("CQRS_BROKER_HOST")
                    .unwrap_or_else(|| "localhost".to_owned()),
                port,
                &env.get("CQRS_BROKER_USER")
                    .unwrap_or_else(|| "guest".to_owned()),
                &env.get("CQRS_BROKER_PASSWORD")
                    .unwrap_or_else(|| "guest".to_owned()),
                &env.get("CQRS_BROKER_VHOST")
                    .unwrap_or_else(|| "/".to_owned()),
            )?;
        }
        if let Some(v) = env.get("CQRS_EXCHANGE") {
            config.exchange = v;
        }
        config.queue = env.get("CQRS_QUEUE");
        config.dead_letter_queue = env.get("CQRS_DEAD_LETTER_QUEUE");
        if let Some(v) = env.seconds("CQRS_MESSAGE_TTL")? {
            config.message_ttl = v;
        }
        if let Some(v) = env.get("CQRS_MAX_RETRIES") {
            config.max_retries = if v.eq_ignore_ascii_case("none") {
                None
            } else {
                Some(v.parse().map_err(|e| {
                    Error::config(
                        "CQRS_MAX_RETRIES",
                        format!("`{v}` is not a count or `none` ({e})"),
                    )
                })?)
            };
        }
        if let Some(v) = env.seconds("CQRS_RETRY_DELAY")? {
            config.retry_delay = v.unwrap_or(Duration::ZERO);
        }
        if let Some(v) = env.parse("CQRS_DELAY_QUEUE_MAX_SIZE", "a count")? {
            config.delay_queue_max_size = v;
        }
        if let Some(v) = env.seconds("CQRS_DEAD_MESSAGE_TTL")? {
            config.dead_message_ttl = v;
        }
        config.prefetch = env.parse("CQRS_PREFETCH", "a count from 1 to 65535")?;
        if let Some(v) = env.parse("CQRS_WORKERS", "a count")? {
            config.workers = v;
        }
        if let Some(v) = env.parse("CQRS_BATCH_SIZE", "a count")? {
            config.batch_size = v;
        }
        if let Some(v) = env.flag("CQRS_QUORUM_QUEUES")? {
            config.quorum_queues = v;
        }
        if let Some(Some(v)) = env.seconds("CQRS_TOMBSTONE_TTL")? {
            config.tombstone_ttl = v;
        }
        if let Some(Some(v)) = env.seconds("CQRS_INBOX_TTL")? {
            config.inbox_ttl = v;
        }
        if let Some(v) = env.parse("CQRS_RELAY_BATCH", "a count")? {
            config.relay_batch = v;
        }
        if let Some(ms) = env.parse::<u64>("CQRS_RELAY_POLL_MS", "a number of milliseconds")? {
            config.relay_poll = Some(Duration::from_millis(ms));
        }
        if let Some(ms) = env.parse::<u64>("CQRS_RELAY_LINGER_MS", "a number of milliseconds")? {
            config.relay_linger = Duration::from_millis(ms);
        }
        if let Some(v) = env.seconds("CQRS_SHUTDOWN_TIMEOUT")? {
            config.shutdown_timeout = v;
        }
        if let Some(v) = env.flag("CQRS_AUTO_UPDATE_FIELDS")? {
            config.auto_update_fields = v;
        }
        if let Some(v) = env.flag("CQRS_ONE_MESSAGE_PER_TRANSACTION")? {
            config.one_message_per_transaction = v;
        }
        if let Some(ms) = env.parse::<u64>("CQRS_QUERY_TIMEOUT", "a number of milliseconds")? {
            config.query_timeout = (ms > 0).then(|| Duration::from_millis(ms));
        }
        if let Some(v) = env.parse("CQRS_MAX_MESSAGE_BYTES", "a number of bytes")? {
            config.max_message_bytes = v;
        }
        if let Some(v) = env.get("CQRS_UNROUTABLE") {
            config.unroutable = match v.to_ascii_lowercase().as_str() {
                "keep" => Unroutable::Keep,
                "drop" => Unroutable::Drop,
                _ => {
                    return Err(Error::config(
                        "CQRS_UNROUTABLE",
                        format!("`{v}` is not keep or drop"),
                    ));
                }
            };
        }
        config.unroutable_queue = env.get("CQRS_UNROUTABLE_QUEUE");
        config.validate()?;
        Ok(config)
    }

    /// Checks every value; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        check_name("CQRS_EXCHANGE", &self.exchange)?;
        if let Some(queue) = &self.queue {
            check_name("CQRS_QUEUE", queue)?;
        }
        if let Some(dlq) = &self.dead_letter_queue {
            check_name("CQRS_DEAD_LETTER_QUEUE", dlq)?;
            if Some(dlq) == self.queue.as_ref() {
                return Err(Error::config(
                    "CQRS_DEAD_LETTER_QUEUE",
                    "must differ from the replica queue",
                ));
            }
        }
        if let Some(queue) = &self.unroutable_queue {
            check_name("CQRS_UNROUTABLE_QUEUE", queue)?;
        }
        if self.prefetch == Some(0) {
            return Err(Error::config("CQRS_PREFETCH", "must be at least 1"));
        }
        if self.workers == 0 || self.workers > 64 {
            return Err(Error::config(
                "CQRS_WORKERS",
                format!("{} is not between 1 and 64", self.workers),
            ));
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(Error::config(
                "CQRS_BATCH_SIZE",
                format!("{} is not between 1 and 10000", self.batch_size),
            ));
        }
        if self.relay_batch == 0 || self.relay_batch > 10_000 {
            return Err(Error::config(
                "CQRS_RELAY_BATCH",
                format!("{} is not between 1 and 10000", self.relay_batch),
            ));
        }
        if self.relay_linger > Duration::from_secs(1) {
            return Err(Error::config(
                "CQRS_RELAY_LINGER_MS",
                "must be at most 1000",
            ));
        }
        if !(1024..=128 * 1024 * 1024).contains(&self.max_message_bytes) {
            return Err(Error::config(
                "CQRS_MAX_MESSAGE_BYTES",
                format!(
                    "{} is not between 1024 and 134217728 (128 MiB)",
                    self.max_message_bytes
                ),
            ));
        }
        if self.retry_delay > Duration::from_hours(168) {
            return Err(Error::config("CQRS_RETRY_DELAY", "must be at most 7 days"));
        }
        for (setting, ttl) in [
            ("CQRS_MESSAGE_TTL", self.message_ttl),
            ("CQRS_DEAD_MESSAGE_TTL", self.dead_message_ttl),
        ] {
            if ttl.is_some_and(|t| t.is_zero() || t.as_millis() > u128::from(u32::MAX)) {
                return Err(Error::config(
                    setting,
                    "must be between 1 ms and 49 days, or none",
                ));
            }
        }
        Ok(())
    }

    /// The queue of kept unroutable messages (`CQRS_UNROUTABLE_QUEUE`, default
    /// `<exchange>_unroutable`).
    pub fn unroutable_queue(&self) -> String {
        self.unroutable_queue
            .clone()
            .unwrap_or_else(|| format!("{}_unroutable", self.exchange))
    }

    /// The replica queue, or an error naming `CQRS_QUEUE`.
    pub fn queue(&self) -> Result<&str> {
        self.queue.as_deref().ok_or_else(|| {
            Error::config(
                "CQRS_QUEUE",
                "is required to consume (the replica queue of this service)",
            )
        })
    }

    /// The dead-letter queue: `dead_letter_<queue>` unless set.
    pub fn dead_letter_queue(&self) -> Result<String> {
        match &self.dead_letter_queue {
            Some(dlq) => Ok(dlq.clone()),
            None => Ok(format!("dead_letter_{}", self.queue()?)),
        }
    }

    /// The queue where retries of `cqrs_id` wait out their delay (see [`crate::Consumer`]).
    pub fn delay_queue(&self, cqrs_id: &str) -> Result<String> {
        Ok(cqrs_core::message::delay_queue(self.queue()?, cqrs_id))
    }

    /// The prefetch count to use.
    pub fn prefetch(&self) -> u16 {
        self.prefetch.unwrap_or_else(|| {
            u16::try_from(self.delay_queue_max_size.saturating_add(1)).unwrap_or(u16::MAX)
        })
    }

    /// The retry policy models see.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            delay: self.retry_delay,
        }
    }

    /// Applies the message TTL to the master side of this process.
    pub fn apply_master_settings(&self) {
        let mut settings = cqrs_core::settings::master();
        settings.message_ttl = self.message_ttl;
        settings.max_message_bytes = self.max_message_bytes;
        settings.auto_update_fields = self.auto_update_fields;
        settings.one_message_per_transaction = self.one_message_per_transaction;
        cqrs_core::settings::configure_master(settings);
    }
}

fn check_name(setting: &'static str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::config(setting, "must not be empty"));
    }
    if name.len() > 200 {
        return Err(Error::config(setting, "must be at most 200 bytes"));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#' || c == '*')
    {
        return Err(Error::config(
            setting,
            format!("`{name}` contains whitespace, `#` or `*`"),
        ));
    }
    if name.starts_with("amq.") {
        return Err(Error::config(
            setting,
            format!("`{name}`: names starting with `amq.` are reserved"),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn from(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_django_cqrs_ones() {
        let c = from(&[]).unwrap();
        assert_eq!(c.exchange, "cqrs");
        assert_eq!(c.max_retries, Some(30));
        assert_eq!(c.retry_delay, Duration::from_secs(2));
        assert_eq!(c.message_ttl, Some(Duration::from_hours(24)));
        assert_eq!(c.dead_message_ttl, Some(Duration::from_hours(240)));
        assert_eq!(c.prefetch(), 1001);
        assert!(c.queue().is_err());
        let c = from(&[("CQRS_QUEUE", "svc")]).unwrap();
        assert_eq!(c.dead_letter_queue().unwrap(), "dead_letter_svc");
        assert_eq!(c.delay_queue("book").unwrap(), "cqrs.svc.delay.book");
    }

    #[test]
    fn invalid_values_name_the_setting() {
        for (vars, setting) in [
            (vec![("CQRS_BATCH_SIZE", "0")], "CQRS_BATCH_SIZE"),
            (vec![("CQRS_BATCH_SIZE", "many")], "CQRS_BATCH_SIZE"),
            (vec![("CQRS_WORKERS", "-1")], "CQRS_WORKERS"),
            (vec![("CQRS_PREFETCH", "70000")], "CQRS_PREFETCH"),
            (vec![("CQRS_MESSAGE_TTL", "-5")], "CQRS_MESSAGE_TTL"),
            (vec![("CQRS_MAX_RETRIES", "lots")], "CQRS_MAX_RETRIES"),
            (vec![("CQRS_QUEUE", "has space")], "CQRS_QUEUE"),
            (
                vec![("CQRS_QUEUE", "q"), ("CQRS_DEAD_LETTER_QUEUE", "q")],
                "CQRS_DEAD_LETTER_QUEUE",
            ),
            (vec![("CQRS_BROKER_URL", "http://x")], "CQRS_BROKER_URL"),
            (vec![("CQRS_BROKER_URL", "not a url")], "CQRS_BROKER_URL"),
            (vec![("CQRS_BROKER_PORT", "99999")], "CQRS_BROKER_PORT"),
            (vec![("CQRS_QUORUM_QUEUES", "maybe")], "CQRS_QUORUM_QUEUES"),
            (vec![("CQRS_EXCHANGE", "amq.topic")], "CQRS_EXCHANGE"),
            (
                vec![("CQRS_MAX_MESSAGE_BYTES", "10")],
                "CQRS_MAX_MESSAGE_BYTES",
            ),
            (
                vec![("CQRS_MAX_MESSAGE_BYTES", "-1")],
                "CQRS_MAX_MESSAGE_BYTES",
            ),
            // an empty URL never hides the parts silently
            (
                vec![("CQRS_BROKER_URL", " "), ("CQRS_BROKER_HOST", "rabbit")],
                "CQRS_BROKER_URL",
            ),
            (vec![("CQRS_UNROUTABLE", "lose")], "CQRS_UNROUTABLE"),
            (
                vec![("CQRS_SHUTDOWN_TIMEOUT", "-1")],
                "CQRS_SHUTDOWN_TIMEOUT",
            ),
            (vec![("CQRS_QUERY_TIMEOUT", "1.5")], "CQRS_QUERY_TIMEOUT"),
            (
                vec![("CQRS_AUTO_UPDATE_FIELDS", "sometimes")],
                "CQRS_AUTO_UPDATE_FIELDS",
            ),
            (
                vec![("CQRS_UNROUTABLE_QUEUE", "a b")],
                "CQRS_UNROUTABLE_QUEUE",
            ),
        ] {
            let err = from(&vars).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid setting {setting}:")),
                "{err}"
            );
        }
    }

    #[test]
    fn parity_settings() {
        let c = from(&[]).unwrap();
        assert_eq!(c.shutdown_timeout, Some(DEFAULT_SHUTDOWN_TIMEOUT));
        assert_eq!(c.query_timeout, None);
        assert!(!c.auto_update_fields);
        assert!(c.one_message_per_transaction);
        let c = from(&[
            ("CQRS_SHUTDOWN_TIMEOUT", "none"),
            ("CQRS_QUERY_TIMEOUT", "250"),
            ("CQRS_AUTO_UPDATE_FIELDS", "true"),
        ])
        .unwrap();
        assert_eq!(c.shutdown_timeout, None);
        assert_eq!(c.query_timeout, Some(Duration::from_millis(250)));
        assert!(c.auto_update_fields);
        // django-cqrs's 0: no limit
        let c = from(&[("CQRS_QUERY_TIMEOUT", "0")]).unwrap();
        assert_eq!(c.query_timeout, None);
    }

    #[test]
    fn none_values() {
        let c = from(&[("CQRS_MAX_RETRIES", "none"), ("CQRS_MESSAGE_TTL", "None")]).unwrap();
        assert_eq!(c.max_retries, None);
        assert_eq!(c.message_ttl, None);
    }

    #[test]
    fn password_never_shows() {
        let url = BrokerUrl::parse("amqps://app:s3cr%2Ft@rabbit.example:5671/prod%2Fvh").unwrap();
        assert_eq!(
            url.to_string(),
            "amqps://app:****@rabbit.example:5671/prod%2Fvh"
        );
        assert_eq!(
            format!("{url:?}"),
            "BrokerUrl(amqps://app:****@rabbit.example:5671/prod%2Fvh)"
        );
        assert_eq!(url.vhost(), "prod/vh");
        assert!(url.tls());
        assert_eq!(
            url.redact("login failed for s3cr/t"),
            "login failed for ****"
        );
        let parts = from(&[
            ("CQRS_BROKER_HOST", "h"),
            ("CQRS_BROKER_PASSWORD", "p@ss word"),
            ("CQRS_BROKER_VHOST", "/"),
        ])
        .unwrap();
        assert_eq!(parts.url.to_string(), "amqp://guest:****@h:5672/%2F");
        assert_eq!(parts.url.vhost(), "/");
        let err = parts.url.error(
            "connect",
            lapin::ErrorKind::AuthProviderError("ACCESS_REFUSED for p@ss word".into()).into(),
        );
        assert!(!err.to_string().contains("p@ss"), "{err}");
        assert_eq!(BrokerUrl::parse("amqp://h").unwrap().vhost(), "/");
    }
}
