//! The outbox as a backend stores it: [`OutboxWriter`], what a master's writes and the
//! event publishers add in the caller's transaction, and [`OutboxReader`], what the relay
//! takes and the tools look at. What both backends share is written once, in
//! `outbox_writer_impl!` and `outbox_reader_impl!`.

use std::time::Duration;

use diesel::QueryResult;

use super::ledger::RevisionLedger;
use super::{OutboxMessage, OutboxRecord, OutboxStats, OutboxTaken, RevisionNote};

/// Writes to the transactional outbox, in the caller's transaction.
pub trait OutboxWriter: RevisionLedger {
    /// Appends messages to the outbox.
    fn outbox_insert(&mut self, messages: &[OutboxMessage]) -> QueryResult<()>;

    /// Adds one message; returns its id (for a later [`OutboxWriter::outbox_rewrite`](crate::db::OutboxWriter::outbox_rewrite) in
    /// the same transaction).
    fn outbox_insert_one(&mut self, message: &OutboxMessage) -> QueryResult<i64>;

    /// Replaces the body of a message not yet published; how many rows changed (0: it is
    /// gone, published or rolled back).
    fn outbox_rewrite(&mut self, id: i64, body: &str) -> QueryResult<usize>;

    /// Removes the future events to `exchange` with `routing_key` that carry every one of
    /// `tags` and are not yet published; returns how many.
    fn outbox_cancel(
        &mut self,
        exchange: &str,
        routing_key: &str,
        tags: &[&str],
    ) -> QueryResult<usize>;

    /// Whether a master row's `UPDATE` and its message travel in one statement
    /// ([`RowUpdate`](crate::db::RowUpdate)): where a statement costs a round trip to a server (PostgreSQL), a full
    /// save of a row read under its lock builds its message first, from the row as it will be
    /// stored.
    const UPDATE_CARRIES_MESSAGE: bool;

    /// Adds one message, as [`OutboxWriter::outbox_insert_one`](crate::db::OutboxWriter::outbox_insert_one), and carries out `note`
    /// (records or takes a key's DELETE revision); returns the message's id and, for a
    /// [`RevisionNote::Take`], the revision taken. PostgreSQL does both in one statement (one
    /// round trip less per create and per delete); others run them one after the other.
    fn outbox_insert_noting(
        &mut self,
        message: &OutboxMessage,
        note: RevisionNote<'_>,
    ) -> QueryResult<(i64, Option<i32>)> {
        let taken = match note {
            RevisionNote::Take { cqrs_id, pk } => self
                .deleted_revisions_take(cqrs_id, &[pk.to_owned()])?
                .pop()
                .map(|(_, revision)| revision),
            RevisionNote::Put {
                cqrs_id,
                pk,
                revision,
            } => {
                self.deleted_revision_put(cqrs_id, pk, revision)?;
                None
            }
        };
        Ok((self.outbox_insert_one(message)?, taken))
    }
}

/// What the relay takes from the outbox, and what the tools read of it.
pub trait OutboxReader {
    /// Whether several relays may take from one outbox at once. Then a batch is taken and
    /// removed in one statement that skips rows another transaction holds
    /// ([`OutboxReader::outbox_take`](crate::db::OutboxReader::outbox_take)), inside a transaction kept open while the broker
    /// confirms. Otherwise (SQLite) the relay reads without locking, so that the application's
    /// writers never wait for the broker, and deletes after the confirms: one relay per
    /// database.
    const CONCURRENT_TAKE: bool;

    /// How often a relay looks at the outbox when nothing wakes it. PostgreSQL wakes relays
    /// with `NOTIFY`, so its poll is only a safety net; SQLite has no cross-process signal.
    const RELAY_POLL: Duration;

    /// The relay lets the next batch gather for its linger when the master writes fast
    /// enough that the linger brings at least this many messages (at the arrival rate the
    /// last cycle saw): then fewer, fuller batches save more round trips than the linger
    /// costs in latency. With the default 5 ms linger: PostgreSQL 8, from 1,600 messages/s
    /// (about where the pipeline saturates this machine, and every relay cycle's round trips
    /// to the server compete with the master's writes); SQLite 16, from 3,200/s (its cycles
    /// are in-process and cheap). A master writing 1,000/s has each message published at once
    /// (measured on PostgreSQL at 1,000 writes/s: commit-to-applied p50 from 6-7 ms to 3-4 ms).
    const RELAY_LINGER_FROM: usize;

