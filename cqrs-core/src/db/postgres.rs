//! PostgreSQL backend.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use super::cached::Cached;
use super::{
    CqrsConnection, OutboxMessage, OutboxRecord, OutboxTaken, RevisionNote, in_transaction,
    outbox_insert_rows, outbox_row, revision_put,
};

/// The `LISTEN` channel notified (at commit) when messages are added to the outbox.
pub const NOTIFY_CHANNEL: &str = notify_channel!();

const SETUP: &str = concat!(
    "
SELECT pg_advisory_xact_lock(7243901);
CREATE TABLE IF NOT EXISTS cqrs_outbox (
    id BIGSERIAL PRIMARY KEY,
    cqrs_id TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
ALTER TABLE cqrs_outbox ADD COLUMN IF NOT EXISTS exchange TEXT;
ALTER TABLE cqrs_outbox ADD COLUMN IF NOT EXISTS properties TEXT;
ALTER TABLE cqrs_outbox ADD COLUMN IF NOT EXISTS not_before BIGINT;
ALTER TABLE cqrs_outbox ADD COLUMN IF NOT EXISTS tags TEXT;
ALTER TABLE cqrs_outbox ADD COLUMN IF NOT EXISTS ordering_key BIGINT;
",
    tombstones_ddl!(),
    // Outbox inserts notify the relays themselves (`announce.rs`); the trigger that did it
    // before (it cost each insert more than the insert) goes.
    "
DROP TRIGGER IF EXISTS cqrs_outbox_notify ON cqrs_outbox;
DROP FUNCTION IF EXISTS cqrs_outbox_notify();
"
);

/// Whether everything [`SETUP`] makes is in place (and the old trigger gone): then the set-up
/// runs no DDL. `ALTER TABLE ... IF NOT EXISTS` takes the table's `ACCESS EXCLUSIVE` lock
/// before it looks, so a relay or consumer starting while a long transaction had read the
/// outbox (a report, `pg_dump`) waited for it, and every master write queued behind that
/// wait. Keep in step with [`SETUP`].
const SETUP_DONE: &str = "\
SELECT (SELECT count(*) FROM pg_attribute
        WHERE attrelid = to_regclass('cqrs_outbox') AND NOT attisdropped
          AND attname IN ('exchange', 'properties', 'not_before', 'tags', 'ordering_key')) = 5
   AND to_regclass('cqrs_tombstones') IS NOT NULL
   AND to_regclass('cqrs_tombstones_deleted_at') IS NOT NULL
   AND to_regclass('cqrs_inbox') IS NOT NULL
   AND to_regclass('cqrs_master_revisions') IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgrelid = to_regclass('cqrs_outbox') AND tgname = 'cqrs_outbox_notify')
   AS done";

/// The batch a relay takes (`$1` the limit, `$2` now in microseconds, `$3` the lowest id it
/// reads: see `OutboxCursor`): the oldest due messages no other relay has locked
/// (`candidates`), less those that must wait because an earlier message of their ordering key
/// is in another relay's hands (`held`, from `others`: due, before the batch's last id, not a
/// candidate, so locked by another relay, or committed after this statement's snapshot was
/// taken, which only holds back more). Those stay, for the next look. One row per message
/// taken, each with the number of candidates and the lowest id left behind (a candidate held
/// back or one of `others`); a single row of `NULL`s but those when nothing is taken. The
/// `DELETE` names its rows as `id = ANY (ARRAY(...))`, which the planner always serves from
/// the primary key (an `IN (...)` join may be planned as a sequential scan of the whole
/// outbox when its statistics are stale, as after a backlog).
pub const OUTBOX_TAKE: &str = "\
WITH candidates AS (
    SELECT id, ordering_key FROM cqrs_outbox
    WHERE id >= $3 AND (not_before IS NULL OR not_before <= $2)
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
), others AS MATERIALIZED (
    SELECT id, ordering_key FROM cqrs_outbox
    WHERE id >= $3 AND id < (SELECT max(id) FROM candidates)
      AND (not_before IS NULL OR not_before <= $2)
      AND id NOT IN (SELECT id FROM candidates)
), held AS (
    SELECT ordering_key, min(id) AS first FROM others
    WHERE ordering_key IS NOT NULL
    GROUP BY ordering_key
), chosen AS (
    SELECT c.id FROM candidates c WHERE NOT EXISTS (
        SELECT 1 FROM held h WHERE h.ordering_key = c.ordering_key AND h.first < c.id)
), taken AS (
    DELETE FROM cqrs_outbox WHERE id = ANY (ARRAY(SELECT id FROM chosen))
    RETURNING id, cqrs_id, routing_key, body, created_at, exchange, properties, not_before,
              tags, ordering_key
)
SELECT n.candidates, n.left_behind, t.* FROM (
    SELECT (SELECT count(*) FROM candidates) AS candidates,
           LEAST((SELECT min(id) FROM others),
                 (SELECT min(id) FROM candidates WHERE id NOT IN (SELECT id FROM chosen)))
               AS left_behind
) n
LEFT JOIN taken t ON true";

