//! A master's ledger of deleted keys: the revision of each deleted row's DELETE message, so
//! that a re-created key continues its revisions (`cqrs_master_revisions`).

use diesel::QueryResult;

/// The revisions of a master's deleted keys.
pub trait RevisionLedger {
    /// Master side: records the revision of a deleted row's DELETE message.
    fn deleted_revision_put(&mut self, cqrs_id: &str, pk: &str, revision: i32) -> QueryResult<()>;

    /// Master side: the recorded DELETE revisions of these keys (absent ones are left out),
    /// removed from the table (the keys are being re-created).
    fn deleted_revisions_take(
        &mut self,
        cqrs_id: &str,
        pks: &[String],
    ) -> QueryResult<Vec<(String, i32)>>;
}

/// The backend-independent part of [`RevisionLedger`].
macro_rules! ledger_impl {
    () => {
        fn deleted_revision_put(
            &mut self,
            cqrs_id: &str,
            pk: &str,
            revision: i32,
        ) -> ::diesel::QueryResult<()> {
            use ::diesel::prelude::*;
            // one row, one SQL text: cached (diesel caches no upsert by itself)
            $crate::db::cached::Cached($crate::db::revision_put!(cqrs_id, pk, revision))
                // loaded, not executed: diesel's `execute` takes the statement by reference, and
                // a reference asks the statement inside whether it is cacheable
                .get_result::<i32>(self)
                .map(drop)
        }

        fn deleted_revisions_take(
            &mut self,
            cqrs_id: &str,
            pks: &[String],
        ) -> ::diesel::QueryResult<Vec<(String, i32)>> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_master_revisions::dsl;
            if let [pk] = pks {
                // a single-row write: `pk = ?`, a statement diesel caches (it caches no
                // `IN (...)` list on SQLite)
                return ::diesel::delete(
                    dsl::cqrs_master_revisions
                        .filter(dsl::cqrs_id.eq(cqrs_id))
                        .filter(dsl::pk.eq(pk)),
                )
                .returning((dsl::pk, dsl::revision))
                .get_results(self);
            }
            let mut found = Vec::new();
            for chunk in pks.chunks($crate::db::KEY_CHUNK) {
                let rows: Vec<(String, i32)> = ::diesel::delete(
                    dsl::cqrs_master_revisions
                        .filter(dsl::cqrs_id.eq(cqrs_id))
                        .filter(dsl::pk.eq_any(chunk)),
                )
                .returning((dsl::pk, dsl::revision))
                .get_results(self)?;
                found.extend(rows);
            }
            Ok(found)
        }
    };
}
#[allow(unused_imports, reason = "unused when no backend feature is enabled")]
pub(crate) use ledger_impl;
