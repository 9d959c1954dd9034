//! A master's churn for the tests of several master processes: random creates, updates,
//! deletes and re-creations of books in a range of keys that another process churns too.
//! Losing a race to the other process (the key it just created or deleted) is part of the
//! workload: that operation is skipped.

use cqrs_core::master::MasterTable;
use cqrs_core::prelude::*;

use crate::models::Book;

/// What one churn did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Churned {
    /// Operations that committed.
    pub done: usize,
    /// Operations that lost a race to another process (rolled back).
    pub lost: usize,
}

/// `operations` random writes on books `first..=last` through `conn`, drawn from `seed`.
pub fn churn<C>(conn: &mut C, first: i32, last: i32, operations: usize, seed: u64) -> Churned
where
    C: cqrs_core::Registered,
    Book: MasterStore<C>,
{
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut churned = Churned::default();
    for n in 0..operations {
        let id = rng.i32(first..=last);
        let title = format!("p{seed}-{n}");
        let result = match Book::db_get(conn, &id, false) {
            Ok(None) => Book::new(id, &title).cqrs_insert(conn).map(drop),
            Ok(Some(_)) if rng.u8(0..10) == 0 => Book::cqrs_delete_pk(conn, &id).map(drop),
            Ok(Some(_)) => Book::cqrs_update(conn, &id, |b| b.title = title).map(drop),
            Err(error) => Err(error.into()),
        };
        match result {
            Ok(()) => churned.done += 1,
            Err(_) => churned.lost += 1,
        }
    }
    churned
}
