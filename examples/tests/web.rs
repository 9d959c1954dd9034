//! The example services over HTTP, with a real RabbitMQ (scripts/test sets AMQP_ADDR): create
//! through the catalogue API and the page, see the rows on the recommendations page; the demo
//! driver fails when replication does not happen.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(
    clippy::similar_names,
    reason = "the names of a scenario's pairs (before/after, master/replica)"
)]
#![allow(
    clippy::too_many_lines,
    reason = "a scenario, page or report reads top to bottom"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cqrs_examples::{Client, Service, free_port};
use serde_json::json;

const CATALOGUE: &str = env!("CARGO_BIN_EXE_catalogue");
const RECOMMENDATIONS: &str = env!("CARGO_BIN_EXE_recommendations");
const DEMO: &str = env!("CARGO_BIN_EXE_demo");

struct Setup {
    _dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    catalogue_db: String,
    recommendations_db: String,
}

fn setup(name: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let suffix = format!("{name}_{}_{}", std::process::id(), free_port().unwrap());
    Setup {
        catalogue_db: dir
            .path()
            .join("catalogue.sqlite3")
            .to_str()
            .unwrap()
            .to_owned(),
        recommendations_db: dir
            .path()
            .join("recommendations.sqlite3")
            .to_str()
            .unwrap()
            .to_owned(),
        env: vec![
            (
                "CQRS_BROKER_URL",
                std::env::var("AMQP_ADDR").expect("AMQP_ADDR is not set: run scripts/test"),
            ),
            ("CQRS_EXCHANGE", format!("web_{suffix}")),
            ("CQRS_QUEUE", format!("recommendations_{suffix}")),
            ("RUST_LOG", "warn".to_owned()),
        ],
        _dir: dir,
    }
}

