//! A delivery to the event consumer, with where it was first sent.

use cqrs_core::event::{HandlerError, Incoming};
use lapin::message::Delivery;
use lapin::types::AMQPValue;

use super::{EXCHANGE, RETRIES, ROUTING_KEY};

/// A delivery with what its headers say of where it was first sent.
pub(super) struct Received {
    pub(super) delivery: Delivery,
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) retries: u32,
    /// The handling's span, in the trace of the sender (its `traceparent` header).
    pub(super) span: tracing::Span,
}

impl Received {
    pub(super) fn of(delivery: Delivery) -> Self {
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let header = |key: &str| match headers.inner().get(key) {
            Some(AMQPValue::LongString(s)) => Some(s.to_string()),
            _ => None,
        };
        let retries = match headers.inner().get(RETRIES) {
            Some(AMQPValue::LongUInt(n)) => *n,
            _ => 0,
        };
        // a retry comes back from the delay queue through the default exchange
        let (exchange, routing_key) = match (header(EXCHANGE), header(ROUTING_KEY)) {
            (Some(e), Some(k)) if delivery.exchange.as_str().is_empty() => (e, k),
            _ => (
                delivery.exchange.to_string(),
                delivery.routing_key.to_string(),
            ),
        };
        let trace = crate::broker::traceparent(Some(&headers));
        let span = cqrs_core::trace::handle_span(&exchange, &routing_key, trace.as_ref());
        Self {
            delivery,
            exchange,
            routing_key,
            retries,
            span,
        }
    }

    pub(super) fn parse(&self) -> std::result::Result<Incoming, HandlerError> {
        let correlation_id = self
            .delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(ToString::to_string);
        Incoming::parse(
            &self.exchange,
            &self.routing_key,
            &self.delivery.data,
            correlation_id,
        )
    }
}
