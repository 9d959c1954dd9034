//! A consumer worker: a thread with its own database connection, applying batches.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use cqrs_core::batch::{BatchItem, apply_batch};
use cqrs_core::db::CqrsConnection;
use cqrs_core::message::Message;
use cqrs_core::registry::ReplicaEntry;
use cqrs_core::retry::RetryPolicy;
use cqrs_core::{ApplyError, Outcome};
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::retry::{self, Verdict};
use crate::telemetry::{ConsumerMetrics, Reporter};

/// How often the first worker purges old tombstones.
const PURGE_EVERY: Duration = Duration::from_hours(1);

/// A message for a worker.
#[derive(Debug)]
pub(super) struct Job<C: 'static> {
    /// The channel generation it came on (work of an older channel is dropped).
    pub(super) generation: u64,
    pub(super) tag: u64,
    pub(super) message: Message,
    pub(super) direct: bool,
    pub(super) entry: &'static ReplicaEntry<C>,
    /// The master write's trace context (the `traceparent` header).
    pub(super) trace: Option<cqrs_core::trace::TraceParent>,
}

/// The verdicts of a finished batch.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) generation: u64,
    pub(super) items: Vec<(u64, Verdict)>,
}

/// A worker thread with its own database connection.
pub(super) struct Worker<C: 'static> {
    pub(super) index: usize,
    pub(super) database_url: String,
    pub(super) batch_size: usize,
    pub(super) policy: RetryPolicy,
    pub(super) tombstone_ttl: Duration,
    /// `CQRS_QUERY_TIMEOUT`, set on the worker's connection.
    pub(super) query_timeout: Option<Duration>,
    pub(super) generation: Arc<AtomicU64>,
    pub(super) stopping: Arc<AtomicBool>,
    pub(super) metrics: Arc<ConsumerMetrics>,
    pub(super) health: Arc<Reporter>,
    pub(super) done: mpsc::UnboundedSender<Done>,
    pub(super) _connection: PhantomData<fn() -> C>,
}

impl<C: CqrsConnection> Worker<C> {
    pub(super) fn run(self, mut jobs: mpsc::Receiver<Job<C>>) {
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
            let started = Instant::now();
            let spans: Vec<tracing::Span> = batch.iter().map(span).collect();
            let Some(results) = self.apply(&mut conn, &batch) else {
                continue; // stopping while the database was down
            };
            self.metrics.batch(batch.len(), started.elapsed());
            let committed = Utc::now();
            let items = batch
                .into_iter()
                .zip(results)
                .zip(spans)
                .map(|((job, result), span)| {
                    match &result {
                        Ok(outcome) => {
                            lag(&self.metrics, &job.message, *outcome, committed);
                            span.record("outcome", outcome.as_str());
                        }
                        Err(error) => {
                            span.record("outcome", "failed");
                            if self.query_timeout.is_some() && timed_out(error) {
                                tracing::warn!(cqrs_id = %job.message.cqrs_id,
                                    pk = %job.message.row_pk().unwrap_or_default(), timeout = ?self.query_timeout,
                                    %error, "a replica statement ran past CQRS_QUERY_TIMEOUT \
                                    and was cancelled; the message is retried");
                            }
                        }
                    }
                    let verdict = retry::verdict(
                        &job.message,
                        result,
                        job.entry.ops,
                        &self.policy,
                        &self.metrics,
                    );
                    (job.tag, verdict)
                })
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
            if self.index == 0 && last_purge.is_none_or(|t| t.elapsed() > PURGE_EVERY) {
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
    ) -> Option<Vec<Result<Outcome, ApplyError>>> {
        let mut backoff = Backoff::default();
        loop {
            if conn.is_none() {
                match C::cqrs_connect(&self.database_url).and_then(|mut c| {
                    // nothing is acknowledged before its commit is durable
                    c.cqrs_durable()?;
                    if let Some(timeout) = self.query_timeout {
                        c.cqrs_statement_timeout(timeout)?;
                    }
                    Ok(c)
                }) {
                    Ok(c) => *conn = Some(c),
                    Err(error) => {
                        self.health.database(false);
                        tracing::warn!(worker = self.index, %error, retry_in = ?backoff.delay(),
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
                    Ok(results) => {
                        self.health.database(true);
                        return Some(results);
                    }
                    Err(error) => {
                        tracing::warn!(worker = self.index, %error, retry_in = ?backoff.delay(),
                            "batch not applied; keeping it unacknowledged and retrying");
                        if error.is_unavailable() {
                            self.health.database(false);
                            *conn = None;
                        }
                    }
                }
            }
            if self.stopping.load(Ordering::SeqCst) {
                return None;
            }
            backoff.wait_blocking();
        }
    }

    fn purge_tombstones(&self, conn: &mut C) {
        let Ok(ttl) = chrono::Duration::from_std(self.tombstone_ttl) else {
            return;
        };
        let Some(before) = Utc::now().checked_sub_signed(ttl) else {
            return;
        };
        match conn.tombstone_purge(before) {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "old tombstones purged"),
            Err(error) => tracing::warn!(%error, "tombstone purge failed"),
        }
    }
}

/// Records the replication lag of an applied message: from the master's `cqrs_updated` to the
/// replica's commit (clocks of two machines: a negative lag counts as 0).
fn lag(
    metrics: &ConsumerMetrics,
    message: &Message,
    outcome: Outcome,
    committed: chrono::DateTime<Utc>,
) {
    if matches!(outcome, Outcome::Ignored(_)) {
        return;
    }
    let Some(updated) = message.updated_at() else {
        return;
    };
    let lag = committed.signed_duration_since(updated).as_seconds_f64();
    metrics.lag(&message.cqrs_id, lag);
}

/// Whether an apply failed because PostgreSQL cancelled a statement at `statement_timeout`
/// (SQLSTATE 57014, which diesel reports by its message only).
fn timed_out(error: &ApplyError) -> bool {
    error
        .to_string()
        .contains("canceling statement due to statement timeout")
}

/// The span of one message's apply, in the trace of its master write.
fn span<C>(job: &Job<C>) -> tracing::Span {
    cqrs_core::trace::apply_span(&job.message, job.trace.as_ref())
}
