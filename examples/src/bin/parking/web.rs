//! The parking service's HTTP API and page. Every read comes from the replica; a create, a
//! booking and a release answer with the slot as the replica has it, after read-your-writes.
#![allow(
    clippy::format_push_string,
    reason = "page and report text built once per request"
)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use cqrs_core::split::SplitError;
use cqrs_examples::{esc, page};
use serde_json::{Value, json};

use crate::models::{AVAILABLE, BOOKED};
use crate::service::{Changed, Db, ParkingError};

/// How long a write's answer waits for the replica.
const READ_YOUR_WRITES: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct AppState {
    db: Arc<Db>,
}

/// An error as an HTTP answer: the status says whose fault it is, the body says what.
struct ApiError(ParkingError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            ParkingError::BadName | ParkingError::BadUuid(_) => StatusCode::BAD_REQUEST,
            ParkingError::NotFound(_) => StatusCode::NOT_FOUND,
            ParkingError::Conflict { .. } => StatusCode::CONFLICT,
            ParkingError::Split(SplitError::Pool { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            ParkingError::MixedBackends | ParkingError::Split(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(json!({"error": self.0.to_string()}))).into_response()
    }
}

impl From<ParkingError> for ApiError {
    fn from(error: ParkingError) -> Self {
        Self(error)
    }
}

/// The routes (for `serve` and the tests).
pub fn router(db: Db) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(|| async { "ok" }))
        .route("/slots", post(create_form))
        .route("/slots/{uuid}/book", post(book_form))
        .route("/slots/{uuid}/release", post(release_form))
        .route("/api/slots", get(api_list).post(api_create))
        .route("/api/slots/{uuid}/book", post(api_book))
        .route("/api/slots/{uuid}/release", post(api_release))
        .with_state(AppState { db: Arc::new(db) })
}

/// Serves on 127.0.0.1:`port` until `shutdown`.
pub async fn serve(
    db: Db,
    port: u16,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    tracing::info!("parking on http://127.0.0.1:{port}/");
    axum::serve(listener, router(db))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Runs a blocking database call off the async threads.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Db) -> Result<T, ParkingError> + Send + 'static,
) -> Result<T, ApiError> {
    let db = Arc::clone(&state.db);
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| {
            ApiError(ParkingError::Split(SplitError::Core(
                cqrs_core::Error::Io {
                    context: "a database task failed".to_owned(),
                    source: std::io::Error::other(e),
                },
            )))
        })?
        .map_err(ApiError)
}

/// The answer to a committed write: the replica's row once it applied the write (200/201);
/// otherwise (the wait timed out, the replica is away) the primary's row with `"replica"`
/// saying why (202: the write stands and replicates when it can).
async fn answer(state: &AppState, changed: Changed, created: bool) -> Response {
    let pending = match state
        .db
        .read_after(&changed.written, READ_YOUR_WRITES)
        .await
    {
        Ok(Some(slot)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            return (status, Json(slot.to_json())).into_response();
        }
        Ok(None) => "the row is not in the read model".to_owned(),
        Err(error) => error.to_string(),
    };
    let slot = &changed.slot;
    (
        StatusCode::ACCEPTED,
        Json(
            json!({"uuid": slot.uuid.to_string(), "name": slot.name, "status": slot.status,
            "revision": slot.cqrs_revision, "replica": pending}),
        ),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct NewSlot {
    name: String,
}

async fn api_list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let slots = blocking(&state, Db::list).await?;
    Ok(Json(Value::Array(
        slots
            .iter()
            .map(super::models::ParkingSlotRead::to_json)
            .collect(),
    )))
}

async fn api_create(
    State(state): State<AppState>,
    Json(new): Json<NewSlot>,
) -> Result<Response, ApiError> {
    let changed = blocking(&state, move |db| db.create(&new.name)).await?;
    Ok(answer(&state, changed, true).await)
}

async fn api_book(
    State(state): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let changed = blocking(&state, move |db| db.set_status(&uuid, BOOKED)).await?;
    Ok(answer(&state, changed, false).await)
}

async fn api_release(
    State(state): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let changed = blocking(&state, move |db| db.set_status(&uuid, AVAILABLE)).await?;
    Ok(answer(&state, changed, false).await)
}

/// A form's write, then back to the list, which shows it (read-your-writes, then redirect;
/// the list says so if the read model cannot be read).
async fn after_form(
    state: &AppState,
    changed: Result<Changed, ApiError>,
) -> Result<Redirect, ApiError> {
    let changed = changed?;
    if let Err(error) = state
        .db
        .read_after(&changed.written, READ_YOUR_WRITES)
        .await
    {
        tracing::warn!(%error, "a form's write is not in the read model yet");
    }
    Ok(Redirect::to("/"))
}

async fn create_form(
    State(state): State<AppState>,
    Form(new): Form<NewSlot>,
) -> Result<Redirect, ApiError> {
    let changed = blocking(&state, move |db| db.create(&new.name)).await;
    after_form(&state, changed).await
}

async fn book_form(
    State(state): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<Redirect, ApiError> {
    let changed = blocking(&state, move |db| db.set_status(&uuid, BOOKED)).await;
    after_form(&state, changed).await
}

async fn release_form(
    State(state): State<AppState>,
    Path(uuid): Path<String>,
) -> Result<Redirect, ApiError> {
    let changed = blocking(&state, move |db| db.set_status(&uuid, AVAILABLE)).await;
    after_form(&state, changed).await
}

async fn index(State(state): State<AppState>) -> Response {
    let slots = match blocking(&state, Db::list).await {
        Ok(slots) => slots,
        Err(ApiError(error)) => {
            let body = format!(
                "<p class=\"error\">The read model cannot be read: {}</p>",
                esc(&error.to_string())
            );
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page("Parking", None, &body)),
            )
                .into_response();
        }
    };
    let mut body = String::from(
        "<p>Writes go to the primary database; this list is the read model, kept in the replica \
         database by the consumer.</p>\
         <form method=\"post\" action=\"/slots\"><input name=\"name\" placeholder=\"Slot name\" required>\
         <button>Create a slot</button></form>\
         <table id=\"slots\"><tr><th>name</th><th>status</th><th>uuid</th><th>revision</th><th></th></tr>",
    );
    for slot in &slots {
        let (action, label) = if slot.status == BOOKED {
            ("release", "Release")
        } else {
            ("book", "Book")
        };
        body.push_str(&format!(
            "<tr class=\"slot\"><td>{}</td><td class=\"status\">{}</td><td class=\"muted\">{}</td><td>{}</td>\
             <td><form class=\"inline\" method=\"post\" action=\"/slots/{}/{action}\"><button>{label}</button></form></td></tr>",
            esc(&slot.name),
            esc(&slot.status),
            slot.uuid,
            slot.cqrs_revision,
            slot.uuid,
        ));
    }
    body.push_str("</table>");
    if slots.is_empty() {
        body.push_str("<p class=\"muted\">No slots yet.</p>");
    }
    Html(page("Parking", None, &body)).into_response()
}
