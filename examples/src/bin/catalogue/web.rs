//! The catalogue's web page and JSON API.
#![allow(
    clippy::assigning_clones,
    reason = "clarity over one allocation in tests and examples"
)]
#![allow(
    clippy::format_collect,
    reason = "page and report text built once per request"
)]
#![allow(
    clippy::format_push_string,
    reason = "page and report text built once per request"
)]
#![allow(
    clippy::option_option,
    reason = "a form field: absent, empty, or a value"
)]

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bigdecimal::BigDecimal;
use chrono::NaiveDate;
use cqrs_core::event;
use cqrs_core::master::{MasterTable, SyncReport};
use cqrs_core::prelude::*;
use cqrs_examples::{esc, page};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::events::{self as catalogue_events, BookPublished};
use crate::models::schema::{authors, books};
use crate::models::{Author, Book};

#[derive(Clone)]
struct AppState {
    database_url: Arc<String>,
}

/// An error answer: 400 for bad input, 404 for a missing row, 500 otherwise.
#[derive(Debug)]
enum AppError {
    Invalid(String),
    NotFound(String),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for AppError {
    fn from(error: anyhow::Error) -> Self {
        match error.downcast_ref::<cqrs_core::Error>() {
            Some(cqrs_core::Error::NotFound { model, pk }) => {
                Self::NotFound(format!("{model} {pk} does not exist"))
            }
            Some(cqrs_core::Error::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            ))) => Self::Invalid(
                "a foreign key does not hold: the author does not exist, or still has books"
                    .to_owned(),
            ),
            _ => Self::Internal(error),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid(message) => (StatusCode::BAD_REQUEST, message).into_response(),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, message).into_response(),
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}")).into_response()
            }
        }
    }
}

type AppResult<T> = Result<T, AppError>;

/// Runs blocking database work off the async threads.
async fn db<T, F>(state: &AppState, work: F) -> AppResult<T>
where
    T: Send + 'static,
    F: FnOnce(&str) -> Result<T, AppError> + Send + 'static,
{
    let url = Arc::clone(&state.database_url);
    tokio::task::spawn_blocking(move || work(&url))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("worker failed: {e}")))?
}

pub fn serve(database_url: String, port: u16, relay: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let relay_task = if relay {
            let config = cqrs_rabbit::Config::from_env()?;
            config.apply_master_settings();
            let stop = cqrs_examples::shutdown_signal();
            Some(spawn_relay(config, database_url.clone(), stop))
        } else {
            cqrs_rabbit::Config::from_env()?.apply_master_settings();
            None
        };
        let state = AppState {
            database_url: Arc::new(database_url),
        };
        let app = Router::new()
            .route("/", get(index))
            .route("/health", get(|| async { "ok" }))
            .route("/books", post(create_book_form))
            .route("/books/{id}", post(edit_book_form))
            .route("/books/{id}/delete", post(delete_book_form))
            .route("/authors", post(create_author_form))
            .route("/api/books", get(api_books).post(api_create_book))
            .route(
                "/api/books/{id}",
                get(api_book).put(api_update_book).delete(api_delete_book),
            )
            .route("/api/books/{id}/sync", post(api_sync_book))
            .route("/api/books/sync", post(api_sync_selected))
            .route("/books/sync", post(sync_selected_form))
            .route("/api/books/{id}/notify", post(api_notify_reader))
            .route("/api/authors", get(api_authors).post(api_create_author))
            .route(
                "/api/authors/{id}",
                axum::routing::put(api_update_author).delete(api_delete_author),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        tracing::info!("catalogue on http://127.0.0.1:{port}/");
        axum::serve(listener, app)
            .with_graceful_shutdown(cqrs_examples::shutdown_signal())
            .await?;
        if let Some(task) = relay_task {
            task.await??;
        }
        Ok(())
    })
}

