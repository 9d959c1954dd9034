//! The outbox relay: publishes the master's outbox to RabbitMQ with publisher confirms, in
//! order, many messages in flight, and removes each message only after the broker confirmed
//! it. Broker or database down: it reconnects with backoff and resumes; nothing is lost (a
//! message may be published twice after a crash, never zero times). Several relays may share
//! a PostgreSQL outbox: a message waits while an earlier one of its row (or aggregate) is in
//! another relay's hands, so a row's messages never overtake each other on the wire.

use std::collections::HashSet;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::broker::{self, Confirmed};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::notices::{Notices, Taken};
use crate::relay_lock;
use crate::telemetry::{Health, RelayMetrics};
use crate::topology;
use crate::unroutable::{Fate, UnroutablePolicy};
use cqrs_core::db::{CqrsConnection, OutboxRecord, OutboxStats};
use cqrs_core::outbox::{OutboxCursor, RelayedBatch, relay_batch};
use lapin::Channel;

/// How long a starting relay waits for the SQLite relay lock before it fails.
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// How soon a relay looks again when messages were held back for another relay's batch.
const HELD_BACK_WAIT: Duration = Duration::from_millis(5);

mod run;

/// Publishes the outbox of one database.
///
/// ```no_run
/// # async fn run() -> Result<(), cqrs_rabbit::Error> {
/// use cqrs_rabbit::{Config, Relay};
/// let relay = Relay::<diesel::SqliteConnection>::new(Config::from_env()?, "catalogue.sqlite3");
/// // inside the master service, as a task:
/// tokio::spawn(relay.run(std::future::pending::<()>()));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Relay<C> {
    config: Config,
    database_url: String,
    metrics: Arc<RelayMetrics>,
    health: Health,
    /// When the outbox gauges were last read.
    stats_read: Arc<Mutex<Option<Instant>>>,
    unroutable: Arc<UnroutablePolicy>,
    /// The event exchanges declared on the current channel.
    declared: Arc<Mutex<HashSet<String>>>,
    /// The ids of the messages taken lately (a notification of one of them is no news).
    taken: Arc<Taken>,
    /// Where the next look at the outbox starts.
    cursor: Arc<Mutex<OutboxCursor>>,
    _connection: PhantomData<fn() -> C>,
}

impl<C: CqrsConnection> Relay<C> {
    /// A relay for the outbox at `database_url`.
    pub fn new(config: Config, database_url: impl Into<String>) -> Self {
        Self {
            unroutable: Arc::new(UnroutablePolicy::new(&config)),
            config,
            database_url: database_url.into(),
            metrics: Arc::default(),
            health: Health::new(),
            stats_read: Arc::default(),
            declared: Arc::default(),
            taken: Arc::default(),
            cursor: Arc::default(),
            _connection: PhantomData,
        }
    }

    /// The relay's counters (shared; read them while it runs).
    pub fn metrics(&self) -> Arc<RelayMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Reports to `health` (what `/health/ready` answers) instead of a private one.
    #[must_use]
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    fn poll_interval(&self) -> Duration {
        self.config.relay_poll.unwrap_or(C::RELAY_POLL)
    }

    /// Checks that the database and the broker answer (for a clear error at start-up).
    pub async fn check(&self) -> Result<()> {
        crate::setup_database::<C>(&self.database_url, "relay").await?;
        let connection = broker::connect(&self.config.url, "cqrs-relay").await?;
        let _ = connection.close(200, "check".into()).await;
        Ok(())
    }

    /// Publishes until the outbox is empty, then returns how many messages were published.
    /// Fails on the first broker or database error (for tools; [`Relay::run`] retries).
    pub async fn drain(&self) -> Result<u64> {
        let _lock = relay_lock::acquire::<C>(&self.database_url)?;
        let url = self.database_url.clone();
        let mut conn = tokio::task::spawn_blocking(move || C::cqrs_connect(&url))
            .await
            .map_err(Error::task("the relay's database connection"))??;
        let (connection, channel) = self.open_channel().await?;
        let mut total = 0;
        loop {
            let (back, result, _) = self.batch(conn, &channel).await?;
            conn = back;
            let batch = result?;
            total += batch.published as u64;
            if batch.fetched == 0 && batch.held_back > 0 {
                // another relay publishes earlier messages of these rows
                tokio::time::sleep(HELD_BACK_WAIT).await;
                continue;
            }
            if batch.fetched == 0 {
                break;
            }
            if batch.published == 0 {
                return Err(Error::BatchRefused {
                    count: batch.fetched,
                });
            }
        }
        let _ = connection.close(200, "done".into()).await;
        Ok(total)
    }

