//! What a Rust team writes without the framework, the peers of issue 16: the benchmark's
//! master workload in plain diesel, each write in its own transaction, and what each peer does
//! with the write's message:
//! - **plain**: nothing (the cost of the writes alone);
//! - **dual write**: publishes it with lapin after the commit, confirms awaited in a window
//!   (a crash between the commit and the publish loses the message);
//! - **outbox**: inserts it into `hand_outbox` in the write's transaction; [`relay`], a
//!   minimal relay (poll, publish with confirms, delete), sends it.
//!
//! The messages are django-cqrs bodies of the same rows, so the ideal consumer of
//! [`crate::baseline`] applies them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use diesel::prelude::*;
use lapin::BasicProperties;
use lapin::PublisherConfirm;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use serde_json::json;

use crate::models::schema::{bench_items, hand_outbox};
use crate::models::{BenchItem, item};

/// What a hand-written master does with each write's message.
pub enum Sink<'a> {
    /// Nothing: plain diesel writes.
    None,
    /// An outbox row in the write's transaction.
    Outbox,
    /// A publish after the commit.
    Publish(&'a mut Publisher),
}

/// The routing key of every message (the framework's, its `cqrs_id`).
pub const ROUTING_KEY: &str = "bench_item";

/// The django-cqrs body of a saved or deleted row.
fn body(row: &BenchItem, signal: &str) -> String {
    json!({
        "signal_type": signal,
        "cqrs_id": ROUTING_KEY,
        "instance_data": {
            "id": row.id,
            "title": row.title,
            "body": row.body,
            "price": row.price,
            "version": row.version,
            "cqrs_revision": row.cqrs_revision,
            "cqrs_updated": row.cqrs_updated.and_utc().to_rfc3339(),
        },
        "instance_pk": row.id,
        "previous_data": null,
        "correlation_id": null,
        "expires": null,
        "retries": 0,
    })
    .to_string()
}

/// A lapin channel in confirm mode, up to 512 publishes awaiting their confirms.
pub struct Publisher {
    runtime: tokio::runtime::Handle,
    channel: lapin::Channel,
    exchange: String,
    pending: VecDeque<PublisherConfirm>,
}

impl Publisher {
    /// Connects and declares `exchange` (a durable topic exchange, as the consumer does).
    pub async fn connect(amqp: &str, exchange: &str) -> anyhow::Result<(lapin::Connection, Self)> {
        let conn = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        crate::baseline::declare_exchange(&channel, exchange).await?;
        Ok((
            conn,
            Self {
                runtime: tokio::runtime::Handle::current(),
                channel,
                exchange: exchange.to_owned(),
                pending: VecDeque::new(),
            },
        ))
    }

    /// Publishes (persistent), from a blocking thread; waits for the oldest confirm once 512
    /// are pending.
    fn publish(&mut self, routing_key: &str, body: &str) -> anyhow::Result<()> {
        let properties = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(2);
        let confirm = self.runtime.block_on(self.channel.basic_publish(
            self.exchange.as_str().into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        ))?;
        self.pending.push_back(confirm);
        while self.pending.len() > 512 {
            self.confirm_one()?;
        }
        Ok(())
    }

    fn confirm_one(&mut self) -> anyhow::Result<()> {
        if let Some(front) = self.pending.pop_front() {
            anyhow::ensure!(self.runtime.block_on(front)?.is_ack(), "the broker nacked");
        }
        Ok(())
    }

    /// Waits for every pending confirm.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        while !self.pending.is_empty() {
            self.confirm_one()?;
        }
        Ok(())
    }
}

