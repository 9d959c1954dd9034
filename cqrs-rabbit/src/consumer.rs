//! The replica consumer.
//!
//! One AMQP consumer feeds N worker threads, each with its own database connection. A message
//! goes to the worker chosen by its `(cqrs_id, primary key)`, so two messages of the same row
//! are applied in arrival order. A worker applies what is waiting, up to the batch size, in
//! one transaction with a savepoint per message, then reports each outcome:
//!
//! * applied or ignored (stale, duplicate): acknowledged;
//! * transient error: re-published with `retries + 1` to this queue's delay queue, whose TTL
//!   dead-letters it back to `cqrs.<queue>.<cqrs_id>` (the broker holds it: a restart loses
//!   nothing), then acknowledged;
//! * permanent error, exhausted retries, expired, malformed body, unknown `cqrs_id`: published
//!   to the dead-letter queue with the dead-message TTL, then acknowledged.
//!
//! Acknowledgements go out in delivery order, one `multiple` ack per contiguous run, after the
//! database commit and after any re-publish was confirmed. If the database is unreachable the
//! batch is kept and retried with backoff; if the broker connection drops, the consumer
//! reconnects and unacknowledged messages come back (re-applying them is harmless: revisions).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use cqrs_core::db::CqrsConnection;
use cqrs_core::message::{Message, is_direct_to};
use cqrs_core::registry::{self, ReplicaEntry};
use cqrs_core::replica::{BatchItem, Outcome, RetryPolicy, apply_batch};
use cqrs_core::value::pk_key;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};
use tokio::sync::mpsc;

use crate::broker::{self, Backoff};
use crate::config::Config;
use crate::error::{Error, Result};

/// Counters of a running consumer.
#[derive(Debug, Default)]
pub struct ConsumerMetrics {
    /// Messages applied (created, updated, deleted).
    pub applied: AtomicU64,
    /// Messages acknowledged without change (stale, duplicate, filtered).
    pub ignored: AtomicU64,
    /// Messages sent to wait for a retry.
    pub retried: AtomicU64,
    /// Messages moved to the dead-letter queue.
    pub dead_lettered: AtomicU64,
    /// Database transactions (batches) committed.
    pub batches: AtomicU64,
    /// Broker reconnections.
    pub reconnects: AtomicU64,
}

impl ConsumerMetrics {
    /// Every message acknowledged so far.
    pub fn handled(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
            + self.ignored.load(Ordering::Relaxed)
            + self.retried.load(Ordering::Relaxed)
            + self.dead_lettered.load(Ordering::Relaxed)
    }
}

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
    _connection: PhantomData<fn() -> C>,
}

/// What to do with a delivery once its work is done.
#[derive(Debug)]
enum Verdict {
    Ack,
    Retry {
        cqrs_id: String,
        delay: Duration,
        body: String,
    },
    Dead {
        /// `Some(cqrs_id)`: through the exchange with `cqrs.<dlq>.<cqrs_id>`; `None`: straight
        /// into the dead-letter queue (unknown model or unreadable body).
        cqrs_id: Option<String>,
        body: Vec<u8>,
    },
}

#[derive(Debug)]
struct Job<C: 'static> {
    generation: u64,
    tag: u64,
    message: Message,
    direct: bool,
    entry: &'static ReplicaEntry<C>,
}

#[derive(Debug)]
struct Done {
    generation: u64,
    items: Vec<(u64, Verdict)>,
}

/// Acknowledges in delivery order: one `multiple` ack per contiguous run of finished tags.
#[derive(Debug)]
struct AckTracker {
    next: u64,
    finished: BTreeSet<u64>,
}

impl AckTracker {
    fn new() -> Self {
        Self {
            next: 1,
            finished: BTreeSet::new(),
        }
    }

    /// Records finished tags; returns the highest tag that can now be acknowledged.
    fn finish(&mut self, tags: impl IntoIterator<Item = u64>) -> Option<u64> {
        self.finished.extend(tags);
        let mut last = None;
        while self.finished.remove(&self.next) {
            last = Some(self.next);
            self.next += 1;
        }
        last
    }
}

impl<C: CqrsConnection> Consumer<C> {
    /// A consumer of `config.queue` into the database at `database_url`.
    pub fn new(config: Config, database_url: impl Into<String>) -> Self {
        Self {
            config,
            database_url: database_url.into(),
            only: None,
            metrics: Arc::default(),
            _connection: PhantomData,
        }
    }