impl CqrsConnection for PgConnection {
    const SETUP_SQL: &'static str = SETUP;

    const BACKEND: &'static str = "postgres";

    const STATEMENT_TIMEOUT: bool = true;

    fn relay_lock_path(_url: &str) -> Option<std::path::PathBuf> {
        None
    }

    fn cqrs_statement_timeout(&mut self, timeout: Duration) -> QueryResult<()> {
        // milliseconds, at least 1 (0 would turn the limit off), at most what the setting takes
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        self.batch_execute(&format!("SET statement_timeout = {ms}"))
    }

    fn cqrs_connect(url: &str) -> crate::Result<Self> {
        Ok(PgConnection::establish(url)?)
    }

    fn cqrs_setup(&mut self) -> crate::Result<()> {
        #[derive(diesel::QueryableByName)]
        struct Done {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            done: bool,
        }
        let Done { done } = diesel::sql_query(SETUP_DONE).get_result(self)?;
        if !done {
            self.transaction(|conn| conn.batch_execute(SETUP))?;
        }
        Ok(())
    }

    fn cqrs_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.transaction(f)
    }

    fn cqrs_in_transaction(&mut self) -> bool {
        in_transaction(self)
    }

    fn cqrs_durable(&mut self) -> QueryResult<Vec<String>> {
        #[derive(diesel::QueryableByName)]
        struct Settings {
            #[diesel(sql_type = diesel::sql_types::Text)]
            synchronous_commit: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            fsync: String,
        }
        let settings: Settings = diesel::sql_query(
            "SELECT current_setting('synchronous_commit') AS synchronous_commit, \
             current_setting('fsync') AS fsync",
        )
        .get_result(self)?;
        let mut warnings = Vec::new();
        if settings.synchronous_commit == "off" {
            self.batch_execute("SET synchronous_commit = on")?;
            warnings.push(
                "PostgreSQL's synchronous_commit is off on this server: the consumer raises it \
                 to on for its own sessions, so that it acknowledges only durable commits \
                 (the application's other sessions keep off)"
                    .to_owned(),
            );
        }
        if settings.fsync == "off" {
            warnings.push(
                "PostgreSQL runs with fsync = off: a crash of the machine can lose commits \
                 the consumer has acknowledged (a test setting; never in production)"
                    .to_owned(),
            );
        }
        Ok(warnings)
    }

    const READ_ONLY_SQL: &'static str = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;";

    fn cqrs_read_only<T, F>(&mut self, f: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self) -> QueryResult<T>,
    {
        self.build_transaction().read_only().run(f)
    }
}

impl super::OutboxWriter for PgConnection {
    const UPDATE_CARRIES_MESSAGE: bool = true;

    fn outbox_insert_noting(
        &mut self,
        message: &OutboxMessage,
        note: RevisionNote<'_>,
    ) -> QueryResult<(i64, Option<i32>)> {
        use super::announce::AnnouncedNoting;
        use super::cqrs_master_revisions::dsl as rev;
        use super::cqrs_outbox::dsl;
        let insert = diesel::insert_into(dsl::cqrs_outbox)
            .values(outbox_row!(message, chrono::Utc::now().timestamp_micros()))
            .returning(dsl::id);
        match note {
            RevisionNote::Take { cqrs_id, pk } => AnnouncedNoting(
                diesel::delete(
                    rev::cqrs_master_revisions
                        .filter(rev::cqrs_id.eq(cqrs_id))
                        .filter(rev::pk.eq(pk)),
                )
                .returning(rev::revision),
                insert,
            )
            .get_result(self),
            RevisionNote::Put {
                cqrs_id,
                pk,
                revision,
            } => AnnouncedNoting(revision_put!(cqrs_id, pk, revision), insert).get_result(self),
        }
    }

