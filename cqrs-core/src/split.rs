//! A service with a primary database (its write model, with master models) and a replica
//! database (its read model, kept by the consumer): [`ReadWrite`] routes writes to the primary
//! and reads to the replica, and gives the three read consistencies.
//!
//! * **Eventual** ([`ReadWrite::read`]): the replica as it is.
//! * **Read-your-writes** ([`ReadWrite::wait_applied`], [`ReadWrite::read_after`]): wait until
//!   the replica has applied a given write ([`Written`]) or a later one, then read. The wait is
//!   woken by the consumer of the same process as soon as it commits, and polls the replica
//!   when the consumer is another process. A timeout is [`SplitError::NotApplied`].
//! * **Bounded staleness** ([`ReadWrite::read_bounded`]): read from the replica if it is at
//!   most a given time behind for the model, otherwise from the primary (read-only).
//!
//! Reads run on connections the database itself keeps read-only, so a read model cannot be
//! written by accident; the consumer has its own connections. Reads and writes are blocking
//! diesel calls (run them on a blocking thread in an async service); the waits are async.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::QueryResult;
use diesel::r2d2::R2D2Connection;

use crate::applied::{self, RowWaiter};
use crate::db::CqrsConnection;
use crate::error::Error;
use crate::pool::{Pool, PoolConfig, Pooled};
use crate::registry::{self, Registered};
use crate::written::Written;

/// How often a read-your-writes wait looks at the replica when no in-process commit woke it
/// (the consumer runs in another process), by default.
pub const DEFAULT_POLL: Duration = Duration::from_millis(5);

/// The longest interval between two looks of a wait, in polls; also the first one when a
/// consumer of this process applies the stream (its commits wake the wait).
const SAFETY_POLLS: u32 = 8;

/// Which database a read went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The read model.
    Replica,
    /// The write model (bounded staleness found the replica too far behind).
    Primary,
}

/// An error of the read/write split.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// No connection could be had from a pool in its timeout (the database is down, or every
    /// connection is busy).
    #[error("no {role} database connection: {source}")]
    Pool {
        /// `primary` or `replica`.
        role: &'static str,
        /// The pool's error.
        #[source]
        source: diesel::r2d2::PoolError,
    },
    /// The replica had not applied the write when the wait timed out.
    #[error(
        "{cqrs_id} pk {pk}: the replica had not applied revision {revision} after {waited:?} \
         (is the consumer running?)"
    )]
    NotApplied {
        /// The model.
        cqrs_id: &'static str,
        /// The row's key.
        pk: String,
        /// The revision waited for.
        revision: i32,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// A statement or the framework failed.
    #[error(transparent)]
    Core(#[from] Error),
    /// The blocking task of a wait's look at the replica failed (it panicked or the runtime
    /// is shutting down).
    #[error("the replica look of a wait failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<diesel::result::Error> for SplitError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Core(Error::Database(error))
    }
}

/// The router of a service with a primary and a replica database (see the module docs).
///
/// ```no_run
/// # cqrs_core::__doc_fixtures!();
/// use std::time::Duration;
/// use cqrs_core::prelude::*;
/// use cqrs_core::split::ReadWrite;
/// use cqrs_core::Written;
/// use diesel::prelude::*;
///
/// # async fn run() -> Result<(), cqrs_core::split::SplitError> {
/// let db = ReadWrite::<diesel::SqliteConnection>::connect(
///     "primary.sqlite3", "replica.sqlite3", &Default::default())?;
/// let book = Book::sample(1).cqrs_insert(&mut *db.primary()?)?;   // writes: the primary
/// let titles: Vec<String> = db                                     // reads: the replica,
///     .read_after(&Written::of(&book), Duration::from_secs(2), |conn| {  // once it has the write
///         book_refs::table.select(book_refs::title).load(conn)
///     })
///     .await?;
/// # Ok(()) }
/// ```
pub struct ReadWrite<C: CqrsConnection + R2D2Connection + 'static> {
    primary: Pool<C>,
    replica: Pool<C>,
    poll: Duration,
}

