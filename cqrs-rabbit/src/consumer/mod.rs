//! The replica consumer.
//!
//! One AMQP consumer feeds N worker threads, each with its own database connection. A message
//! goes to the worker chosen by its `(cqrs_id, primary key)`, so two messages of the same row
//! are applied in arrival order. A worker applies what is waiting, up to the batch size, in
//! one transaction with a savepoint per message, then reports each outcome:
//!
//! * applied or ignored (stale, duplicate): acknowledged;
//! * transient error: re-published with `retries + 1` to wait in the broker (see
//!   [`crate::retry`]), then acknowledged;
//! * permanent error, exhausted retries, expired, malformed body, unknown `cqrs_id`: published
//!   to the dead-letter queue with the dead-message TTL, then acknowledged.
//!
//! This module is the session (connection, channel, deliveries, acknowledgements);
//! `worker.rs` applies batches, `ack.rs` keeps the acknowledgement order.
//!
//! Acknowledgements go out in delivery order, one `multiple` ack per contiguous run, after the
//! database commit and after any re-publish was confirmed. If the database is unreachable the
//! batch is kept and retried with backoff; if the broker connection drops, the consumer
//! reconnects and unacknowledged messages come back (re-applying them is harmless: revisions).

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Utc;
use cqrs_core::message::{Message, is_direct_to};
use cqrs_core::registry::{self, Registered, ReplicaEntry};
use cqrs_core::value::pk_key;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicCancelOptions};
use lapin::types::ShortString;
use lapin::{Channel, Connection};
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::retry::{self, Verdict};
use crate::telemetry::{ConsumerMetrics, DeadReason, Health};
use crate::{broker, topology};

mod ack;
mod startup;
mod worker;

use ack::AckTracker;
use worker::{Done, Job, Worker};

/// Consumes this service's queue into its replica models.
///
/// ```no_run
/// # async fn run() -> Result<(), cqrs_rabbit::Error> {
/// use cqrs_rabbit::{Config, Consumer};
/// let consumer = Consumer::<diesel::SqliteConnection>::new(Config::from_env()?, "replica.sqlite3");
/// consumer.check().await?;
/// consumer.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer<C> {
    config: Config,
    database_url: String,
    only: Option<Vec<String>>,
    metrics: Arc<ConsumerMetrics>,
    health: Health,
    _connection: PhantomData<fn() -> C>,
}

impl<C: Registered> Consumer<C> {
    /// A consumer of `config.queue` into the database at `database_url`.
    pub fn new(config: Config, database_url: impl Into<String>) -> Self {
        Self {
            config,
            database_url: database_url.into(),
            only: None,
            metrics: Arc::default(),
            health: Health::new(),
            _connection: PhantomData,
        }
    }

    /// Consume only these `cqrs_id`s (default: every replica model of the binary).
    #[must_use]
    pub fn only(mut self, cqrs_ids: Vec<String>) -> Self {
        self.only = (!cqrs_ids.is_empty()).then_some(cqrs_ids);
        self
    }

    /// Reports to `health` (what `/health/ready` answers) instead of a private one.
    #[must_use]
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// The consumer's counters (shared; read them while it runs).
    pub fn metrics(&self) -> Arc<ConsumerMetrics> {
        Arc::clone(&self.metrics)
    }

    fn entries(&self) -> Result<HashMap<&'static str, &'static ReplicaEntry<C>>> {
        registry::check()?;
        if self.config.query_timeout.is_some() && !C::STATEMENT_TIMEOUT {
            return Err(Error::config(
                "CQRS_QUERY_TIMEOUT",
                format!(
                    "not supported on {}: it has no statement timeout (unset it for this replica)",
                    C::BACKEND
                ),
            ));
        }
        let all = C::replica_entries();
        let entries: Vec<_> = match &self.only {
            None => all,
            Some(ids) => ids
                .iter()
                .map(|id| registry::replica::<C>(id).map_err(Error::from))
                .collect::<Result<_>>()?,
        };
        if entries.is_empty() {
            return Err(Error::Input(format!(
                "no replica model is registered for the {} backend in this binary",
                <C as cqrs_core::CqrsConnection>::BACKEND
            )));
        }
        Ok(entries.into_iter().map(|e| (e.cqrs_id, e)).collect())
    }

