//! The demo scenario: drives the running catalogue and recommendations services (started by
//! `scripts/demo`) through creates, an update of a tracked field, a filtered-out row, a
//! delete, a direct sync, a bulk dump and load, and (with `--notifications-port`) a domain
//! event and a command handled by the notifications service, printing what the replica holds after each
//! step and how long replication took. Exits non-zero if the replica does not end equal to
//! the master.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario, page or report reads top to bottom"
)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use cqrs_examples::Client;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "demo",
    about = "Plays the replication scenario against running services"
)]
struct Args {
    /// The catalogue's HTTP port.
    #[arg(long, default_value_t = 8001)]
    catalogue_port: u16,
    /// The recommendations' HTTP port.
    #[arg(long, default_value_t = 8002)]
    recommendations_port: u16,
    /// The notifications service's HTTP port: plays the events and commands step.
    #[arg(long)]
    notifications_port: Option<u16>,
    /// The catalogue's database (for its CLI steps).
    #[arg(long)]
    catalogue_db: String,
    /// The recommendations' database (for its CLI steps).
    #[arg(long)]
    recommendations_db: String,
    /// The recommendations' queue (the target of the direct sync).
    #[arg(long, env = "CQRS_QUEUE")]
    queue: String,
    /// Where to write the dump file.
    #[arg(long, default_value = "target/demo")]
    work_dir: String,
    /// How long to wait for replication at each step.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

struct Demo {
    args: Args,
    catalogue: Client,
    recommendations: Client,
    notifications: Option<Client>,
    bin_dir: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout, reason = "the demo narrates on stdout")]
fn say(text: &str) {
    println!("{text}");
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let demo = Demo {
        catalogue: Client::new(args.catalogue_port),
        recommendations: Client::new(args.recommendations_port),
        notifications: args.notifications_port.map(Client::new),
        bin_dir: std::env::current_exe()?
            .parent()
            .context("no binary directory")?
            .to_path_buf(),
        args,
    };
    demo.catalogue.wait_ready(Duration::from_secs(30))?;
    demo.recommendations.wait_ready(Duration::from_secs(30))?;
    if let Some(notifications) = &demo.notifications {
        notifications.wait_ready(Duration::from_secs(30))?;
    }
    demo.play()
}

/// The replicated projection of the master: published books, renamed as the replica keeps
/// them.
fn expected_books(master: &Value) -> Vec<Value> {
    master
        .as_array()
        .map(|books| {
            books
                .iter()
                .filter(|b| b["published"] == json!(true))
                .map(|b| {
                    json!({"id": b["id"], "name": b["title"], "author_id": b["author_id"],
                        "price": b["price"], "cqrs_revision": b["cqrs_revision"], "cqrs_updated": b["cqrs_updated"]})
                })
                .collect()
        })
        .unwrap_or_default()
}

fn expected_authors(master: &Value) -> Vec<Value> {
    master
        .as_array()
        .map(|authors| {
            authors
                .iter()
                .map(|a| json!({"id": a["id"], "name": a["name"], "born": a["born"], "cqrs_revision": a["cqrs_revision"]}))
                .collect()
        })
        .unwrap_or_default()
}

fn replica_authors(replica: &Value) -> Vec<Value> {
    replica
        .as_array()
        .map(|authors| {
            authors
                .iter()
                .map(|a| json!({"id": a["id"], "name": a["name"], "born": a["born"], "cqrs_revision": a["cqrs_revision"]}))
                .collect()
        })
        .unwrap_or_default()
}