fn spawn_relay(
    config: cqrs_rabbit::Config,
    database_url: String,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<Result<(), cqrs_rabbit::Error>> {
    if cqrs_core::db::Backend::of_url(&database_url).is_ok_and(cqrs_core::db::Backend::is_postgres)
    {
        tokio::spawn(
            cqrs_rabbit::Relay::<diesel::PgConnection>::new(config, database_url).run(stop),
        )
    } else {
        tokio::spawn(
            cqrs_rabbit::Relay::<diesel::SqliteConnection>::new(config, database_url).run(stop),
        )
    }
}

fn load_books<C: CqrsConnection>(conn: &mut C) -> anyhow::Result<Vec<Book>>
where
    Book: MasterStore<C>,
{
    Ok(Book::db_page(conn, vec![], None, i64::MAX)?)
}

fn load_authors<C: CqrsConnection>(conn: &mut C) -> anyhow::Result<Vec<Author>>
where
    Author: MasterStore<C>,
{
    Ok(Author::db_page(conn, vec![], None, i64::MAX)?)
}

fn book_json(book: &Book) -> Value {
    json!({
        "id": book.id, "title": book.title, "author_id": book.author_id, "isbn": book.isbn,
        "price": cqrs_examples::json_decimal(book.price.as_ref()), "published": book.published,
        "notes": book.notes, "cqrs_revision": book.cqrs_revision,
        "cqrs_updated": cqrs_core::value::CqrsValue::to_cqrs(&book.cqrs_updated),
    })
}

fn author_json(author: &Author) -> Value {
    json!({
        "id": author.id, "name": author.name,
        "born": author.born.map(|d| d.to_string()),
        "cqrs_revision": author.cqrs_revision,
        "cqrs_updated": cqrs_core::value::CqrsValue::to_cqrs(&author.cqrs_updated),
    })
}

/// A book as the forms and the API send it; every field optional for updates.
#[derive(Debug, Default, Deserialize)]
struct BookInput {
    title: Option<String>,
    author_id: Option<i32>,
    isbn: Option<String>,
    price: Option<Value>,
    published: Option<bool>,
    notes: Option<String>,
}

impl BookInput {
    fn from_form(form: &HashMap<String, String>) -> AppResult<Self> {
        let author_id = match form
            .get("author_id")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            Some(text) => Some(
                text.parse()
                    .map_err(|_| AppError::Invalid(format!("author `{text}` is not a number")))?,
            ),
            None => None,
        };
        Ok(Self {
            title: form.get("title").cloned(),
            author_id,
            isbn: form.get("isbn").cloned(),
            price: form.get("price").map(|p| {
                if p.trim().is_empty() {
                    Value::Null
                } else {
                    Value::String(p.trim().to_owned())
                }
            }),
            published: Some(form.contains_key("published")),
            notes: form.get("notes").cloned(),
        })
    }

    fn price(&self) -> AppResult<Option<Option<BigDecimal>>> {
        match &self.price {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(value) => <BigDecimal as cqrs_core::value::CqrsValue>::from_cqrs(value)
                .map(|p| Some(Some(p)))
                .map_err(|e| AppError::Invalid(format!("price: {e}"))),
        }
    }

    fn title(&self) -> AppResult<Option<String>> {
        match &self.title {
            Some(t) if t.trim().is_empty() => {
                Err(AppError::Invalid("the title must not be empty".to_owned()))
            }
            Some(t) => Ok(Some(t.trim().to_owned())),
            None => Ok(None),
        }
    }
}

fn create_book(url: &str, input: &BookInput) -> AppResult<Book> {
    let title = input
        .title()?
        .ok_or_else(|| AppError::Invalid("a title is required".to_owned()))?;
    let author = input
        .author_id
        .ok_or_else(|| AppError::Invalid("an author is required".to_owned()))?;
    let price = input.price()?.flatten();
    let isbn = input.isbn.clone().unwrap_or_default();
    let published = input.published.unwrap_or(true);
    let notes = input.notes.clone().unwrap_or_default();
    let book = (|| -> anyhow::Result<Book> {
        cqrs_core::with_connection!(url, |conn| {
            Ok(cqrs_core::transaction(conn, |conn| {
                let book = Book::cqrs_create(conn, |conn| {
                    diesel::insert_into(books::table)
                        .values((
                            books::title.eq(&title),
                            books::author_id.eq(author),
                            books::isbn.eq(&isbn),
                            books::price.eq(&price),
                            books::published.eq(published),
                            books::notes.eq(&notes),
                        ))
                        .returning(books::id)
                        .get_result(conn)
                })?;
                if book.published {
                    event::publish(conn, &BookPublished::of(&book))?;
                }
                Ok::<_, cqrs_core::Error>(book)
            })?)
        })
    })()?;
    tracing::info!(id = book.id, title = %book.title, "book created");
    Ok(book)
}

