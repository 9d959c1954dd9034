#![allow(unused_imports, dead_code)]
use cqrs_core::event::{HandlerError, Incoming};
use diesel::SqliteConnection;

#[cqrs_core::handler(exchange = "order", exchange = "invoice")]
fn h(_c: &mut SqliteConnection, _m: Incoming) -> Result<(), HandlerError> { Ok(()) }

fn main() {}
