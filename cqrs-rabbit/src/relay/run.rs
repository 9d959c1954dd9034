//! The relay's loop as named steps: reach the broker, reach the database, take and publish a
//! batch, then wait for what comes next (another batch at once, a linger, a wake or the poll).
//! A shutdown is heard at every wait, never in the middle of a batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cqrs_core::db::CqrsConnection;
use cqrs_core::outbox::{OutboxWaker, RelayedBatch};
use lapin::Channel;
use tokio::time::Instant;

use super::{HELD_BACK_WAIT, Relay};
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::linger;
use crate::notices::Notices;
use crate::telemetry::{Cause, Reporter};

/// What a step lets the loop do next.
enum Step<T> {
    /// Go on with this.
    Ready(T),
    /// Start the loop over (after a backoff, or with a connection to open again).
    Again,
    /// The relay stops with this result.
    Stop(Result<()>),
}

/// One run of a relay: its connections and what its waits remember.
pub(super) struct Session<'r, C> {
    relay: &'r Relay<C>,
    notices: Arc<Notices>,
    waker: OutboxWaker,
    backoff: Backoff,
    db: Option<C>,
    broker: Option<(lapin::Connection, Channel)>,
    poll: Duration,
    /// Looks made shortly after an early wake (a write that had not committed yet).
    early_wakes: u32,
    /// When the previous cycle began, if it took messages (the arrival rate's clock).
    previous_cycle: Option<Instant>,
    arrivals: linger::ArrivalRate,
    health: Reporter,
}

/// Waits for `until`; `false` when the shutdown came first.
async fn unless_stopped<F, U>(shutdown: &mut Pin<&mut F>, until: U) -> bool
where
    F: Future<Output = ()>,
    U: Future<Output = ()>,
{
    tokio::select! {
        () = shutdown.as_mut() => false,
        () = until => true,
    }
}

impl<'r, C: CqrsConnection> Session<'r, C> {
    pub(super) fn new(relay: &'r Relay<C>, notices: Arc<Notices>) -> Self {
        Self {
            relay,
            notices,
            waker: OutboxWaker::new(),
            backoff: Backoff::default(),
            db: None,
            broker: None,
            poll: relay.poll_interval(),
            early_wakes: 0,
            previous_cycle: None,
            arrivals: linger::ArrivalRate::default(),
            health: relay.health.register("relay"),
        }
    }

    pub(super) fn poll(&self) -> Duration {
        self.poll
    }

