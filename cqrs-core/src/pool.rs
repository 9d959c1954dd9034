//! Connection pools (r2d2) of framework-configured connections: what a service's request
//! handlers take connections from, for master hooks and for reads of a read model.
//!
//! Each connection is opened by [`CqrsConnection::cqrs_connect`] (SQLite: WAL, a busy
//! timeout, foreign keys), checked with diesel's ping before it is handed out, and, in a
//! read-only pool, made read-only by the database itself (SQLite `PRAGMA query_only`,
//! PostgreSQL `default_transaction_read_only`), so that a write through it fails instead of
//! changing a replica behind the consumer's back.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use diesel::r2d2::{self, R2D2Connection};

use crate::db::CqrsConnection;
use crate::error::Error;

/// A pool of framework-configured connections of type `C`.
pub type Pool<C> = r2d2::Pool<Manager<C>>;
/// A connection checked out of a [`Pool`] (derefs to `C`: `&mut *conn` for a hook).
pub type Pooled<C> = r2d2::PooledConnection<Manager<C>>;

/// Pool sizes and timeouts. The defaults suit a small service: at most 10 connections, none
/// kept open idle beyond 10 minutes, each replaced after 30 minutes, and a 5 s wait for a free
/// connection before [`crate::split::SplitError::Pool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections at most (`CQRS_POOL_SIZE`, default 10).
    pub max_size: u32,
    /// Idle connections kept open in the background (default 0: opened on demand, kept until
    /// `idle_timeout`; `None` is r2d2's default, `max_size`).
    pub min_idle: Option<u32>,
    /// How long a checkout waits for a connection (`CQRS_POOL_TIMEOUT`, seconds, default 5).
    pub connection_timeout: Duration,
    /// An idle connection is closed after this long (default 10 minutes).
    pub idle_timeout: Option<Duration>,
    /// A connection is replaced after this long (default 30 minutes).
    pub max_lifetime: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 10,
            min_idle: Some(0),
            connection_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_mins(10)),
            max_lifetime: Some(Duration::from_mins(30)),
        }
    }
}

impl PoolConfig {
    /// The defaults, with `CQRS_POOL_SIZE` (1 to 1000) and `CQRS_POOL_TIMEOUT` (seconds,
    /// above 0) from the environment when set. A bad value is an error naming the variable.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// [`PoolConfig::from_env`] with the variables from `lookup` (for tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut config = Self::default();
        if let Some(text) = lookup("CQRS_POOL_SIZE") {
            config.max_size = text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    bad_setting("CQRS_POOL_SIZE", &text, "a whole number from 1 to 1000")
                })?;
        }
        if let Some(text) = lookup("CQRS_POOL_TIMEOUT") {
            let seconds = text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                .ok_or_else(|| {
                    bad_setting(
                        "CQRS_POOL_TIMEOUT",
                        &text,
                        "seconds, above 0 and at most 3600",
                    )
                })?;
            config.connection_timeout = Duration::from_secs_f64(seconds);
        }
        Ok(config)
    }

    /// A pool of read-write connections to `url`. Opens one connection now, so that a bad URL
    /// or a database that is down fails here, with the reason.
    pub fn build<C>(&self, url: &str) -> Result<Pool<C>, Error>
    where
        C: CqrsConnection + R2D2Connection,
    {
        self.checked(&Manager::new(url, false))
    }

    /// A pool of read-only connections to `url` (for a read model), checked like
    /// [`PoolConfig::build`].
    pub fn build_read_only<C>(&self, url: &str) -> Result<Pool<C>, Error>
    where
        C: CqrsConnection + R2D2Connection,
    {
        self.checked(&Manager::new(url, true))
    }

    /// A pool that opens nothing now: a database that is down fails each checkout (after
    /// `connection_timeout`, with the connection's error) instead of the start.
    pub fn lazy<C>(&self, url: &str, read_only: bool) -> Pool<C>
    where
        C: CqrsConnection + R2D2Connection,
    {
        r2d2::Pool::builder()
            .max_size(self.max_size)
            .min_idle(self.min_idle)
            .connection_timeout(self.connection_timeout)
            .idle_timeout(self.idle_timeout)
            .max_lifetime(self.max_lifetime)
            .test_on_check_out(false)
            .error_handler(Box::new(QuietErrors))
            .build_unchecked(Manager::new(url, read_only))
    }

    fn checked<C>(&self, manager: &Manager<C>) -> Result<Pool<C>, Error>
    where
        C: CqrsConnection + R2D2Connection,
    {
        // open one connection first: r2d2's own build waits the whole timeout and then says
        // only "timed out", where the connection's error says why
        drop(manager.open()?);
        Ok(self.lazy(&manager.url, manager.read_only))
    }
}

/// Connection errors go to the caller of the checkout, with the reason: logged here only at
/// debug level (r2d2's default logs every retry as an error).
#[derive(Debug)]
struct QuietErrors;

impl r2d2::HandleError<Error> for QuietErrors {
    fn handle_error(&self, error: Error) {
        tracing::debug!(%error, "pool connection attempt failed");
    }
}

fn bad_setting(name: &str, value: &str, expected: &str) -> Error {
    Error::BadSetting {
        name: name.to_owned(),
        value: value.chars().take(40).collect(),
        expected: expected.to_owned(),
    }
}

/// The r2d2 manager of framework-configured connections.
pub struct Manager<C> {
    url: String,
    read_only: bool,
    _conn: PhantomData<fn() -> C>,
}

impl<C> fmt::Debug for Manager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never the URL: it may hold a password
        f.debug_struct("Manager")
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl<C: CqrsConnection + R2D2Connection> Manager<C> {
    /// A manager of connections to `url`; `read_only` makes each one read-only.
    pub fn new(url: &str, read_only: bool) -> Self {
        Self {
            url: url.to_owned(),
            read_only,
            _conn: PhantomData,
        }
    }

    fn open(&self) -> Result<C, Error> {
        let mut conn = C::cqrs_connect(&self.url)?;
        if self.read_only {
            conn.batch_execute(C::READ_ONLY_SQL)?;
        }
        Ok(conn)
    }
}

impl<C: CqrsConnection + R2D2Connection> r2d2::ManageConnection for Manager<C> {
    type Connection = C;
    type Error = Error;

    fn connect(&self) -> Result<C, Error> {
        self.open()
    }

    fn is_valid(&self, conn: &mut C) -> Result<(), Error> {
        conn.ping().map_err(Error::from)
    }

    fn has_broken(&self, conn: &mut C) -> bool {
        conn.is_broken()
    }
}
