//! The Rust side of the django-cqrs interoperability tests: replicas of the Django masters,
//! masters for the Django replicas, their scenario and a state dump, and the operations CLI.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test binary"
)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "handlers and helpers take what their callers hand over (a handler takes its message by value)"
)]

mod models;

use std::process::ExitCode;

use chrono::{NaiveDate, Utc};
use clap::{Parser, Subcommand};
use cqrs_core::master::MasterTable;
use cqrs_core::prelude::*;
use diesel::SqliteConnection;
use models::{AuthorRef, BookRef, PublisherRef, ReviewRef, RsAuthor, RsBook};
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    global: cqrs_rabbit::cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play the Rust master scenario.
    Scenario {
        /// The Django replica's queue (the direct sync's target).
        #[arg(long)]
        direct_queue: String,
        /// Only create a book the Django replica rejects (the dead-letter test).
        #[arg(long)]
        reject_book: bool,
    },
    /// Print every table as JSON.
    State,
    #[command(flatten)]
    Cqrs(cqrs_rabbit::cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let url = cli
        .global
        .database_url
        .clone()
        .unwrap_or_else(|| "interop.sqlite3".to_owned());
    {
        use diesel::connection::SimpleConnection;
        let mut conn = SqliteConnection::cqrs_connect(&url).expect("database");
        conn.cqrs_setup().expect("setup");
        conn.batch_execute(models::DDL).expect("tables");
    }
    match cli.command {
        Command::Cqrs(command) => {
            cqrs_rabbit::cli::execute(command, &cli.global, "interop.sqlite3")
        }
        Command::State => {
            let mut conn = SqliteConnection::cqrs_connect(&url).expect("database");
            let state = state(&mut conn);
            #[allow(clippy::print_stdout, reason = "the command's output")]
            {
                println!("{state}");
            }
            ExitCode::SUCCESS
        }
        Command::Scenario {
            direct_queue,
            reject_book,
        } => {
            cqrs_rabbit::Config::from_env()
                .expect("config")
                .apply_master_settings();
            let mut conn = SqliteConnection::cqrs_connect(&url).expect("database");
            if reject_book {
                rs_book(100, "REJECT me", None)
                    .cqrs_insert(&mut conn)
                    .expect("insert");
            } else {
                scenario(&mut conn, &direct_queue);
            }
            ExitCode::SUCCESS
        }
    }
}

fn rs_book(id: i32, title: &str, author: Option<&str>) -> RsBook {
    RsBook {
        id,
        title: title.to_owned(),
        author_id: author.map(str::to_owned),
        price: Some(format!("{}.{:02}", 5 + id, id % 100).parse().unwrap()),
        released: NaiveDate::from_ymd_opt(2000 + id, 1 + u32::try_from(id).unwrap() % 12, 1),
        in_stock: id % 2 == 0,
        cqrs_revision: 0,
        cqrs_updated: Utc::now().naive_utc(),
    }
}