    super::outbox_store::outbox_writer_impl!(
        announce = super::announce::Announced,
        rows = announced
    );
}

impl super::OutboxReader for PgConnection {
    const CONCURRENT_TAKE: bool = true;

    const RELAY_POLL: Duration = Duration::from_secs(1);

    const RELAY_LINGER_FROM: usize = 8;

    fn outbox_take(&mut self, limit: i64, from: i64) -> QueryResult<OutboxTaken> {
        #[derive(diesel::QueryableByName)]
        struct Taken {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            candidates: i64,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            left_behind: Option<i64>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            id: Option<i64>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            cqrs_id: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            routing_key: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            body: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            created_at: Option<i64>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            exchange: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            properties: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            not_before: Option<i64>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            tags: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
            ordering_key: Option<i64>,
        }
        // diesel cannot lock a subquery of a DELETE: a fixed statement, the limit bound.
        // `Cached`: prepared once per connection; parsed and planned at every look, it cost
        // the server about 0.25 ms before it ran (its plan alone 0.2 ms, `EXPLAIN ANALYZE`
        // on an empty outbox, against 0.08 ms of execution).
        let rows: Vec<Taken> = Cached(
            diesel::sql_query(OUTBOX_TAKE)
                .bind::<diesel::sql_types::BigInt, _>(limit)
                .bind::<diesel::sql_types::BigInt, _>(chrono::Utc::now().timestamp_micros())
                .bind::<diesel::sql_types::BigInt, _>(from),
        )
        .load(self)?;
        let candidates = rows
            .first()
            .map_or(0, |row| usize::try_from(row.candidates).unwrap_or(0));
        let left_behind = rows.first().and_then(|row| row.left_behind);
        let mut records: Vec<OutboxRecord> = rows
            .into_iter()
            .filter_map(|t| {
                Some(OutboxRecord {
                    id: t.id?,
                    cqrs_id: t.cqrs_id?,
                    routing_key: t.routing_key?,
                    body: t.body?,
                    created_at: t.created_at?,
                    exchange: t.exchange,
                    properties: t.properties,
                    not_before: t.not_before,
                    tags: t.tags,
                    ordering_key: t.ordering_key,
                })
            })
            .collect();
        records.sort_unstable_by_key(|r| r.id);
        Ok(OutboxTaken {
            held_back: candidates.saturating_sub(records.len()),
            records,
            left_behind,
        })
    }

    super::outbox_store::outbox_reader_impl!();
}

impl super::InboxStore for PgConnection {
    super::inbox::inbox_impl!();
}

impl super::TombstoneStore for PgConnection {
    fn lock_rows(&mut self, keys: &[i64]) -> QueryResult<()> {
        #[derive(diesel::QueryableByName)]
        struct Locked {
            #[diesel(sql_type = diesel::sql_types::Text)]
            #[allow(dead_code, reason = "a row per lock taken, read to load the statement")]
            locked: String,
        }
        if keys.is_empty() {
            return Ok(());
        }
        // `unnest` yields the array in order: the locks are taken in the keys' order. Loaded
        // (the void result as text) and `Cached`: prepared once per connection, not parsed
        // again at every batch.
        Cached(
            diesel::sql_query(
                "SELECT CAST(pg_advisory_xact_lock(k) AS TEXT) AS locked FROM unnest($1) AS k",
            )
            .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(keys),
        )
        .load::<Locked>(self)
        .map(drop)
    }

    super::tombstones::tombstone_impl!();
}

impl super::RevisionLedger for PgConnection {
    super::ledger::ledger_impl!();
}

impl<'q, Q, U> super::RowUpdate<'q, PgConnection, U> for Q
where
    Q: diesel::query_dsl::LoadQuery<'q, PgConnection, U> + 'q,
    super::announce::UpdateAnnounced<'q, Q>:
        diesel::query_dsl::LoadQuery<'q, PgConnection, (U, i64)>,
{
    fn run(
        self,
        conn: &mut PgConnection,
        message: Option<&'q OutboxMessage>,
    ) -> QueryResult<Option<(U, Option<i64>)>> {
        let Some(message) = message else {
            return Ok(self.get_result(conn).optional()?.map(|row| (row, None)));
        };
        let statement = super::announce::UpdateAnnounced {
            update: self,
            message,
            created_at: chrono::Utc::now().timestamp_micros(),
        };
        Ok(statement
            .get_result::<(U, i64)>(conn)
            .optional()?
            .map(|(row, id)| (row, Some(id))))
    }
}
