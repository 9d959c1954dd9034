//! The depth of a consumer's queues (its queue, delay queues and dead-letter queue), read with
//! passive declares on a channel of their own every few seconds, for the queue gauges.

use std::time::Duration;

use lapin::Channel;

use crate::broker;

/// How often the queues are looked at.
const EVERY: Duration = Duration::from_secs(5);

/// Looks at `queues` every few seconds until the channel closes (the session ended) or the
/// task is aborted.
pub(crate) fn watch(channel: Channel, queues: Vec<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        loop {
            every.tick().await;
            for queue in &queues {
                match broker::inspect_queue(&channel, queue).await {
                    Ok(found) => {
                        super::queue_depth(queue, found.message_count(), found.consumer_count());
                    }
                    Err(error) => {
                        tracing::debug!(%error, queue, "queue depths: stopped looking");
                        return;
                    }
                }
            }
        }
    })
}
