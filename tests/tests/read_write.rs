//! The read/write split of one service (`cqrs_core::split::ReadWrite`), end to end with real
//! RabbitMQ, on SQLite and PostgreSQL: writes go to the primary, reads to the read-only
//! replica kept by the consumer; read-your-writes returns as soon as the consumer applied and
//! times out cleanly without one; bounded staleness reads the primary only when the replica is
//! too far behind; UUID keys (`UuidText` on SQLite, native `Uuid` on PostgreSQL).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use common::rabbit;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use cqrs_core::Written;
use cqrs_core::pool::PoolConfig;
use cqrs_core::prelude::*;
use cqrs_core::split::{ReadWrite, Source, SplitError};
use cqrs_core::types::UuidText;
use cqrs_rabbit::{Consumer, Relay};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// The write model's table, in the primary database.
mod primary {
    diesel::table! {
        parking_slots (uuid) {
            uuid -> Text,
            name -> Text,
            status -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        pg_parking_slots (uuid) {
            uuid -> Uuid,
            name -> Text,
            status -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
}

/// The read model's table, in the replica database (same name: the replica is a copy).
mod replica {
    diesel::table! {
        parking_slots (uuid) {
            uuid -> Text,
            name -> Text,
            status -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
    diesel::table! {
        pg_parking_slots (uuid) {
            uuid -> Uuid,
            name -> Text,
            status -> Text,
            cqrs_revision -> Integer,
            cqrs_updated -> Timestamp,
        }
    }
}

const DDL: &str = "
CREATE TABLE parking_slots (uuid TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
CREATE TABLE pg_parking_slots (uuid UUID PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
    cqrs_revision INTEGER NOT NULL, cqrs_updated TIMESTAMP NOT NULL);
";

#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = primary::parking_slots)]
#[diesel(primary_key(uuid))]
#[cqrs(cqrs_id = "slot", backends(sqlite))]
struct Slot {
    uuid: UuidText,
    name: String,
    status: String,
    cqrs_revision: i32,
    cqrs_updated: NaiveDateTime,
}

#[derive(Debug, Clone, CqrsReplica, Queryable)]
#[diesel(table_name = replica::parking_slots)]
#[diesel(primary_key(uuid))]
#[cqrs(cqrs_id = "slot", backends(sqlite))]
struct SlotRead {
    uuid: UuidText,
    name: String,
    status: String,
    cqrs_revision: i32,
    cqrs_updated: NaiveDateTime,
}

#[derive(Debug, Clone, CqrsMaster)]
#[diesel(table_name = primary::pg_parking_slots)]
#[diesel(primary_key(uuid))]
#[cqrs(cqrs_id = "pg_slot", backends(postgres))]
struct PgSlot {
    uuid: uuid::Uuid,
    name: String,
    status: String,
    cqrs_revision: i32,
    cqrs_updated: NaiveDateTime,
}

#[derive(Debug, Clone, CqrsReplica, Queryable)]
#[diesel(table_name = replica::pg_parking_slots)]
#[diesel(primary_key(uuid))]
#[cqrs(cqrs_id = "pg_slot", backends(postgres))]
struct PgSlotRead {
    uuid: uuid::Uuid,
    name: String,
    status: String,
    cqrs_revision: i32,
    cqrs_updated: NaiveDateTime,
}

/// A consumer running in this process, stopped on drop of its sender.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<cqrs_rabbit::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn start_consumer<C: cqrs_core::Registered>(
    config: &cqrs_rabbit::Config,
    url: &str,
    cqrs_id: &str,
) -> Running {
    let consumer = Consumer::<C>::new(config.clone(), url).only(vec![cqrs_id.to_owned()]);
    consumer.check().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    rabbit::wait_for_consumer(config.queue.as_deref().unwrap()).await;
    Running { stop, task }
}

/// The scenario, on one backend: `$conn` the connection type, `$master`/`$read` the models,
/// `$table` the table's name in both modules, `$key` a fresh key.
macro_rules! scenario {
    ($conn:ty, $master:ident, $read:ident, $table:ident, $key:expr, $primary:expr, $replica:expr) => {{
        let (primary_url, replica_url): (String, String) = ($primary, $replica);
        for url in [&primary_url, &replica_url] {
            <$conn>::cqrs_connect(url).unwrap().batch_execute(DDL).unwrap();
        }
        let cqrs_id = <$master as cqrs_core::MasterModel>::CQRS_ID;
        let config = rabbit::config(cqrs_id);
        let db = ReadWrite::<$conn>::connect(&primary_url, &replica_url, &PoolConfig::default())
            .unwrap();
        let consumer = start_consumer::<$conn>(&config, &replica_url, cqrs_id).await;
        let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(Relay::<$conn>::new(config.clone(), primary_url.as_str()).run(
            async move {
                let _ = relay_stopped.await;
            },
        ));
        let get = |key| {
            move |conn: &mut $conn| {
                replica::$table::table
                    .find(key)
                    .first::<$read>(conn)
                    .optional()
            }
        };

        // create, then read: the replica has the row as soon as the consumer applied it
        let key = $key;
        let slot = $master {
            uuid: key.clone(),
            name: "Slot 1".into(),
            status: "available".into(),
            cqrs_revision: 0,
            cqrs_updated: chrono::Utc::now().naive_utc(),
        }
        .cqrs_insert(&mut *db.primary().unwrap())
        .unwrap();
        let written = Written::of(&slot);
        assert_eq!(written.revision, 0);
        let start = Instant::now();
        let read = db
            .read_after(&written, Duration::from_secs(20), get(key.clone()))
            .await
            .unwrap()
            .expect("the replica has the row");
        eprintln!("{cqrs_id}: read-your-writes after a create: {:?}", start.elapsed());
        assert_eq!((read.name.as_str(), read.status.as_str()), ("Slot 1", "available"));
        assert_eq!(read.uuid, key);

        // the read model is read-only: a write through a read fails, and changes nothing
        let error = db
            .read(|conn| {
                diesel::update(replica::$table::table.find(key.clone()))
                    .set(replica::$table::name.eq("written by a reader"))
                    .execute(conn)
            })
            .unwrap_err();
        assert!(
            error.to_string().to_lowercase().contains("read"),
            "a write on the read model must be refused: {error}"
        );

        // reads come from the replica: a change made by hand there is what a read shows
        <$conn>::cqrs_connect(&replica_url)
            .unwrap()
            .batch_execute(&format!(
                "UPDATE {} SET name = 'changed by hand'",
                stringify!($table)
            ))
            .unwrap();
        let read = db.read(get(key.clone())).unwrap().unwrap();
        assert_eq!(read.name, "changed by hand");

        // book: read-your-writes returns the booked state, with no sleep
        let booked = $master::cqrs_update(&mut *db.primary().unwrap(), &key, |s| {
            s.status = "booked".into();
        })
        .unwrap();
        let read = db
            .read_after(&Written::of(&booked), Duration::from_secs(20), get(key.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((read.status.as_str(), read.cqrs_revision), ("booked", 1));
        assert_eq!(read.name, "Slot 1", "the master's update carries every field");
        assert_eq!(db.lag(cqrs_id).unwrap(), Duration::ZERO);

        // without a consumer: the wait times out with a typed error, never hangs
        consumer.stop().await;
        let released = $master::cqrs_update(&mut *db.primary().unwrap(), &key, |s| {
            s.status = "available".into();
        })
        .unwrap();
        let start = Instant::now();
        let error = db
            .wait_applied(&Written::of(&released), Duration::from_millis(300))
            .await
            .unwrap_err();
        let waited = start.elapsed();
        assert!(
            matches!(&error, SplitError::NotApplied { revision: 2, waited, .. } if *waited >= Duration::from_millis(300)),
            "{error:?}"
        );
        assert!(waited < Duration::from_secs(3), "the timeout is kept: {waited:?}");
        assert!(error.to_string().contains("revision 2"), "{error}");

        // bounded staleness: too far behind reads the primary, within the bound the replica
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(db.lag(cqrs_id).unwrap() >= Duration::from_millis(60));
        let status = |conn: &mut $conn, source: Source| match source {
            Source::Replica => replica::$table::table
                .find(key.clone())
                .select(replica::$table::status)
                .first::<String>(conn),
            Source::Primary => primary::$table::table
                .find(key.clone())
                .select(primary::$table::status)
                .first::<String>(conn),
        };
        let (value, source) = db
            .read_bounded(cqrs_id, Duration::from_millis(20), status)
            .unwrap();
        assert_eq!((value.as_str(), source), ("available", Source::Primary));
        let (value, source) = db
            .read_bounded(cqrs_id, Duration::from_hours(1), status)
            .unwrap();
        assert_eq!((value.as_str(), source), ("booked", Source::Replica));

        // the consumer back: the wait returns, the replica is current again
        let consumer = start_consumer::<$conn>(&config, &replica_url, cqrs_id).await;
        db.wait_applied(&Written::of(&released), Duration::from_secs(20))
            .await
            .unwrap();
        let (value, source) = db
            .read_bounded(cqrs_id, Duration::from_millis(20), status)
            .unwrap();
        assert_eq!((value.as_str(), source), ("available", Source::Replica));

        // a delete: waited for like a save
        let deleted = Written::delete_of(&released);
        assert!(released.cqrs_delete(&mut *db.primary().unwrap()).unwrap());
        db.wait_applied(&deleted, Duration::from_secs(20)).await.unwrap();
        assert!(db.read(get(key.clone())).unwrap().is_none());

        consumer.stop().await;
        let _ = stop_relay.send(());
        relay.await.unwrap().unwrap();
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_split_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    scenario!(
        diesel::SqliteConnection,
        Slot,
        SlotRead,
        parking_slots,
        UuidText::from(uuid::Uuid::new_v4()),
        path("primary.sqlite3"),
        path("replica.sqlite3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_split_postgres() {
    scenario!(
        diesel::PgConnection,
        PgSlot,
        PgSlotRead,
        pg_parking_slots,
        uuid::Uuid::new_v4(),
        common::pg_schema_url(),
        common::pg_schema_url()
    );
}

/// A database that cannot be opened fails `connect` at once, with the reason; a bad UUID is
/// refused with what was wrong.
#[test]
fn bad_databases_and_keys_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ok.sqlite3").display().to_string();
    let missing = dir
        .path()
        .join("no/such/dir/replica.sqlite3")
        .display()
        .to_string();
    let error =
        ReadWrite::<diesel::SqliteConnection>::connect(&good, &missing, &PoolConfig::default())
            .unwrap_err();
    assert!(error.to_string().contains("unable to open"), "{error}");
    let start = Instant::now();
    let error = ReadWrite::<diesel::PgConnection>::connect(
        "postgres://nobody@127.0.0.1:1/none",
        &good,
        &PoolConfig::default(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("cannot connect"), "{error}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "no pool-timeout wait"
    );
    let error = "not-a-uuid".parse::<UuidText>().unwrap_err();
    assert!(error.to_string().to_lowercase().contains("uuid"), "{error}");
    let error = PoolConfig::from_lookup(&|name| (name == "CQRS_POOL_SIZE").then(|| "0".into()))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "CQRS_POOL_SIZE: `0` is not a whole number from 1 to 1000"
    );
}
