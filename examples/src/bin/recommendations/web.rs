//! The recommendations page (it refreshes itself) and JSON API.
#![allow(
    clippy::format_push_string,
    reason = "page and report text built once per request"
)]

use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use cqrs_core::prelude::*;
use cqrs_examples::{esc, page};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::models::schema::author_cards;
use crate::models::{AuthorRef, BookRef};

#[derive(Clone)]
struct AppState {
    database_url: Arc<String>,
}

use cqrs_examples::ServerError as AppError;

pub fn serve(
    database_url: String,
    port: u16,
    consume: bool,
    queue: Option<String>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let consumer = if consume {
            let mut config = cqrs_rabbit::Config::from_env()?;
            if queue.is_some() {
                config.queue = queue;
            }
            Some(spawn_consumer(config, database_url.clone()).await?)
        } else {
            None
        };
        let state = AppState {
            database_url: Arc::new(database_url),
        };
        let app = Router::new()
            .route("/", get(index))
            .route("/health", get(|| async { "ok" }))
            .route("/api/books", get(api_books))
            .route("/api/authors", get(api_authors))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        tracing::info!("recommendations on http://127.0.0.1:{port}/");
        axum::serve(listener, app)
            .with_graceful_shutdown(cqrs_examples::shutdown_signal())
            .await?;
        if let Some(task) = consumer {
            task.await??;
        }
        Ok(())
    })
}

async fn spawn_consumer(
    config: cqrs_rabbit::Config,
    url: String,
) -> anyhow::Result<tokio::task::JoinHandle<Result<(), cqrs_rabbit::Error>>> {
    Ok(if cqrs_core::db::Backend::of_url(&url)?.is_postgres() {
        let consumer = cqrs_rabbit::Consumer::<diesel::PgConnection>::new(config, url);
        consumer.check().await?;
        tokio::spawn(consumer.run(cqrs_examples::shutdown_signal()))
    } else {
        let consumer = cqrs_rabbit::Consumer::<diesel::SqliteConnection>::new(config, url);
        consumer.check().await?;
        tokio::spawn(consumer.run(cqrs_examples::shutdown_signal()))
    })
}

struct Snapshot {
    books: Vec<BookRef>,
    authors: Vec<AuthorRef>,
    cards: Vec<(i32, String, String, i32)>,
}

fn snapshot<C: CqrsConnection>(conn: &mut C) -> anyhow::Result<Vec<BookRef>>
where
    BookRef: ReplicaStore<C>,
{
    let pks = BookRef::cqrs_pks(conn, None, i64::MAX)?;
    let mut books = Vec::with_capacity(pks.len());
    for pk in pks {
        books.extend(BookRef::cqrs_get(conn, &pk)?);
    }
    Ok(books)
}

fn authors<C: CqrsConnection>(conn: &mut C) -> anyhow::Result<Vec<AuthorRef>>
where
    AuthorRef: ReplicaStore<C>,
{
    let pks = AuthorRef::cqrs_pks(conn, None, i64::MAX)?;
    let mut out = Vec::with_capacity(pks.len());
    for pk in pks {
        out.extend(AuthorRef::cqrs_get(conn, &pk)?);
    }
    Ok(out)
}

async fn load(state: &AppState) -> Result<Snapshot, AppError> {
    let url = Arc::clone(&state.database_url);
    let snapshot = tokio::task::spawn_blocking(move || -> anyhow::Result<Snapshot> {
        cqrs_core::with_connection!(&url, |conn| {
            let cards = author_cards::table
                .order(author_cards::author_id)
                .select((
                    author_cards::author_id,
                    author_cards::display_name,
                    author_cards::initials,
                    author_cards::revision,
                ))
                .load(conn)?;
            Ok(Snapshot {
                books: snapshot(conn)?,
                authors: authors(conn)?,
                cards,
            })
        })
    })
    .await??;
    Ok(snapshot)
}

fn book_json(b: &BookRef) -> Value {
    json!({"id": b.id, "name": b.name, "author_id": b.author_id, "price": cqrs_examples::json_decimal(b.price.as_ref()),
        "cqrs_revision": b.cqrs_revision, "cqrs_updated": cqrs_core::value::CqrsValue::to_cqrs(&b.cqrs_updated)})
}

async fn index(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let s = load(&state).await?;
    let name = |id: i32| {
        s.cards
            .iter()
            .find(|c| c.0 == id)
            .map_or_else(|| format!("author {id}"), |c| c.1.clone())
    };
    let mut body = String::from(
        "<p>Replicated from <em>catalogue</em> over RabbitMQ; this page refreshes every 2 seconds.</p>",
    );
    body.push_str("<h2>Books</h2><table><tr><th>id</th><th>name</th><th>author</th><th>price</th><th>revision</th><th>updated (master)</th></tr>");
    for b in &s.books {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
            b.id,
            esc(&b.name),
            esc(&name(b.author_id)),
            b.price.as_ref().map(ToString::to_string).unwrap_or_default(),
            b.cqrs_revision,
            b.cqrs_updated
        ));
    }
    body.push_str("</table><h2>Authors</h2><table><tr><th>id</th><th>name</th><th>born</th><th>card</th><th>revision</th></tr>");
    for a in &s.authors {
        let card = s
            .cards
            .iter()
            .find(|c| c.0 == a.id)
            .map(|c| format!("{} ({})", c.1, c.2))
            .unwrap_or_default();
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.id,
            esc(&a.name),
            a.born.map(|d| d.to_string()).unwrap_or_default(),
            esc(&card),
            a.cqrs_revision
        ));
    }
    body.push_str("</table>");
    Ok(Html(page("Recommendations", Some(2), &body)))
}

async fn api_books(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let s = load(&state).await?;
    Ok(Json(Value::Array(s.books.iter().map(book_json).collect())))
}

async fn api_authors(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let s = load(&state).await?;
    Ok(Json(Value::Array(
        s.authors
            .iter()
            .map(|a| {
                let card = s.cards.iter().find(|c| c.0 == a.id);
                json!({"id": a.id, "name": a.name, "born": a.born.map(|d| d.to_string()),
                    "cqrs_revision": a.cqrs_revision,
                    "card": card.map(|c| json!({"display_name": c.1, "initials": c.2, "revision": c.3}))})
            })
            .collect(),
    )))
}
