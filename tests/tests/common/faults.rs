//! Faults inside the database transaction (shared by the SQLite and PostgreSQL test files).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, Utc};
use cqrs_core::Registered;
use cqrs_core::batch::apply_batch;
use cqrs_core::prelude::*;
use cqrs_core::{ErrorClass, Outcome, registry};

use super::ordering::book_save;
use super::*;

/// A batch that fails at COMMIT (a deferred foreign key: `deferred_fk` makes `book_refs.author`
/// reference `known_authors`, checked at commit) is not retried as a whole forever: its
/// messages are applied one by one, the bad one fails alone (and will be retried, then
/// dead-lettered), the others are applied.
pub fn commit_failure_falls_back_to_one_by_one<C>(replica: &mut C, deferred_fk: &str)
where
    C: Registered,
    BookRef: ReplicaStore<C>,
{
    replica.batch_execute(deferred_fk).unwrap();
    let t = Utc::now() - Duration::minutes(1);
    let mut messages: Vec<_> = (1..=5).map(|id| book_save(id, "t", 0, t)).collect();
    messages[2]
        .instance_data
        .insert("author".into(), "Nobody".into());
    let ops = registry::replica::<C>("book").unwrap().ops;
    let items = items(ops, &messages);
    let results = apply_batch(replica, &items).expect("a commit failure is not the batch's");
    for (index, result) in results.iter().enumerate() {
        if index == 2 {
            let error = result.as_ref().unwrap_err();
            assert!(
                error.to_string().contains("apply transaction failed"),
                "{error}"
            );
            assert_eq!(
                error.class(),
                ErrorClass::Transient,
                "a missing parent may arrive later"
            );
        } else {
            assert_eq!(*result.as_ref().unwrap(), Outcome::Created);
        }
    }
    assert_eq!(BookRef::cqrs_count(replica).unwrap(), 4);
    // a batch of one: the same, its failure is its own result
    let results = apply_batch(replica, &items[2..3]).unwrap();
    assert!(results[0].is_err());
    // the parent arrives: the retry applies
    replica
        .batch_execute("INSERT INTO known_authors (name) VALUES ('Nobody')")
        .unwrap();
    let results = apply_batch(replica, &items[2..3]).unwrap();
    assert_eq!(*results[0].as_ref().unwrap(), Outcome::Created);
}
