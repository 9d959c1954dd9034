use cqrs_core::event::{Event, HandlerError};

#[cqrs_core::handler(exchange = "order", routing_key = "paid")]
fn paid<C, T>(_conn: &mut C, _e: Event<T>) -> Result<(), HandlerError> { Ok(()) }

fn main() {}