    /// Runs until `shutdown` resolves: publishes, then waits for new messages (the in-process
    /// signal of master writes, PostgreSQL `NOTIFY`, or a short poll). On SQLite it holds the
    /// database's relay lock while it runs: a second relay on the same file (here or in
    /// another process) fails with [`Error::RelayRunning`], after waiting up to 5 s for a
    /// holder that lets go (a tool's one-shot relay).
    pub async fn run<F>(self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()>,
    {
        // one relay per SQLite database: a second one fails here (after a few seconds, in
        // which a tool's one-shot relay lets go)
        let _lock = relay_lock::acquire_within::<C>(&self.database_url, LOCK_PATIENCE).await?;
        tokio::pin!(shutdown);
        let notices = Arc::new(Notices::default());
        let listener = self.spawn_listener(Arc::clone(&notices));
        let mut session = run::Session::new(&self, notices);
        tracing::debug!(backend = C::BACKEND, poll = ?session.poll(), "relay started");
        let result = session.run(&mut shutdown).await;
        if let Some(listener) = listener {
            listener.abort();
        }
        session.close().await;
        tracing::debug!("relay stopped");
        result
    }

    async fn open_channel(&self) -> Result<(lapin::Connection, Channel)> {
        let connection = broker::connect(&self.config.url, "cqrs-relay").await?;
        let channel = broker::confirm_channel(&connection, &self.config.url).await?;
        topology::declare_exchange(&channel, &self.config).await?;
        self.declared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        if let Some(queue) = self.unroutable.queue() {
            topology::declare_unroutable_queue(&channel, &self.config, queue).await?;
        }
        Ok((connection, channel))
    }

    /// One outbox batch on a blocking thread; the database connection goes there and back.
    /// Every few seconds it also reads the outbox's depth and age (for the gauges and the
    /// readiness probe).
    async fn batch(
        &self,
        mut conn: C,
        channel: &Channel,
    ) -> Result<(C, Result<RelayedBatch>, Option<OutboxStats>)> {
        let handle = tokio::runtime::Handle::current();
        let channel = channel.clone();
        let config = self.config.clone();
        let declared = Arc::clone(&self.declared);
        let limit = i64::try_from(self.config.relay_batch).unwrap_or(500);
        let metrics = Arc::clone(&self.metrics);
        let unroutable = Arc::clone(&self.unroutable);
        let stats_read = Arc::clone(&self.stats_read);
        let taken = Arc::clone(&self.taken);
        let cursor = Arc::clone(&self.cursor);
        tokio::task::spawn_blocking(move || {
            let mut declared = declared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut cursor = cursor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let result = relay_batch(&mut conn, limit, &mut cursor, |records| {
                taken.record(records.iter().map(|record| record.id));
                handle.block_on(publish_records(
                    &channel,
                    &config,
                    &mut declared,
                    records,
                    &metrics,
                    &unroutable,
                ))
            });
            if result.is_err() {
                // rolled back: the messages are in the outbox again
                taken.clear();
            }
            let stats = read_stats(&mut conn, &stats_read, &metrics);
            (conn, result, stats)
        })
        .await
        .map_err(Error::task("a relay batch"))
    }

    #[cfg(feature = "postgres")]
    fn spawn_listener(&self, notices: Arc<Notices>) -> Option<tokio::task::JoinHandle<()>> {
        if !cqrs_core::db::Backend::of_url(&self.database_url)
            .is_ok_and(cqrs_core::db::Backend::is_postgres)
        {
            return None;
        }
        Some(tokio::spawn(crate::pg_listen::listen(
            self.database_url.clone(),
            notices,
        )))
    }

    #[cfg(not(feature = "postgres"))]
    #[allow(clippy::unused_self, reason = "the postgres variant uses it")]
    fn spawn_listener(&self, _notices: Arc<Notices>) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

/// How often the relay reads the outbox's depth and age.
const STATS_EVERY: Duration = Duration::from_secs(5);

/// The outbox's depth and age, when the last reading is older than [`STATS_EVERY`].
fn read_stats<C: CqrsConnection>(
    conn: &mut C,
    read: &Mutex<Option<Instant>>,
    metrics: &RelayMetrics,
) -> Option<OutboxStats> {
    let mut last = read
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.is_some_and(|t| t.elapsed() < STATS_EVERY) {
        return None;
    }
    *last = Some(Instant::now());
    match conn.outbox_stats() {
        Ok(stats) => {
            metrics.outbox(&stats);
            Some(stats)
        }
        Err(error) => {
            tracing::debug!(%error, "relay: cannot read the outbox's depth");
            None
        }
    }
}

/// Publishes records with many in flight, then waits for their confirms; returns the ids the
/// outbox may forget: routed, or unroutable and kept (or dropped, as configured).
async fn publish_records(
    channel: &Channel,
    config: &Config,
    declared: &mut HashSet<String>,
    records: &[OutboxRecord],
    metrics: &RelayMetrics,
    unroutable: &UnroutablePolicy,
) -> Result<Vec<i64>> {
    let exchange = config.exchange.as_str();
    let mut pending = Vec::with_capacity(records.len());
    for record in records {
        // the record's properties, read once: django-cqrs's for a row message (plus its trace
        // header), the stored ones for an event
        let (target, properties, mandatory) = match &record.exchange {
            None => {
                let mut properties = broker::properties(None);
                if let Some(headers) = record
                    .properties
                    .as_deref()
                    .and_then(broker::record_headers)
                {
                    properties = properties.with_headers(headers);
                }
                (exchange, properties, true)
            }
            Some(event_exchange) => {
                // A domain event, command or call: news to whoever listens, published as
                // django-microservices-communication does (not mandatory: no listener is fine).
                if !declared.contains(event_exchange) {
                    topology::declare_event_exchange(channel, config, event_exchange).await?;
                    declared.insert(event_exchange.clone());
                }
                let properties =
                    broker::record_properties(record.properties.as_deref().unwrap_or("{}"));
                (event_exchange.as_str(), properties, false)
            }
        };
        // lasts from the publish to the confirm
        let span = cqrs_core::trace::relay_span(
            &record.cqrs_id,
            &record.routing_key,
            broker::traceparent(properties.headers().as_ref()).as_ref(),
        );
        let confirm = broker::publish_with(
            channel,
            target,
            &record.routing_key,
            record.body.as_bytes(),
            properties,
            mandatory,
        )
        .await?;
        pending.push((record, confirm, Instant::now(), span));
    }
    let mut confirmed = Vec::with_capacity(records.len());
    let mut returned = Vec::new();
    // (exchange, cqrs_id, count) of the confirmed: one counter update per stream and batch
    let mut published: Vec<(&str, &str, u64)> = Vec::new();
    for (record, confirm, sent, _span) in pending {
        let answer = broker::confirmed(confirm, &record.routing_key).await?;
        metrics.confirm_latency(sent.elapsed());
        match answer {
            Confirmed::Routed => {
                confirmed.push(record.id);
                let (exchange, cqrs_id) = labels(record, exchange);
                match published
                    .iter_mut()
                    .find(|(e, c, _)| *e == exchange && *c == cqrs_id)
                {
                    Some((_, _, count)) => *count += 1,
                    None => published.push((exchange, cqrs_id, 1)),
                }
            }
            Confirmed::Unroutable => returned.push(record),
            Confirmed::Refused => {
                metrics.refused();
                tracing::warn!(routing_key = %record.routing_key, "broker refused a message; it stays in the outbox");
            }
        }
    }
    for record in returned {
        let fate = unroutable
            .handle(channel, &record.routing_key, record.body.as_bytes())
            .await?;
        if fate != Fate::Held {
            let (exchange, cqrs_id) = labels(record, exchange);
            metrics.unroutable(exchange, cqrs_id);
            confirmed.push(record.id);
        }
    }
    for (exchange, cqrs_id, count) in published {
        metrics.published(exchange, cqrs_id, count);
    }
    metrics.batch(records.len());
    tracing::trace!(count = confirmed.len(), "relay batch confirmed");
    Ok(confirmed)
}

/// The `exchange` and `cqrs_id` labels of a record (an event has no `cqrs_id`).
fn labels<'a>(record: &'a OutboxRecord, replication: &'a str) -> (&'a str, &'a str) {
    match &record.exchange {
        None => (replication, record.cqrs_id.as_str()),
        Some(exchange) => (exchange.as_str(), ""),
    }
}
