//! One relay per SQLite outbox. A SQLite relay reads the outbox without locking it and deletes
//! after the broker's confirms (so that the application's writers never wait for the broker):
//! two relays on one file would publish every message twice. The relay therefore holds an
//! exclusive lock on `<database file>.relay-lock` while it runs; a second one, in this process
//! or another, fails at once with the reason. The operating system releases the lock when the
//! holder exits, however it exits (a killed relay leaves no stale lock). A long-running relay
//! gives the holder a few seconds first: a tool's one-shot relay (`sync` publishing what it
//! wrote) lets go at once, a second long-running relay does not. PostgreSQL's relays share
//! the outbox through `FOR UPDATE SKIP LOCKED` and take no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::time::{Duration, Instant};

use cqrs_core::db::CqrsConnection;

use crate::error::{Error, Result};

/// Held while a relay runs; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct RelayLock {
    _file: Option<File>,
}

/// Takes the one-relay lock of the database at `url`, if its backend has one.
pub(crate) fn acquire<C: CqrsConnection>(url: &str) -> Result<RelayLock> {
    let Some(path) = C::relay_lock_path(url) else {
        return Ok(RelayLock { _file: None });
    };
    let io = |source| Error::Io {
        context: format!("cannot lock {}", path.display()),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(RelayLock { _file: Some(file) }),
        Err(TryLockError::WouldBlock) => Err(Error::RelayRunning { lock: path }),
        Err(TryLockError::Error(source)) => Err(io(source)),
    }
}

/// Like [`acquire`], but while another relay holds the lock, looks again every 100 ms for up
/// to `patience` before it fails.
pub(crate) async fn acquire_within<C: CqrsConnection>(
    url: &str,
    patience: Duration,
) -> Result<RelayLock> {
    let start = Instant::now();
    loop {
        match acquire::<C>(url) {
            Err(Error::RelayRunning { .. }) if start.elapsed() < patience => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}
