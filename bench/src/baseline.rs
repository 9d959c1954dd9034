//! The machine's limit, side by side with the framework: (a) a plain lapin publisher with
//! confirms and persistent messages and a consumer acking in batches, no database; (b) the
//! ideal pipeline: the same consumer upserting each batch into the database in one
//! transaction and acking after the commit. No framework in either.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use anyhow::Context;
use diesel::prelude::*;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use serde_json::Value;

use crate::models::schema::ideal_items;

/// Publishes every body to `exchange` with confirms, persistent, up to 512 unconfirmed.
pub async fn publish_all(
    amqp: &str,
    exchange: &str,
    messages: &[(String, String)],
) -> anyhow::Result<()> {
    let conn = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let properties = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_delivery_mode(2);
    let mut pending = VecDeque::new();
    for (routing_key, body) in messages {
        let confirm = channel
            .basic_publish(
                exchange.into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                properties.clone(),
            )
            .await?;
        pending.push_back(confirm);
        if pending.len() >= 512
            && let Some(front) = pending.pop_front()
        {
            anyhow::ensure!(front.await?.is_ack(), "nack");
        }
    }
    for confirm in pending {
        anyhow::ensure!(confirm.await?.is_ack(), "nack");
    }
    conn.close(200, "done".into()).await?;
    Ok(())
}

/// Declares `exchange`, a durable topic exchange.
pub async fn declare_exchange(channel: &lapin::Channel, exchange: &str) -> anyhow::Result<()> {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declares a durable queue bound to `routing_key` on `exchange`.
pub async fn declare(
    channel: &lapin::Channel,
    exchange: &str,
    queue: &str,
    routing_key: &str,
) -> anyhow::Result<()> {
    declare_exchange(channel, exchange).await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// One message as the ideal consumer keeps it.
struct Row {
    id: i32,
    title: String,
    body: String,
    price: f64,
    version: i32,
    revision: i32,
}

fn parse(data: &[u8]) -> anyhow::Result<(i32, Option<Row>)> {
    let value: Value = serde_json::from_slice(data)?;
    let d = &value["instance_data"];
    let id = i32::try_from(d["id"].as_i64().context("id")?)?;
    if value["signal_type"] == "DELETE" {
        return Ok((id, None));
    }
    Ok((
        id,
        Some(Row {
            id,
            title: d["title"].as_str().unwrap_or_default().to_owned(),
            body: d["body"].as_str().unwrap_or_default().to_owned(),
            price: d["price"].as_f64().unwrap_or_default(),
            version: i32::try_from(d["version"].as_i64().unwrap_or_default())?,
            revision: i32::try_from(d["cqrs_revision"].as_i64().unwrap_or_default())?,
        }),
    ))
}

macro_rules! ideal_apply {
    ($name:ident, $conn:ty) => {
        /// One transaction: the batch's deletes, then one multi-row upsert of the latest
        /// version of each row.
        fn $name(conn: &mut $conn, batch: BTreeMap<i32, Option<Row>>) -> QueryResult<()> {
            use ideal_items::dsl;
            conn.transaction(|conn| {
                let deletes: Vec<i32> = batch
                    .iter()
                    .filter(|(_, r)| r.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                if !deletes.is_empty() {
                    diesel::delete(dsl::ideal_items.filter(dsl::id.eq_any(&deletes)))
                        .execute(conn)?;
                }
                let rows: Vec<_> = batch
                    .values()
                    .flatten()
                    .map(|r| {
                        (
                            dsl::id.eq(r.id),
                            dsl::title.eq(&r.title),
                            dsl::body.eq(&r.body),
                            dsl::price.eq(r.price),
                            dsl::version.eq(r.version),
                            dsl::revision.eq(r.revision),
                        )
                    })
                    .collect();
                for chunk in rows.chunks(1000) {
                    diesel::insert_into(dsl::ideal_items)
                        .values(chunk)
                        .on_conflict(dsl::id)
                        .do_update()
                        .set((
                            dsl::title.eq(diesel::upsert::excluded(dsl::title)),
                            dsl::body.eq(diesel::upsert::excluded(dsl::body)),
                            dsl::price.eq(diesel::upsert::excluded(dsl::price)),
                            dsl::version.eq(diesel::upsert::excluded(dsl::version)),
                            dsl::revision.eq(diesel::upsert::excluded(dsl::revision)),
                        ))
                        .execute(conn)?;
                }
                Ok(())
            })
        }
    };
}
ideal_apply!(apply_sqlite, diesel::SqliteConnection);
ideal_apply!(apply_pg, diesel::PgConnection);

enum Db {
    None,
    Sqlite(diesel::SqliteConnection),
    Pg(diesel::PgConnection),
}

/// Consumes `expect` messages from `queue` (in batches of up to `batch`, one multiple-ack per
/// batch after the optional database commit), then prints `{"done_us": ..., "rss_kb": ...}`.
pub async fn consume(
    amqp: &str,
    exchange: &str,
    queue: &str,
    database: Option<&str>,
    expect: usize,
    batch: usize,
) -> anyhow::Result<()> {
    use cqrs_core::db::CqrsConnection;
    let mut db = match database {
        None => Db::None,
        Some(url) if cqrs_core::db::Backend::of_url(url)?.is_postgres() => {
            Db::Pg(diesel::PgConnection::cqrs_connect(url)?)
        }
        Some(url) => Db::Sqlite(diesel::SqliteConnection::cqrs_connect(url)?),
    };
    let conn = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    declare(&channel, exchange, queue, "bench_item").await?;
    channel.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut handled = 0;
    let started = Instant::now();
    while handled < expect {
        let Some(first) = consumer.next().await else {
            anyhow::bail!("consumer cancelled")
        };
        let mut deliveries = vec![first?];
        while deliveries.len() < batch {
            match consumer.next().now_or_never() {
                Some(Some(Ok(d))) => deliveries.push(d),
                _ => break,
            }
        }
        let mut rows = BTreeMap::new();
        for d in &deliveries {
            let (id, row) = parse(&d.data)?;
            rows.insert(id, row);
        }
        match &mut db {
            Db::None => {}
            Db::Sqlite(c) => apply_sqlite(c, rows)?,
            Db::Pg(c) => apply_pg(c, rows)?,
        }
        if let Some(last) = deliveries.last() {
            channel
                .basic_ack(last.delivery_tag, BasicAckOptions { multiple: true })
                .await?;
        }
        handled += deliveries.len();
    }
    let _ = started;
    #[allow(clippy::print_stdout, reason = "the parent reads it")]
    {
        println!(
            "{}",
            serde_json::json!({
                "done_us": chrono::Utc::now().timestamp_micros(),
                "rss_kb": crate::proc::peak_rss_kb(std::process::id()),
                "cpu_s": crate::proc::cpu_seconds(std::process::id()),
            })
        );
    }
    conn.close(200, "done".into()).await?;
    Ok(())
}