impl Demo {
    fn play(&self) -> anyhow::Result<()> {
        say(
            "== 1. Creates: two authors, three books (one an unpublished draft, which the sync filter keeps home)",
        );
        let herbert = self.catalogue.send_json(
            "POST",
            "/api/authors",
            &json!({"name": "Frank Herbert", "born": "1920-10-08"}),
        )?;
        let le_guin = self.catalogue.send_json(
            "POST",
            "/api/authors",
            &json!({"name": "Ursula K. Le Guin", "born": "1929-10-21"}),
        )?;
        let dune = self.catalogue.send_json("POST", "/api/books",
            &json!({"title": "Dune", "author_id": herbert["id"], "isbn": "9780441013593", "price": "9.99"}))?;
        let left_hand = self.catalogue.send_json("POST", "/api/books",
            &json!({"title": "The Left Hand of Darkness", "author_id": le_guin["id"], "price": 12.0}))?;
        let draft = self.catalogue.send_json(
            "POST",
            "/api/books",
            &json!({"title": "Untitled draft", "author_id": le_guin["id"], "published": false}),
        )?;
        self.converge("creates")?;
        self.show()?;
        let replica = self.recommendations.get_json("/api/books")?;
        anyhow::ensure!(
            !replica
                .as_array()
                .is_some_and(|b| b.iter().any(|b| b["id"] == draft["id"])),
            "the draft must not be replicated"
        );
        say("   the draft stayed in the catalogue (sync_filter)");

        say("== 2. Update of a tracked field: Dune's title (the message carries the old title)");
        let id = dune["id"].as_i64().context("id")?;
        let updated = self.catalogue.send_json(
            "PUT",
            &format!("/api/books/{id}"),
            &json!({"title": "Dune (Deluxe Edition)", "price": 19.99}),
        )?;
        say(&format!(
            "   \"{}\" -> \"{}\", revision {}",
            dune["title"].as_str().unwrap_or(""),
            updated["title"].as_str().unwrap_or(""),
            updated["cqrs_revision"]
        ));
        self.converge("update")?;
        self.show()?;

        say("== 3. Delete: The Left Hand of Darkness");
        self.catalogue.send_json(
            "DELETE",
            &format!("/api/books/{}", left_hand["id"]),
            &Value::Null,
        )?;
        self.converge("delete")?;
        self.show()?;

        say(
            "== 4. Direct sync: drop Dune from the replica behind its back, then sync it to that replica's queue only",
        );
        self.cli(
            "recommendations",
            &self.args.recommendations_db,
            &["deleted-sync-replica"],
            Some(&format!("book,now\n[{id}]\n")),
        )?;
        let dropped = self.recommendations.get_json("/api/books")?;
        say(&format!(
            "   replica now holds {} book(s)",
            dropped.as_array().map_or(0, Vec::len)
        ));
        self.cli(
            "catalogue",
            &self.args.catalogue_db,
            &[
                "sync",
                "--cqrs-id",
                "book",
                "--filter",
                &format!("{{\"id__in\": [{id}]}}"),
                "--queue",
                &self.args.queue,
            ],
            None,
        )?;
        self.converge("direct sync")?;
        self.show()?;

        say("== 5. Bulk dump on the catalogue and bulk load (--clear) on the replica");
        for n in 1..=5 {
            self.catalogue.send_json("POST", "/api/books",
                &json!({"title": format!("Earthsea #{n}"), "author_id": le_guin["id"], "price": 7.5}))?;
        }
        self.converge("more creates")?;
        std::fs::create_dir_all(&self.args.work_dir)?;
        let dump = format!("{}/book.dump", self.args.work_dir);
        self.cli(
            "catalogue",
            &self.args.catalogue_db,
            &[
                "bulk-dump",
                "--cqrs-id",
                "book",
                "--output",
                &dump,
                "--force",
            ],
            None,
        )?;
        let lines = std::fs::read_to_string(&dump)?.lines().count();
        say(&format!(
            "   {dump}: {lines} lines (the cqrs_id, then one row per line)"
        ));
        self.cli(
            "recommendations",
            &self.args.recommendations_db,
            &["bulk-load", "--input", &dump, "--clear"],
            None,
        )?;
        self.converge("bulk load")?;
        self.show()?;

        if let Some(notifications) = &self.notifications {
            self.events(notifications, draft["id"].as_i64().context("id")?)?;
        }

        say("== Result");
        self.converge("final check")?;
        say(
            "   the replica equals the master: same rows, same revisions, deleted and filtered rows absent",
        );
        Ok(())
    }

