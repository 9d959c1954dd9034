//! A replica's tombstones (the versions of applied deletes, so that an older save cannot
//! bring a row back) and the row locks that serialize consumer processes.

use chrono::{DateTime, Utc};
use diesel::QueryResult;

use crate::rules::Version;

/// A replica's apply state besides its rows: tombstones and row locks.
pub trait TombstoneStore {
    /// The tombstone of a deleted replica row.
    fn tombstone_get(&mut self, cqrs_id: &str, pk: &str) -> QueryResult<Option<Version>>;

    /// The tombstones of several rows (absent ones are left out).
    fn tombstone_get_many(
        &mut self,
        cqrs_id: &str,
        pks: &[String],
    ) -> QueryResult<Vec<(String, Version)>>;

    /// Records (or moves forward) the tombstone of a deleted replica row.
    fn tombstone_put(&mut self, cqrs_id: &str, pk: &str, version: Version) -> QueryResult<()>;

    /// Forgets a tombstone (the row was re-created).
    fn tombstone_remove(&mut self, cqrs_id: &str, pk: &str) -> QueryResult<usize>;

    /// Deletes tombstones written before `before`; returns how many.
    fn tombstone_purge(&mut self, before: DateTime<Utc>) -> QueryResult<usize>;

    /// Holds, until the open transaction ends, a lock on each of these row keys
    /// ([`row_lock_key`](crate::db::row_lock_key)), so that two consumer processes never apply messages of one row at
    /// the same time: each reads the stored version only after the other's write committed.
    /// The keys must be sorted (every process then locks in one order: no deadlock).
    /// PostgreSQL takes transaction-scoped advisory locks; SQLite needs none, its write
    /// transactions (`BEGIN IMMEDIATE`) already run one at a time.
    fn lock_rows(&mut self, keys: &[i64]) -> QueryResult<()>;
}

/// The backend-independent part of [`TombstoneStore`] (all but `lock_rows`).
macro_rules! tombstone_impl {
    () => {
        fn tombstone_get(
            &mut self,
            cqrs_id: &str,
            pk: &str,
        ) -> ::diesel::QueryResult<Option<$crate::rules::Version>> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_tombstones::dsl;
            let row: Option<(i32, i64)> = dsl::cqrs_tombstones
                .find((cqrs_id, pk))
                .select((dsl::revision, dsl::updated))
                .first(self)
                .optional()?;
            Ok(row.map(|(revision, updated)| $crate::rules::Version {
                revision,
                updated: ::chrono::DateTime::from_timestamp_micros(updated).unwrap_or_default(),
            }))
        }

        fn tombstone_get_many(
            &mut self,
            cqrs_id: &str,
            pks: &[String],
        ) -> ::diesel::QueryResult<Vec<(String, $crate::rules::Version)>> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_tombstones::dsl;
            if let [pk] = pks {
                // a batch of one row: a statement diesel caches (no `IN (...)` list)
                return Ok(self
                    .tombstone_get(cqrs_id, pk)?
                    .map(|version| (pk.clone(), version))
                    .into_iter()
                    .collect());
            }
            let mut found = Vec::new();
            for chunk in pks.chunks($crate::db::KEY_CHUNK) {
                let rows: Vec<(String, i32, i64)> = dsl::cqrs_tombstones
                    .filter(dsl::cqrs_id.eq(cqrs_id))
                    .filter(dsl::pk.eq_any(chunk))
                    .select((dsl::pk, dsl::revision, dsl::updated))
                    .load(self)?;
                found.extend(rows.into_iter().map(|(pk, revision, updated)| {
                    (
                        pk,
                        $crate::rules::Version {
                            revision,
                            updated: ::chrono::DateTime::from_timestamp_micros(updated)
                                .unwrap_or_default(),
                        },
                    )
                }));
            }
            Ok(found)
        }

        fn tombstone_put(
            &mut self,
            cqrs_id: &str,
            pk: &str,
            version: $crate::rules::Version,
        ) -> ::diesel::QueryResult<()> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_tombstones::dsl;
            let now = ::chrono::Utc::now().timestamp_micros();
            let updated = version.updated.timestamp_micros();
            // one row, one SQL text: cached (diesel caches no upsert by itself)
            $crate::db::cached::Cached(
                ::diesel::insert_into(dsl::cqrs_tombstones)
                    .values((
                        dsl::cqrs_id.eq(cqrs_id),
                        dsl::pk.eq(pk),
                        dsl::revision.eq(version.revision),
                        dsl::updated.eq(updated),
                        dsl::deleted_at.eq(now),
                    ))
                    .on_conflict((dsl::cqrs_id, dsl::pk))
                    .do_update()
                    .set((
                        dsl::revision.eq(version.revision),
                        dsl::updated.eq(updated),
                        dsl::deleted_at.eq(now),
                    ))
                    .returning(dsl::revision),
            )
            .get_result::<i32>(self)
            .map(drop)
        }

        fn tombstone_remove(&mut self, cqrs_id: &str, pk: &str) -> ::diesel::QueryResult<usize> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_tombstones::dsl;
            ::diesel::delete(dsl::cqrs_tombstones.find((cqrs_id, pk))).execute(self)
        }

        fn tombstone_purge(
            &mut self,
            before: ::chrono::DateTime<::chrono::Utc>,
        ) -> ::diesel::QueryResult<usize> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_tombstones::dsl;
            ::diesel::delete(
                dsl::cqrs_tombstones.filter(dsl::deleted_at.lt(before.timestamp_micros())),
            )
            .execute(self)
        }
    };
}
#[allow(unused_imports, reason = "unused when no backend feature is enabled")]
pub(crate) use tombstone_impl;
