//! Helpers for tests against the real RabbitMQ of the test script (`AMQP_ADDR`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cqrs_rabbit::{BrokerUrl, Config};
use lapin::options::BasicGetOptions;

/// The broker of the test script.
pub fn amqp_url() -> String {
    std::env::var("AMQP_ADDR").expect("AMQP_ADDR is not set: run scripts/test")
}

/// A config with a private exchange and queue, so that tests can run in parallel.
pub fn config(name: &str) -> Config {
    let suffix = format!("{}_{}", std::process::id(), super::unique(name));
    Config {
        url: BrokerUrl::parse(&amqp_url()).unwrap(),
        exchange: format!("cqrs_test_{suffix}"),
        queue: Some(format!("replica_{suffix}")),
        retry_delay: Duration::from_millis(200),
        relay_poll: Some(Duration::from_millis(20)),
        batch_size: 50,
        ..Config::default()
    }
}

/// Waits (up to `timeout`) until `check` holds.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, what: &str, mut check: F) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `rabbitmqctl -n NODE ACTION` (stop_app, start_app), which must succeed.
pub fn rabbitmqctl(node: &str, action: &str) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(["-q", "-n", node, action])
        .status()
        .unwrap();
    assert!(status.success(), "rabbitmqctl {action}");
}

/// A channel on the test broker.
pub async fn channel() -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    (conn, channel)
}

/// Waits until a consumer consumes `queue` (its topology is then declared: bindings included).
pub async fn wait_for_consumer(queue: &str) {
    let start = Instant::now();
    loop {
        if queue_state(queue)
            .await
            .is_some_and(|q| q.consumer_count() > 0)
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_mins(1),
            "nobody consumes {queue}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages waiting in a queue.
pub async fn queue_len(channel: &lapin::Channel, queue: &str) -> u32 {
    cqrs_rabbit::broker::inspect_queue(channel, queue)
        .await
        .map_or(0, |q| q.message_count())
}

/// A queue's counts, or `None` when it does not exist (on a connection of its own: a passive
/// declare of a missing queue closes its channel).
pub async fn queue_state(queue: &str) -> Option<lapin::Queue> {
    let (conn, channel) = channel().await;
    let state = cqrs_rabbit::broker::inspect_queue(&channel, queue)
        .await
        .ok();
    let _ = conn.close(200, "".into()).await;
    state
}

/// Takes every message of a queue (acknowledging them): (routing key, body, expiration).
pub async fn drain(
    channel: &lapin::Channel,
    queue: &str,
) -> Vec<(String, Vec<u8>, Option<String>)> {
    let mut out = Vec::new();
    while let Some(msg) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let d = msg.delivery;
        out.push((
            d.routing_key.to_string(),
            d.data,
            d.properties.expiration().as_ref().map(ToString::to_string),
        ));
    }
    out
}