    /// Domain events and commands: publishing the draft sends `book` / `published` (in the
    /// update's transaction); the catalogue then sends `notify_reader` to the notifications
    /// service, which handles both.
    fn events(&self, notifications: &Client, draft: i64) -> anyhow::Result<()> {
        say(
            "== 6. Events and commands: publish the draft (event book/published), then ask notifications to tell a reader (command notify_reader)",
        );
        let published = self.catalogue.send_json(
            "PUT",
            &format!("/api/books/{draft}"),
            &json!({"title": "The Dispossessed", "published": true}),
        )?;
        let title = published["title"].as_str().unwrap_or("").to_owned();
        self.wait_notification(notifications, "book_published", draft, "the event")?;
        self.converge("the published draft")?;
        let sent = self.catalogue.send_json(
            "POST",
            &format!("/api/books/{draft}/notify"),
            &json!({"reader": "ged@roke.example"}),
        )?;
        say(&format!(
            "   command {} sent to {}",
            sent["command_id"].as_str().unwrap_or(""),
            sent["service"].as_str().unwrap_or("")
        ));
        self.wait_notification(notifications, "notify_reader", draft, "the command")?;
        let all = notifications.get_json("/api/notifications")?;
        say("   notifications:");
        for n in all.as_array().into_iter().flatten() {
            say(&format!(
                "     #{:<3} {:<15} book {:<3} {:<32} to {}",
                n["id"],
                n["kind"].as_str().unwrap_or(""),
                n["book_id"],
                n["title"].as_str().unwrap_or(""),
                n["recipient"].as_str().unwrap_or("")
            ));
        }
        let events = all
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["kind"] == "book_published" && n["book_id"] == draft)
            .count();
        anyhow::ensure!(
            events == 1,
            "the book/published event of \"{title}\" was handled {events} times, not once"
        );
        Ok(())
    }

    /// Waits until the notifications service holds a notification of `kind` for `book`.
    fn wait_notification(
        &self,
        notifications: &Client,
        kind: &str,
        book: i64,
        what: &str,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        let timeout = Duration::from_secs(self.args.timeout_secs);
        loop {
            let all = notifications.get_json("/api/notifications")?;
            if all
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n["kind"] == kind && n["book_id"] == book))
            {
                say(&format!(
                    "   {what} handled by notifications in {:.1} ms",
                    start.elapsed().as_secs_f64() * 1000.0
                ));
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "{what} ({kind} for book {book}) never reached notifications within {timeout:?}: it holds {all}"
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the replica equals the master; prints how long it took.
    fn converge(&self, step: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        let timeout = Duration::from_secs(self.args.timeout_secs);
        loop {
            let books = expected_books(&self.catalogue.get_json("/api/books")?);
            let authors = expected_authors(&self.catalogue.get_json("/api/authors")?);
            let replica_books: Vec<Value> = self
                .recommendations
                .get_json("/api/books")?
                .as_array()
                .cloned()
                .unwrap_or_default();
            let replica_authors = replica_authors(&self.recommendations.get_json("/api/authors")?);
            if books == replica_books && authors == replica_authors {
                say(&format!(
                    "   replicated in {:.1} ms ({step})",
                    start.elapsed().as_secs_f64() * 1000.0
                ));
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "after {step}, the replica still differs from the master after {timeout:?}:\n master books  {}\n replica books {}\n master authors  {}\n replica authors {}",
                    Value::Array(books),
                    Value::Array(replica_books),
                    Value::Array(authors),
                    Value::Array(replica_authors)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn show(&self) -> anyhow::Result<()> {
        let books = self.recommendations.get_json("/api/books")?;
        let authors = self.recommendations.get_json("/api/authors")?;
        say("   replica books:");
        for b in books.as_array().into_iter().flatten() {
            say(&format!(
                "     #{:<3} {:<32} author {:<3} price {:<6} rev {}",
                b["id"],
                b["name"].as_str().unwrap_or(""),
                b["author_id"],
                b["price"],
                b["cqrs_revision"]
            ));
        }
        say("   replica authors (with their derived cards):");
        for a in authors.as_array().into_iter().flatten() {
            say(&format!(
                "     #{:<3} {:<20} card {:<24} rev {}",
                a["id"],
                a["name"].as_str().unwrap_or(""),
                a["card"]["initials"],
                a["cqrs_revision"]
            ));
        }
        Ok(())
    }

    fn cli(
        &self,
        service: &str,
        database: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<()> {
        say(&format!("   $ {service} {}", args.join(" ")));
        let mut child = Command::new(self.bin_dir.join(service))
            .args(args)
            .env("DATABASE_URL", database)
            .env("RUST_LOG", "warn")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {service}"))?;
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .context("stdin")?
                .write_all(input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            say(&format!("     {line}"));
        }
        anyhow::ensure!(
            output.status.success(),
            "{service} {} failed",
            args.join(" ")
        );
        Ok(())
    }
}
