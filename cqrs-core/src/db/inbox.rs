//! Event handlers' inbox: the event ids each handler took, written in the handler's
//! transaction.

use chrono::{DateTime, Utc};
use diesel::QueryResult;

/// The inbox of event handlers (deduplication of redelivered events).
pub trait InboxStore {
    /// Records that `handler` took event `event_id`; `false` if it already had.
    fn inbox_insert(&mut self, handler: &str, event_id: &str) -> QueryResult<bool>;

    /// Forgets the inbox entries recorded before `before`; returns how many.
    fn inbox_purge(&mut self, before: DateTime<Utc>) -> QueryResult<usize>;
}

/// The backend-independent part of [`InboxStore`].
macro_rules! inbox_impl {
    () => {
        fn inbox_insert(&mut self, handler: &str, event_id: &str) -> ::diesel::QueryResult<bool> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_inbox::dsl;
            let inserted = ::diesel::insert_into(dsl::cqrs_inbox)
                .values((
                    dsl::handler.eq(handler),
                    dsl::event_id.eq(event_id),
                    dsl::received_at.eq(::chrono::Utc::now().timestamp_micros()),
                ))
                .on_conflict_do_nothing()
                .execute(self)?;
            Ok(inserted == 1)
        }

        fn inbox_purge(
            &mut self,
            before: ::chrono::DateTime<::chrono::Utc>,
        ) -> ::diesel::QueryResult<usize> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_inbox::dsl;
            ::diesel::delete(dsl::cqrs_inbox.filter(dsl::received_at.lt(before.timestamp_micros())))
                .execute(self)
        }
    };
}
#[allow(unused_imports, reason = "unused when no backend feature is enabled")]
pub(crate) use inbox_impl;
