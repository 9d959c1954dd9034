//! A PostgreSQL master's single-row insert that continues its key's revisions in the same
//! statement: the last DELETE revision of the key is taken from `cqrs_master_revisions` by a
//! data-modifying CTE, and the row's `cqrs_revision` is one above it (or 0).
//!
//! `WITH cqrs_continued AS (DELETE FROM cqrs_master_revisions WHERE cqrs_id = $1 AND pk = $2
//! RETURNING revision) INSERT INTO ... VALUES (..., COALESCE((SELECT ... FROM cqrs_continued),
//! 0), ...) RETURNING ...`
//!
//! One round trip instead of two for every create (the lookup, then the insert). SQLite has
//! no data-modifying CTE: it keeps the two statements, which cost no round trip there.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Integer, Text};
use diesel::{QueryResult, RunQueryDsl};

/// The SQL of the continued revision, for the insert's `cqrs_revision` value (saturating at
/// `i32::MAX`, as the two-statement path does).
const CONTINUED_REVISION: &str =
    "COALESCE((SELECT LEAST(revision, 2147483646) + 1 FROM cqrs_continued), 0)";

/// The continued revision as a diesel expression.
pub fn continued_revision() -> diesel::expression::SqlLiteral<Integer> {
    diesel::dsl::sql::<Integer>(CONTINUED_REVISION)
}

/// `insert`, preceded by the CTE that takes the key's deleted revision (see the module).
#[derive(Debug, Clone, Copy)]
pub struct Continued<'a, I> {
    /// The model's `cqrs_id`.
    pub cqrs_id: &'a str,
    /// The key's text form (as `cqrs_master_revisions` keeps it).
    pub pk: &'a str,
    /// The row's `INSERT ... RETURNING`, its revision [`continued_revision`].
    pub insert: I,
}

impl<I> QueryId for Continued<'_, I> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<I: Query> Query for Continued<'_, I> {
    type SqlType = I::SqlType;
}

impl<I: QueryFragment<Pg>> QueryFragment<Pg> for Continued<'_, I> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH cqrs_continued AS (DELETE FROM cqrs_master_revisions WHERE cqrs_id = ");
        out.push_bind_param::<Text, _>(&self.cqrs_id)?;
        out.push_sql(" AND pk = ");
        out.push_bind_param::<Text, _>(&self.pk)?;
        out.push_sql(" RETURNING revision) ");
        self.insert.walk_ast(out.reborrow())
    }
}

impl<I, Conn> RunQueryDsl<Conn> for Continued<'_, I> {}
