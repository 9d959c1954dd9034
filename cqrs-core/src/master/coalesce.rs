//! One message per row per transaction, as django-cqrs sends them: inside
//! [`crate::transaction`], the first write of a row bumps its revision and writes its message;
//! a later write of the same row in that transaction changes the row without a second bump and
//! rewrites that message with the row's final state (the tracked fields' old values stay the
//! first write's). Replicas then see one message per transaction, revisions one apart, and
//! no false "lost messages" gaps.
//!
//! The scope lives on this thread for the outermost [`crate::transaction`] of one connection
//! (its address): the hooks of that transaction run on this thread with that connection.
//! A nested transaction that fails forgets the rows it first wrote (its savepoint rolled their
//! messages back). A message that is gone anyway (a savepoint the framework did not see) is
//! detected when its rewrite changes no row: the write then bumps and sends as a first one.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{Map, Value};

/// A row: its `cqrs_id` and primary key text.
pub(crate) type Key = (&'static str, String);

/// The message this transaction wrote for a row.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Its outbox id.
    pub(crate) outbox_id: i64,
    /// The tracked fields' old values it carries.
    pub(crate) previous: Option<Map<String, Value>>,
}

#[derive(Debug)]
struct Scope {
    conn: usize,
    rows: HashMap<Key, Pending>,
    /// The keys in the order they were first written (for a nested rollback).
    order: Vec<Key>,
}

thread_local! {
    static SCOPES: RefCell<Vec<Scope>> = const { RefCell::new(Vec::new()) };
}

/// The identity of a connection for the scope: its address.
pub(crate) fn conn_id<C>(conn: &C) -> usize {
    std::ptr::from_ref(conn).addr()
}

fn with_scope<T>(conn: usize, f: impl FnOnce(&mut Scope) -> T) -> Option<T> {
    SCOPES.with(|scopes| {
        scopes
            .borrow_mut()
            .iter_mut()
            .find(|s| s.conn == conn)
            .map(f)
    })
}

/// An open scope; closing it (drop) forgets every row, after a commit or a rollback alike.
#[derive(Debug)]
pub(crate) struct Open {
    conn: usize,
}

impl Open {
    /// Opens the scope of the outermost transaction of `conn`.
    pub(crate) fn new(conn: usize) -> Self {
        SCOPES.with(|scopes| {
            scopes.borrow_mut().push(Scope {
                conn,
                rows: HashMap::new(),
                order: Vec::new(),
            });
        });
        Self { conn }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        SCOPES.with(|scopes| scopes.borrow_mut().retain(|s| s.conn != self.conn));
    }
}

/// Whether writes of `conn` coalesce now.
pub(crate) fn active(conn: usize) -> bool {
    with_scope(conn, |_| ()).is_some()
}

/// How many rows the scope holds (a nested transaction's mark), if there is one.
pub(crate) fn mark(conn: usize) -> Option<usize> {
    with_scope(conn, |s| s.order.len())
}

/// Forgets the rows first written after `mark` (their nested transaction rolled back).
pub(crate) fn roll_back_to(conn: usize, mark: usize) {
    with_scope(conn, |s| {
        for key in s.order.drain(mark.min(s.order.len())..) {
            s.rows.remove(&key);
        }
    });
}

/// The message this transaction already wrote for `key`, if any.
pub(crate) fn pending(conn: usize, key: &Key) -> Option<Pending> {
    with_scope(conn, |s| s.rows.get(key).cloned()).flatten()
}

/// Records the message just written for `key`.
pub(crate) fn remember(conn: usize, key: Key, pending: Pending) {
    with_scope(conn, |s| {
        if s.rows.insert(key.clone(), pending).is_none() {
            s.order.push(key);
        }
    });
}

/// Forgets `key` (deleted, or written by a bulk statement): its next write sends anew.
pub(crate) fn forget(conn: usize, key: &Key) {
    with_scope(conn, |s| {
        if s.rows.remove(key).is_some() {
            s.order.retain(|k| k != key);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pk: &str) -> Key {
        ("book", pk.to_owned())
    }

    fn pending(id: i64) -> Pending {
        Pending {
            outbox_id: id,
            previous: None,
        }
    }

    #[test]
    fn a_scope_holds_rows_until_it_closes() {
        let conn = 0x10;
        assert!(!active(conn));
        remember(conn, key("1"), pending(1)); // no scope: nothing kept
        {
            let _open = Open::new(conn);
            assert!(active(conn) && !active(0x20));
            remember(conn, key("1"), pending(1));
            assert_eq!(
                super::pending(conn, &key("1")).map(|p| p.outbox_id),
                Some(1)
            );
            let nested = mark(conn).unwrap();
            remember(conn, key("2"), pending(2));
            remember(conn, key("1"), pending(3)); // rewritten in the nested one: kept
            roll_back_to(conn, nested);
            assert!(super::pending(conn, &key("2")).is_none());
            assert_eq!(
                super::pending(conn, &key("1")).map(|p| p.outbox_id),
                Some(3)
            );
            forget(conn, &key("1"));
            assert!(super::pending(conn, &key("1")).is_none());
        }
        assert!(!active(conn));
    }
}