fn update_book(url: &str, id: i32, input: &BookInput) -> AppResult<Book> {
    let title = input.title()?;
    let price = input.price()?;
    let change = |book: &mut Book| {
        if let Some(title) = &title {
            book.title.clone_from(title);
        }
        if let Some(author) = input.author_id {
            book.author_id = author;
        }
        if let Some(isbn) = &input.isbn {
            book.isbn.clone_from(isbn);
        }
        if let Some(price) = &price {
            book.price.clone_from(price);
        }
        if let Some(published) = input.published {
            book.published = published;
        }
        if let Some(notes) = &input.notes {
            book.notes.clone_from(notes);
        }
    };
    Ok((|| -> anyhow::Result<Book> {
        cqrs_core::with_connection!(url, |conn| {
            Ok(cqrs_core::transaction(conn, |conn| {
                let mut was_published = false;
                let book = Book::cqrs_update(conn, &id, |book| {
                    was_published = book.published;
                    change(book);
                })?;
                if book.published && !was_published {
                    event::publish(conn, &BookPublished::of(&book))?;
                }
                Ok::<_, cqrs_core::Error>(book)
            })?)
        })
    })()?)
}

fn delete_book(url: &str, id: i32) -> AppResult<()> {
    let deleted = (|| -> anyhow::Result<bool> {
        cqrs_core::with_connection!(url, |conn| Ok(Book::cqrs_delete_pk(conn, &id)?))
    })()?;
    if deleted {
        Ok(())
    } else {
        Err(AppError::NotFound(format!("book {id} does not exist")))
    }
}

#[derive(Debug, Deserialize)]
struct AuthorInput {
    name: Option<String>,
    born: Option<String>,
}

impl AuthorInput {
    fn born(&self) -> AppResult<Option<Option<NaiveDate>>> {
        match self.born.as_deref().map(str::trim) {
            None => Ok(None),
            Some("") => Ok(Some(None)),
            Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| Some(Some(d)))
                .map_err(|_| AppError::Invalid(format!("born: `{text}` is not a date YYYY-MM-DD"))),
        }
    }
}

fn create_author(url: &str, input: &AuthorInput) -> AppResult<Author> {
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AppError::Invalid("a name is required".to_owned()))?
        .to_owned();
    let born = input.born()?.flatten();
    Ok((|| -> anyhow::Result<Author> {
        cqrs_core::with_connection!(url, |conn| {
            Ok(Author::cqrs_create(conn, |conn| {
                diesel::insert_into(authors::table)
                    .values((authors::name.eq(&name), authors::born.eq(born)))
                    .returning(authors::id)
                    .get_result(conn)
            })?)
        })
    })()?)
}

async fn index(State(state): State<AppState>) -> AppResult<Html<String>> {
    let (books, authors) = db(&state, |url| {
        Ok((|| -> anyhow::Result<_> {
            cqrs_core::with_connection!(url, |conn| Ok((load_books(conn)?, load_authors(conn)?)))
        })()?)
    })
    .await?;
    let author_name = |id: i32| {
        authors
            .iter()
            .find(|a| a.id == id)
            .map_or("?".to_owned(), |a| a.name.clone())
    };
    let options: String = authors
        .iter()
        .map(|a| format!("<option value=\"{}\">{}</option>", a.id, esc(&a.name)))
        .collect();
    let mut body = String::from(
        "<p>The catalogue owns these rows; every change is written to the outbox in the same transaction and replicated to <em>recommendations</em>. Unpublished books are never replicated.</p>",
    );
    body.push_str("<h2>Books</h2><form id=\"sync\" method=\"post\" action=\"/books/sync\"></form>\
        <table><tr><th>sync</th><th>id</th><th>title</th><th>author</th><th>price</th><th>published</th><th>revision</th><th>edit</th><th></th></tr>");
    for b in &books {
        body.push_str(&format!(
            "<tr><td><input type=\"checkbox\" name=\"id\" value=\"{id}\" form=\"sync\"></td><td>{id}</td><td>{title}</td><td>{author}</td><td>{price}</td><td>{published}</td><td>{rev}</td>\
             <td><form class=\"inline\" method=\"post\" action=\"/books/{id}\"><input name=\"title\" value=\"{title}\">\
             <input name=\"price\" size=\"6\" value=\"{price}\"><input type=\"hidden\" name=\"author_id\" value=\"{author_id}\">\
             <label><input type=\"checkbox\" name=\"published\"{checked}>published</label><button>save</button></form></td>\
             <td><form class=\"inline\" method=\"post\" action=\"/books/{id}/delete\"><button>delete</button></form></td></tr>",
            id = b.id,
            title = esc(&b.title),
            author = esc(&author_name(b.author_id)),
            author_id = b.author_id,
            price = b.price.as_ref().map(ToString::to_string).unwrap_or_default(),
            published = if b.published { "yes" } else { "draft" },
            checked = if b.published { " checked" } else { "" },
            rev = b.cqrs_revision,
        ));
    }
    body.push_str(
        "</table><p><button form=\"sync\">Synchronize selected books via CQRS</button></p>",
    );
    body.push_str(&format!(
        "<form method=\"post\" action=\"/books\"><input name=\"title\" placeholder=\"title\" required>\
         <select name=\"author_id\">{options}</select><input name=\"isbn\" placeholder=\"isbn\">\
         <input name=\"price\" placeholder=\"price\" size=\"6\"><label><input type=\"checkbox\" name=\"published\" checked>published</label>\
         <button>add book</button></form>"
    ));
    body.push_str(
        "<h2>Authors</h2><table><tr><th>id</th><th>name</th><th>born</th><th>revision</th></tr>",
    );
    for a in &authors {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.id,
            esc(&a.name),
            a.born.map(|d| d.to_string()).unwrap_or_default(),
            a.cqrs_revision
        ));
    }
    body.push_str("</table><form method=\"post\" action=\"/authors\"><input name=\"name\" placeholder=\"name\" required>\
        <input name=\"born\" placeholder=\"YYYY-MM-DD\"><button>add author</button></form>");
    Ok(Html(page("Catalogue", None, &body)))
}