impl<C: CqrsConnection + R2D2Connection + 'static> Clone for ReadWrite<C> {
    fn clone(&self) -> Self {
        Self {
            primary: self.primary.clone(),
            replica: self.replica.clone(),
            poll: self.poll,
        }
    }
}

impl<C: CqrsConnection + R2D2Connection + 'static> std::fmt::Debug for ReadWrite<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadWrite")
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl<C: Registered + R2D2Connection + 'static> ReadWrite<C> {
    /// Pools to both databases (the replica's read-only), creating the framework's tables in
    /// both (the consumer needs them in the replica, the master hooks in the primary). Fails
    /// at once, with the reason, when either database cannot be opened.
    pub fn connect(
        primary_url: &str,
        replica_url: &str,
        config: &PoolConfig,
    ) -> Result<Self, Error> {
        for url in [primary_url, replica_url] {
            C::cqrs_connect(url)?.cqrs_setup()?;
        }
        Ok(Self::from_pools(
            config.build(primary_url)?,
            config.build_read_only(replica_url)?,
        ))
    }

    /// Pools to both databases that open nothing now (see [`PoolConfig::lazy`]): for a
    /// service that must start, and keep serving what it can, while one database is down.
    /// The framework's tables must exist (a migration, or `cqrs_setup` at deploy time).
    pub fn open(primary_url: &str, replica_url: &str, config: &PoolConfig) -> Self {
        Self::from_pools(
            config.lazy(primary_url, false),
            config.lazy(replica_url, true),
        )
    }

    /// A router over existing pools (`replica` should be built read-only).
    pub fn from_pools(primary: Pool<C>, replica: Pool<C>) -> Self {
        Self {
            primary,
            replica,
            poll: DEFAULT_POLL,
        }
    }

    /// How often a wait looks at the replica when nothing in this process woke it.
    #[must_use]
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }

    /// The primary's pool (for a relay or tools).
    pub fn primary_pool(&self) -> &Pool<C> {
        &self.primary
    }

    /// A primary connection: for writes, and the master hooks (`&mut *conn`).
    pub fn primary(&self) -> Result<Pooled<C>, SplitError> {
        self.primary.get().map_err(|source| SplitError::Pool {
            role: "primary",
            source,
        })
    }

    fn replica(&self) -> Result<Pooled<C>, SplitError> {
        self.replica.get().map_err(|source| SplitError::Pool {
            role: "replica",
            source,
        })
    }

    /// Reads the replica as it is (eventual consistency).
    pub fn read<T>(&self, f: impl FnOnce(&mut C) -> QueryResult<T>) -> Result<T, SplitError> {
        Ok(f(&mut *self.replica()?)?)
    }

    /// Whether the replica has applied `written` (or a later write of the row).
    pub fn is_applied(&self, written: &Written) -> Result<bool, SplitError> {
        let ops = registry::replica::<C>(written.cqrs_id)?.ops;
        let mut conn = self.replica()?;
        let stored = ops.versions(&mut *conn, std::slice::from_ref(&written.pk))?;
        if let Some((_, version)) = stored.first() {
            // a row at the revision or later; for a delete, the row came back later
            return Ok(version.revision >= written.revision);
        }
        if written.deleted {
            return Ok(true);
        }
        // no row: applied only if a later delete removed it
        let tombstone = conn.tombstone_get(written.cqrs_id, &written.pk_text())?;
        Ok(tombstone.is_some_and(|t| t.revision >= written.revision))
    }

    /// Waits until the replica has applied `written` or a later write of the row; returns how
    /// long it waited. Woken at once by a commit of this process's consumer, else it polls.
    pub async fn wait_applied(
        &self,
        written: &Written,
        timeout: Duration,
    ) -> Result<Duration, SplitError> {
        let start = Instant::now();
        let waiter = RowWaiter::new(written.cqrs_id, written.pk_text());
        // The first look comes after a wake or one poll interval: an apply takes longer than
        // that, and a wake is not lost (the waiter is registered already). Without wakes (the
        // consumer is another process) the interval doubles up to 8 times `poll`, so that many
        // waits on a slow replica do not load it with looks. When a consumer of this process
        // applies the stream, its commits wake the wait: a look is then only the safety net
        // (another process's consumer took the message), at 8 times `poll`. Looking every
        // `poll` there made a busy replica slower (measured on PostgreSQL at 1,000 writes/s:
        // p99 from 40-67 ms down to 20-32 ms with the looks deferred).
        let mut interval = if applied::applies_here(written.cqrs_id) {
            self.poll * SAFETY_POLLS
        } else {
            self.poll
        };
        loop {
            let elapsed = start.elapsed();
            let Some(left) = timeout.checked_sub(elapsed).filter(|d| !d.is_zero()) else {
                return Err(SplitError::NotApplied {
                    cqrs_id: written.cqrs_id,
                    pk: written.pk_text(),
                    revision: written.revision,
                    waited: elapsed,
                });
            };
            let woken = tokio::time::timeout(left.min(interval), waiter.wait())
                .await
                .is_ok();
            if !woken {
                interval = (interval * 2).min(self.poll * SAFETY_POLLS);
            }
            // this process's consumer committed the revision or a later one: no look needed
            if waiter
                .seen()
                .is_some_and(|seen| seen >= i64::from(written.revision))
            {
                return Ok(start.elapsed());
            }
            // the look is a blocking query: off the async threads, which the consumer of this
            // process may need to make progress
            let (this, look) = (self.clone(), written.clone());
            if tokio::task::spawn_blocking(move || this.is_applied(&look)).await?? {
                return Ok(start.elapsed());
            }
        }
    }

    /// Read-your-writes: waits for `written` (see [`ReadWrite::wait_applied`]), then reads the
    /// replica.
    pub async fn read_after<T>(
        &self,
        written: &Written,
        timeout: Duration,
        f: impl FnOnce(&mut C) -> QueryResult<T>,
    ) -> Result<T, SplitError> {
        self.wait_applied(written, timeout).await?;
        self.read(f)
    }

    /// How far the replica is behind the primary for `cqrs_id`: zero when its newest applied
    /// write is the primary's newest; otherwise the time since the replica's newest applied
    /// write (a bound: everything it misses is newer than that). Both sides' newest
    /// `cqrs_updated` are read (index `cqrs_updated` in both tables for large ones); the
    /// times are the primary's clock and this process's, the same host in this shape.
    pub fn lag(&self, cqrs_id: &str) -> Result<Duration, SplitError> {
        let master = registry::master::<C>(cqrs_id)?.ops;
        let replica = registry::replica::<C>(cqrs_id)?.ops;
        let newest_written = master.latest_update(&mut *self.primary()?)?;
        let newest_applied = replica.latest_update(&mut *self.replica()?)?;
        Ok(match (newest_written, newest_applied) {
            (None, _) => Duration::ZERO,
            (Some(written), Some(applied)) if applied >= written => Duration::ZERO,
            (Some(_), Some(applied)) => (Utc::now() - applied).to_std().unwrap_or_default(),
            (Some(_), None) => Duration::MAX,
        })
    }

    /// Bounded staleness: reads the replica if it is at most `max_lag` behind for
    /// `cqrs_id` ([`ReadWrite::lag`]), else the primary, read-only. `f` is told which, so
    /// that it can name the table of each side; returns what it read and where.
    pub fn read_bounded<T>(
        &self,
        cqrs_id: &str,
        max_lag: Duration,
        f: impl FnOnce(&mut C, Source) -> QueryResult<T>,
    ) -> Result<(T, Source), SplitError> {
        if self.lag(cqrs_id)? <= max_lag {
            let value = f(&mut *self.replica()?, Source::Replica)?;
            return Ok((value, Source::Replica));
        }
        let value = self
            .primary()?
            .cqrs_read_only(|conn| f(conn, Source::Primary))?;
        Ok((value, Source::Primary))
    }
}
