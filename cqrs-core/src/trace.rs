//! W3C trace context across services: every message a master writes carries a `traceparent`
//! (<https://www.w3.org/TR/trace-context/>) in its AMQP headers, and the replica applies it
//! in a `cqrs.apply` span that names the same trace. django-cqrs ignores headers it does not
//! know, so the wire stays compatible.
//!
//! Where the trace comes from, first match wins:
//! 1. with the feature `otel`, the current `tracing` span's OpenTelemetry context (a master
//!    write inside a request's span continues the request's trace);
//! 2. the context [`with_parent`] set for this thread (a service without OpenTelemetry passes
//!    its incoming request's `traceparent` header);
//! 3. a new trace.
//!
//! ```
//! use cqrs_core::trace::{TraceParent, with_parent};
//! let incoming = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .expect("a valid traceparent");
//! let carried = with_parent(incoming, cqrs_core::trace::for_message);
//! assert_eq!(carried.trace_id, incoming.trace_id);
//! assert_ne!(carried.parent_id, incoming.parent_id);
//! ```

use std::cell::Cell;
use std::fmt;

/// The AMQP header (and HTTP header) that carries the trace context.
pub const HEADER: &str = "traceparent";

/// A W3C `traceparent`: version 00, a 128-bit trace id, the 64-bit id of the parent span, and
/// the sampled flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace, shared by every span of it (never 0).
    pub trace_id: u128,
    /// The span this one descends from (never 0).
    pub parent_id: u64,
    /// Whether the caller records the trace.
    pub sampled: bool,
}

thread_local! {
    static CURRENT: Cell<Option<TraceParent>> = const { Cell::new(None) };
}

impl TraceParent {
    /// Reads a `traceparent` value; `None` for anything the W3C format does not allow
    /// (wrong length or version `ff`, ids of zeros, not lowercase hex).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(version, 2)
            || version == "ff"
            || !hex(trace, 32)
            || !hex(parent, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        // version 00 has exactly four fields; a later version may add more
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let parent_id = u64::from_str_radix(parent, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
        })
    }

    /// A new trace (random ids), sampled.
    pub fn random() -> Self {
        Self {
            trace_id: fastrand::u128(1..),
            parent_id: fastrand::u64(1..),
            sampled: true,
        }
    }

    /// The context of a new span under this one: the same trace, a new span id.
    #[must_use]
    pub fn child(self) -> Self {
        Self {
            parent_id: fastrand::u64(1..),
            ..self
        }
    }

    /// The trace id as 32 hex digits (the form tracing backends search by).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.parent_id,
            u8::from(self.sampled)
        )
    }
}

/// Runs `f` with `parent` as the trace context of the messages written in it on this thread.
pub fn with_parent<T>(parent: TraceParent, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<TraceParent>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(parent))));
    f()
}

/// The context a message written now carries (see the module's documentation).
pub fn for_message() -> TraceParent {
    #[cfg(feature = "otel")]
    if let Some(current) = otel::current() {
        return current;
    }
    match CURRENT.with(Cell::get) {
        Some(parent) => parent.child(),
        None => TraceParent::random(),
    }
}

/// The span a replica applies a message in (not entered: a batch's messages commit together,
/// so each span lasts the batch). With the feature `otel` its parent is the remote span of
/// `traceparent`, so that the apply appears in the master's trace.
pub fn apply_span(message: &crate::Message, traceparent: Option<&TraceParent>) -> tracing::Span {
    // the field values are computed only when a subscriber wants the span
    let span = tracing::info_span!(
        "cqrs.apply",
        cqrs_id = %message.cqrs_id,
        pk = %crate::value::pk_key(&message.instance_pk),
        revision = message
            .instance_data
            .get("cqrs_revision")
            .and_then(serde_json::Value::as_i64),
        correlation_id = message.correlation_id.as_deref(),
        traceparent = traceparent.map(tracing::field::display),
        trace_id = traceparent.map(|t| tracing::field::display(t.trace_id_hex())),
        outcome = tracing::field::Empty,
    );
    parented(span, traceparent)
}

/// The span a relay publishes a message in (debug level: one per message).
pub fn relay_span(
    cqrs_id: &str,
    routing_key: &str,
    traceparent: Option<&TraceParent>,
) -> tracing::Span {
    let span = tracing::debug_span!(
        "cqrs.relay",
        cqrs_id,
        routing_key,
        traceparent = traceparent.map(tracing::field::display),
    );
    parented(span, traceparent)
}

/// The span a handler runs an event, command or call in (see [`apply_span`]).
pub fn handle_span(
    exchange: &str,
    routing_key: &str,
    traceparent: Option<&TraceParent>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "cqrs.handle",
        exchange,
        routing_key,
        traceparent = traceparent.map(tracing::field::display),
        trace_id = traceparent.map(|t| tracing::field::display(t.trace_id_hex())),
        outcome = tracing::field::Empty,
    );
    parented(span, traceparent)
}

/// `span`, with the feature `otel` made a child of the remote span of `traceparent`.
fn parented(span: tracing::Span, traceparent: Option<&TraceParent>) -> tracing::Span {
    #[cfg(feature = "otel")]
    if let Some(parent) = traceparent {
        otel::set_remote_parent(&span, parent);
    }
    #[cfg(not(feature = "otel"))]
    let _ = traceparent;
    span
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceParent;

    /// The current span's OpenTelemetry context, when it has a valid one.
    pub(super) fn current() -> Option<TraceParent> {
        let context = tracing::Span::current().context();
        let span = context.span();
        let sc = span.span_context();
        sc.is_valid().then(|| TraceParent {
            trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
            parent_id: u64::from_be_bytes(sc.span_id().to_bytes()),
            sampled: sc.is_sampled(),
        })
    }

    pub(super) fn set_remote_parent(span: &tracing::Span, parent: &TraceParent) {
        let flags = if parent.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id.to_be_bytes()),
            SpanId::from_bytes(parent.parent_id.to_be_bytes()),
            flags,
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_w3c_form() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(text).unwrap();
        assert_eq!(parsed.to_string(), text);
        assert!(parsed.sampled);
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn refuses_what_the_format_does_not_allow() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_message_continues_the_thread_context_or_starts_a_trace() {
        let parent = TraceParent::random();
        let inside = with_parent(parent, for_message);
        assert_eq!(inside.trace_id, parent.trace_id);
        assert_ne!(inside.parent_id, parent.parent_id);
        let outside = for_message();
        assert_ne!(
            outside.trace_id, parent.trace_id,
            "the context ends with the closure"
        );
    }
}