macro_rules! hand_written {
    ($workload:ident, $relay_take:ident, $conn:ty) => {
        /// The benchmark's workload (creates, an update of each, deletes of 10%), each write
        /// in its own transaction, its message going to `sink`; returns the writes.
        pub fn $workload(
            conn: &mut $conn,
            rows: i32,
            sink: &mut Sink<'_>,
        ) -> anyhow::Result<usize> {
            use bench_items::dsl;
            let mut writes = 0;
            let mut write =
                |conn: &mut $conn,
                 change: &dyn Fn(&mut $conn) -> QueryResult<(BenchItem, &'static str)>|
                 -> anyhow::Result<()> {
                    let outbox = matches!(sink, Sink::Outbox);
                    let message = conn.transaction(|conn| {
                        let (row, signal) = change(conn)?;
                        let message = body(&row, signal);
                        if outbox {
                            diesel::insert_into(hand_outbox::table)
                                .values((
                                    hand_outbox::routing_key.eq(ROUTING_KEY),
                                    hand_outbox::body.eq(&message),
                                ))
                                .execute(conn)?;
                        }
                        QueryResult::Ok(message)
                    })?;
                    if let Sink::Publish(publisher) = sink {
                        publisher.publish(ROUTING_KEY, &message)?;
                    }
                    writes += 1;
                    Ok(())
                };
            for id in 1..=rows {
                write(conn, &|conn| {
                    let row = item(id);
                    diesel::insert_into(dsl::bench_items)
                        .values((
                            dsl::id.eq(row.id),
                            dsl::title.eq(&row.title),
                            dsl::body.eq(&row.body),
                            dsl::price.eq(row.price),
                            dsl::version.eq(row.version),
                            dsl::cqrs_revision.eq(row.cqrs_revision),
                            dsl::cqrs_updated.eq(row.cqrs_updated),
                        ))
                        .execute(conn)?;
                    Ok((row, "SAVE"))
                })?;
            }
            for id in 1..=rows {
                write(conn, &|conn| {
                    let row = diesel::update(dsl::bench_items.find(id))
                        .set((
                            dsl::title.eq(format!("Item {id} (revised)")),
                            dsl::version.eq(dsl::version + 1),
                            dsl::cqrs_revision.eq(dsl::cqrs_revision + 1),
                            dsl::cqrs_updated.eq(chrono::Utc::now().naive_utc()),
                        ))
                        .get_result::<BenchItem>(conn)?;
                    Ok((row, "SAVE"))
                })?;
            }
            for id in (1..=rows).step_by(10) {
                write(conn, &|conn| {
                    let mut row =
                        diesel::delete(dsl::bench_items.find(id)).get_result::<BenchItem>(conn)?;
                    row.cqrs_revision += 1;
                    Ok((row, "DELETE"))
                })?;
            }
            if let Sink::Publish(publisher) = sink {
                publisher.flush()?;
            }
            Ok(writes)
        }

        /// One cycle of the minimal relay: the oldest messages, published with confirms, then
        /// deleted; returns how many.
        fn $relay_take(conn: &mut $conn, publisher: &mut Publisher) -> anyhow::Result<usize> {
            use hand_outbox::dsl;
            let batch: Vec<(i64, String, String)> =
                dsl::hand_outbox.order(dsl::id).limit(500).load(conn)?;
            let Some(last) = batch.last().map(|m| m.0) else {
                return Ok(0);
            };
            for (_, routing_key, body) in &batch {
                publisher.publish(routing_key, body)?;
            }
            publisher.flush()?;
            diesel::delete(dsl::hand_outbox.filter(dsl::id.le(last))).execute(conn)?;
            Ok(batch.len())
        }
    };
}
hand_written!(workload_sqlite, take_sqlite, diesel::SqliteConnection);
hand_written!(workload_pg, take_pg, diesel::PgConnection);

/// The hand-written workload on the database at `url`.
pub fn workload(url: &str, rows: i32, sink: &mut Sink<'_>) -> anyhow::Result<usize> {
    use cqrs_core::db::CqrsConnection;
    if cqrs_core::db::Backend::of_url(url)?.is_postgres() {
        workload_pg(&mut diesel::PgConnection::cqrs_connect(url)?, rows, sink)
    } else {
        workload_sqlite(
            &mut diesel::SqliteConnection::cqrs_connect(url)?,
            rows,
            sink,
        )
    }
}

/// The minimal relay, from a blocking thread: polls `hand_outbox` every millisecond while it
/// is empty, until `stop`.
pub fn relay(url: &str, mut publisher: Publisher, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    use cqrs_core::db::CqrsConnection;
    enum Conn {
        Pg(diesel::PgConnection),
        Sqlite(diesel::SqliteConnection),
    }
    let mut conn = if cqrs_core::db::Backend::of_url(url)?.is_postgres() {
        Conn::Pg(diesel::PgConnection::cqrs_connect(url)?)
    } else {
        Conn::Sqlite(diesel::SqliteConnection::cqrs_connect(url)?)
    };
    while !stop.load(Ordering::Relaxed) {
        let taken = match &mut conn {
            Conn::Pg(c) => take_pg(c, &mut publisher),
            Conn::Sqlite(c) => take_sqlite(c, &mut publisher),
        };
        if taken.context("the hand-written relay")? == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}