    /// Consume only these `cqrs_id`s (default: every replica model of the binary).
    #[must_use]
    pub fn only(mut self, cqrs_ids: Vec<String>) -> Self {
        self.only = (!cqrs_ids.is_empty()).then_some(cqrs_ids);
        self
    }

    /// The consumer's counters (shared; read them while it runs).
    pub fn metrics(&self) -> Arc<ConsumerMetrics> {
        Arc::clone(&self.metrics)
    }

    fn entries(&self) -> Result<HashMap<&'static str, &'static ReplicaEntry<C>>> {
        registry::check()?;
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
                C::BACKEND
            )));
        }
        Ok(entries.into_iter().map(|e| (e.cqrs_id, e)).collect())
    }

    /// Checks everything a start needs (models, queue name, database, broker, topology), so
    /// that a bad setting fails at once with a clear error.
    pub async fn check(&self) -> Result<()> {
        let entries = self.entries()?;
        self.config.queue()?;
        crate::setup_database::<C>(&self.database_url, "consumer").await?;
        let connection = broker::connect(&self.config.url, "cqrs-consumer").await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| Error::broker(&self.config.url, e))?;
        let ids: Vec<&str> = entries.keys().copied().collect();
        broker::declare_replica_topology(&channel, &self.config, &ids).await?;
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
        let dlq = self.config.dead_letter_queue()?;
        let ids: Vec<&'static str> = entries.keys().copied().collect();
        tokio::pin!(shutdown);

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
                generation: Arc::clone(&generation),
                stopping: Arc::clone(&stopping),
                metrics: Arc::clone(&self.metrics),
                done: done_tx.clone(),
                _connection: PhantomData,
            };
            workers.push(
                std::thread::Builder::new()
                    .name(format!("cqrs-worker-{index}"))
                    .spawn(move || worker.run(rx))
                    .map_err(|e| Error::Input(format!("cannot start a worker thread: {e}")))?,
            );
        }
        drop(done_tx);

        let mut backoff = Backoff::default();
        let mut session: Option<(Connection, Channel, lapin::Consumer)> = None;
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
                        session = Some(s);
                        tracing::debug!(queue = %queue, "consuming");
                    }
                    Err(error) => {
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
                Event::Done(None) => {
                    break Err(Error::Input("every consumer worker stopped".to_owned()));
                }
                // Work of an older channel: its messages come again on the new one.
                Event::Done(Some(done)) if done.generation != current => Ok(()),
                Event::Done(Some(done)) => {
                    self.finish(channel, &mut tracker, done, &queue, &dlq).await
                }
                Event::Delivery(Some(Ok(delivery))) => {
                    let tag = delivery.delivery_tag;
                    match self.route(delivery, &entries, &queue, current) {
                        Routed::Job(index, job) => {
                            if job_senders[index].send(job).await.is_err() {
                                break Err(Error::Input("a consumer worker stopped".to_owned()));
                            }
                            Ok(())
                        }
                        Routed::Verdict(verdict) => {
                            let done = Done {
                                generation: current,
                                items: vec![(tag, verdict)],
                            };
                            self.finish(channel, &mut tracker, done, &queue, &dlq).await
                        }
                    }
                }
                Event::Delivery(Some(Err(error))) => Err(Error::broker(&self.config.url, error)),
                Event::Delivery(None) => Err(Error::Broker {
                    url: self.config.url.to_string(),
                    reason: "the broker cancelled the consumer".to_owned(),
                }),
            };
            if let Err(error) = result {
                tracing::warn!(%error, "consumer: broker connection lost; reconnecting");
                self.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
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
        while let Some(done) = done_rx.recv().await {
            if let Some((_, channel, _)) = session.as_ref()
                && done.generation == current
                && let Err(error) = self.finish(channel, &mut tracker, done, &queue, &dlq).await
            {
                tracing::warn!(%error, "consumer: could not acknowledge while stopping");
            }
        }
        for worker in workers {
            let _ = worker.join();
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

    async fn open_session(&self, ids: &[&str]) -> Result<(Connection, Channel, lapin::Consumer)> {
        let connection = broker::connect(&self.config.url, "cqrs-consumer").await?;
        let channel = broker::confirm_channel(&connection, &self.config.url).await?;
        broker::declare_replica_topology(&channel, &self.config, ids).await?;
        broker::set_prefetch(&channel, &self.config).await?;
        let consumer = channel
            .basic_consume(
                ShortString::from(self.config.queue()?.to_owned()),
                ShortString::from(String::new()),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| Error::broker(&self.config.url, e))?;
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
        let message = match Message::parse(&delivery.data, self.config.message_ttl) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(%error, routing_key = %delivery.routing_key, bytes = delivery.data.len(),
                    body = %preview(&delivery.data), "malformed message moved to the dead-letter queue");
                return Routed::Verdict(Verdict::Dead {
                    cqrs_id: None,
                    body: delivery.data,
                });
            }
        };
        let Some(entry) = entries.get(message.cqrs_id.as_str()).copied() else {
            tracing::error!(cqrs_id = %message.cqrs_id, pk = %pk_key(&message.instance_pk),
                "no replica model consumes this cqrs_id here; message moved to the dead-letter queue");
            return Routed::Verdict(Verdict::Dead {
                cqrs_id: None,
                body: delivery.data,
            });
        };
        if message.is_expired(Utc::now()) {
            tracing::error!(cqrs_id = %message.cqrs_id, pk = %pk_key(&message.instance_pk),
                correlation_id = message.correlation_id.as_deref().unwrap_or(""),
                retries = message.retries, "expired message moved to the dead-letter queue");
            return Routed::Verdict(Verdict::Dead {
                cqrs_id: Some(message.cqrs_id.clone()),
                body: message.to_json().into_bytes(),
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
            },
        )
    }

    /// Publishes retries and dead letters of a finished batch (with confirms), then
    /// acknowledges what is contiguous.
    async fn finish(
        &self,
        channel: &Channel,
        tracker: &mut AckTracker,
        done: Done,
        queue: &str,
        dlq: &str,
    ) -> Result<()> {
        let mut tags = Vec::with_capacity(done.items.len());
        for (tag, verdict) in done.items {
            match verdict {
                Verdict::Ack => {}
                Verdict::Retry {
                    cqrs_id,
                    delay,
                    body,
                } => {
                    if delay.is_zero() {
                        let key = format!("cqrs.{queue}.{cqrs_id}");
                        broker::publish_confirmed(
                            channel,
                            &self.config.exchange,
                            &key,
                            body.as_bytes(),
                            None,
                            Some(queue),
                        )
                        .await?;
                    } else {
                        let delay_queue = self.config.delay_queue(&cqrs_id)?;
                        broker::publish_confirmed(
                            channel,
                            "",
                            &delay_queue,
                            body.as_bytes(),
                            Some(delay),
                            None,
                        )
                        .await?;
                    }
                }
                Verdict::Dead { cqrs_id, body } => {
                    let ttl = self.config.dead_message_ttl;
                    match cqrs_id {
                        Some(cqrs_id) => {
                            let key = format!("cqrs.{dlq}.{cqrs_id}");
                            broker::publish_confirmed(
                                channel,
                                &self.config.exchange,
                                &key,
                                &body,
                                ttl,
                                Some(dlq),
                            )
                            .await?;
                        }
                        None => {
                            broker::publish_confirmed(channel, "", dlq, &body, ttl, None).await?;
                        }
                    }
                    self.metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
            }
            tags.push(tag);
        }
        if let Some(last) = tracker.finish(tags) {
            channel
                .basic_ack(last, BasicAckOptions { multiple: true })
                .await
                .map_err(|e| Error::broker(&self.config.url, e))?;
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

/// A worker thread with its own database connection.
struct Worker<C: 'static> {
    index: usize,
    database_url: String,
    batch_size: usize,
    policy: RetryPolicy,
    tombstone_ttl: Duration,
    generation: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
    metrics: Arc<ConsumerMetrics>,
    done: mpsc::UnboundedSender<Done>,
    _connection: PhantomData<fn() -> C>,
}

impl<C: CqrsConnection> Worker<C> {
    fn run(self, mut jobs: mpsc::Receiver<Job<C>>) {
        let mut conn: Option<C> = None;
        let mut last_purge: Option<Instant> = None;
        while let Some(first) = jobs.blocking_recv() {
            if self.stopping.load(Ordering::SeqCst) {
                // Leave what is queued unacknowledged: the broker sends it again.
                continue;
            }
            let mut batch = vec![first];
            while batch.len() < self.batch_size {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let current = self.generation.load(Ordering::SeqCst);
            batch.retain(|job| job.generation == current);
            if batch.is_empty() {
                continue;
            }
            let Some(results) = self.apply(&mut conn, &batch) else {
                continue; // stopping while the database was down
            };
            self.metrics.batches.fetch_add(1, Ordering::Relaxed);
            let items = batch
                .into_iter()
                .zip(results)
                .map(|(job, result)| (job.tag, self.verdict(&job, result)))
                .collect();
            if self
                .done
                .send(Done {
                    generation: current,
                    items,
                })
                .is_err()
            {
                break;
            }
            if self.index == 0 && last_purge.is_none_or(|t| t.elapsed() > Duration::from_hours(1)) {
                last_purge = Some(Instant::now());
                if let Some(conn) = conn.as_mut() {
                    self.purge_tombstones(conn);
                }
            }
        }
    }

    /// Applies a batch, keeping it through database outages (backoff, no ack).
    fn apply(
        &self,
        conn: &mut Option<C>,
        batch: &[Job<C>],
    ) -> Option<Vec<std::result::Result<Outcome, cqrs_core::ApplyError>>> {
        let mut delay = Duration::from_millis(100);
        loop {
            if conn.is_none() {
                match C::cqrs_connect(&self.database_url) {
                    Ok(c) => *conn = Some(c),
                    Err(error) => {
                        tracing::warn!(worker = self.index, %error, retry_in = ?delay,
                            "database unreachable; keeping the batch unacknowledged");
                    }
                }
            }
            if let Some(c) = conn.as_mut() {
                let items: Vec<BatchItem<'_, C>> = batch
                    .iter()
                    .map(|job| BatchItem {
                        ops: job.entry.ops,
                        message: &job.message,
                        direct: job.direct,
                    })
                    .collect();
                match apply_batch(c, &items) {
                    Ok(results) => return Some(results),
                    Err(error) => {
                        tracing::warn!(worker = self.index, %error, retry_in = ?delay,
                            "batch not applied; keeping it unacknowledged and retrying");
                        if error.is_unavailable() {
                            *conn = None;
                        }
                    }
                }
            }
            if self.stopping.load(Ordering::SeqCst) {
                return None;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    fn verdict(
        &self,
        job: &Job<C>,
        result: std::result::Result<Outcome, cqrs_core::ApplyError>,
    ) -> Verdict {
        let message = &job.message;
        let pk = pk_key(&message.instance_pk);
        let correlation_id = message.correlation_id.as_deref().unwrap_or("");
        match result {
            Ok(outcome) => {
                match outcome {
                    Outcome::Ignored(_) => self.metrics.ignored.fetch_add(1, Ordering::Relaxed),
                    _ => self.metrics.applied.fetch_add(1, Ordering::Relaxed),
                };
                tracing::trace!(cqrs_id = %message.cqrs_id, pk = %pk, correlation_id,
                    retries = message.retries, signal = %message.signal_type, outcome = %outcome, "message handled");
                Verdict::Ack
            }
            Err(error) => {
                let ops = job.entry.ops;
                if !error.is_permanent() && ops.should_retry(message.retries, &error, &self.policy)
                {
                    let delay = ops.retry_delay(message.retries, &self.policy);
                    let mut retry = message.clone();
                    retry.retries = message.retries.saturating_add(1);
                    tracing::warn!(cqrs_id = %message.cqrs_id, pk = %pk, correlation_id,
                        retries = retry.retries, ?delay, %error, "message failed; will retry");
                    self.metrics.retried.fetch_add(1, Ordering::Relaxed);
                    Verdict::Retry {
                        cqrs_id: message.cqrs_id.clone(),
                        delay,
                        body: retry.to_json(),
                    }
                } else {
                    let reason = if error.is_permanent() {
                        "permanent error"
                    } else {
                        "retries exhausted"
                    };
                    tracing::error!(cqrs_id = %message.cqrs_id, pk = %pk, correlation_id,
                        retries = message.retries, %error, "message moved to the dead-letter queue ({reason})");
                    Verdict::Dead {
                        cqrs_id: Some(message.cqrs_id.clone()),
                        body: message.to_json().into_bytes(),
                    }
                }
            }
        }
    }

    fn purge_tombstones(&self, conn: &mut C) {
        let Ok(ttl) = chrono::Duration::from_std(self.tombstone_ttl) else {
            return;
        };
        match conn.tombstone_purge(Utc::now() - ttl) {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "old tombstones purged"),
            Err(error) => tracing::warn!(%error, "tombstone purge failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AckTracker;

    #[test]
    fn acks_go_out_in_order() {
        let mut t = AckTracker::new();
        assert_eq!(t.finish([2, 3]), None);
        assert_eq!(t.finish([1]), Some(3));
        assert_eq!(t.finish([5]), None);
        assert_eq!(t.finish([4, 6]), Some(6));
        assert!(t.finished.is_empty());
    }
}