    /// The oldest `limit` messages, without taking them.
    fn outbox_fetch(&mut self, limit: i64) -> QueryResult<Vec<OutboxRecord>>;

    /// Removes published messages.
    fn outbox_delete(&mut self, ids: &[i64]) -> QueryResult<usize>;

    /// Removes and returns the oldest `limit` messages not locked by another transaction, in
    /// one statement (PostgreSQL: `DELETE ... FOR UPDATE SKIP LOCKED ... RETURNING`), less
    /// those held back because an earlier message of their ordering key is locked by another
    /// relay. The look reads ids from `from` on (0: the whole outbox). Inside a transaction,
    /// a rollback puts them back.
    fn outbox_take(&mut self, limit: i64, from: i64) -> QueryResult<OutboxTaken>;

    /// Writes taken messages back under their own ids (the broker did not confirm them): they
    /// keep their place before the later messages of their keys.
    fn outbox_put_back(&mut self, records: &[OutboxRecord]) -> QueryResult<()>;

    /// How many messages wait.
    fn outbox_pending(&mut self) -> QueryResult<i64>;

    /// Depth and age of the outbox without a full scan (see [`OutboxStats`]).
    fn outbox_stats(&mut self) -> QueryResult<OutboxStats>;

    /// How many messages are due and older than `older_than_micros`: written that long ago
    /// (or, for a future event, due that long ago) and still not published.
    fn outbox_overdue(&mut self, older_than_micros: i64) -> QueryResult<i64>;
}

/// The backend-independent part of [`OutboxWriter`]; `announce` wraps each outbox
/// `INSERT ... RETURNING id` (PostgreSQL: `announce::Announced`, which notifies the relays in
/// the same statement), `rows` says how multi-row inserts go (`outbox_insert_rows!`).
macro_rules! outbox_writer_impl {
    (announce = $announce:path, rows = $rows:tt) => {
        fn outbox_insert_one(
            &mut self,
            m: &$crate::db::OutboxMessage,
        ) -> ::diesel::QueryResult<i64> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_outbox::dsl;
            $announce(
                ::diesel::insert_into(dsl::cqrs_outbox)
                    .values($crate::db::outbox_row!(
                        m,
                        ::chrono::Utc::now().timestamp_micros()
                    ))
                    .returning(dsl::id),
            )
            .get_result(self)
        }

        fn outbox_rewrite(&mut self, id: i64, body: &str) -> ::diesel::QueryResult<usize> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_outbox::dsl;
            // one row, one SQL text: cached (diesel caches no `UPDATE` by itself)
            $crate::db::cached::Cached(
                ::diesel::update(dsl::cqrs_outbox.filter(dsl::id.eq(id)))
                    .set(dsl::body.eq(body))
                    .returning(dsl::id),
            )
            .load::<i64>(self)
            .map(|ids| ids.len())
        }

        fn outbox_insert(
            &mut self,
            messages: &[$crate::db::OutboxMessage],
        ) -> ::diesel::QueryResult<()> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_outbox::dsl;
            let now = ::chrono::Utc::now().timestamp_micros();
            if let [m] = messages {
                // one row: a statement diesel prepares once and caches
                return self.outbox_insert_one(m).map(drop);
            }
            if messages.is_empty() {
                return Ok(());
            }
            let rows: Vec<_> = messages
                .iter()
                .map(|m| $crate::db::outbox_row!(m, now))
                .collect();
            for chunk in rows.chunks($crate::db::OUTBOX_INSERT_CHUNK) {
                outbox_insert_rows!(
                    $rows,
                    self,
                    ::diesel::insert_into(dsl::cqrs_outbox).values(chunk)
                )?;
            }
            Ok(())
        }

        fn outbox_cancel(
            &mut self,
            exchange: &str,
            routing_key: &str,
            tags: &[&str],
        ) -> ::diesel::QueryResult<usize> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_outbox::dsl;
            let mut query = dsl::cqrs_outbox
                .filter(dsl::exchange.eq(exchange))
                .filter(dsl::routing_key.eq(routing_key))
                .filter(dsl::not_before.is_not_null())
                .into_boxed();
            for tag in tags {
                query = query.filter(
                    dsl::tags
                        .like(format!("%|{}|%", $crate::db::like_escape(tag)))
                        .escape('\\'),
                );
            }
            let ids: Vec<i64> = query.select(dsl::id).load(self)?;
            $crate::db::OutboxReader::outbox_delete(self, &ids)
        }
    };
}
#[allow(unused_imports, reason = "unused when no backend feature is enabled")]
pub(crate) use outbox_writer_impl;

