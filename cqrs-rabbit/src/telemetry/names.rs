//! The names of the framework's metrics, one place for the code, the README and the dashboard.
//!
//! Counters end in `_total`, durations are in seconds (`_seconds`), and the labels are bounded:
//! `cqrs_id` (a model of the binary, `unknown` for a message no model here reads), `exchange`,
//! `reason`, `outcome`, `cause`, `queue`, a handler's `routing_key`; never a primary key.

/// Relay: messages the broker confirmed and the outbox forgot, by `exchange` and `cqrs_id`
/// (empty for an event).
pub const RELAY_PUBLISHED: &str = "cqrs_relay_published_total";
/// Relay: messages the broker refused (nack); they stay in the outbox.
pub const RELAY_REFUSED: &str = "cqrs_relay_refused_total";
/// Relay: messages no queue was bound for (returned), by `exchange` and `cqrs_id`.
pub const RELAY_UNROUTABLE: &str = "cqrs_relay_unroutable_total";
/// Relay: reconnections, by `cause` (`broker`, `database`).
pub const RELAY_RECONNECTS: &str = "cqrs_relay_reconnects_total";
/// Relay: seconds from a message's publish to its broker confirm.
pub const RELAY_CONFIRM_SECONDS: &str = "cqrs_relay_confirm_seconds";
/// Relay: messages per outbox batch.
pub const RELAY_BATCH_SIZE: &str = "cqrs_relay_batch_messages";
/// Relay: messages waiting in the outbox (exact up to 10,000, then the id span).
pub const OUTBOX_DEPTH: &str = "cqrs_outbox_messages";
/// Relay: how long the first due message of the outbox has waited (0 when none waits).
pub const OUTBOX_OLDEST_AGE: &str = "cqrs_outbox_oldest_age_seconds";

/// Consumer: deliveries received, by `cqrs_id`.
pub const CONSUMER_RECEIVED: &str = "cqrs_consumer_received_total";
/// Consumer: messages applied, by `cqrs_id` and `outcome` (`created`, `updated`, `deleted`,
/// `already_absent`).
pub const CONSUMER_APPLIED: &str = "cqrs_consumer_applied_total";
/// Consumer: messages acknowledged without change, by `cqrs_id` and `reason` (`stale`,
/// `duplicate`, `older_than_delete`, `stale_delete`, `broadcast_sync`).
pub const CONSUMER_IGNORED: &str = "cqrs_consumer_ignored_total";
/// Consumer: messages sent to wait for a retry, by `cqrs_id`.
pub const CONSUMER_RETRIED: &str = "cqrs_consumer_retried_total";
/// Consumer: messages moved to the dead-letter queue, by `cqrs_id` and `reason`
/// (`permanent_error`, `retries_exhausted`, `expired`, `malformed`, `unknown_model`,
/// `too_large`).
pub const CONSUMER_DEAD_LETTERED: &str = "cqrs_consumer_dead_lettered_total";
/// Consumer: broker reconnections.
pub const CONSUMER_RECONNECTS: &str = "cqrs_consumer_reconnects_total";
/// Consumer: seconds of one batch's database transaction.
pub const CONSUMER_BATCH_SECONDS: &str = "cqrs_consumer_batch_seconds";
/// Consumer: messages per database transaction.
pub const CONSUMER_BATCH_SIZE: &str = "cqrs_consumer_batch_messages";
/// Consumer: seconds from the master's commit (`cqrs_updated`) to the replica's commit, by
/// `cqrs_id`.
pub const REPLICATION_LAG: &str = "cqrs_replication_lag_seconds";
/// Consumer: the latest replication lag, by `cqrs_id`.
pub const REPLICATION_LAG_LAST: &str = "cqrs_replication_lag_last_seconds";
/// Consumer: messages ready in a queue of this service (its queue, delay queues, dead-letter
/// queue), by `queue`; read with passive declares every few seconds.
pub const QUEUE_MESSAGES: &str = "cqrs_queue_messages";
/// Consumer: consumers attached to a queue of this service, by `queue`.
pub const QUEUE_CONSUMERS: &str = "cqrs_queue_consumers";

