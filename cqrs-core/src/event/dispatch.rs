//! Handler registration and routing: which handler takes a message.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::incoming::Incoming;
use crate::error::HandlerError;

/// What a handler takes, which decides what the consumer does around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HandlerKind {
    /// A domain event (`Event<P>`) or a call's answer (`CallResponse<D>`).
    Event,
    /// A command: skipped once expired.
    Command,
    /// A call: skipped once expired; the return value is sent to the caller.
    Call,
    /// The raw message (`Incoming`).
    Raw,
}

impl fmt::Display for HandlerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Event => "event",
            Self::Command => "command",
            Self::Call => "call",
            Self::Raw => "raw",
        })
    }
}

/// The exchange of a default handler: it takes what no other handler routes.
pub const DEFAULT_EXCHANGE: &str = "*";

/// A handler function registered by `#[cqrs_core::handler(...)]` for connection type `C`.
pub struct HandlerEntry<C: 'static> {
    /// The function's path, for logs, errors and the inbox.
    pub name: &'static str,
    /// The exchange it takes messages of ([`DEFAULT_EXCHANGE`] for the default handler).
    pub exchange: &'static str,
    /// The routing key; `""`: every routing key of the exchange without a handler of its own.
    pub routing_key: &'static str,
    /// The kind of message it takes.
    pub kind: HandlerKind,
    /// Whether its effect is deduplicated by event id (the `cqrs_inbox` table).
    pub inbox: bool,
    /// Whether a command or call that expired while it ran is rolled back (no effect, no
    /// answer): the Python package's `check_expired_time_after_handel`.
    pub check_expired_after: bool,
    /// Runs it; `Some(answer)` for a call.
    pub run: fn(&mut C, &Incoming) -> Result<Option<Value>, HandlerError>,
}

impl<C> fmt::Debug for HandlerEntry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerEntry")
            .field("name", &self.name)
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("kind", &self.kind)
            .field("inbox", &self.inbox)
            .field("check_expired_after", &self.check_expired_after)
            .finish_non_exhaustive()
    }
}

/// Finds the handler of a message as the Python package's `MessageRouter` does: the exchange's
/// handler of the routing key, else the exchange's catch-all (`""`), else the default handler.
pub struct Router<C: 'static> {
    routes: BTreeMap<(&'static str, &'static str), &'static HandlerEntry<C>>,
}

impl<C> fmt::Debug for Router<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.routes.values()).finish()
    }
}

impl<C: 'static> Router<C> {
    /// A router over `entries`; two handlers of one exchange and routing key are an error
    /// naming both.
    pub fn new(entries: &[&'static HandlerEntry<C>]) -> Result<Self, String> {
        let mut routes = BTreeMap::new();
        let mut clashes = Vec::new();
        for entry in entries {
            if let Some(first) = routes.insert((entry.exchange, entry.routing_key), *entry) {
                clashes.push(format!(
                    "handlers `{}` and `{}` both take exchange {:?} routing key {:?}",
                    first.name, entry.name, entry.exchange, entry.routing_key
                ));
            }
        }
        if clashes.is_empty() {
            Ok(Self { routes })
        } else {
            Err(clashes.join("; "))
        }
    }

    /// The handler of a message, if any.
    pub fn find(&self, exchange: &str, routing_key: &str) -> Option<&'static HandlerEntry<C>> {
        self.routes
            .get(&(exchange, routing_key))
            .or_else(|| self.routes.get(&(exchange, "")))
            .or_else(|| self.routes.get(&(DEFAULT_EXCHANGE, "")))
            .copied()
    }

    /// Every handler, by exchange and routing key.
    pub fn entries(&self) -> impl Iterator<Item = &'static HandlerEntry<C>> + '_ {
        self.routes.values().copied()
    }

    /// The exchanges with handlers, and the binding keys each needs (`#` for a catch-all).
    pub fn bindings(&self) -> Vec<(&'static str, &'static str)> {
        self.entries()
            .filter(|e| e.exchange != DEFAULT_EXCHANGE)
            .map(|e| {
                let key = if e.routing_key.is_empty() {
                    "#"
                } else {
                    e.routing_key
                };
                (e.exchange, key)
            })
            .collect()
    }
}

#[doc(hidden)]
pub mod __private {
    use serde::Serialize;
    use serde_json::Value;

    use super::super::{FromIncoming, HandlerError, HandlerKind};

    /// What the `handler` attribute emits around a handler's return value.
    pub fn answer<A: FromIncoming, R: Serialize>(out: R) -> Result<Option<Value>, HandlerError> {
        if A::KIND != HandlerKind::Call {
            return Ok(None);
        }
        serde_json::to_value(out).map(Some).map_err(|e| {
            HandlerError::permanent(format!("cannot serialize the call's answer: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(
        clippy::unnecessary_wraps,
        reason = "the signature of a handler's entry point"
    )]
    fn run(_: &mut (), _: &Incoming) -> Result<Option<Value>, HandlerError> {
        Ok(None)
    }

    fn entry(
        name: &'static str,
        exchange: &'static str,
        routing_key: &'static str,
    ) -> &'static HandlerEntry<()> {
        Box::leak(Box::new(HandlerEntry {
            name,
            exchange,
            routing_key,
            kind: HandlerKind::Raw,
            inbox: false,
            check_expired_after: false,
            run,
        }))
    }

    #[test]
    fn routes_as_the_python_router() {
        let router = Router::new(&[
            entry("exact", "book", "published"),
            entry("catch_all", "book", ""),
            entry("fallback", DEFAULT_EXCHANGE, ""),
        ])
        .unwrap();
        assert_eq!(
            router.find("book", "published").map(|e| e.name),
            Some("exact")
        );
        assert_eq!(
            router.find("book", "deleted").map(|e| e.name),
            Some("catch_all")
        );
        assert_eq!(
            router.find("order", "paid").map(|e| e.name),
            Some("fallback")
        );
        assert_eq!(
            router.bindings(),
            vec![("book", "#"), ("book", "published")]
        );
        let bare = Router::new(&[entry("exact", "book", "published")]).unwrap();
        assert!(bare.find("book", "deleted").is_none());
    }

    #[test]
    fn two_handlers_of_one_route_are_named() {
        let error =
            Router::new(&[entry("first", "book", "x"), entry("second", "book", "x")]).unwrap_err();
        assert!(
            error.contains("`first`") && error.contains("`second`"),
            "{error}"
        );
    }
}
