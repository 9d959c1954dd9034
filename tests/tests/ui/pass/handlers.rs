// Every handler shape compiles and registers.
use cqrs_core::event::{Call, CallResponse, Command, Event, HandlerError, Incoming};
use diesel::SqliteConnection;

#[derive(serde::Deserialize)]
struct Paid { order_id: i64 }

#[cqrs_core::handler(exchange = "order", routing_key = "paid", inbox)]
fn paid(_conn: &mut SqliteConnection, event: Event<Paid>) -> Result<(), HandlerError> {
    let _ = event.payload.order_id;
    Ok(())
}

#[cqrs_core::handler(exchange = "order")]
fn any_order_event(_conn: &mut SqliteConnection, _m: Incoming) -> Result<(), HandlerError> { Ok(()) }

#[cqrs_core::handler(exchange = "sms", routing_key = "send")]
fn send(_conn: &mut diesel::PgConnection, _c: Command<serde_json::Value>) -> Result<(), HandlerError> { Ok(()) }

#[cqrs_core::handler(exchange = "sms", routing_key = "price")]
fn price(_conn: &mut SqliteConnection, c: Call<serde_json::Value>) -> Result<serde_json::Value, HandlerError> { Ok(c.data) }

#[cqrs_core::handler(exchange = "replies")]
fn answers(_conn: &mut SqliteConnection, _r: CallResponse<serde_json::Value>) -> Result<(), diesel::result::Error> { Ok(()) }

#[cqrs_core::handler(default)]
fn fallback(_conn: &mut SqliteConnection, _m: Incoming) -> Result<(), HandlerError> { Ok(()) }

// One generic handler registers for every backend cqrs-core was built with.
#[cqrs_core::handler(exchange = "order", routing_key = "shipped")]
fn shipped<C: cqrs_core::db::CqrsConnection>(_conn: &mut C, _e: Event<Paid>) -> Result<(), HandlerError> { Ok(()) }

fn main() {
    use cqrs_core::Registered;
    assert_eq!(SqliteConnection::handler_entries().len(), 6);
    assert_eq!(diesel::PgConnection::handler_entries().len(), 2);
}