/// Handlers: event, command and call messages, by `exchange`, `routing_key` and `outcome`
/// (`handled`, `expired`, `ignored` (a duplicate, or no handler), `retried`, `dead_lettered`).
pub const HANDLER_MESSAGES: &str = "cqrs_handler_messages_total";
/// Handlers: seconds of one batch's database transaction.
pub const HANDLER_BATCH_SECONDS: &str = "cqrs_handler_batch_seconds";

/// Every metric name above (for tools and tests that check a dashboard or a scrape).
pub const ALL: &[&str] = &[
    RELAY_PUBLISHED,
    RELAY_REFUSED,
    RELAY_UNROUTABLE,
    RELAY_RECONNECTS,
    RELAY_CONFIRM_SECONDS,
    RELAY_BATCH_SIZE,
    OUTBOX_DEPTH,
    OUTBOX_OLDEST_AGE,
    CONSUMER_RECEIVED,
    CONSUMER_APPLIED,
    CONSUMER_IGNORED,
    CONSUMER_RETRIED,
    CONSUMER_DEAD_LETTERED,
    CONSUMER_RECONNECTS,
    CONSUMER_BATCH_SECONDS,
    CONSUMER_BATCH_SIZE,
    REPLICATION_LAG,
    REPLICATION_LAG_LAST,
    QUEUE_MESSAGES,
    QUEUE_CONSUMERS,
    HANDLER_MESSAGES,
    HANDLER_BATCH_SECONDS,
];

/// Buckets of the `_seconds` histograms: 0.5 ms to 5 min.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// Buckets of the batch-size histograms.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// Registers the help text of every metric with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        RELAY_PUBLISHED,
        "Messages confirmed by the broker and removed from the outbox"
    );
    describe_counter!(
        RELAY_REFUSED,
        "Messages the broker refused; they stay in the outbox"
    );
    describe_counter!(RELAY_UNROUTABLE, "Messages no queue was bound for");
    describe_counter!(RELAY_RECONNECTS, "Relay reconnections, by cause");
    describe_histogram!(
        RELAY_CONFIRM_SECONDS,
        Unit::Seconds,
        "Publish to broker confirm"
    );
    describe_histogram!(RELAY_BATCH_SIZE, Unit::Count, "Messages per outbox batch");
    describe_gauge!(OUTBOX_DEPTH, Unit::Count, "Messages waiting in the outbox");
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the first due unpublished message"
    );
    describe_counter!(CONSUMER_RECEIVED, "Deliveries received");
    describe_counter!(CONSUMER_APPLIED, "Messages applied to the replica");
    describe_counter!(
        CONSUMER_IGNORED,
        "Messages acknowledged without change, by reason"
    );
    describe_counter!(CONSUMER_RETRIED, "Messages sent to wait for a retry");
    describe_counter!(
        CONSUMER_DEAD_LETTERED,
        "Messages moved to the dead-letter queue, by reason"
    );
    describe_counter!(CONSUMER_RECONNECTS, "Consumer broker reconnections");
    describe_histogram!(
        CONSUMER_BATCH_SECONDS,
        Unit::Seconds,
        "One replica batch transaction"
    );
    describe_histogram!(
        CONSUMER_BATCH_SIZE,
        Unit::Count,
        "Messages per replica transaction"
    );
    describe_histogram!(
        REPLICATION_LAG,
        Unit::Seconds,
        "Master commit to replica commit"
    );
    describe_gauge!(
        REPLICATION_LAG_LAST,
        Unit::Seconds,
        "Latest master-to-replica lag"
    );
    describe_gauge!(
        QUEUE_MESSAGES,
        Unit::Count,
        "Messages ready in a queue of this service"
    );
    describe_gauge!(
        QUEUE_CONSUMERS,
        Unit::Count,
        "Consumers of a queue of this service"
    );
    describe_counter!(
        HANDLER_MESSAGES,
        "Event, command and call messages, by handler and outcome"
    );
    describe_histogram!(
        HANDLER_BATCH_SECONDS,
        Unit::Seconds,
        "One handler batch transaction"
    );
}