async fn create_book_form(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> AppResult<Redirect> {
    let input = BookInput::from_form(&form)?;
    db(&state, move |url| create_book(url, &input)).await?;
    Ok(Redirect::to("/"))
}

async fn edit_book_form(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Form(form): Form<HashMap<String, String>>,
) -> AppResult<Redirect> {
    let input = BookInput::from_form(&form)?;
    db(&state, move |url| update_book(url, id, &input)).await?;
    Ok(Redirect::to("/"))
}

async fn delete_book_form(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> AppResult<Redirect> {
    db(&state, move |url| delete_book(url, id)).await?;
    Ok(Redirect::to("/"))
}

async fn create_author_form(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> AppResult<Redirect> {
    let input = AuthorInput {
        name: form.get("name").cloned(),
        born: form.get("born").cloned(),
    };
    db(&state, move |url| create_author(url, &input)).await?;
    Ok(Redirect::to("/"))
}

async fn api_books(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let books = db(&state, |url| {
        Ok((|| -> anyhow::Result<_> {
            cqrs_core::with_connection!(url, |conn| load_books(conn))
        })()?)
    })
    .await?;
    Ok(Json(Value::Array(books.iter().map(book_json).collect())))
}

async fn api_book(State(state): State<AppState>, Path(id): Path<i32>) -> AppResult<Json<Value>> {
    let book = db(&state, move |url| {
        Ok((|| -> anyhow::Result<_> {
            cqrs_core::with_connection!(url, |conn| Ok(Book::db_get(conn, &id, false)?))
        })()?)
    })
    .await?;
    book.map(|b| Json(book_json(&b)))
        .ok_or_else(|| AppError::NotFound(format!("book {id} does not exist")))
}

async fn api_create_book(
    State(state): State<AppState>,
    Json(input): Json<BookInput>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let book = db(&state, move |url| create_book(url, &input)).await?;
    Ok((StatusCode::CREATED, Json(book_json(&book))))
}

async fn api_update_book(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Json(input): Json<BookInput>,
) -> AppResult<Json<Value>> {
    let book = db(&state, move |url| update_book(url, id, &input)).await?;
    Ok(Json(book_json(&book)))
}

async fn api_delete_book(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> AppResult<StatusCode> {
    db(&state, move |url| delete_book(url, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_sync_book(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Query(query): Query<HashMap<String, String>>,
) -> AppResult<Json<Value>> {
    let queue = query.get("queue").cloned();
    let sent = db(&state, move |url| {
        Ok((|| -> anyhow::Result<bool> {
            cqrs_core::with_connection!(url, |conn| Ok(Book::cqrs_sync_pks(
                conn,
                &[id],
                queue.as_deref().into()
            )? > 0))
        })()?)
    })
    .await?;
    Ok(Json(json!({"sent": sent})))
}

/// Books an operator picked for a SYNC (django-cqrs's admin action "Synchronize selected").
#[derive(Debug, Deserialize)]
struct SyncInput {
    ids: Vec<i32>,
    /// Only to the replica service consuming this queue (default: every replica).
    queue: Option<String>,
}

fn sync_selected(url: &str, ids: &[i32], queue: Option<&str>) -> AppResult<SyncReport> {
    if ids.is_empty() {
        return Err(AppError::Invalid("no book was selected".to_owned()));
    }
    Ok((|| -> anyhow::Result<SyncReport> {
        cqrs_core::with_connection!(url, |conn| Ok(Book::cqrs_sync_selected(
            conn,
            ids,
            queue.into()
        )?))
    })()?)
}

fn report_json(report: &SyncReport) -> Value {
    json!({
        "synced": report.synced,
        "failed": report.failed.iter().map(|(pk, why)| json!({"id": pk, "reason": why.to_string()})).collect::<Vec<_>>(),
        "message": report.to_string(),
    })
}

/// `POST /api/books/sync {"ids": [...], "queue": null}`: what was synced, what failed and why.
async fn api_sync_selected(
    State(state): State<AppState>,
    Json(input): Json<SyncInput>,
) -> AppResult<Json<Value>> {
    let report = db(&state, move |url| {
        sync_selected(url, &input.ids, input.queue.as_deref())
    })
    .await?;
    Ok(Json(report_json(&report)))
}

/// The page's "sync selected" form: the checked rows' `id`s; answers with django-cqrs's reply.
async fn sync_selected_form(
    State(state): State<AppState>,
    Form(fields): Form<Vec<(String, String)>>,
) -> AppResult<Html<String>> {
    let ids = fields
        .iter()
        .filter(|(name, _)| name == "id")
        .map(|(_, value)| {
            value
                .trim()
                .parse::<i32>()
                .map_err(|_| AppError::Invalid(format!("book `{value}` is not a number")))
        })
        .collect::<AppResult<Vec<i32>>>()?;
    let report = db(&state, move |url| sync_selected(url, &ids, None)).await?;
    let body = format!(
        "<p id=\"sync-report\">{}</p><p><a href=\"/\">back to the catalogue</a></p>",
        esc(&report.to_string())
    );
    Ok(Html(page("Synchronize selected books", None, &body)))
}

#[derive(Debug, Deserialize)]
struct NotifyInput {
    reader: String,
}

/// Asks the notifications service, by a command through the outbox, to tell a reader about
/// a book.
async fn api_notify_reader(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Json(input): Json<NotifyInput>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let reader = input.reader.trim().to_owned();
    if reader.is_empty() {
        return Err(AppError::Invalid("a reader is required".to_owned()));
    }
    let command_id = db(&state, move |url| {
        (|| -> anyhow::Result<Option<String>> {
            cqrs_core::with_connection!(url, |conn| {
                cqrs_core::transaction(conn, |conn| {
                    let Some(book) = Book::db_get(conn, &id, false)? else {
                        return Ok(None);
                    };
                    Ok::<_, cqrs_core::Error>(Some(catalogue_events::notify_reader(
                        conn, &book, &reader,
                    )?))
                })
            })
            .map_err(anyhow::Error::from)
        })()
        .map_err(AppError::from)
    })
    .await?
    .ok_or_else(|| AppError::NotFound(format!("book {id} does not exist")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"command_id": command_id, "service": catalogue_events::NOTIFICATIONS})),
    ))
}

async fn api_authors(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let authors = db(&state, |url| {
        Ok((|| -> anyhow::Result<_> {
            cqrs_core::with_connection!(url, |conn| load_authors(conn))
        })()?)
    })
    .await?;
    Ok(Json(Value::Array(
        authors.iter().map(author_json).collect(),
    )))
}

async fn api_create_author(
    State(state): State<AppState>,
    Json(input): Json<AuthorInput>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let author = db(&state, move |url| create_author(url, &input)).await?;
    Ok((StatusCode::CREATED, Json(author_json(&author))))
}

async fn api_update_author(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Json(input): Json<AuthorInput>,
) -> AppResult<Json<Value>> {
    let born = input.born()?;
    let name = input.name.clone();
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(AppError::Invalid("the name must not be empty".to_owned()));
    }
    let author = db(&state, move |url| {
        Ok((|| -> anyhow::Result<Author> {
            cqrs_core::with_connection!(url, |conn| Ok(Author::cqrs_update(conn, &id, |a| {
                if let Some(name) = &name {
                    a.name = name.trim().to_owned();
                }
                if let Some(born) = born {
                    a.born = born;
                }
            })?))
        })()?)
    })
    .await?;
    Ok(Json(author_json(&author)))
}

async fn api_delete_author(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> AppResult<StatusCode> {
    let deleted = db(&state, move |url| {
        Ok((|| -> anyhow::Result<bool> {
            cqrs_core::with_connection!(url, |conn| Ok(Author::cqrs_delete_pk(conn, &id)?))
        })()?)
    })
    .await?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!("author {id} does not exist")))
    }
}
