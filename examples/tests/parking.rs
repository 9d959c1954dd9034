//! The parking service (one service, a primary and a replica database) over HTTP and its CLI,
//! with a real RabbitMQ: reads come from the replica, writes answer with read-your-writes, bad
//! input gets a clear status, and a database that is away fails only what needs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cqrs_examples::{Client, Service, free_port};
use serde_json::{Value, json};

const PARKING: &str = env!("CARGO_BIN_EXE_parking");

struct Parking {
    env: Vec<(&'static str, String)>,
    primary: String,
    replica: String,
}

impl Parking {
    fn new(dir: &Path, replica: &str) -> Self {
        Self::with_urls(
            dir.join("primary.sqlite3").display().to_string(),
            dir.join(replica).display().to_string(),
        )
    }

    fn with_urls(primary: String, replica: String) -> Self {
        let suffix = format!("{}_{}", std::process::id(), free_port().unwrap());
        Self {
            env: vec![
                (
                    "CQRS_BROKER_URL",
                    std::env::var("AMQP_ADDR").expect("AMQP_ADDR is not set: run scripts/test"),
                ),
                ("CQRS_EXCHANGE", format!("parking_{suffix}")),
                ("CQRS_QUEUE", format!("parking_{suffix}")),
                ("CQRS_RETRY_DELAY", "0.2".to_owned()),
                ("CQRS_POOL_TIMEOUT", "1".to_owned()),
                ("RUST_LOG", "warn".to_owned()),
            ],
            primary,
            replica,
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(PARKING);
        command
            .args([
                "--primary-url",
                &self.primary,
                "--replica-url",
                &self.replica,
            ])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("PARKING_PRIMARY_URL")
            .env_remove("PARKING_REPLICA_URL")
            .stdin(Stdio::null());
        command
    }

    fn serve(&self, port: u16) -> (Service, Client) {
        let child = self
            .command()
            .args(["serve", "--port", &port.to_string()])
            .spawn()
            .unwrap();
        let client = Client::new(port);
        client.wait_ready(Duration::from_secs(30)).unwrap();
        (Service(child), client)
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_line(output: &Output) -> String {
    assert!(!output.status.success(), "should fail");
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

/// `(status, body)` of a request.
fn call(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut response = match (method, body) {
        ("GET", _) => agent.get(&url).call().unwrap(),
        (_, Some(body)) => agent.post(&url).send_json(body).unwrap(),
        (_, None) => agent.post(&url).send_empty().unwrap(),
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn reads_come_from_the_replica_and_writes_are_read_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let parking = Parking::new(dir.path(), "replica.sqlite3");
    let port = free_port().unwrap();
    let (_service, client) = parking.serve(port);
    scenario(&parking, port, &client);
}

/// The same on two PostgreSQL databases (schemas), with the relay and the consumer as
/// processes of their own (`parking relay`, `parking consume`): the waits then poll.
#[test]
fn on_postgres_with_the_relay_and_the_consumer_apart() {
    let base =
        std::env::var("DATABASE_URL_PG").expect("DATABASE_URL_PG is not set: run scripts/test");
    let schema_url = |name: &str| {
        use diesel::connection::SimpleConnection;
        let schema = format!("{name}_{}_{}", std::process::id(), free_port().unwrap());
        <diesel::PgConnection as diesel::Connection>::establish(&base)
            .unwrap()
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-csearch_path%3D{schema}")
    };
    let parking = Parking::with_urls(schema_url("parking_primary"), schema_url("parking_replica"));
    assert!(parking.cli(&["migrate"]).status.success());
    // the consumer first: its queue must exist before the relay publishes
    let mut consume = parking.command();
    let mut consumer = consume
        .args(["consume"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = consumer.stderr.take().unwrap();
    let _consumer = Service(consumer);
    let (started_tx, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("consumer started") {
                let _ = started_tx.send(());
            }
        }
    });
    started
        .recv_timeout(Duration::from_mins(1))
        .expect("the consumer did not start");
    let _relay = Service(parking.command().args(["relay"]).spawn().unwrap());
    let port = free_port().unwrap();
    let child = parking
        .command()
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--no-relay",
            "--no-consumer",
        ])
        .spawn()
        .unwrap();
    let _web = Service(child);
    let client = Client::new(port);
    client.wait_ready(Duration::from_secs(30)).unwrap();
    scenario(&parking, port, &client);
}

/// Create, list, a hand-made change in the replica, book, bad input, the CLI.
fn scenario(parking: &Parking, port: u16, client: &Client) {
    // create, then list: the answer is the replica's row, so the list shows it at once
    let (status, created) = call(port, "POST", "/api/slots", Some(json!({"name": "Slot 1"})));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "available");
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    let list = client.get_json("/api/slots").unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "Slot 1");

    // a change made by hand in the replica is what the reads show: they never go to the primary
    diesel_exec(
        &parking.replica,
        "UPDATE parking_slots SET name = 'edited in the replica'",
    );
    let list = client.get_json("/api/slots").unwrap();
    assert_eq!(list[0]["name"], "edited in the replica");
    let lines = stdout(&parking.cli(&["parking-slot-list"]));
    assert!(lines.contains("edited in the replica"), "{lines}");
    let page = client.get_text("/").unwrap();
    assert!(page.contains("edited in the replica"), "{page}");

    // book: the answer is already the booked state, from the replica
    let start = Instant::now();
    let (status, booked) = call(port, "POST", &format!("/api/slots/{uuid}/book"), None);
    assert_eq!(status, 200, "{booked}");
    assert_eq!(
        (booked["status"].as_str(), booked["revision"].as_i64()),
        (Some("booked"), Some(1))
    );
    assert_eq!(
        booked["name"], "Slot 1",
        "the master's write carries every field"
    );
    eprintln!("book → replica read back: {:?}", start.elapsed());

    // bad input: a clear status and message, nothing written
    let (status, body) = call(port, "POST", &format!("/api/slots/{uuid}/book"), None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is booked already"),
        "{body}"
    );
    let (status, body) = call(port, "POST", "/api/slots/not-a-uuid/book", None);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not a slot UUID"),
        "{body}"
    );
    let unknown = "6f1e0c7a-3b2d-4c5e-9f80-1a2b3c4d5e6f";
    let (status, body) = call(port, "POST", &format!("/api/slots/{unknown}/release"), None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(port, "POST", "/api/slots", Some(json!({"name": "  "})));
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(
        port,
        "POST",
        "/api/slots",
        Some(json!({"title": "no name"})),
    );
    assert_eq!(status, 422);
    let list = client.get_json("/api/slots").unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // the CLI: create prints the slot, release reads it back from the replica
    let created: Value = serde_json::from_str(
        stdout(&parking.cli(&["create-parking-slot", "--name", "Slot 2"])).trim(),
    )
    .unwrap();
    assert_eq!(created["name"], "Slot 2");
    let released: Value =
        serde_json::from_str(stdout(&parking.cli(&["release-parking-slot", &uuid])).trim())
            .unwrap();
    assert_eq!(released["status"], "available");
    assert!(
        stderr_line(&parking.cli(&["release-parking-slot", &uuid]))
            .contains("is available already")
    );
    assert!(
        stderr_line(&parking.cli(&["book-parking-slot", "xyz"]))
            .contains("`xyz` is not a slot UUID")
    );
    assert!(
        stderr_line(&parking.cli(&["create-parking-slot", "--name", ""]))
            .contains("1 to 100 characters")
    );
}

/// The replica database away: reads fail with the reason, writes succeed and replicate once
/// it is back. The primary away: writes fail with the reason and leave nothing behind.
#[test]
fn a_database_that_is_away_fails_only_what_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    // the replica's directory does not exist yet: its database cannot be opened
    let parking = Parking::new(dir.path(), "later/replica.sqlite3");
    let port = free_port().unwrap();
    let (service, client) = parking.serve(port);
    let (status, body) = call(port, "GET", "/api/slots", None);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("replica"),
        "{body}"
    );
    let (status, created) = call(port, "POST", "/api/slots", Some(json!({"name": "Slot 1"})));
    // the write is committed, with its message; the answer says the replica is away
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["status"], "available");
    assert!(
        created["replica"].as_str().unwrap().contains("replica"),
        "{created}"
    );
    // the replica comes back: the consumer applies what waited in the queue
    std::fs::create_dir_all(dir.path().join("later")).unwrap();
    assert!(parking.cli(&["migrate"]).status.success());
    let start = Instant::now();
    loop {
        let (status, list) = call(port, "GET", "/api/slots", None);
        if status == 200 && list.as_array().is_some_and(|l| l.len() == 1) {
            assert_eq!(list[0]["name"], "Slot 1");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_mins(1),
            "not replicated: {status} {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(client);
    drop(service);

    // the primary away: a clear error, and nothing half-written in the replica or the queue
    let away = Parking {
        primary: dir
            .path()
            .join("gone/primary.sqlite3")
            .display()
            .to_string(),
        ..parking
    };
    let port = free_port().unwrap();
    let child = away
        .command()
        .args(["serve", "--port", &port.to_string(), "--no-relay"])
        .spawn()
        .unwrap();
    let _service = Service(child);
    Client::new(port)
        .wait_ready(Duration::from_secs(30))
        .unwrap();
    let (status, body) = call(port, "POST", "/api/slots", Some(json!({"name": "Slot 2"})));
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("primary"),
        "{body}"
    );
    let (status, list) = call(port, "GET", "/api/slots", None);
    assert_eq!(
        (status, list.as_array().map(Vec::len)),
        (200, Some(1)),
        "{list}"
    );
}

fn diesel_exec(url: &str, sql: &str) {
    fn run(url: &str, sql: &str) -> Result<(), cqrs_core::Error> {
        use diesel::connection::SimpleConnection;
        cqrs_core::with_connection!(url, |conn| Ok(conn.batch_execute(sql)?))
    }
    run(url, sql).unwrap();
}