/// The backend-independent part of [`OutboxReader`].
macro_rules! outbox_reader_impl {
    () => {
        fn outbox_fetch(
            &mut self,
            limit: i64,
        ) -> ::diesel::QueryResult<Vec<$crate::db::OutboxRecord>> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_outbox::dsl;
            let now = ::chrono::Utc::now().timestamp_micros();
            dsl::cqrs_outbox
                .filter(dsl::not_before.is_null().or(dsl::not_before.le(now)))
                .order(dsl::id)
                .limit(limit)
                .load(self)
        }

        fn outbox_delete(&mut self, ids: &[i64]) -> ::diesel::QueryResult<usize> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_outbox::dsl;
            let mut deleted = 0;
            for chunk in ids.chunks($crate::db::KEY_CHUNK) {
                deleted += ::diesel::delete(dsl::cqrs_outbox.filter(dsl::id.eq_any(chunk)))
                    .execute(self)?;
            }
            Ok(deleted)
        }

        fn outbox_put_back(
            &mut self,
            records: &[$crate::db::OutboxRecord],
        ) -> ::diesel::QueryResult<()> {
            use ::diesel::prelude::*;
            for chunk in records.chunks($crate::db::OUTBOX_INSERT_CHUNK) {
                ::diesel::insert_into($crate::db::cqrs_outbox::table)
                    .values(chunk)
                    .execute(self)?;
            }
            Ok(())
        }

        fn outbox_pending(&mut self) -> ::diesel::QueryResult<i64> {
            use ::diesel::prelude::*;
            $crate::db::cqrs_outbox::table.count().get_result(self)
        }

        fn outbox_stats(&mut self) -> ::diesel::QueryResult<$crate::db::OutboxStats> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_outbox::dsl;
            let now = ::chrono::Utc::now().timestamp_micros();
            let head: Option<(i64, Option<i64>)> = dsl::cqrs_outbox
                .filter(dsl::not_before.is_null().or(dsl::not_before.le(now)))
                .order(dsl::id)
                .select((dsl::created_at, dsl::not_before))
                .first(self)
                .optional()?;
            let oldest_due_micros = head.map(|(created, not_before)| {
                now.saturating_sub(not_before.map_or(created, |due| due.max(created)))
                    .max(0)
            });
            let cap = $crate::db::OUTBOX_COUNT_CAP;
            let counted = ::diesel::sql_query(format!(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM cqrs_outbox LIMIT {}) AS t",
                cap + 1
            ))
            .get_result::<$crate::db::CountRow>(self)?
            .n;
            let (depth, exact) = if counted <= cap {
                (counted, true)
            } else {
                let (low, high): (Option<i64>, Option<i64>) = dsl::cqrs_outbox
                    .select((::diesel::dsl::min(dsl::id), ::diesel::dsl::max(dsl::id)))
                    .first(self)?;
                let span = match (low, high) {
                    (Some(low), Some(high)) => high.saturating_sub(low).saturating_add(1),
                    _ => counted,
                };
                (span.max(counted), false)
            };
            Ok($crate::db::OutboxStats {
                depth: u64::try_from(depth).unwrap_or(0),
                exact,
                oldest_due_micros,
            })
        }

        fn outbox_overdue(&mut self, older_than_micros: i64) -> ::diesel::QueryResult<i64> {
            use ::diesel::prelude::*;
            use $crate::db::cqrs_outbox::dsl;
            let now = ::chrono::Utc::now().timestamp_micros();
            let cutoff = now.saturating_sub(older_than_micros);
            dsl::cqrs_outbox
                .filter(
                    dsl::not_before
                        .is_null()
                        .and(dsl::created_at.lt(cutoff))
                        .or(dsl::not_before.lt(cutoff)),
                )
                .count()
                .get_result(self)
        }
    };
}
#[allow(unused_imports, reason = "unused when no backend feature is enabled")]
pub(crate) use outbox_reader_impl;
