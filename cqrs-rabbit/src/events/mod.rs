//! The event consumer: runs the `#[cqrs_core::handler]` functions of the binary on one queue,
//! bound to their exchanges and routing keys (django-microservices-communication's
//! `runconsumer`, with what that package lacks: acknowledgement after the handler's
//! transaction committed, durable delayed retries instead of an immediate requeue loop, and a
//! dead-letter queue for what can never succeed).
//!
//! Topology (declared idempotently unless [`EventConsumer::no_declare`]): the queue, a durable
//! topic exchange per handler exchange, a binding per handler (`#` for a catch-all handler),
//! any extra bindings, the delay queue `<queue>.delay` (per-message TTL, dead-lettered back to
//! the queue) and the dead-letter queue `<queue>.dead_letter`.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cqrs_core::event::{Handled, Router};
use cqrs_core::registry::Registered;
use futures_util::FutureExt;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::telemetry::{ConsumerMetrics, Health, Reporter};
use crate::{broker, topology};

mod received;
mod work;

use received::Received;
use work::{DatabaseAway, HandlerResult, Work};

/// Header of a retried message: how many times it was retried.
const RETRIES: &str = "x-cqrs-retries";
/// Header of a retried or dead message: the exchange it was first published to.
const EXCHANGE: &str = "x-cqrs-exchange";
/// Header of a retried or dead message: its first routing key.
const ROUTING_KEY: &str = "x-cqrs-routing-key";
/// Header of a dead message: why.
const REASON: &str = "x-cqrs-reason";

/// Runs this binary's event, command and call handlers on `queue`.
///
/// ```no_run
/// # async fn run() -> Result<(), cqrs_rabbit::Error> {
/// use cqrs_rabbit::{Config, EventConsumer};
/// let consumer = EventConsumer::<diesel::SqliteConnection>::new(
///     Config::from_env()?, "notifications.sqlite3", "notifications");
/// consumer.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EventConsumer<C> {
    config: Config,
    database_url: String,
    queue: String,
    binds: Vec<(String, String)>,
    declare: bool,
    metrics: Arc<ConsumerMetrics>,
    health: Health,
    /// When the inbox was last purged (seconds since the epoch).
    inbox_purged: Arc<std::sync::atomic::AtomicI64>,
    _connection: PhantomData<fn() -> C>,
}

/// How often the event consumer purges its inbox of entries older than `CQRS_INBOX_TTL`.
const INBOX_PURGE_EVERY_SECS: i64 = 3600;

impl<C: Registered> EventConsumer<C> {
    /// A consumer of `queue` into the database at `database_url`.
    pub fn new(config: Config, database_url: impl Into<String>, queue: impl Into<String>) -> Self {
        Self {
            config,
            database_url: database_url.into(),
            queue: queue.into(),
            binds: Vec::new(),
            declare: true,
            metrics: Arc::default(),
            health: Health::new(),
            inbox_purged: Arc::default(),
            _connection: PhantomData,
        }
    }

    /// Also binds the queue to `exchange` with `routing_key` (the package's `BINDS`), for a
    /// default handler or a raw one that needs more than its own routes.
    #[must_use]
    pub fn bind(mut self, exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        self.binds.push((exchange.into(), routing_key.into()));
        self
    }

    /// Declares nothing (the package's `DO_NOT_DECLARE`): the topology belongs to the
    /// infrastructure.
    #[must_use]
    pub fn no_declare(mut self) -> Self {
        self.declare = false;
        self
    }

    /// Reports to `health` (what `/health/ready` answers) instead of a private one.
    #[must_use]
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// The consumer's counters: `applied` = handled, `ignored` = expired, duplicate or
    /// without a handler.
    pub fn metrics(&self) -> Arc<ConsumerMetrics> {
        Arc::clone(&self.metrics)
    }

    fn router() -> Result<Router<C>> {
        let entries = C::handler_entries();
        if entries.is_empty() {
            return Err(Error::Input(format!(
                "no event handler is registered for the {} backend in this binary",
                <C as cqrs_core::CqrsConnection>::BACKEND
            )));
        }
        Router::new(&entries).map_err(Error::Input)
    }

    fn delay_queue(&self) -> String {
        format!("{}.delay", self.queue)
    }

