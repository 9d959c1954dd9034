//! Filters and pages of master rows, for the tools and the bulk writes.

use super::model::MasterTable;
use crate::db::CqrsConnection;
use crate::error::Result;
use crate::filter::{BoxedFilter, FilterError, Lookup};

/// The predicates of a model on backend `C` (all must hold).
pub type Filters<M, C> =
    Vec<BoxedFilter<<M as MasterTable<C>>::Table, <C as diesel::Connection>::Backend>>;

/// The predicates of several lookups (all must hold).
pub fn build_filters<M, C>(lookups: &[Lookup]) -> std::result::Result<Filters<M, C>, FilterError>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    lookups.iter().map(M::db_lookup).collect()
}

/// Calls `each` for every page of `batch` rows matching `lookups`, in primary-key order.
pub(crate) fn for_each_page<M, C>(
    conn: &mut C,
    lookups: &[Lookup],
    batch: usize,
    each: &mut dyn FnMut(&mut C, &[M]) -> Result<()>,
) -> Result<()>
where
    M: MasterTable<C>,
    C: CqrsConnection,
{
    let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
    let mut after: Option<M::Pk> = None;
    loop {
        let filters = build_filters::<M, C>(lookups)?;
        let rows = M::db_page(conn, filters, after.as_ref(), limit)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = Some(last.cqrs_pk().clone());
        each(conn, &rows)?;
        if rows.len() < batch.max(1) {
            return Ok(());
        }
    }
}
