//! Statements diesel would prepare at every execution, kept in its statement cache by their
//! SQL text.
//!
//! diesel caches a prepared statement only when its SQL cannot vary: it never caches an
//! `UPDATE` (a changeset with `Option`s leaves columns out), an upsert's `DO UPDATE`, an
//! `IN (...)` list on SQLite or a multi-row insert. Those statements are parsed (and, on
//! PostgreSQL, planned) again at each execution. [`Cached`] keys such a statement by its SQL
//! text instead (diesel's cache does that for any statement without a static query id), so a
//! different SQL text is a different entry: correct whatever the changeset leaves out.
//!
//! Load it (`get_result`, `load`): `execute` hands diesel a reference, and a reference asks
//! the wrapped statement, which says no.
//!
//! Only for statements whose SQL has few shapes (a single-row `UPDATE` or upsert): a
//! multi-row statement has one shape per row count, and each would stay prepared.
//!
//! Measured on the master's writes (`cqrs-bench write-only --statements`): a create and an
//! update each prepared two of their statements at every execution.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// A statement kept in diesel's statement cache, keyed by its SQL text (see the module).
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(pub Q);

impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    // no static id: diesel's cache keys the statement by its SQL text and bind types
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, Conn> RunQueryDsl<Conn> for Cached<Q> {}
