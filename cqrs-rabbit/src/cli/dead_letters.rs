//! The dead-letter tools (django-cqrs's `cqrs_dead_letters dump|retry|purge`), with the same
//! output. They work on any service's queues, django-cqrs ones included: they declare nothing,
//! and a retry goes to `cqrs.<queue>.<cqrs_id>` (or straight into the queue if that key is not
//! bound).

use std::io::Write;

use chrono::Utc;
use cqrs_core::message::routing_key;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueuePurgeOptions};
use lapin::types::ShortString;
use serde_json::Value;

use crate::broker;
use crate::config::Config;
use crate::error::{Error, Result};

/// `dead-letters` actions.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum DeadLetterAction {
    /// Print every dead letter (one body per line) and leave them in the queue.
    Dump,
    /// Re-publish every dead letter to this service's queue with `retries` 0.
    Retry,
    /// Delete every dead letter.
    Purge,
}

/// Runs one action on this service's dead-letter queue; prints to standard output.
#[allow(clippy::too_many_lines, reason = "one arm per dead-letter action")]
pub(super) async fn run(config: &Config, action: DeadLetterAction) -> Result<()> {
    let queue = config.queue()?.to_owned();
    let dlq = config.dead_letter_queue()?;
    let connection = broker::connect(&config.url, "cqrs-dead-letters").await?;
    let lapin_error = |action: &'static str| move |e| config.url.error(action, e);
    let channel = broker::confirm_channel(&connection, &config.url).await?;
    // Only look: the queues belong to the consuming service (which may be a django-cqrs one).
    let count = broker::inspect_queue(&channel, &dlq)
        .await
        .map_err(|e| Error::NoDeadLetterQueue {
            dlq: dlq.clone(),
            queue: queue.clone(),
            url: config.url.to_string(),
            detail: config.url.redact(&e.to_string()),
            source: Box::new(e),
        })?
        .message_count();
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock<'_>, line: &str| {
        writeln!(out, "{line}").map_err(|e| Error::Io {
            context: "cannot write to stdout".to_owned(),
            source: e,
        })
    };
    let get = |channel: &lapin::Channel| {
        let dlq = dlq.clone();
        let channel = channel.clone();
        async move {
            channel
                .basic_get(ShortString::from(dlq), BasicGetOptions { no_ack: false })
                .await
                .map_err(lapin_error("get a dead letter"))
        }
    };
    match action {
        DeadLetterAction::Dump => {
            let mut last = None;
            for _ in 0..count {
                let Some(message) = get(&channel).await? else {
                    break;
                };
                write(&mut out, &String::from_utf8_lossy(&message.delivery.data))?;
                last = Some(message.delivery.delivery_tag);
            }
            if let Some(tag) = last {
                // leave them all in the queue
                broker::requeue_up_to(&channel, tag, &config.url, "requeue dead letters").await?;
            }
        }
        DeadLetterAction::Retry => {
            write(&mut out, &format!("Total dead letters: {count}"))?;
            let ttl = config
                .message_ttl
                .unwrap_or(cqrs_core::settings::DEFAULT_MESSAGE_TTL);
            let mut kept = None;
            for i in 1..=count {
                let Some(message) = get(&channel).await? else {
                    break;
                };
                write(&mut out, &format!("Retrying: {i}/{count}"))?;
                let tag = message.delivery.delivery_tag;
                let mut body: Value = if let Ok(body @ Value::Object(_)) =
                    serde_json::from_slice(&message.delivery.data)
                {
                    body
                } else {
                    eprintln!("dead letter {i} is not a JSON object; left in the queue");
                    kept = Some(tag);
                    continue;
                };
                let Some(cqrs_id) = body
                    .get("cqrs_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    eprintln!("dead letter {i} has no cqrs_id; left in the queue");
                    kept = Some(tag);
                    continue;
                };
                body["retries"] = Value::from(0);
                if body.get("expires").is_some_and(|e| !e.is_null()) {
                    let expires = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
                    body["expires"] = Value::from(cqrs_core::value::format_expires(&expires));
                }
                let text = body.to_string();
                let key = routing_key(&cqrs_id, Some(&queue));
                broker::publish_confirmed(
                    &channel,
                    &config.exchange,
                    &key,
                    text.as_bytes(),
                    None,
                    Some(&queue),
                )
                .await?;
                write(&mut out, &text)?;
                channel
                    .basic_ack(tag, BasicAckOptions::default())
                    .await
                    .map_err(lapin_error("acknowledge a dead letter"))?;
            }
            if let Some(tag) = kept {
                broker::requeue_up_to(&channel, tag, &config.url, "requeue dead letters").await?;
            }
        }
        DeadLetterAction::Purge => {
            write(&mut out, &format!("Total dead letters: {count}"))?;
            if count > 0 {
                channel
                    .queue_purge(ShortString::from(dlq.clone()), QueuePurgeOptions::default())
                    .await
                    .map_err(lapin_error("purge the dead-letter queue"))?;
                write(&mut out, "Purged")?;
            }
        }
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}
