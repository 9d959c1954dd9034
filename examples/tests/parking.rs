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
            primary: dir.join("primary.sqlite3").display().to_string(),
            replica: dir.join(replica).display().to_string(),
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
            start.elapsed() < Duration::from_secs(60),
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
    use cqrs_core::CqrsConnection;
    use diesel::connection::SimpleConnection;
    let mut conn = diesel::SqliteConnection::cqrs_connect(url).unwrap();
    conn.batch_execute(sql).unwrap();
}