    /// Cycles until the shutdown (`Ok`) or an error no reconnection mends.
    pub(super) async fn run<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Pin<&mut F>,
    ) -> Result<()> {
        loop {
            match self.reach_broker(shutdown).await {
                Step::Ready(()) => {}
                Step::Again => continue,
                Step::Stop(result) => return result,
            }
            let conn = match self.reach_database(shutdown).await {
                Step::Ready(conn) => conn,
                Step::Again => continue,
                Step::Stop(result) => return result,
            };
            let Some((_, channel)) = self.broker.as_ref() else {
                continue;
            };
            let channel = channel.clone();
            let cycle = Instant::now();
            let since_previous = self.previous_cycle.take().map(|p| cycle - p);
            // this look answers every wake of this process so far
            self.waker.covered();
            let result = self.look(conn, &channel).await?;
            if let Step::Stop(result) = self.after(result, cycle, since_previous, shutdown).await {
                return result;
            }
        }
    }

    /// Closes the broker connection.
    pub(super) async fn close(self) {
        if let Some((connection, _)) = self.broker {
            let _ = connection.close(200, "relay stopped".into()).await;
        }
    }

    /// A connected broker channel, opened again when it was lost.
    async fn reach_broker<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Pin<&mut F>,
    ) -> Step<()> {
        if self
            .broker
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected())
        {
            return Step::Ready(());
        }
        if self.broker.take().is_some() {
            // lost while idle (a node died between batches): a reconnection too
            tracing::warn!("relay: broker connection lost; reconnecting");
            self.health.broker(false);
            self.relay.metrics.reconnect(Cause::Broker);
        }
        let connected = tokio::select! {
            () = shutdown.as_mut() => return Step::Stop(Ok(())),
            c = self.relay.open_channel() => c,
        };
        match connected {
            Ok(pair) => {
                self.health.broker(true);
                self.broker = Some(pair);
                Step::Ready(())
            }
            Err(error) => {
                self.health.broker(false);
                tracing::warn!(%error, retry_in = ?self.backoff.delay(), "relay: broker unavailable");
                self.relay.metrics.reconnect(Cause::Broker);
                self.back_off(shutdown).await
            }
        }
    }

    /// The database connection, opened again when it was dropped.
    async fn reach_database<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Pin<&mut F>,
    ) -> Step<C> {
        if let Some(conn) = self.db.take() {
            return Step::Ready(conn);
        }
        let url = self.relay.database_url.clone();
        match tokio::task::spawn_blocking(move || C::cqrs_connect(&url)).await {
            Ok(Ok(conn)) => {
                self.health.database(true);
                Step::Ready(conn)
            }
            Ok(Err(error)) => {
                self.health.database(false);
                tracing::warn!(%error, retry_in = ?self.backoff.delay(), "relay: database unavailable");
                self.back_off(shutdown).await
            }
            Err(join) => Step::Stop(Err(Error::task("the relay's database connection")(join))),
        }
    }

    /// Takes a batch from the outbox, publishes it and removes what the broker confirmed;
    /// keeps the connection for the next look.
    async fn look(&mut self, conn: C, channel: &Channel) -> Result<Result<RelayedBatch>> {
        let (conn, result, stats) = self.relay.batch(conn, channel).await?;
        self.db = Some(conn);
        tracing::trace!(fetched = ?result.as_ref().map(|b| b.fetched).ok(), "relay: looked at the outbox");
        self.relay
            .metrics
            .looks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(stats) = stats {
            self.health.outbox_age(stats.oldest_due_micros);
        }
        Ok(result)
    }

    /// What follows a look: the next one at once (a full batch), shortly (messages held back,
    /// a linger), at a wake or the poll; or a reconnection after an error.
    async fn after<F: Future<Output = ()>>(
        &mut self,
        result: Result<RelayedBatch>,
        cycle: Instant,
        since_previous: Option<Duration>,
        shutdown: &mut Pin<&mut F>,
    ) -> Step<()> {
        match result {
            Ok(batch) if batch.fetched >= self.relay.config.relay_batch => {
                self.backoff.reset();
                self.early_wakes = 0;
                self.previous_cycle = Some(cycle);
                Step::Ready(())
            }
            Ok(batch) if batch.held_back > 0 => {
                // Another relay has earlier messages of these rows in hands: they leave after
                // its commit, a few milliseconds away. Nothing announces that commit: look
                // again shortly.
                self.backoff.reset();
                self.previous_cycle = Some(cycle);
                self.wait(shutdown, tokio::time::sleep(HELD_BACK_WAIT))
                    .await
            }
            Ok(batch) => {
                self.backoff.reset();
                if batch.fetched > 0 {
                    // A partial batch: more is coming. When the master writes fast enough
                    // (see `linger`), let the next batch gather for the linger, so that its
                    // messages go out many per round trip; a quiet or moderate master's
                    // messages go out at once.
                    self.early_wakes = 0;
                    self.previous_cycle = Some(cycle);
                    self.arrivals.observe(batch.fetched, since_previous);
                    let linger = self.relay.config.relay_linger;
                    if self.arrivals.pays(linger, C::RELAY_LINGER_FROM) {
                        return self
                            .wait(shutdown, tokio::time::sleep_until(cycle + linger))
                            .await;
                    }
                    // Everything due was taken. A write that committed meanwhile has left a
                    // wake (this process's or its notification): wait for it.
                }
                self.until_woken(shutdown).await
            }
            Err(error) if error.is_broker() => {
                tracing::warn!(%error, "relay: broker connection lost; reconnecting");
                self.broker = None;
                self.health.broker(false);
                self.relay.metrics.reconnect(Cause::Broker);
                self.back_off(shutdown).await
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?self.backoff.delay(), "relay: database error; reconnecting");
                self.db = None;
                self.health.database(false);
                self.relay.metrics.reconnect(Cause::Database);
                self.back_off(shutdown).await
            }
        }
    }

    /// Waits for a wake of this process, a notification with news, or the poll.
    async fn until_woken<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Pin<&mut F>,
    ) -> Step<()> {
        // Woken before the writer committed (a write inside a caller's transaction wakes at
        // once)? Look again shortly, a few times, unless the database announces every commit
        // anyway.
        let notices = Arc::clone(&self.notices);
        let wait = if self.early_wakes > 0 && self.early_wakes < 6 && !notices.listening() {
            self.early_wakes += 1;
            Duration::from_millis(2 << self.early_wakes).min(self.poll)
        } else {
            self.early_wakes = 0;
            self.poll
        };
        let until = Instant::now() + wait;
        // While PostgreSQL announces every commit (this process's too, with the message's
        // id), this process's own wake is left aside: it comes at the same time, and which of
        // the two came second would cost an empty look.
        let announced = notices.listening();
        loop {
            tokio::select! {
                () = shutdown.as_mut() => return Step::Stop(Ok(())),
                () = self.waker.wait(), if !announced => {
                    tracing::trace!("relay: woken by a write of this process");
                    self.early_wakes = self.early_wakes.max(1);
                    return Step::Ready(());
                }
                // announced messages this relay took already need no look
                () = notices.notified() => if notices.news(&self.relay.taken) {
                    tracing::trace!("relay: woken by a notification");
                    return Step::Ready(());
                },
                () = tokio::time::sleep_until(until) => return Step::Ready(()),
            }
        }
    }

    /// Waits for the backoff's delay; then the loop starts over.
    async fn back_off<T, F: Future<Output = ()>>(&mut self, shutdown: &mut Pin<&mut F>) -> Step<T> {
        if unless_stopped(shutdown, self.backoff.wait()).await {
            Step::Again
        } else {
            Step::Stop(Ok(()))
        }
    }

    /// Waits for `until`, then goes on.
    async fn wait<F, U>(&mut self, shutdown: &mut Pin<&mut F>, until: U) -> Step<()>
    where
        F: Future<Output = ()>,
        U: Future<Output = ()>,
    {
        if unless_stopped(shutdown, until).await {
            Step::Ready(())
        } else {
            Step::Stop(Ok(()))
        }
    }
}
