//! A real 3-node RabbitMQ cluster (scripts/test starts it: CLUSTER_AMQP_ADDRS, CLUSTER_NODES)
//! with quorum queues: the node the relay is connected to is killed (SIGKILL) while the master
//! writes, then the node the consumer is connected to, which stays down for 30 s; both come
//! back and rejoin by themselves. The relay and the consumer move to a surviving node, and the
//! replica ends equal to the master: nothing lost, nothing resurrected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]
#![allow(
    clippy::similar_names,
    reason = "the names of a scenario's pairs (before/after, master/replica)"
)]

mod common;

use cqrs_core::db::OutboxReader;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::Book;
use common::books::{Running, rows_master, sqlite_db};
use cqrs_core::prelude::*;
use cqrs_rabbit::{BrokerUrl, Consumer, Relay};
use diesel::SqliteConnection;

/// The cluster's nodes: (node name, AMQP URL).
fn nodes() -> Vec<(String, String)> {
    let names = std::env::var("CLUSTER_NODES").expect("CLUSTER_NODES: run scripts/test");
    let urls = std::env::var("CLUSTER_AMQP_ADDRS").expect("CLUSTER_AMQP_ADDRS");
    names
        .split(',')
        .map(str::to_owned)
        .zip(urls.split(',').map(str::to_owned))
        .collect()
}

fn services_dir() -> std::path::PathBuf {
    std::env::var_os("SERVICES_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/services"),
        std::path::PathBuf::from,
    )
}

/// `name@localhost` without the host: the services directory's name of the node.
fn short(node: &str) -> &str {
    node.split('@').next().unwrap()
}

/// SIGKILL of a node's Erlang VM, by its pid file.
fn kill_node(node: &str) {
    let pid_file = services_dir()
        .join(format!("rabbitmq-{}", short(node)))
        .join("pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let status = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {node}");
    eprintln!("killed {node}");
}

/// Starts a killed node again, on its port and with its data: it rejoins the cluster.
fn restart_node(node: &str) {
    let dir = services_dir().join(format!("rabbitmq-{}", short(node)));
    let port = std::fs::read_to_string(dir.join("port")).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lib/services.sh");
    let status = Command::new("bash")
        .args([
            "-c",
            &format!(
                "source {script} && start_rabbitmq {} {}",
                short(node),
                port.trim()
            ),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        // a file, not this process's stderr: the node outlives the command and would hold
        // the test runner's pipe open
        .stderr(std::fs::File::create(dir.join("restart.log")).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "restart {node}");
    eprintln!("restarted {node}");
}

/// How many nodes `node` sees running in its cluster.
fn running_nodes(node: &str) -> usize {
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "-n",
            node,
            "eval",
            "length(rabbit_nodes:all_running()).",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the 3-node RabbitMQ cluster (CLUSTER_AMQP_ADDRS): run scripts/test"]
async fn node_failures_lose_nothing() {
    common::logs();
    let nodes = nodes();
    assert_eq!(nodes.len(), 3, "three nodes");
    let urls: Vec<&str> = nodes.iter().map(|(_, u)| u.as_str()).collect();
    // the relay prefers node 1, the consumer node 2
    let mut relay_config = common::rabbit::config("cluster");
    relay_config.quorum_queues = true;
    relay_config.url = BrokerUrl::parse(&urls.join(",")).unwrap();
    let mut consumer_config = relay_config.clone();
    consumer_config.url = BrokerUrl::parse(&[urls[1], urls[2], urls[0]].join(",")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let master = sqlite_db(&dir, "master.sqlite3");
    let replica = sqlite_db(&dir, "replica.sqlite3");
    let consumer = Consumer::<SqliteConnection>::new(consumer_config, &replica);
    consumer.check().await.unwrap();
    let relay = Relay::<SqliteConnection>::new(relay_config, &master);
    let (consumer_metrics, relay_metrics) = (consumer.metrics(), relay.metrics());
    let mut running = Running::new();
    running.spawn(|stop| consumer.run(stop));
    running.spawn(|stop| relay.run(stop));

    // 10,000 writes at about 1,000/s: creates, updates, and deletes of every 10th row
    let writer_url = master.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut conn = SqliteConnection::cqrs_connect(&writer_url).unwrap();
        let start = Instant::now();
        let mut writes = 0u32;
        let mut id = 0;
        while writes < 10_000 {
            id += 1;
            Book::new(id, &format!("Book {id}"))
                .cqrs_insert(&mut conn)
                .unwrap();
            writes += 1;
            if id > 3 {
                Book::cqrs_update(&mut conn, &(id - 3), |b| b.title.push('+')).unwrap();
                writes += 1;
            }
            if id % 10 == 0 && id > 5 {
                Book::cqrs_delete_pk(&mut conn, &(id - 5)).unwrap();
                writes += 1;
            }
            let due = Duration::from_millis(u64::from(writes));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        writes
    });

    tokio::time::sleep(Duration::from_secs(2)).await;
    let published = relay_metrics.published.load(Ordering::Relaxed);
    assert!(published > 0, "published before the first failure");
    // the relay's node dies mid-stream, and comes back
    kill_node(&nodes[0].0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let node = nodes[0].0.clone();
    tokio::task::spawn_blocking(move || restart_node(&node))
        .await
        .unwrap();
    // then the consumer's node dies, and stays down for 30 s
    kill_node(&nodes[1].0);
    let writes = writer.await.unwrap();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    let node = nodes[1].0.clone();
    tokio::task::spawn_blocking(move || restart_node(&node))
        .await
        .unwrap();
    let start = Instant::now();
    while running_nodes(&nodes[2].0) != 3 {
        assert!(
            start.elapsed() < Duration::from_mins(1),
            "the restarted nodes rejoin by themselves"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // the replica converges to the master, and the outbox drains
    common::books::wait_equal(&master, &replica, Duration::from_mins(3)).await;
    let mut conn = SqliteConnection::cqrs_connect(&master).unwrap();
    assert_eq!(conn.outbox_pending().unwrap(), 0, "the outbox drained");
    assert!(
        relay_metrics.reconnects.load(Ordering::Relaxed) > 0,
        "the relay failed over"
    );
    assert!(
        consumer_metrics.reconnects.load(Ordering::Relaxed) > 0,
        "the consumer failed over"
    );
    assert!(relay_metrics.published.load(Ordering::Relaxed) >= u64::from(writes));
    eprintln!(
        "cluster: {writes} writes, {} published, {} handled, {} rows equal",
        relay_metrics.published.load(Ordering::Relaxed),
        consumer_metrics.handled(),
        rows_master(&master).len()
    );
    running.stop().await;
}