    /// Checks everything a start needs (models, queue name, database, broker, topology), so
    /// that a bad setting fails at once with a clear error.
    pub async fn check(&self) -> Result<()> {
        let entries = self.entries()?;
        self.config.queue()?;
        startup::check_database::<C>(&self.database_url, entries.values().copied().collect())
            .await?;
        let connection = broker::connect(&self.config.url, "cqrs-consumer").await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.config.url.error("open a channel", e))?;
        let ids: Vec<&str> = entries.keys().copied().collect();
        topology::declare_replica_topology(&channel, &self.config, &ids).await?;
        let _ = connection.close(200, "check".into()).await;
        Ok(())
    }

    /// Runs until `shutdown` resolves, then stops taking messages, finishes and acknowledges
    /// the batches in hand and closes the connection.
    #[allow(
        clippy::too_many_lines,
        reason = "the consumer's main loop, read top to bottom"
    )]
    pub async fn run<F>(self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()>,
    {
        let entries = self.entries()?;
        let queue = self.config.queue()?.to_owned();
        self.config.dead_letter_queue()?;
        let ids: Vec<&'static str> = entries.keys().copied().collect();
        match startup::check_database::<C>(&self.database_url, entries.values().copied().collect())
            .await
        {
            // the database is away: the workers wait for it, messages stay in the queue
            Err(error) if error.is_recoverable() => {
                tracing::warn!(%error, "consumer starting while its database is unreachable");
            }
            result => result?,
        }
        tokio::pin!(shutdown);
        let health = Arc::new(self.health.register("consumer"));
        // this process's read-your-writes waits on these streams are woken by our commits
        let _applying = cqrs_core::applied::Applying::new(ids.iter().copied());

        let generation = Arc::new(AtomicU64::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut job_senders = Vec::with_capacity(self.config.workers);
        let mut workers = Vec::with_capacity(self.config.workers);
        for index in 0..self.config.workers {
            let capacity = usize::from(self.config.prefetch()).max(1);
            let (tx, rx) = mpsc::channel::<Job<C>>(capacity);
            job_senders.push(tx);
            let worker = Worker::<C> {
                index,
                database_url: self.database_url.clone(),
                batch_size: self.config.batch_size,
                policy: self.config.retry_policy(),
                tombstone_ttl: self.config.tombstone_ttl,
                query_timeout: self.config.query_timeout,
                generation: Arc::clone(&generation),
                stopping: Arc::clone(&stopping),
                metrics: Arc::clone(&self.metrics),
                health: Arc::clone(&health),
                done: done_tx.clone(),
                _connection: PhantomData,
            };
            workers.push(
                std::thread::Builder::new()
                    .name(format!("cqrs-worker-{index}"))
                    .spawn(move || worker.run(rx))
                    .map_err(|source| Error::Spawn {
                        what: "a consumer worker thread",
                        source,
                    })?,
            );
        }
        drop(done_tx);

        let mut backoff = Backoff::default();
        let mut session: Option<(Connection, Channel, lapin::Consumer)> = None;
        let mut watcher: Option<tokio::task::JoinHandle<()>> = None;
        let depth_queues = self.watched_queues(&ids)?;
        let mut tracker = AckTracker::new();
        tracing::info!(queue = %queue, models = ?ids, workers = self.config.workers,
            batch = self.config.batch_size, "consumer started");
        let outcome: Result<()> = loop {
            if session.is_none() {
                let opened = tokio::select! {
                    () = &mut shutdown => break Ok(()),
                    s = self.open_session(&ids) => s,
                };
                match opened {
                    Ok(s) => {
                        generation.fetch_add(1, Ordering::SeqCst);
                        tracker = AckTracker::new();
                        backoff.reset();
                        health.broker(true);
                        if let Some(old) = watcher.take() {
                            old.abort();
                        }
                        if let Ok(channel) = s.0.create_channel().await {
                            watcher = Some(crate::telemetry::watch_queues(
                                channel,
                                depth_queues.clone(),
                            ));
                        }
                        session = Some(s);
                        tracing::debug!(queue = %queue, "consuming");
                    }
                    Err(error) => {
                        health.broker(false);
                        tracing::warn!(%error, retry_in = ?backoff.delay(), "consumer: broker unavailable");
                        tokio::select! {
                            () = &mut shutdown => break Ok(()),
                            () = backoff.wait() => continue,
                        }
                    }
                }
            }
            let Some((_, _, consumer)) = session.as_mut() else {
                continue;
            };
            let current = generation.load(Ordering::SeqCst);
            let event = tokio::select! {
                () = &mut shutdown => Event::Shutdown,
                done = done_rx.recv() => Event::Done(done),
                delivery = consumer.next() => Event::Delivery(delivery),
            };
            let Some((_, channel, _)) = session.as_ref() else {
                continue;
            };
            let result = match event {
                Event::Shutdown => break Ok(()),
                Event::Done(None) => break Err(Error::WorkersStopped),
                // Work of an older channel: its messages come again on the new one.
                Event::Done(Some(done)) if done.generation != current => Ok(()),
                Event::Done(Some(done)) => self.settle(channel, &mut tracker, done).await,
                Event::Delivery(Some(Ok(delivery))) => {
                    let tag = delivery.delivery_tag;
                    match self.route(delivery, &entries, &queue, current) {
                        Routed::Job(index, job) => {
                            if job_senders[index].send(job).await.is_err() {
                                break Err(Error::WorkersStopped);
                            }
                            Ok(())
                        }
                        Routed::Verdict(verdict) => {
                            let done = Done {
                                generation: current,
                                items: vec![(tag, verdict)],
                            };
                            self.settle(channel, &mut tracker, done).await
                        }
                    }
                }
                Event::Delivery(Some(Err(error))) => {
                    Err(self.config.url.error("receive a delivery", error))
                }
                Event::Delivery(None) => Err(Error::ConsumerCancelled {
                    url: self.config.url.to_string(),
                    queue: queue.clone(),
                }),
            };
            if let Err(error) = result {
                tracing::warn!(%error, "consumer: broker connection lost; reconnecting");
                self.metrics.reconnect();
                health.broker(false);
                session = None;
            }
        };

        // Stop: no new deliveries, finish the batches in hand, acknowledge, close.
        tracing::info!("consumer stopping: finishing the batches in hand");
        stopping.store(true, Ordering::SeqCst);
        if let Some((_, channel, consumer)) = session.as_ref() {
            let _ = channel
                .basic_cancel(
                    ShortString::from(consumer.tag().to_string()),
                    BasicCancelOptions::default(),
                )
                .await;
        }
        drop(job_senders);
        let current = generation.load(Ordering::SeqCst);
        let finish = async {
            while let Some(done) = done_rx.recv().await {
                if let Some((_, channel, _)) = session.as_ref()
                    && done.generation == current
                    && let Err(error) = self.settle(channel, &mut tracker, done).await
                {
                    tracing::warn!(%error, "consumer: could not acknowledge while stopping");
                }
            }
        };
        let finished = if let Some(limit) = self.config.shutdown_timeout {
            tokio::time::timeout(limit, finish).await.is_ok()
        } else {
            finish.await;
            true
        };
        if finished {
            for worker in workers {
                let _ = worker.join();
            }
        } else {
            // A worker still busy (a slow or blocked database) is left to end by itself: what
            // it commits now is not acknowledged, so the broker delivers it again, and the
            // revision rules make the second apply a no-op.
            tracing::warn!(timeout = ?self.config.shutdown_timeout,
                "consumer: the batches in hand did not finish within the shutdown timeout; \
                 leaving them unacknowledged (the broker delivers them again)");
        }
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        if let Some((connection, channel, _)) = session {
            let _ = channel.close(200, "consumer stopped".into()).await;
            let _ = connection.close(200, "consumer stopped".into()).await;
        }
        tracing::info!(
            applied = self.metrics.applied.load(Ordering::Relaxed),
            ignored = self.metrics.ignored.load(Ordering::Relaxed),
            retried = self.metrics.retried.load(Ordering::Relaxed),
            dead_lettered = self.metrics.dead_lettered.load(Ordering::Relaxed),
            "consumer stopped"
        );
        outcome
    }

    /// The queues whose depth the gauges show: this service's queue, its delay queues and its
    /// dead-letter queue.
    fn watched_queues(&self, ids: &[&str]) -> Result<Vec<String>> {
        let queue = self.config.queue()?;
        let mut queues = vec![queue.to_owned(), self.config.dead_letter_queue()?];
        queues.extend(
            ids.iter()
                .map(|id| cqrs_core::message::delay_queue(queue, id)),
        );
        Ok(queues)
    }

    async fn open_session(&self, ids: &[&str]) -> Result<(Connection, Channel, lapin::Consumer)> {
        let connection = broker::connect(&self.config.url, "cqrs-consumer").await?;
        let channel = broker::confirm_channel(&connection, &self.config.url).await?;
        topology::declare_replica_topology(&channel, &self.config, ids).await?;
        topology::set_prefetch(&channel, &self.config).await?;
        let consumer = broker::consume(&channel, &self.config.url, self.config.queue()?).await?;
        Ok((connection, channel, consumer))
    }

    /// Reads a delivery: a job for a worker, or a verdict at once.
    fn route(
        &self,
        delivery: lapin::message::Delivery,
        entries: &HashMap<&'static str, &'static ReplicaEntry<C>>,
        queue: &str,
        generation: u64,
    ) -> Routed<C> {
        let tag = delivery.delivery_tag;
        if delivery.data.len() > self.config.max_message_bytes {
            tracing::error!(routing_key = %delivery.routing_key, bytes = delivery.data.len(),
                max = self.config.max_message_bytes, body = %preview(&delivery.data),
                "message larger than CQRS_MAX_MESSAGE_BYTES moved to the dead-letter queue unread");
            self.metrics.received("unknown");
            return Routed::Verdict(Verdict::Dead {
                cqrs_id: None,
                body: delivery.data,
                reason: DeadReason::TooLarge,
            });
        }
        let message = match Message::parse(&delivery.data, self.config.message_ttl) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, routing_key = %delivery.routing_key, bytes = delivery.data.len(),
                    body = %preview(&delivery.data), "malformed message moved to the dead-letter queue");
                self.metrics.received("unknown");
                return Routed::Verdict(Verdict::Dead {
                    cqrs_id: None,
                    body: delivery.data,
                    reason: DeadReason::Malformed,
                });
            }
        };
        let Some(entry) = entries.get(message.cqrs_id.as_str()).copied() else {
            tracing::error!(cqrs_id = %message.cqrs_id, pk = %pk_key(&message.instance_pk),
                "no replica model consumes this cqrs_id here; message moved to the dead-letter queue");
            self.metrics.received("unknown");
            return Routed::Verdict(Verdict::Dead {
                cqrs_id: None,
                body: delivery.data,
                reason: DeadReason::UnknownModel,
            });
        };
        self.metrics.received(entry.cqrs_id);
        if message.is_expired(Utc::now()) {
            tracing::error!(cqrs_id = %message.cqrs_id, pk = %pk_key(&message.instance_pk),
                correlation_id = message.correlation_id.as_deref().unwrap_or(""),
                retries = message.retries, "expired message moved to the dead-letter queue");
            return Routed::Verdict(Verdict::Dead {
                cqrs_id: Some(message.cqrs_id.clone()),
                body: message.to_json().into_bytes(),
                reason: DeadReason::Expired,
            });
        }
        let direct = is_direct_to(delivery.routing_key.as_str(), queue, &message.cqrs_id);
        let row = message
            .instance_data
            .get("id")
            .filter(|_| message.signal_type == cqrs_core::SignalType::Delete)
            .unwrap_or(&message.instance_pk);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        message.cqrs_id.hash(&mut hasher);
        pk_key(row).hash(&mut hasher);
        let workers = u64::try_from(self.config.workers.max(1)).unwrap_or(1);
        let index = usize::try_from(hasher.finish() % workers).unwrap_or(0);
        Routed::Job(
            index,
            Job {
                generation,
                tag,
                message,
                direct,
                entry,
                trace: broker::traceparent(delivery.properties.headers().as_ref()),
            },
        )
    }

    /// Settles a finished batch: publishes its retries and dead letters (with confirms),
    /// then acknowledges what is contiguous.
    async fn settle(&self, channel: &Channel, tracker: &mut AckTracker, done: Done) -> Result<()> {
        let mut tags = Vec::with_capacity(done.items.len());
        for (tag, verdict) in done.items {
            retry::publish_verdict(channel, &self.config, verdict, &self.metrics).await?;
            tags.push(tag);
        }
        if let Some(last) = tracker.finish(tags) {
            channel
                .basic_ack(last, BasicAckOptions { multiple: true })
                .await
                .map_err(|e| self.config.url.error("acknowledge", e))?;
        }
        Ok(())
    }
}

// Both enums live on the stack for one loop iteration and are moved once;
// boxing the large variant would cost an allocation per delivery.
#[allow(clippy::large_enum_variant)]
enum Event {
    Shutdown,
    Done(Option<Done>),
    Delivery(Option<lapin::Result<lapin::message::Delivery>>),
}

#[allow(clippy::large_enum_variant)]
enum Routed<C: 'static> {
    Job(usize, Job<C>),
    Verdict(Verdict),
}

/// The first bytes of a body, for logs.
fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
