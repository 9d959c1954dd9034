//! Retries and dead letters: the one home of what happens to a message that failed.
//!
//! The model decides whether and when ([`cqrs_core::retry`]: a permanent error is never
//! retried; the default policy is django-cqrs's 30 retries, 2 s apart). A retry waits in the
//! broker, in the delay queue of its model (`cqrs.<queue>.delay.<cqrs_id>`): the message is
//! published there with the delay as its per-message TTL, and the queue dead-letters it back to
//! `cqrs.<queue>.<cqrs_id>` when the TTL runs out, so a restart of the consumer loses no retry.
//! A message that may not be retried is published to the dead-letter queue, with the
//! dead-message TTL. The delay queues are declared with the rest of the topology
//! (`topology.rs`).

use std::time::Duration;

use cqrs_core::message::{Message, delay_queue, routing_key};
use cqrs_core::registry::ReplicaOps;
use cqrs_core::retry::{RetryPolicy, may_retry};
use cqrs_core::value::pk_key;
use cqrs_core::{ApplyError, Outcome};
use lapin::Channel;

use crate::broker;
use crate::config::Config;
use crate::error::Result;
use crate::telemetry::{ConsumerMetrics, DeadReason};

/// What to do with a delivery once its work is done.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Applied or ignored: acknowledge.
    Ack,
    /// Failed, may be retried: publish the message (with `retries + 1`) to wait `delay`.
    Retry {
        cqrs_id: String,
        delay: Duration,
        body: String,
    },
    /// May not be retried: publish it to the dead-letter queue.
    Dead {
        /// `Some(cqrs_id)`: through the exchange with `cqrs.<dlq>.<cqrs_id>`; `None`: straight
        /// into the dead-letter queue (unknown model or unreadable body).
        cqrs_id: Option<String>,
        body: Vec<u8>,
        /// Why (the metric's `reason`).
        reason: DeadReason,
    },
}

/// The verdict on an applied message: acknowledge, retry (as the model's policy says) or
/// dead-letter. Logs and counts it.
pub(crate) fn verdict<C>(
    message: &Message,
    result: std::result::Result<Outcome, ApplyError>,
    ops: &dyn ReplicaOps<C>,
    policy: &RetryPolicy,
    metrics: &ConsumerMetrics,
) -> Verdict {
    let pk = pk_key(&message.instance_pk);
    let correlation_id = message.correlation_id.as_deref().unwrap_or("");
    let error = match result {
        Ok(outcome) => {
            metrics.count_outcome(outcome, &message.cqrs_id);
            tracing::trace!(cqrs_id = %message.cqrs_id, pk = %pk, correlation_id,
                retries = message.retries, signal = %message.signal_type, outcome = %outcome,
                "message handled");
            return Verdict::Ack;
        }
        Err(error) => error,
    };
    if may_retry(&error, || ops.should_retry(message.retries, &error, policy)) {
        let delay = ops.retry_delay(message.retries, policy);
        let mut retry = message.clone();
        retry.retries = message.retries.saturating_add(1);
        tracing::warn!(cqrs_id = %message.cqrs_id, pk = %pk, correlation_id,
            retries = retry.retries, ?delay, %error, "message failed; will retry");
        metrics.count_retry(&message.cqrs_id);
        Verdict::Retry {
            cqrs_id: message.cqrs_id.clone(),
            delay,
            body: retry.to_json(),
        }
    } else {
        let (reason, why) = if error.is_permanent() {
            (DeadReason::Permanent, "permanent error")
        } else {
            (DeadReason::RetriesExhausted, "retries exhausted")
        };
        tracing::error!(cqrs_id = %message.cqrs_id, pk = %pk, correlation_id,
            retries = message.retries, %error, reason = reason.as_str(),
            "message moved to the dead-letter queue ({why})");
        Verdict::Dead {
            cqrs_id: Some(message.cqrs_id.clone()),
            body: message.to_json().into_bytes(),
            reason,
        }
    }
}

/// Publishes what a verdict asks for (a retry into its delay queue, a dead letter), waiting
/// for the broker's confirm; nothing for an acknowledgement.
pub(crate) async fn publish_verdict(
    channel: &Channel,
    config: &Config,
    verdict: Verdict,
    metrics: &ConsumerMetrics,
) -> Result<()> {
    let queue = config.queue()?;
    match verdict {
        Verdict::Ack => Ok(()),
        Verdict::Retry {
            cqrs_id,
            delay,
            body,
        } => {
            if delay.is_zero() {
                let key = routing_key(&cqrs_id, Some(queue));
                broker::publish_confirmed(
                    channel,
                    &config.exchange,
                    &key,
                    body.as_bytes(),
                    None,
                    Some(queue),
                )
                .await
            } else {
                broker::publish_confirmed(
                    channel,
                    "",
                    &delay_queue(queue, &cqrs_id),
                    body.as_bytes(),
                    Some(delay),
                    None,
                )
                .await
            }
        }
        Verdict::Dead {
            cqrs_id,
            body,
            reason,
        } => {
            let dlq = config.dead_letter_queue()?;
            let ttl = config.dead_message_ttl;
            match &cqrs_id {
                Some(cqrs_id) => {
                    let key = routing_key(cqrs_id, Some(&dlq));
                    broker::publish_confirmed(
                        channel,
                        &config.exchange,
                        &key,
                        &body,
                        ttl,
                        Some(&dlq),
                    )
                    .await?;
                }
                None => broker::publish_confirmed(channel, "", &dlq, &body, ttl, None).await?,
            }
            metrics.count_dead_letter(cqrs_id.as_deref().unwrap_or("unknown"), reason);
            Ok(())
        }
    }
}
