//! `status`: what replication looks like now, in one table, from the numbers `/metrics` shows:
//! the outbox's depth and age (read from the database as the relay's gauges are), the
//! service's queues (passive declares, as the consumer's gauges), and per `cqrs_id` what a
//! running consumer applied, ignored, retried and dead-lettered and its lag (scraped from its
//! `/metrics`, with `--metrics-url`).

use std::collections::BTreeMap;
use std::io::Write;

use cqrs_core::registry::Registered;

use crate::broker;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::telemetry::names;

/// One `cqrs_id`'s row of the table.
#[derive(Debug, Default, Clone)]
struct Row {
    applied: f64,
    ignored: f64,
    retried: f64,
    dead: f64,
    lag_last: Option<f64>,
    lag_sum: f64,
    lag_count: f64,
    retries_waiting: Option<u32>,
}

/// Prints the status of this service's replication (stdout).
pub(super) async fn run<C: Registered>(
    config: &Config,
    database_url: &str,
    metrics_url: Option<&str>,
) -> Result<()> {
    let mut lines = Vec::new();
    let url = database_url.to_owned();
    let stats = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut conn = C::cqrs_connect(&url)?;
        conn.cqrs_setup()?;
        Ok(conn.outbox_stats().map_err(cqrs_core::Error::from)?)
    })
    .await
    .map_err(Error::task("reading the outbox"))?;
    match stats {
        Ok(stats) => lines.push(format!(
            "outbox: {}{} message(s) waiting, first due waited {:.3} s",
            if stats.exact { "" } else { "about " },
            stats.depth,
            std::time::Duration::from_micros(
                u64::try_from(stats.oldest_due_micros.unwrap_or(0)).unwrap_or(0)
            )
            .as_secs_f64()
        )),
        Err(error) => lines.push(format!("outbox: cannot read it ({error})")),
    }

    let mut rows: BTreeMap<String, Row> = C::replica_entries()
        .into_iter()
        .map(|e| (e.cqrs_id.to_owned(), Row::default()))
        .collect();
    if let Some(queue) = config.queue.as_deref() {
        queues(config, queue, &mut rows, &mut lines).await?;
    } else {
        lines.push("queues: CQRS_QUEUE is not set".to_owned());
    }
    if let Some(url) = metrics_url {
        scrape(url, &mut rows).await?;
    }

    let mut out = std::io::stdout().lock();
    let io = |e| Error::Io {
        context: "cannot write to stdout".to_owned(),
        source: e,
    };
    for line in lines {
        writeln!(out, "{line}").map_err(io)?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{:<24} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11} {:>15}",
        "cqrs_id",
        "applied",
        "ignored",
        "retried",
        "dead",
        "lag_last_s",
        "lag_mean_s",
        "retries_waiting"
    )
    .map_err(io)?;
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    for (cqrs_id, row) in &rows {
        let scraped = metrics_url.is_some();
        let count = |v: f64| {
            if scraped {
                format!("{v:.0}")
            } else {
                "-".to_owned()
            }
        };
        writeln!(
            out,
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11} {:>15}",
            cqrs_id,
            count(row.applied),
            count(row.ignored),
            count(row.retried),
            count(row.dead),
            or_dash(row.lag_last.map(|v| format!("{v:.3}"))),
            or_dash((row.lag_count > 0.0).then(|| format!("{:.3}", row.lag_sum / row.lag_count))),
            or_dash(row.retries_waiting.map(|v| v.to_string())),
        )
        .map_err(io)?;
    }
    if metrics_url.is_none() {
        writeln!(
            out,
            "(counts and lag come from a running consumer: --metrics-url http://HOST:PORT/metrics)"
        )
        .map_err(io)?;
    }
    Ok(())
}

/// The service's queue, dead-letter queue and delay queues (retries waiting per model).
async fn queues(
    config: &Config,
    queue: &str,
    rows: &mut BTreeMap<String, Row>,
    lines: &mut Vec<String>,
) -> Result<()> {
    let connection = broker::connect(&config.url, "cqrs-status").await?;
    // a missing queue closes its channel: one channel per look
    let look = |name: String| {
        let connection = &connection;
        async move {
            let channel = connection.create_channel().await.ok()?;
            let found = broker::inspect_queue(&channel, &name).await.ok();
            if found.is_some() {
                let _ = channel.close(200, "status".into()).await;
            }
            found
        }
    };
    match look(queue.to_owned()).await {
        Some(q) => lines.push(format!(
            "queue {queue}: {} ready, {} consumer(s)",
            q.message_count(),
            q.consumer_count()
        )),
        None => lines.push(format!(
            "queue {queue}: absent (no consumer declared it yet)"
        )),
    }
    let dlq = config.dead_letter_queue()?;
    match look(dlq.clone()).await {
        Some(q) => lines.push(format!("dead letters ({dlq}): {}", q.message_count())),
        None => lines.push(format!("dead letters ({dlq}): absent")),
    }
    for (cqrs_id, row) in rows.iter_mut() {
        row.retries_waiting = look(cqrs_core::message::delay_queue(queue, cqrs_id))
            .await
            .map(|q| q.message_count());
    }
    let _ = connection.close(200, "status".into()).await;
    Ok(())
}

/// Adds a running consumer's counters and lag (its `/metrics`) to the rows.
async fn scrape(url: &str, rows: &mut BTreeMap<String, Row>) -> Result<()> {
    let target = url.to_owned();
    let body = tokio::task::spawn_blocking(move || -> std::result::Result<String, String> {
        let mut response = ureq::get(&target).call().map_err(|e| e.to_string())?;
        response
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(Error::task("reading the metrics"))?
    .map_err(|e| Error::Input(format!("cannot read the metrics at {url}: {e}")))?;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .map_err(|e| Error::Input(format!("{url} is not Prometheus text format: {e}")))?;
    for sample in scrape.samples {
        let Some(cqrs_id) = sample.labels.get("cqrs_id") else {
            continue;
        };
        let Some(row) = rows.get_mut(cqrs_id) else {
            continue;
        };
        let value = match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            _ => continue,
        };
        let metric = sample.metric.as_str();
        match metric {
            names::CONSUMER_APPLIED => row.applied += value,
            names::CONSUMER_IGNORED => row.ignored += value,
            names::CONSUMER_RETRIED => row.retried += value,
            names::CONSUMER_DEAD_LETTERED => row.dead += value,
            names::REPLICATION_LAG_LAST => row.lag_last = Some(value),
            _ if metric == format!("{}_sum", names::REPLICATION_LAG) => row.lag_sum += value,
            _ if metric == format!("{}_count", names::REPLICATION_LAG) => row.lag_count += value,
            _ => {}
        }
    }
    Ok(())
}