    fn dead_letter_queue(&self) -> String {
        format!("{}.dead_letter", self.queue)
    }

    async fn declare_topology(&self, channel: &Channel, router: &Router<C>) -> Result<()> {
        if !self.declare {
            return Ok(());
        }
        let url = &self.config.url;
        let queue_args = |extra: &[(&str, AMQPValue)]| {
            let mut args = FieldTable::default();
            if self.config.quorum_queues {
                args.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString("quorum".into()),
                );
            }
            for (k, v) in extra {
                args.insert((*k).into(), v.clone());
            }
            args
        };
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let delay_args = [
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString(LongString::from(self.queue.clone())),
            ),
        ];
        for (name, args) in [
            (self.queue.clone(), queue_args(&[])),
            (self.delay_queue(), queue_args(&delay_args)),
            (self.dead_letter_queue(), queue_args(&[])),
        ] {
            channel
                .queue_declare(ShortString::from(name.clone()), durable, args)
                .await
                .map_err(|e| url.error("declare an event queue", e))?;
        }
        let binds = router
            .bindings()
            .into_iter()
            .map(|(e, k)| (e.to_owned(), k.to_owned()))
            .chain(self.binds.iter().cloned());
        for (exchange, key) in binds {
            topology::declare_event_exchange(channel, &self.config, &exchange).await?;
            channel
                .queue_bind(
                    ShortString::from(self.queue.clone()),
                    ShortString::from(exchange),
                    ShortString::from(key),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| url.error("bind the event queue", e))?;
        }
        Ok(())
    }

    /// Declares the topology and checks the handlers and the database, for a clear error at
    /// start-up.
    pub async fn check(&self) -> Result<()> {
        let router = Self::router()?;
        crate::setup_database::<C>(&self.database_url, "event consumer").await?;
        let connection = broker::connect(&self.config.url, "cqrs-events").await?;
        let channel = broker::confirm_channel(&connection, &self.config.url).await?;
        self.declare_topology(&channel, &router).await?;
        let _ = connection.close(200, "check".into()).await;
        Ok(())
    }

    /// Runs until `shutdown` resolves. Broker or database away: it waits and reconnects; a
    /// message is acknowledged only once its handler's transaction committed, or once it was
    /// safely moved to the delay or dead-letter queue.
    pub async fn run<F: Future<Output = ()>>(self, shutdown: F) -> Result<()> {
        let router = Arc::new(Self::router()?);
        crate::setup_database::<C>(&self.database_url, "event consumer").await?;
        tokio::pin!(shutdown);
        let mut backoff = Backoff::default();
        let mut db: Option<C> = None;
        let health = self.health.register("handlers");
        health.database(true);
        tracing::info!(queue = %self.queue, handlers = router.entries().count(), "event consumer started");
        loop {
            let session = tokio::select! {
                () = &mut shutdown => return Ok(()),
                s = self.open_session(&router) => s,
            };
            let (connection, channel, mut deliveries) = match session {
                Ok(s) => s,
                Err(error) => {
                    health.broker(false);
                    tracing::warn!(%error, retry_in = ?backoff.delay(), "event consumer: broker unavailable");
                    self.metrics.reconnect();
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = backoff.wait() => continue,
                    }
                }
            };
            backoff.reset();
            health.broker(true);
            let error = loop {
                let first = tokio::select! {
                    () = &mut shutdown => {
                        let _ = connection.close(200, "event consumer stopped".into()).await;
                        return Ok(());
                    }
                    d = deliveries.next() => d,
                };
                let (batch, ended) = self.gather(first, &mut deliveries);
                if !batch.is_empty()
                    && let Err(error) = self
                        .handle(&channel, &router, &mut db, batch, &mut shutdown, &health)
                        .await
                {
                    break error;
                }
                if let Some(error) = ended {
                    break error;
                }
            };
            tracing::warn!(%error, "event consumer: broker connection lost; reconnecting");
            health.broker(false);
            self.metrics.reconnect();
        }
    }

    /// The first delivery and what else is already here, up to `CQRS_BATCH_SIZE`; and the
    /// error that ended the stream, if it ended.
    fn gather(
        &self,
        first: Option<lapin::Result<Delivery>>,
        deliveries: &mut lapin::Consumer,
    ) -> (Vec<Delivery>, Option<Error>) {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(delivery) = next {
            match delivery {
                Some(Ok(d)) => batch.push(d),
                Some(Err(e)) => {
                    return (batch, Some(self.config.url.error("receive a delivery", e)));
                }
                None => {
                    let cancelled = Error::ConsumerCancelled {
                        url: self.config.url.to_string(),
                        queue: self.queue.clone(),
                    };
                    return (batch, Some(cancelled));
                }
            }
            if batch.len() >= self.config.batch_size {
                break;
            }
            next = deliveries.next().now_or_never();
        }
        (batch, None)
    }

    async fn open_session(
        &self,
        router: &Router<C>,
    ) -> Result<(Connection, Channel, lapin::Consumer)> {
        let connection = broker::connect(&self.config.url, "cqrs-events").await?;
        let channel = broker::confirm_channel(&connection, &self.config.url).await?;
        self.declare_topology(&channel, router).await?;
        topology::set_prefetch(&channel, &self.config).await?;
        let consumer = broker::consume(&channel, &self.config.url, &self.queue).await?;
        Ok((connection, channel, consumer))
    }

    /// A batch of deliveries: handled in one database transaction (a savepoint each),
    /// retried or dead-lettered, then acknowledged with one `multiple` ack. A broker error
    /// comes back (the deliveries stay unacknowledged and return); a database that is away is
    /// waited for.
    async fn handle<F: Future<Output = ()>>(
        &self,
        channel: &Channel,
        router: &Arc<Router<C>>,
        db: &mut Option<C>,
        batch: Vec<Delivery>,
        shutdown: &mut std::pin::Pin<&mut F>,
        health: &Reporter,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let mut received: Vec<Received> = batch.into_iter().map(Received::of).collect();
        let mut work = Vec::new();
        let mut verdicts: Vec<Option<HandlerResult>> = Vec::with_capacity(received.len());
        for (index, message) in received.iter_mut().enumerate() {
            match message.parse() {
                Err(error) => verdicts.push(Some(Err(error))),
                Ok(incoming) => match router.find(&message.exchange, &message.routing_key) {
                    None => {
                        tracing::warn!(exchange = %message.exchange, routing_key = %message.routing_key,
                            "no handler for this message; acknowledged and dropped");
                        verdicts.push(Some(Ok(Handled::Duplicate)));
                    }
                    Some(entry) => {
                        verdicts.push(None);
                        work.push((index, entry, incoming));
                    }
                },
            }
        }
        if !work.is_empty() {
            let mut pending = work;
            let results = loop {
                match self.run_handlers(db, pending).await? {
                    Ok(results) => {
                        health.database(true);
                        break results;
                    }
                    Err((error, back)) => {
                        health.database(false);
                        // the database is away: keep the messages, try again
                        tracing::warn!(%error, messages = back.len(), retry_in = ?Duration::from_secs(1),
                            "event consumer: database unavailable");
                        pending = back;
                        tokio::select! {
                            () = shutdown.as_mut() => return Ok(()),
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            };
            for (index, result) in results {
                verdicts[index] = Some(result);
            }
        }
        self.metrics.handler_batch(started.elapsed());
        let mut last = None;
        for (message, verdict) in received.iter().zip(verdicts) {
            self.settle(channel, message, verdict.unwrap_or(Ok(Handled::Duplicate)))
                .await?;
            last = Some(message.delivery.delivery_tag);
        }
        match last {
            Some(tag) => channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
                .map_err(|e| self.config.url.error("acknowledge", e)),
            None => Ok(()),
        }
    }

    /// Counts a message's verdict; a failure goes to the delay queue or the dead-letter queue
    /// (confirmed) before the message is acknowledged.
    async fn settle(
        &self,
        channel: &Channel,
        message: &Received,
        verdict: HandlerResult,
    ) -> Result<()> {
        let (exchange, routing_key, retries) =
            (&message.exchange, &message.routing_key, message.retries);
        let error = match verdict {
            Ok(Handled::Done) => {
                self.metrics.handler(exchange, routing_key, "handled");
                message.span.record("outcome", "handled");
                return Ok(());
            }
            Ok(handled) => {
                tracing::debug!(%exchange, %routing_key, ?handled, "message not executed");
                let outcome = if handled == Handled::Expired {
                    "expired"
                } else {
                    "ignored"
                };
                self.metrics.handler(exchange, routing_key, outcome);
                message.span.record("outcome", outcome);
                return Ok(());
            }
            Err(error) => error,
        };
        let policy = self.config.retry_policy();
        let may_retry = !error.is_permanent() && policy.max_retries.is_none_or(|max| retries < max);
        let mut out = FieldTable::default();
        out.insert(
            EXCHANGE.into(),
            AMQPValue::LongString(exchange.clone().into()),
        );
        out.insert(
            ROUTING_KEY.into(),
            AMQPValue::LongString(routing_key.clone().into()),
        );
        let delivery = &message.delivery;
        let base = delivery.properties.clone().with_delivery_mode(2);
        if may_retry {
            tracing::warn!(%exchange, %routing_key, retries, %error, "handler failed; will retry");
            out.insert(
                RETRIES.into(),
                AMQPValue::LongUInt(retries.saturating_add(1)),
            );
            let ttl = policy.delay.as_millis().max(1).to_string();
            let props = base
                .with_headers(out)
                .with_expiration(ShortString::from(ttl));
            self.publish(channel, &self.delay_queue(), &delivery.data, props)
                .await?;
            self.metrics.handler(exchange, routing_key, "retried");
            message.span.record("outcome", "retried");
        } else {
            let reason = if error.is_permanent() {
                "permanent error"
            } else {
                "retries exhausted"
            };
            tracing::error!(%exchange, %routing_key, retries, %error, "message moved to the dead-letter queue ({reason})");
            out.insert(
                REASON.into(),
                AMQPValue::LongString(format!("{reason}: {error}").into()),
            );
            let mut props = base.with_headers(out);
            if let Some(ttl) = self.config.dead_message_ttl {
                props = props.with_expiration(ShortString::from(ttl.as_millis().to_string()));
            }
            self.publish(channel, &self.dead_letter_queue(), &delivery.data, props)
                .await?;
            self.metrics.handler(exchange, routing_key, "dead_lettered");
            message.span.record("outcome", "dead_lettered");
        }
        Ok(())
    }

    async fn publish(
        &self,
        channel: &Channel,
        queue: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<()> {
        let confirm = broker::publish_with(channel, "", queue, body, properties, true).await?;
        match broker::confirmed(confirm, queue).await? {
            broker::Confirmed::Routed => Ok(()),
            _ => Err(Error::Refused {
                routing_key: queue.to_owned(),
                reason: "the broker did not take the message into this queue",
            }),
        }
    }

    /// The cut-off of an inbox purge when one is due (at most once an hour).
    fn inbox_purge_due(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let now = chrono::Utc::now();
        let last = self.inbox_purged.load(Ordering::Relaxed);
        if now.timestamp().saturating_sub(last) < INBOX_PURGE_EVERY_SECS {
            return None;
        }
        self.inbox_purged.store(now.timestamp(), Ordering::Relaxed);
        now.checked_sub_signed(chrono::Duration::from_std(self.config.inbox_ttl).ok()?)
    }

    /// Runs the handlers of a batch on the blocking pool, on the consumer's connection.
    /// `Err` only when the database cannot be reached: nothing was committed, the work comes
    /// back to be tried again.
    async fn run_handlers(
        &self,
        db: &mut Option<C>,
        work: Vec<Work<C>>,
    ) -> Result<std::result::Result<Vec<(usize, HandlerResult)>, (DatabaseAway, Vec<Work<C>>)>>
    {
        let url = self.database_url.clone();
        let conn = db.take();
        let purge = self.inbox_purge_due();
        let joined = tokio::task::spawn_blocking(move || {
            let (conn, result) = work::run(conn, &url, &work, purge);
            (conn, result, work)
        })
        .await;
        // the handlers run under catch_unwind: this fails only when the runtime stops (the
        // messages are not acknowledged and come again)
        let (conn, result, work) = joined.map_err(|source| Error::Task {
            what: "the event handlers",
            source,
        })?;
        *db = conn;
        Ok(match result {
            Ok(results) => Ok(work
                .iter()
                .map(|(index, _, _)| *index)
                .zip(results)
                .collect()),
            Err(error) => Err((error, work)),
        })
    }
}
