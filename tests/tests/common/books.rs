//! A master of books and its replica on SQLite files, as the pipeline tests use them: the
//! databases, their rows, the replica's convergence, and a running relay and consumer.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cqrs_core::master::MasterTable;
use cqrs_core::prelude::*;
use diesel::SqliteConnection;

use super::{Book, BookRef, SQLITE_DDL};

/// A SQLite file in `dir` with the framework's tables and the models' tables.
pub fn sqlite_db(dir: &tempfile::TempDir, name: &str) -> String {
    let url = dir.path().join(name).to_str().unwrap().to_owned();
    let mut conn = SqliteConnection::cqrs_connect(&url).unwrap();
    conn.cqrs_setup().unwrap();
    diesel::connection::SimpleConnection::batch_execute(&mut conn, SQLITE_DDL).unwrap();
    url
}

/// A fresh PostgreSQL schema with the framework's tables and the models' tables.
pub fn pg_db() -> String {
    let url = super::pg_schema_url();
    let mut conn = diesel::PgConnection::cqrs_connect(&url).unwrap();
    conn.cqrs_setup().unwrap();
    diesel::connection::SimpleConnection::batch_execute(&mut conn, super::PG_DDL).unwrap();
    url
}

/// The master's books on either backend: (id, title, revision).
pub fn master_rows<C: cqrs_core::Registered>(url: &str) -> Vec<(i32, String, i32)>
where
    Book: MasterStore<C>,
{
    let mut conn = C::cqrs_connect(url).unwrap();
    Book::db_page(&mut conn, vec![], None, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|b| (b.id, b.title, b.cqrs_revision))
        .collect()
}

/// The replica's books on either backend: (id, name, revision).
pub fn replica_rows<C: cqrs_core::Registered>(url: &str) -> Vec<(i32, String, i32)>
where
    BookRef: ReplicaStore<C>,
{
    let mut conn = C::cqrs_connect(url).unwrap();
    let pks = BookRef::cqrs_pks(&mut conn, None, i64::MAX).unwrap();
    pks.iter()
        .filter_map(|pk| BookRef::cqrs_get(&mut conn, pk).unwrap())
        .map(|b| (b.id, b.name, b.cqrs_revision))
        .collect()
}

/// The master's books on SQLite: (id, title, revision).
pub fn rows_master(url: &str) -> Vec<(i32, String, i32)> {
    master_rows::<SqliteConnection>(url)
}

/// The replica's books on SQLite: (id, name, revision).
pub fn rows_replica(url: &str) -> Vec<(i32, String, i32)> {
    replica_rows::<SqliteConnection>(url)
}

/// Waits until the SQLite replica holds exactly the master's books (up to `timeout`).
pub async fn wait_equal(master: &str, replica: &str, timeout: Duration) {
    wait_equal_in::<SqliteConnection>(master, replica, timeout).await;
}

/// Waits until the replica holds exactly the master's books (up to `timeout`).
pub async fn wait_equal_in<C: cqrs_core::Registered>(master: &str, replica: &str, timeout: Duration)
where
    Book: MasterStore<C>,
    BookRef: ReplicaStore<C>,
{
    let start = Instant::now();
    loop {
        let (m, r) = (master_rows::<C>(master), replica_rows::<C>(replica));
        if m == r {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "replica differs from master after {timeout:?}: {} vs {} rows, first difference {:?}",
            m.len(),
            r.len(),
            m.iter().zip(&r).find(|(a, b)| a != b)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Tasks that run until [`Running::stop`]: a relay, a consumer, anything with a shutdown
/// future.
pub struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), cqrs_rabbit::Error>>>,
}

impl Running {
    pub fn new() -> Self {
        Self {
            stop: tokio::sync::watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// Spawns `run(shutdown)`.
    pub fn spawn<F, R>(&mut self, run: R)
    where
        R: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> F,
        F: std::future::Future<Output = Result<(), cqrs_rabbit::Error>> + Send + 'static,
    {
        let mut stopped = self.stop.subscribe();
        let shutdown = Box::pin(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        self.tasks.push(tokio::spawn(run(shutdown)));
    }

    /// Stops every task and checks that each ended well.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        for task in self.tasks {
            task.await.unwrap().unwrap();
        }
    }
}