fn scenario(conn: &mut SqliteConnection, direct_queue: &str) {
    let authors = [
        "0b8f6c1e-7d24-4a93-b5e2-9c0d1e2f3a4b",
        "9a6f0a3e-1c1d-4b9a-8e2f-5d6c7b8a9f00",
        "3d2c1b0a-9f8e-4d7c-a6b5-4c3d2e1f0a9b",
    ];
    for (i, id) in authors.iter().enumerate() {
        RsAuthor {
            id: (*id).to_owned(),
            name: format!("Author {i}"),
            cqrs_revision: 0,
            cqrs_updated: Utc::now().naive_utc(),
        }
        .cqrs_insert(conn)
        .unwrap();
    }
    for id in 1..=12 {
        rs_book(
            id,
            &format!("Rust book {id}"),
            Some(authors[usize::try_from(id).unwrap() % 3]),
        )
        .cqrs_insert(conn)
        .unwrap();
    }
    let mut no_price = rs_book(13, "No price, no author", None);
    no_price.price = None;
    no_price.released = None;
    no_price.cqrs_insert(conn).unwrap();
    for id in [1, 4, 7, 10] {
        RsBook::cqrs_update(conn, &id, |b| b.title = format!("{} (revised)", b.title)).unwrap();
    }
    RsBook::cqrs_update(conn, &2, |b| b.price = Some("99.95".parse().unwrap())).unwrap();
    RsAuthor::cqrs_update(conn, &authors[1].to_owned(), |a| {
        a.name = "Renamed Author".into();
    })
    .unwrap();
    RsBook::cqrs_delete_pk(conn, &3).unwrap();
    RsBook::cqrs_delete_pk(conn, &6).unwrap();
    RsBook::cqrs_bulk_insert(
        conn,
        (20..25)
            .map(|id| rs_book(id, &format!("Bulk {id}"), None))
            .collect(),
    )
    .unwrap();
    let filters = RsBook::cqrs_filter(&json!({"id__gte": 20})).unwrap();
    let _ = RsBook::cqrs_bulk_update_filtered(conn, filters, |b| b.in_stock = !b.in_stock).unwrap();
    // one message per transaction: five edits of a row send one message, revision + 1
    cqrs_core::transaction(conn, |conn| {
        for n in 1..=5 {
            RsBook::cqrs_update(conn, &8, |b| b.title = format!("Rust book 8, edit {n}"))?;
        }
        Ok::<_, cqrs_core::Error>(())
    })
    .unwrap();
    // partial saves, django-cqrs's rule: without update_cqrs_fields the revision stays (a
    // replica takes the message for a duplicate), with it the revision moves
    let mut nine = RsBook::db_get(conn, &9, false).unwrap().unwrap();
    nine.in_stock = !nine.in_stock;
    let mut nine = nine
        .cqrs_save_fields(conn, &["in_stock"], Some(false))
        .unwrap();
    nine.title = "Rust book 9 (partial saves)".into();
    let _ = nine
        .cqrs_save_fields(conn, &["title", "in_stock"], Some(true))
        .unwrap();
    RsBook::db_get(conn, &5, false)
        .unwrap()
        .unwrap()
        .cqrs_sync(conn, SyncTarget::Broadcast)
        .unwrap();
    RsAuthor::cqrs_sync_pks(
        conn,
        &authors.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
        SyncTarget::Queue(direct_queue),
    )
    .unwrap();
}

fn rows<T>(items: Vec<T>, f: impl Fn(&T) -> Value) -> Value {
    Value::Array(items.iter().map(f).collect())
}

fn ts(t: &chrono::NaiveDateTime) -> Value {
    json!(
        t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

fn dec(d: Option<&bigdecimal::BigDecimal>) -> Value {
    d.map_or(Value::Null, |d| {
        json!(
            d.with_scale_round(2, bigdecimal::RoundingMode::HalfEven)
                .to_string()
        )
    })
}

fn all<M: ReplicaStore<SqliteConnection>>(conn: &mut SqliteConnection) -> Vec<M> {
    let pks = M::db_pks(conn, None, i64::MAX).unwrap();
    pks.iter()
        .filter_map(|pk| M::db_get(conn, pk, false).unwrap())
        .collect()
}

fn state(conn: &mut SqliteConnection) -> Value {
    json!({
        "dj_publisher": rows(all::<PublisherRef>(conn), |p| json!({"id": p.id, "name": p.name, "founded": p.founded.map(|d| d.to_string()), "active": p.active, "cqrs_revision": p.cqrs_revision, "cqrs_updated": ts(&p.cqrs_updated)})),
        "dj_author": rows(all::<AuthorRef>(conn), |a| json!({"id": a.id, "name": a.name, "publisher": a.publisher, "birth_date": a.birth_date.map(|d| d.to_string()), "rating": dec(Some(&a.rating)), "cqrs_revision": a.cqrs_revision, "cqrs_updated": ts(&a.cqrs_updated)})),
        "dj_book": rows(all::<BookRef>(conn), |b| json!({"id": b.id, "title": b.title, "author": b.author, "publisher": b.publisher, "price": dec(b.price.as_ref()), "published_at": ts(&b.published_at), "is_public": b.is_public, "pages": b.pages, "cqrs_revision": b.cqrs_revision, "cqrs_updated": ts(&b.cqrs_updated)})),
        "dj_review": rows(all::<ReviewRef>(conn), |r| json!({"id": r.id, "book": r.book, "stars": r.stars, "text_upper": r.text_upper, "cqrs_revision": r.cqrs_revision, "cqrs_updated": ts(&r.cqrs_updated)})),
        "rs_author": rows(RsAuthor::db_page(conn, vec![], None, i64::MAX).unwrap(), |a| json!({"id": a.id, "name": a.name, "cqrs_revision": a.cqrs_revision, "cqrs_updated": ts(&a.cqrs_updated)})),
        "rs_book": rows(RsBook::db_page(conn, vec![], None, i64::MAX).unwrap(), |b| json!({"id": b.id, "title": b.title, "author": b.author_id, "price": dec(b.price.as_ref()), "released": b.released.map(|d| d.to_string()), "in_stock": b.in_stock, "cqrs_revision": b.cqrs_revision, "cqrs_updated": ts(&b.cqrs_updated)})),
    })
}
