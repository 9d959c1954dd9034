//! An event handler of the test service, for the tests of its `events` and `handlers`
//! commands: each `test_greeting` / `said` event adds a row to `greetings` (a table the test
//! creates), once per event id (the inbox).
#![allow(
    clippy::needless_pass_by_value,
    reason = "handlers and helpers take what their callers hand over (a handler takes its message by value)"
)]

use cqrs_core::event::{DomainEvent, Event, HandlerError};
use diesel::RunQueryDsl;
use serde::{Deserialize, Serialize};

/// The event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// Who said it.
    pub said_by: String,
}

impl DomainEvent for Greeting {
    const AGGREGATE: &'static str = "test_greeting";
    const EVENT_TYPE: &'static str = "said";
}

/// The DDL of the table the handlers write.
pub const GREETINGS_DDL: &str = "CREATE TABLE IF NOT EXISTS greetings (said_by TEXT NOT NULL)";

/// The insert of one greeting (a quoted literal: both backends run the same text).
fn insert_sql(event: &Event<Greeting>) -> Result<String, HandlerError> {
    if event.payload.said_by.is_empty() {
        return Err(HandlerError::permanent("a greeting needs `said_by`"));
    }
    Ok(format!(
        "INSERT INTO greetings (said_by) VALUES ('{}')",
        event.payload.said_by.replace('\'', "''")
    ))
}

#[cqrs_core::handler(exchange = "test_greeting", routing_key = "said", inbox)]
fn greeting_said_sqlite(
    conn: &mut diesel::SqliteConnection,
    event: Event<Greeting>,
) -> Result<(), HandlerError> {
    diesel::sql_query(insert_sql(&event)?).execute(conn)?;
    Ok(())
}

#[cqrs_core::handler(exchange = "test_greeting", routing_key = "said", inbox)]
fn greeting_said_postgres(
    conn: &mut diesel::PgConnection,
    event: Event<Greeting>,
) -> Result<(), HandlerError> {
    diesel::sql_query(insert_sql(&event)?).execute(conn)?;
    Ok(())
}
