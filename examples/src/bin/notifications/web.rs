//! The notifications page (it refreshes itself) and JSON API.
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
use cqrs_examples::{esc, page};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::handlers::schema::notifications;

#[derive(Clone)]
struct AppState {
    database_url: Arc<String>,
}

use cqrs_examples::ServerError as AppError;

pub fn serve(database_url: String, port: u16) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let state = AppState {
            database_url: Arc::new(database_url),
        };
        let app = Router::new()
            .route("/", get(index))
            .route("/health", get(|| async { "ok" }))
            .route("/api/notifications", get(api_notifications))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        tracing::info!("notifications on http://127.0.0.1:{port}/");
        axum::serve(listener, app)
            .with_graceful_shutdown(cqrs_examples::shutdown_signal())
            .await?;
        Ok(())
    })
}

type Row = (
    i32,
    String,
    i32,
    String,
    String,
    Option<String>,
    chrono::NaiveDateTime,
);

async fn load(state: &AppState) -> Result<Vec<Row>, AppError> {
    let url = Arc::clone(&state.database_url);
    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Row>> {
        cqrs_core::with_connection!(&url, |conn| Ok(notifications::table
            .order(notifications::id)
            .select((
                notifications::id,
                notifications::kind,
                notifications::book_id,
                notifications::title,
                notifications::recipient,
                notifications::event_id,
                notifications::received,
            ))
            .load(conn)?))
    })
    .await??;
    Ok(rows)
}

async fn api_notifications(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let rows = load(&state).await?;
    Ok(Json(Value::Array(
        rows.into_iter()
            .map(
                |(id, kind, book_id, title, recipient, event_id, received)| {
                    json!({"id": id, "kind": kind, "book_id": book_id, "title": title,
                       "recipient": recipient, "event_id": event_id,
                       "received": received.format("%Y-%m-%d %H:%M:%S").to_string()})
                },
            )
            .collect(),
    )))
}

async fn index(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let rows = load(&state).await?;
    let mut body = String::from(
        "<p>Each row was written by a handler, in the transaction that acknowledged the catalogue's \
         event (<code>book</code> / <code>published</code>) or command (<code>notify_reader</code>).</p>\
         <table><tr><th>#</th><th>kind</th><th>book</th><th>title</th><th>to</th><th>event id</th><th>received</th></tr>",
    );
    for (id, kind, book_id, title, recipient, event_id, received) in rows {
        body.push_str(&format!(
            "<tr><td>{id}</td><td>{}</td><td>{book_id}</td><td>{}</td><td>{}</td><td class=\"muted\">{}</td><td>{received}</td></tr>",
            esc(&kind),
            esc(&title),
            esc(&recipient),
            esc(event_id.as_deref().unwrap_or("")),
        ));
    }
    body.push_str("</table>");
    Ok(Html(page("Notifications", Some(2), &body)))
}