fn spawn(setup: &Setup, bin: &str, db: &str, args: &[&str]) -> Service {
    Service(
        Command::new(bin)
            .arg("--database-url")
            .arg(db)
            .args(args)
            .envs(setup.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
fn catalogue_api_to_recommendations_page() {
    let s = setup("web");
    let (cport, rport) = (free_port().unwrap(), free_port().unwrap());
    let _recommendations = spawn(
        &s,
        RECOMMENDATIONS,
        &s.recommendations_db,
        &["serve", "--port", &rport.to_string(), "--consume"],
    );
    let recommendations = Client::new(rport);
    recommendations.wait_ready(Duration::from_secs(30)).unwrap();
    let _catalogue = spawn(
        &s,
        CATALOGUE,
        &s.catalogue_db,
        &["serve", "--port", &cport.to_string(), "--relay"],
    );
    let catalogue = Client::new(cport);
    catalogue.wait_ready(Duration::from_secs(30)).unwrap();

    let author = catalogue
        .send_json(
            "POST",
            "/api/authors",
            &json!({"name": "Stanisław Lem", "born": "1921-09-12"}),
        )
        .unwrap();
    let book = catalogue
        .send_json(
            "POST",
            "/api/books",
            &json!({"title": "Solaris <1961>", "author_id": author["id"], "price": "8.50"}),
        )
        .unwrap();
    assert_eq!(book["cqrs_revision"], 0);
    wait_for("the book on the recommendations page", || {
        recommendations
            .get_text("/")
            .is_ok_and(|page| page.contains("Solaris &lt;1961&gt;"))
    });
    let page = recommendations.get_text("/").unwrap();
    assert!(
        page.contains("http-equiv=\"refresh\""),
        "the page refreshes itself"
    );
    assert!(
        page.contains("Stanisław Lem") && page.contains("(SL)"),
        "the derived author card"
    );
    let replica = recommendations.get_json("/api/books").unwrap();
    assert_eq!(replica[0]["name"], "Solaris <1961>");
    assert_eq!(replica[0]["price"], json!(8.5));

    // the HTML form path: edit through the page's form, then delete
    let agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let id = book["id"].as_i64().unwrap();
    let response = agent
        .post(format!("http://127.0.0.1:{cport}/books/{id}"))
        .send_form([
            ("title", "Solaris (2nd ed.)"),
            ("price", "9"),
            ("author_id", &author["id"].to_string()),
            ("published", "on"),
        ])
        .unwrap();
    assert_eq!(response.status(), 303);
    wait_for("the edit replicated", || {
        recommendations
            .get_json("/api/books")
            .is_ok_and(|b| b[0]["name"] == "Solaris (2nd ed.)" && b[0]["cqrs_revision"] == 1)
    });
    // django-cqrs's admin action "Synchronize selected": the API and the page's form
    let report = catalogue
        .send_json("POST", "/api/books/sync", &json!({"ids": [id, 4242]}))
        .unwrap();
    assert_eq!(report["synced"], json!([id.to_string()]));
    assert_eq!(
        report["failed"],
        json!([{"id": "4242", "reason": "does not exist"}])
    );
    assert_eq!(report["message"], "1 successfully synced. 1 failed: [4242]");
    let response = agent
        .post(format!("http://127.0.0.1:{cport}/books/sync"))
        .send_form([("id", id.to_string().as_str()), ("id", "4242")])
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = response.into_body().read_to_string().unwrap();
    assert!(
        page.contains("1 successfully synced. 1 failed: [4242]"),
        "{page}"
    );
    assert!(
        catalogue
            .get_text("/")
            .unwrap()
            .contains("Synchronize selected books")
    );
    let response = agent
        .post(format!("http://127.0.0.1:{cport}/api/books/sync"))
        .send_json(json!({"ids": []}))
        .unwrap();
    assert_eq!(response.status(), 400);
    // bad input is a 400 with a reason, and nothing is sent
    let response = agent
        .post(format!("http://127.0.0.1:{cport}/api/books"))
        .send_json(json!({"title": "", "author_id": 1}))
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = agent
        .post(format!("http://127.0.0.1:{cport}/api/books"))
        .send_json(json!({"title": "x", "author_id": 999}))
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = agent
        .put(format!("http://127.0.0.1:{cport}/api/books/4242"))
        .send_json(json!({"title": "x"}))
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = agent
        .post(format!("http://127.0.0.1:{cport}/books/{id}/delete"))
        .send_empty()
        .unwrap();
    assert_eq!(response.status(), 303);
    wait_for("the delete replicated", || {
        recommendations
            .get_json("/api/books")
            .is_ok_and(|b| b.as_array().unwrap().is_empty())
    });
    assert!(catalogue.get_text("/").unwrap().contains("Stanisław Lem"));
}

/// The demo driver exits non-zero when the replica does not end equal to the master.
#[test]
#[ignore = "needs RabbitMQ (AMQP_ADDR): run scripts/test"]
fn demo_fails_when_nothing_replicates() {
    let s = setup("demo_fail");
    let (cport, rport) = (free_port().unwrap(), free_port().unwrap());
    // no relay and no consumer: nothing can replicate
    let _catalogue = spawn(
        &s,
        CATALOGUE,
        &s.catalogue_db,
        &["serve", "--port", &cport.to_string()],
    );
    let _recommendations = spawn(
        &s,
        RECOMMENDATIONS,
        &s.recommendations_db,
        &["serve", "--port", &rport.to_string()],
    );
    let status = Command::new(DEMO)
        .args([
            "--catalogue-port",
            &cport.to_string(),
            "--recommendations-port",
            &rport.to_string(),
        ])
        .args([
            "--catalogue-db",
            &s.catalogue_db,
            "--recommendations-db",
            &s.recommendations_db,
        ])
        .args(["--queue", "nowhere", "--timeout-secs", "2"])
        .envs(s.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!status.status.success());
    assert!(
        String::from_utf8_lossy(&status.stderr)
            .contains("the replica still differs from the master")
    );
}
