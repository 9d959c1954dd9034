//! Interoperability with the real django-cqrs 3.1.0 (installed from PyPI by scripts/test into
//! target/interop-venv: INTEROP_PYTHON), over one RabbitMQ exchange, in both directions, with
//! the mixed diff pipelines, dump files and dead-letter tools of both sides.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "handlers and helpers take what their callers hand over (a handler takes its message by value)"
)]
#![allow(clippy::panic, reason = "a test's failure")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const RUST: &str = env!("CARGO_BIN_EXE_cqrs-interop-service");
const WAIT: Duration = Duration::from_secs(90);

struct World {
    python: String,
    django_dir: PathBuf,
    dir: tempfile::TempDir,
    amqp: String,
    exchange: String,
    rust_queue: String,
    django_queue: String,
}

impl World {
    fn new() -> Self {
        let id = common::unique("interop");
        Self {
            python: std::env::var("INTEROP_PYTHON")
                .expect("INTEROP_PYTHON is not set: run scripts/test"),
            django_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("django"),
            dir: tempfile::tempdir().unwrap(),
            amqp: common::rabbit::amqp_url(),
            exchange: format!("cqrs_{id}"),
            rust_queue: format!("rust_{id}"),
            django_queue: format!("django_{id}"),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn django(&self, role: &str, db: &str, queue: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.django_dir.join("manage.py"))
            .args(args)
            .env("INTEROP_ROLE", role)
            .env("INTEROP_DB", db)
            .env("AMQP_URL", &self.amqp)
            .env("CQRS_EXCHANGE", &self.exchange)
            .env("CQRS_QUEUE", queue)
            .env("INTEROP_REJECT_FILE", self.path("reject.flag"));
        cmd
    }

    fn rust(&self, db: &str, queue: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(RUST);
        cmd.args(args)
            .env("DATABASE_URL", db)
            .env("CQRS_BROKER_URL", &self.amqp)
            .env("CQRS_EXCHANGE", &self.exchange)
            .env("CQRS_QUEUE", queue)
            .env("CQRS_RETRY_DELAY", "0.2")
            .env("INTEROP_REJECT_FILE", self.path("reject.flag"))
            .env("RUST_LOG", "warn");
        cmd
    }

    fn state_django(&self, role: &str, db: &str) -> Value {
        let out = run(self.django(role, db, "unused", &["interop_state"]), None);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn state_rust(&self, db: &str) -> Value {
        let out = run(self.rust(db, "unused", &["state"]), None);
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn run(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    let out = common::output_with_stdin(&mut cmd, stdin);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A background process, stopped with its whole group (django-cqrs's consumer forks workers).
struct Background(Child);

impl Background {
    fn spawn(mut cmd: Command) -> Self {
        use std::os::unix::process::CommandExt;
        Self(
            cmd.process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

async fn wait_for_queue(queue: &str) {
    common::rabbit::wait_for_consumer(queue).await;
}

fn wait_until(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(diff) if start.elapsed() > WAIT => {
                panic!("{what}: still different after {WAIT:?}: {diff}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// A datetime as microseconds since the epoch, whatever its textual form.
fn instant(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(cqrs_core::value::parse_datetime)
        .map(|d| d.timestamp_micros())
}

/// A decimal as a number with two places.
fn decimal(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(format!("{:.2}", s.parse::<f64>().unwrap())),
        Value::Number(n) => Some(format!("{:.2}", n.as_f64().unwrap())),
        other => panic!("not a decimal: {other}"),
    }
}

/// Compares rows field by field with a normaliser per field kind.
fn same_rows(ours: &Value, theirs: &Value, fields: &[(&str, &str)]) -> Result<(), String> {
    let (a, b) = (ours.as_array().unwrap(), theirs.as_array().unwrap());
    if a.len() != b.len() {
        return Err(format!("{} rows vs {} rows", a.len(), b.len()));
    }
    for (x, y) in a.iter().zip(b) {
        for (field, kind) in fields {
            let (l, r) = (&x[*field], &y[*field]);
            let equal = match *kind {
                "datetime" => instant(l) == instant(r),
                "decimal" => decimal(l) == decimal(r),
                _ => l == r,
            };
            if !equal {
                return Err(format!("row {}: `{field}`: {l} vs {r}", x["id"]));
            }
        }
    }
    Ok(())
}

/// The Rust replicas equal the Django masters, field by field, with the same revisions.
fn rust_replica_equals_django_master(rust: &Value, django: &Value) -> Result<(), String> {
    same_rows(
        &rust["dj_publisher"],
        &django["dj_publisher"],
        &[
            ("id", ""),
            ("name", ""),
            ("founded", ""),
            ("active", ""),
            ("cqrs_revision", ""),
            ("cqrs_updated", "datetime"),
        ],
    )?;
    same_rows(
        &rust["dj_author"],
        &django["dj_author"],
        &[
            ("id", ""),
            ("name", ""),
            ("publisher", ""),
            ("birth_date", ""),
            ("rating", "decimal"),
            ("cqrs_revision", ""),
            ("cqrs_updated", "datetime"),
        ],
    )?;
    same_rows(
        &rust["dj_book"],
        &django["dj_book"],
        &[
            ("id", ""),
            ("title", ""),
            ("author", ""),
            ("publisher", ""),
            ("price", "decimal"),
            ("published_at", "datetime"),
            ("is_public", ""),
            ("pages", ""),
            ("cqrs_revision", ""),
            ("cqrs_updated", "datetime"),
        ],
    )?;
    let reviews: Vec<Value> = django["dj_review"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["text_upper"] = json!(r["text"].as_str().unwrap().to_uppercase());
            r
        })
        .collect();
    same_rows(
        &rust["dj_review"],
        &Value::Array(reviews),
        &[
            ("id", ""),
            ("book", ""),
            ("stars", ""),
            ("text_upper", ""),
            ("cqrs_revision", ""),
            ("cqrs_updated", "datetime"),
        ],
    )
}

/// The Django replicas equal the Rust masters.
fn django_replica_equals_rust_master(django: &Value, rust: &Value) -> Result<(), String> {
    same_rows(
        &django["rs_author"],
        &rust["rs_author"],
        &[
            ("id", ""),
            ("name", ""),
            ("cqrs_revision", ""),
            ("cqrs_updated", "datetime"),
        ],
    )?;
    same_rows(
        &django["rs_book"],
        &rust["rs_book"],
        &[
            ("id", ""),
            ("title", ""),
            ("author", ""),
            ("price", "decimal"),
            ("released", ""),
            ("in_stock", ""),
            ("cqrs_revision", ""),
            ("cqrs_updated", "datetime"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs django-cqrs (INTEROP_PYTHON) and RabbitMQ (AMQP_ADDR): run scripts/test"]
async fn django_and_rust_share_one_exchange() {
    let w = World::new();
    let django_master = w.path("django_master.sqlite3");
    let django_replica = w.path("django_replica.sqlite3");
    let rust_master = w.path("rust_master.sqlite3");
    let rust_replica = w.path("rust_replica.sqlite3");
    run(
        w.django(
            "master",
            &django_master,
            "unused",
            &["migrate", "--run-syncdb", "-v", "0"],
        ),
        None,
    );
    run(
        w.django(
            "replica",
            &django_replica,
            &w.django_queue,
            &["migrate", "--run-syncdb", "-v", "0"],
        ),
        None,
    );

    // ---- Django master -> Rust replica
    let rust_consumer = Background::spawn(w.rust(&rust_replica, &w.rust_queue, &["consume"]));
    wait_for_queue(&w.rust_queue).await;
    run(
        w.django(
            "master",
            &django_master,
            "unused",
            &["interop_scenario", "--direct-queue", &w.rust_queue],
        ),
        None,
    );
    let master_state = w.state_django("master", &django_master);
    assert_eq!(master_state["dj_book"].as_array().unwrap().len(), 11);
    assert_eq!(master_state["dj_publisher"].as_array().unwrap().len(), 2);
    wait_until("Rust replicas of the Django masters", || {
        rust_replica_equals_django_master(&w.state_rust(&rust_replica), &master_state)
    });
    let lem = master_state["dj_author"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Stanislaw Lem")
        .unwrap();
    // django-cqrs: two saves of one instance in one transaction bump the revision twice (the
    // F() expression stays on the instance) and send one message, so the replica sees a gap
    assert_eq!(lem["cqrs_revision"], 2);

    // django-cqrs's partial saves: without update_cqrs_fields the revision stays, with it
    // the revision moves (The Cyberiad: two partial saves, one bump)
    let cyberiad = master_state["dj_book"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["title"] == "The Cyberiad")
        .unwrap();
    assert_eq!(
        (cyberiad["pages"].clone(), cyberiad["cqrs_revision"].clone()),
        (json!(322), json!(1))
    );

    // ---- Rust master -> Django replica (django-cqrs's own cqrs_consume, its log kept)
    let django_log = w.path("django_consumer.log");
    let django_consumer = Background::spawn({
        let mut cmd = w.django(
            "replica",
            &django_replica,
            &w.django_queue,
            &["cqrs_consume"],
        );
        cmd.stderr(std::fs::File::create(&django_log).unwrap());
        cmd
    });
    wait_for_queue(&w.django_queue).await;
    run(
        w.rust(
            &rust_master,
            &w.django_queue,
            &["scenario", "--direct-queue", &w.django_queue],
        ),
        None,
    );
    run(
        w.rust(&rust_master, &w.django_queue, &["relay", "--once"]),
        None,
    );
    let rust_state = w.state_rust(&rust_master);
    assert_eq!(rust_state["rs_book"].as_array().unwrap().len(), 16);
    wait_until("Django replicas of the Rust masters", || {
        django_replica_equals_rust_master(&w.state_django("replica", &django_replica), &rust_state)
    });
    // one message per transaction (book 8: five edits, revision 1) and the partial saves'
    // rule, as the Django master's (book 9: revision 1): a Django replica logs no gap, and
    // takes the partial save without the bump for a duplicate, as it does a Django one's
    let rust_book = |id: i64| {
        rust_state["rs_book"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(rust_book(8)["cqrs_revision"], 1);
    assert_eq!(rust_book(8)["title"], "Rust book 8, edit 5");
    assert_eq!(rust_book(9)["cqrs_revision"], cyberiad["cqrs_revision"]);
    let log = std::fs::read_to_string(&django_log).unwrap();
    assert!(!log.contains("Lost or filtered out"), "{log}");
    assert!(
        log.contains("Received duplicate CQRS data: pk = 9, cqrs_revision = 0"),
        "{log}"
    );

    // ---- Mixed pipeline, Django master side: cqrs_diff_master | diff-replica | cqrs_diff_sync
    {
        use cqrs_core::db::CqrsConnection;
        use diesel::connection::SimpleConnection;
        let mut conn = diesel::SqliteConnection::cqrs_connect(&rust_replica).unwrap();
        conn.batch_execute("DELETE FROM dj_books WHERE id IN (2, 4); UPDATE dj_books SET title = 'drifted', cqrs_revision = 7 WHERE id = 5;").unwrap();
    }
    assert!(
        rust_replica_equals_django_master(&w.state_rust(&rust_replica), &master_state).is_err()
    );
    let diff = run(
        w.django(
            "master",
            &django_master,
            "unused",
            &["cqrs_diff_master", "--cqrs-id", "dj_book"],
        ),
        None,
    )
    .stdout;
    let to_sync = run(
        w.rust(&rust_replica, &w.rust_queue, &["diff-replica"]),
        Some(&diff),
    )
    .stdout;
    let text = String::from_utf8_lossy(&to_sync);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with(&format!(",{}", w.rust_queue)),
        "{text}"
    );
    run(
        w.django("master", &django_master, "unused", &["cqrs_diff_sync"]),
        Some(&to_sync),
    );
    wait_until(
        "the Rust replica repaired by django-cqrs's diff sync",
        || rust_replica_equals_django_master(&w.state_rust(&rust_replica), &master_state),
    );

    // ---- Mixed pipeline, Rust master side: diff-master | cqrs_diff_replica | diff-sync
    run(
        w.django("replica", &django_replica, &w.django_queue, &["shell", "-c",
            "from interop.replica.models import RsBook; RsBook.objects.filter(id__in=[1, 2]).delete(); \
             RsBook.objects.filter(id=4).update(title='drifted', cqrs_revision=0)"]),
        None,
    );
    let diff = run(
        w.rust(
            &rust_master,
            &w.django_queue,
            &["diff-master", "--cqrs-id", "rs_book"],
        ),
        None,
    )
    .stdout;
    let to_sync = run(
        w.django(
            "replica",
            &django_replica,
            &w.django_queue,
            &["cqrs_diff_replica"],
        ),
        Some(&diff),
    )
    .stdout;
    assert!(String::from_utf8_lossy(&to_sync).contains(&w.django_queue));
    run(
        w.rust(&rust_master, &w.django_queue, &["diff-sync"]),
        Some(&to_sync),
    );
    wait_until("the Django replica repaired by the Rust diff sync", || {
        django_replica_equals_rust_master(&w.state_django("replica", &django_replica), &rust_state)
    });

    // ---- Dump files, both ways
    let dump = run(
        w.django(
            "master",
            &django_master,
            "unused",
            &["cqrs_bulk_dump", "--cqrs-id", "dj_book", "--output", "-"],
        ),
        None,
    )
    .stdout;
    let fresh_rust = w.path("rust_fresh.sqlite3");
    run(
        w.rust(&fresh_rust, &w.rust_queue, &["bulk-load", "--input", "-"]),
        Some(&dump),
    );
    let loaded = w.state_rust(&fresh_rust);
    same_rows(
        &loaded["dj_book"],
        &master_state["dj_book"],
        &[
            ("id", ""),
            ("title", ""),
            ("author", ""),
            ("price", "decimal"),
            ("published_at", "datetime"),
            ("cqrs_revision", ""),
            ("cqrs_updated", "datetime"),
        ],
    )
    .unwrap();
    let rust_dump = w.path("rs_book.dump");
    run(
        w.rust(
            &rust_master,
            &w.django_queue,
            &["bulk-dump", "--cqrs-id", "rs_book", "--output", &rust_dump],
        ),
        None,
    );
    let fresh_django = w.path("django_fresh.sqlite3");
    run(
        w.django(
            "replica",
            &fresh_django,
            &w.django_queue,
            &["migrate", "--run-syncdb", "-v", "0"],
        ),
        None,
    );
    run(
        w.django(
            "replica",
            &fresh_django,
            &w.django_queue,
            &["cqrs_bulk_load", "--input", &rust_dump],
        ),
        None,
    );
    same_rows(
        &w.state_django("replica", &fresh_django)["rs_book"],
        &rust_state["rs_book"],
        &[
            ("id", ""),
            ("title", ""),
            ("author", ""),
            ("price", "decimal"),
            ("released", ""),
            ("in_stock", ""),
            ("cqrs_revision", ""),
            ("cqrs_updated", "datetime"),
        ],
    )
    .unwrap();

    // ---- A Rust dead letter, dumped and retried with django-cqrs's cqrs_dead_letters
    std::fs::write(w.path("reject.flag"), "on").unwrap();
    run(
        w.django(
            "master",
            &django_master,
            "unused",
            &[
                "interop_scenario",
                "--direct-queue",
                "x",
                "--reject-publisher",
            ],
        ),
        None,
    );
    let dlq = format!("dead_letter_{}", w.rust_queue);
    let dump = wait_for_dead_letter(&w, "master", &django_master, &w.rust_queue, "REJECT me");
    assert!(dump.contains("\"dj_publisher\""), "{dump}");
    std::fs::remove_file(w.path("reject.flag")).unwrap();
    let out = run(
        w.django(
            "master",
            &django_master,
            &w.rust_queue,
            &["cqrs_dead_letters", "retry"],
        ),
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Total dead letters: 1"),
        "{dlq}"
    );
    wait_until("the retried publisher applied by the Rust replica", || {
        let state = w.state_rust(&rust_replica);
        if state["dj_publisher"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "REJECT me")
        {
            Ok(())
        } else {
            Err("absent".into())
        }
    });

    // ---- A Django dead letter, dumped and retried with the Rust tools
    drop(django_consumer);
    std::fs::write(w.path("reject.flag"), "on").unwrap();
    let django_consumer = Background::spawn(w.django(
        "replica",
        &django_replica,
        &w.django_queue,
        &["cqrs_consume"],
    ));
    run(
        w.rust(
            &rust_master,
            &w.django_queue,
            &["scenario", "--direct-queue", "x", "--reject-book"],
        ),
        None,
    );
    run(
        w.rust(&rust_master, &w.django_queue, &["relay", "--once"]),
        None,
    );
    let start = Instant::now();
    let dump = loop {
        let out = run(
            w.rust(&rust_master, &w.django_queue, &["dead-letters", "dump"]),
            None,
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("REJECT me") {
            break text;
        }
        assert!(
            start.elapsed() < WAIT,
            "the Django replica never dead-lettered the book"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(dump.contains("\"rs_book\""));
    std::fs::remove_file(w.path("reject.flag")).unwrap();
    let out = run(
        w.rust(&rust_master, &w.django_queue, &["dead-letters", "retry"]),
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Total dead letters: 1\nRetrying: 1/1\n")
    );
    wait_until("the retried book applied by the Django replica", || {
        let state = w.state_django("replica", &django_replica);
        if state["rs_book"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == 100)
        {
            Ok(())
        } else {
            Err("absent".into())
        }
    });
    drop(django_consumer);
    drop(rust_consumer);
}

/// Waits until a dead letter containing `needle` is in `<queue>`'s dead-letter queue; returns
/// django-cqrs's `cqrs_dead_letters dump` output.
fn wait_for_dead_letter(w: &World, role: &str, db: &str, queue: &str, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let out = run(
            w.django(role, db, queue, &["cqrs_dead_letters", "dump"]),
            None,
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(needle) {
            return text;
        }
        assert!(start.elapsed() < WAIT, "no dead letter with {needle}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

// ---- django-microservices-communication 2.6.9: events and commands, both ways ----

#[cqrs_core::handler(exchange = "interop_django_book", routing_key = "published")]
fn interop_django_book_published(
    conn: &mut diesel::SqliteConnection,
    event: cqrs_core::event::Event<Value>,
) -> Result<(), cqrs_core::event::HandlerError> {
    let meta = json!({"aggregate": event.aggregate, "event_type": event.event_type, "has_id": event.event_id.is_some()});
    common::received::record(conn, "event", &meta.to_string(), &event.payload)?;
    Ok(())
}

#[cqrs_core::handler(exchange = "interop_rust_sms", routing_key = "send_sms")]
fn interop_rust_send_sms(
    conn: &mut diesel::SqliteConnection,
    command: cqrs_core::event::Command<Value>,
) -> Result<(), cqrs_core::event::HandlerError> {
    let phone = command.arguments["phone_number"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    common::received::record(conn, "command", &phone, &command.arguments)?;
    Ok(())
}

#[cqrs_core::handler(exchange = "interop_rust_sms", routing_key = "price")]
fn interop_rust_price(
    conn: &mut diesel::SqliteConnection,
    call: cqrs_core::event::Call<Value>,
) -> Result<Value, cqrs_core::event::HandlerError> {
    common::received::record(conn, "call", &call.id.to_string(), &call.data)?;
    Ok(json!({"book_id": call.data["book_id"], "unit_price": 12.5}))
}

#[cqrs_core::handler(exchange = "interop_rust_replies")]
fn interop_rust_answer(
    conn: &mut diesel::SqliteConnection,
    answer: cqrs_core::event::CallResponse<Value>,
) -> Result<(), cqrs_core::event::HandlerError> {
    let key = format!("{}.{}", answer.service, answer.method);
    common::received::record(
        conn,
        "answer",
        &key,
        &json!({"id": answer.id, "data": answer.data}),
    )?;
    Ok(())
}

fn python_received(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs django-microservices-communication (INTEROP_PYTHON), PostgreSQL and RabbitMQ: run scripts/test"]
async fn events_and_commands_with_django_microservices_communication() {
    use cqrs_core::CqrsConnection;
    use cqrs_core::event::{self, Expiry};

    let w = World::new();
    // the Python package needs PostgreSQL (its ids come from a sequence): a fresh schema
    let schema_url = common::pg_schema_url();
    let schema = schema_url
        .rsplit("search_path%3D")
        .next()
        .unwrap()
        .to_owned();
    let base = common::pg_base_url().unwrap();
    let host_port = base.split('@').nth(1).unwrap().split('/').next().unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let id = common::unique("ev");
    let django_queue = format!("django_events_{id}");
    let rust_queue = format!("rust_events_{id}");
    let out = w.path("python_received.jsonl");
    let django = |args: &[&str]| {
        let mut cmd = w.django("events", "unused", "unused", args);
        cmd.env("INTEROP_PG_HOST", host)
            .env("INTEROP_PG_PORT", port)
            .env("INTEROP_PG_SCHEMA", &schema)
            .env("EVENTS_QUEUE", &django_queue)
            .env("EVENTS_OUT", &out)
            .env("EVENTS_RUST_AGGREGATE", "interop_rust_book")
            .env("EVENTS_DJANGO_SERVICE", "interop_django_sms")
            .env("EVENTS_DJANGO_AGGREGATE", "interop_django_book")
            .env("EVENTS_RUST_SERVICE", "interop_rust_sms")
            .env("EVENTS_DJANGO_REPLIES", "interop_django_replies");
        cmd
    };
    run(django(&["migrate", "-v", "0"]), None);

    // the Rust service: handlers on SQLite, its own outbox on another file
    let handlers = common::received::sqlite_file(&w.dir, "rust_handlers.sqlite3");
    let master = common::received::sqlite_file(&w.dir, "rust_master.sqlite3");
    let config = common::rabbit::config("events_interop");
    let consumer = cqrs_rabbit::EventConsumer::<diesel::SqliteConnection>::new(
        config.clone(),
        handlers.clone(),
        rust_queue.clone(),
    );
    consumer.check().await.unwrap();

    let _python_consumer = Background::spawn(django(&["runconsumer"]));
    wait_for_queue(&django_queue).await;

    // Python → Rust: an event through its outbox and `runpublisher`; two immediate commands,
    // the first expiring before the Rust consumer starts
    run(django(&["events_publish"]), None);
    let _python_publisher = Background::spawn(django(&["runpublisher"]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consuming = tokio::spawn(consumer.run(async move {
        let _ = stopped.await;
    }));
    // the Rust handlers' own outbox (call answers) has its relay
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relaying = tokio::spawn(
        cqrs_rabbit::Relay::<diesel::SqliteConnection>::new(config.clone(), handlers.clone()).run(
            async move {
                let _ = relay_stopped.await;
            },
        ),
    );

    // Rust → Python: an event and two commands through the outbox, the first expiring before
    // the relay sends it
    let payload = json!({"book_id": 2, "title_text": "Solaris", "author": {"full_name": "Stanisław Lem"}, "page_counts": [204]});
    let mut conn = diesel::SqliteConnection::cqrs_connect(&master).unwrap();
    cqrs_core::transaction(&mut conn, |c| {
        event::publish_aggregate_event(c, "interop_rust_book", "published", &payload)?;
        event::send_command(
            c,
            "interop_django_sms",
            "send_sms",
            &json!({"phone_number": "+300", "text": "expired"}),
            Expiry::At(chrono::Utc::now() + chrono::Duration::milliseconds(300)),
        )?;
        event::send_command(
            c,
            "interop_django_sms",
            "send_sms",
            &json!({"phone_number": "+400", "text": "hello"}),
            Expiry::After(Duration::from_mins(1)),
        )?;
        event::send_call(
            c,
            "interop_django_sms",
            "price",
            &json!({"book_id": 2}),
            "interop_rust_replies",
            Expiry::After(Duration::from_mins(1)),
        )
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let sent = cqrs_rabbit::Relay::<diesel::SqliteConnection>::new(config.clone(), master.clone())
        .drain()
        .await
        .unwrap();
    assert_eq!(sent, 4);

    wait_until(
        "Rust received the Django event and the live command",
        || {
            let got = common::received::received(&handlers);
            let kinds = ["event", "call", "answer"];
            if kinds.iter().all(|k| got.iter().any(|r| r.0 == *k))
                && got.iter().any(|r| r.1 == "+200")
            {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
    wait_until(
        "Django received the Rust event and the live command",
        || {
            let got = python_received(&out);
            let event = got.iter().any(|r| r["kind"] == "event");
            let command = got.iter().any(|r| r["arguments"]["phone_number"] == "+400");
            let calls = ["call", "answer"]
                .iter()
                .all(|k| got.iter().any(|r| r["kind"] == *k));
            if event && command && calls {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let got = common::received::received(&handlers);
    let event = got.iter().find(|r| r.0 == "event").unwrap();
    assert_eq!(
        event.2,
        json!({"book_id": 1, "title_text": "Dune", "author": {"full_name": "Frank Herbert"}, "page_counts": [412, 896]}),
        "payload equal field by field"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&event.1).unwrap(),
        json!({"aggregate": "interop_django_book", "event_type": "published", "has_id": true})
    );
    assert_eq!(
        got.iter().find(|r| r.1 == "+200").unwrap().2,
        json!({"phone_number": "+200", "text": "hello"})
    );
    assert!(
        !got.iter().any(|r| r.1 == "+100"),
        "the expired Python command was not executed: {got:?}"
    );

    let py = python_received(&out);
    let event = py.iter().find(|r| r["kind"] == "event").unwrap();
    assert_eq!(event["payload"], payload, "payload equal field by field");
    assert_eq!(event["aggregate"], "interop_rust_book");
    assert_eq!(event["event_type"], "published");
    assert!(event["event_id"].is_string());
    assert!(
        !py.iter().any(|r| r["arguments"]["phone_number"] == "+300"),
        "the expired Rust command was not executed: {py:?}"
    );

    // calls: Django's call answered by the Rust handler, the Rust call by Django's handler
    let rust_call = got.iter().find(|r| r.0 == "call").unwrap();
    assert_eq!(rust_call.2, json!({"book_id": 1}));
    let django_answer = py.iter().find(|r| r["kind"] == "answer").unwrap();
    assert_eq!(
        django_answer["data"],
        json!({"book_id": 1, "unit_price": 12.5})
    );
    assert_eq!(django_answer["service"], "interop_rust_sms");
    assert_eq!(django_answer["method"], "price");
    assert_eq!(
        django_answer["call_id"].to_string(),
        rust_call.1,
        "the call id comes back"
    );
    let django_call = py
        .iter()
        .find(|r| r["kind"] == "call")
        .unwrap_or_else(|| panic!("{py:?}"));
    assert_eq!(django_call["data"], json!({"book_id": 2}));
    let rust_answer = got.iter().find(|r| r.0 == "answer").unwrap();
    assert_eq!(rust_answer.1, "interop_django_sms.price");
    assert_eq!(
        rust_answer.2["data"],
        json!({"book_id": 2, "unit_price": 7.5})
    );
    assert!(
        rust_answer.2["id"].is_string(),
        "the Rust call id came back: {rust_answer:?}"
    );

    let _ = stop.send(());
    consuming.await.unwrap().unwrap();
    let _ = stop_relay.send(());
    relaying.await.unwrap().unwrap();
}
