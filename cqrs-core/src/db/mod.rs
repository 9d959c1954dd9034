//! The database side of the framework: the [`CqrsConnection`] trait, implemented for diesel's
//! `SqliteConnection` (feature `sqlite`) and `PgConnection` (feature `postgres`), the two
//! tables the library owns (the transactional outbox and the replica tombstones), and
//! [`Backend`], which picks the connection type a database URL names.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::QueryResult;

use crate::rules::Version;

mod backend;
pub(crate) mod cached;

pub use backend::Backend;

/// Rows per multi-row insert into the outbox.
const OUTBOX_INSERT_CHUNK: usize = 1000;
/// Keys per `IN (...)` list of a delete or a lookup (well under SQLite's 32766 parameters).
pub const KEY_CHUNK: usize = 500;
/// Model rows per multi-row insert or upsert (500 rows of up to 32 columns stay under
/// SQLite's 32766 parameters).
pub const ROW_CHUNK: usize = 500;

/// The outbox columns added for domain events, with their SQLite types: an older outbox
/// gets them at set-up.
#[cfg_attr(
    not(feature = "sqlite"),
    allow(dead_code, reason = "SQLite's set-up uses it")
)]
pub(crate) const OUTBOX_ADDED_COLUMNS: &[(&str, &str)] = &[
    ("exchange", "TEXT"),
    ("properties", "TEXT"),
    ("not_before", "BIGINT"),
    ("tags", "TEXT"),
    ("ordering_key", "BIGINT"),
];

/// The lock key of one replica row: a stable 64-bit FNV-1a hash of its `cqrs_id` and
/// primary-key text, the same in every process and every build (two keys may share a lock:
/// that only serializes more).
pub fn row_lock_key(cqrs_id: &str, pk: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let bytes = cqrs_id.bytes().chain([0]).chain(pk.bytes());
    let hash = bytes.fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The ordering key of an outbox message: its row's [`row_lock_key`] (a domain event's, its
/// aggregate exchange's, with `*` for the key). Messages of one key leave the outbox in id
/// order even when several relays share it; two keys that hash alike only wait for each
/// other.
pub fn ordering_key(cqrs_id: &str, pk: &str) -> i64 {
    row_lock_key(cqrs_id, pk)
}

/// The DDL both backends share after their outbox table: the tombstones of applied deletes
/// (replica side) and the last revisions of deleted rows (master side).
macro_rules! tombstones_ddl {
    () => {
        "
CREATE TABLE IF NOT EXISTS cqrs_tombstones (
    cqrs_id TEXT NOT NULL,
    pk TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL,
    PRIMARY KEY (cqrs_id, pk)
);
CREATE INDEX IF NOT EXISTS cqrs_tombstones_deleted_at ON cqrs_tombstones (deleted_at);
CREATE TABLE IF NOT EXISTS cqrs_inbox (
    handler TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (handler, event_id)
);
CREATE TABLE IF NOT EXISTS cqrs_master_revisions (
    cqrs_id TEXT NOT NULL,
    pk TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (cqrs_id, pk)
);
"
    };
}

/// The channel the outbox's inserts notify on PostgreSQL, as a literal for SQL text.
#[cfg_attr(
    not(feature = "postgres"),
    allow(unused_macros, reason = "PostgreSQL's outbox inserts use it")
)]
macro_rules! notify_channel {
    () => {
        "cqrs_outbox"
    };
}

#[cfg(feature = "postgres")]
mod announce;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

diesel::table! {
    /// Messages written in the same transaction as the master row change, waiting for the
    /// relay. Rows are deleted once the broker confirmed them.
    cqrs_outbox (id) {
        /// Monotonic id: the publish order.
        id -> BigInt,
        /// The model's stream id.
        cqrs_id -> Text,
        /// `<cqrs_id>` or `cqrs.<queue>.<cqrs_id>`.
        routing_key -> Text,
        /// The message body, ready to publish.
        body -> Text,
        /// When the row was written, in microseconds since the Unix epoch.
        created_at -> BigInt,
        /// The exchange to publish to; `NULL`: the configured replication exchange (row
        /// messages). Domain events name their aggregate's exchange.
        exchange -> Nullable<Text>,
        /// AMQP properties as a JSON object (`content_type`, `correlation_id`, `app_id`,
        /// `message_id`); `NULL`: django-cqrs's (`text/plain`, persistent).
        properties -> Nullable<Text>,
        /// Not to be published before this time (microseconds since the Unix epoch): a future
        /// event. `NULL`: at once.
        not_before -> Nullable<BigInt>,
        /// A future event's tags, each between `|` (`|a|b|`), for cancelling it before it
        /// is sent.
        tags -> Nullable<Text>,
        /// What the message must stay in order with ([`ordering_key`]): its row, or its
        /// aggregate's exchange. Relays sharing the outbox never publish a message while an
        /// earlier one of the same key is in another relay's hands. `NULL`: written before
        /// the column existed (no constraint).
        ordering_key -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Event handlers' inbox: the event ids each handler has taken, written in the handler's
    /// transaction, so that a redelivered event has its effect once.
    cqrs_inbox (handler, event_id) {
        /// The handler's path.
        handler -> Text,
        /// The event id.
        event_id -> Text,
        /// When it was taken, in microseconds since the Unix epoch.
        received_at -> BigInt,
    }
}

diesel::table! {
    /// Replica tombstones: the version of each deleted row, so that an older SAVE or SYNC
    /// cannot bring it back.
    cqrs_tombstones (cqrs_id, pk) {
        /// The model's stream id.
        cqrs_id -> Text,
        /// The primary key's text form ([`crate::value::pk_key`]).
        pk -> Text,
        /// `cqrs_revision` of the DELETE message.
        revision -> Integer,
        /// `cqrs_updated` of the DELETE message, in microseconds since the Unix epoch.
        updated -> BigInt,
        /// When the tombstone was written, in microseconds since the Unix epoch.
        deleted_at -> BigInt,
    }
}

diesel::table! {
    /// Master side: the revision of each deleted row's DELETE message, so that a row
    /// re-created under the same primary key continues above it (revisions never restart,
    /// and replicas order a row's versions without comparing clocks). A row is removed when
    /// its key is re-created.
    cqrs_master_revisions (cqrs_id, pk) {
        /// The model's stream id.
        cqrs_id -> Text,
        /// The primary key's text form ([`crate::value::pk_key`]).
        pk -> Text,
        /// `cqrs_revision` of the DELETE message.
        revision -> Integer,
    }
}

/// Up to how many outbox rows [`CqrsConnection::outbox_stats`] counts one by one; past it,
/// the depth is the span of the waiting ids.
pub const OUTBOX_COUNT_CAP: i64 = 10_000;

/// What waits in the outbox, read cheaply (for gauges and readiness): a bounded count and
/// the first due message, both through the primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Messages waiting (due or future). Exact up to [`OUTBOX_COUNT_CAP`]; past it, the span
    /// `max(id) - min(id) + 1`, an upper bound (ids a rolled-back transaction took are counted).
    pub depth: u64,
    /// Whether `depth` was counted rather than estimated from the ids.
    pub exact: bool,
    /// How long the first due message has waited, in microseconds (since it was written, or
    /// for a future event since it became due); `None` when nothing is due.
    pub oldest_due_micros: Option<i64>,
}

/// A row count of a raw query.
#[derive(Debug, diesel::QueryableByName)]
pub struct CountRow {
    /// The count.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// What [`CqrsConnection::outbox_take`] took.
#[derive(Debug, Default)]
pub struct OutboxTaken {
    /// The messages, in id order.
    pub records: Vec<OutboxRecord>,
    /// Due messages left in the outbox because an earlier message of their ordering key is
    /// in another relay's hands: look again soon.
    pub held_back: usize,
    /// The lowest id the look left in the outbox below its last candidate (held back, or in
    /// another relay's hands); `None` when it left none (see [`crate::outbox::OutboxCursor`]).
    pub left_behind: Option<i64>,
}

/// One message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, diesel::Queryable, diesel::Insertable)]
#[diesel(table_name = cqrs_outbox)]
pub struct OutboxRecord {
    /// Its id (the publish order).
    pub id: i64,
    /// The model's stream id.
    pub cqrs_id: String,
    /// Where to publish it.
    pub routing_key: String,
    /// The body.
    pub body: String,
    /// When it was written (microseconds since the Unix epoch).
    pub created_at: i64,
    /// The exchange, when not the replication exchange.
    pub exchange: Option<String>,
    /// AMQP properties (JSON), when not django-cqrs's.
    pub properties: Option<String>,
    /// Not before this time (microseconds since the Unix epoch).
    pub not_before: Option<i64>,
    /// A future event's tags (`|a|b|`).
    pub tags: Option<String>,
    /// What it stays in order with ([`ordering_key`]).
    pub ordering_key: Option<i64>,
}

/// A message to write to the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxMessage {
    /// The model's stream id; for a domain event or command, its exchange.
    pub cqrs_id: String,
    /// Where to publish it.
    pub routing_key: String,
    /// The body.
    pub body: String,
    /// The exchange; `None`: the replication exchange.
    pub exchange: Option<String>,
    /// AMQP properties as a JSON object; `None`: django-cqrs's.
    pub properties: Option<String>,
    /// Not before this time (microseconds since the Unix epoch).
    pub not_before: Option<i64>,
    /// A future event's tags (`|a|b|`).
    pub tags: Option<String>,
    /// What it stays in order with ([`ordering_key`]); `None`: nothing.
    pub ordering_key: Option<i64>,
}

impl OutboxMessage {
    /// A message of the row `pk` of `cqrs_id` to the replication exchange, carrying the trace
    /// context of this write ([`crate::trace::for_message`]) in its headers; it stays in order
    /// with the row's other messages.
    pub fn row(cqrs_id: String, pk: &str, routing_key: String, body: String) -> Self {
        Self {
            ordering_key: Some(ordering_key(&cqrs_id, pk)),
            cqrs_id,
            routing_key,
            body,
            properties: Some(trace_properties(&crate::trace::for_message())),
            ..Self::default()
        }
    }
}

/// The AMQP properties (JSON) of a row message: only the trace header; the relay adds
/// django-cqrs's content type and persistence.
pub fn trace_properties(trace: &crate::trace::TraceParent) -> String {
    format!(r#"{{"headers":{{"{}":"{trace}"}}}}"#, crate::trace::HEADER)
}

/// A diesel connection the framework can use: SQLite or PostgreSQL.
///
/// Everything the library stores goes through this trait; the derive-generated code uses the
/// connection's own diesel DSL for the model tables.
pub trait CqrsConnection: diesel::Connection + Send + Sized + 'static {
    /// The backend's name, for logs: `"sqlite"` or `"postgres"`.
    const BACKEND: &'static str;

    /// Whether several relays may take from one outbox at once. Then a batch is taken and
    /// removed in one statement that skips rows another transaction holds
    /// ([`CqrsConnection::outbox_take`]), inside a transaction kept open while the broker
    /// confirms. Otherwise (SQLite) the relay reads without locking, so that the application's
    /// writers never wait for the broker, and deletes after the confirms: one relay per
    /// database.
    const CONCURRENT_TAKE: bool;

    /// Whether the backend can cancel a statement that runs longer than a limit
    /// ([`CqrsConnection::cqrs_statement_timeout`]): PostgreSQL's `statement_timeout`; SQLite
    /// has no such setting.
    const STATEMENT_TIMEOUT: bool;

    /// From now on, cancels every statement of this connection that runs longer than
    /// `timeout` (django-cqrs's `CQRS_QUERY_TIMEOUT`; the consumer sets it on its workers'
    /// connections, which do nothing but apply). Does nothing where
    /// [`CqrsConnection::STATEMENT_TIMEOUT`] is false.
    fn cqrs_statement_timeout(&mut self, timeout: Duration) -> QueryResult<()>;

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

    /// Opens a connection configured for the framework (SQLite: WAL, `synchronous=NORMAL`,
    /// a busy timeout and foreign keys; PostgreSQL: as diesel does).
    fn cqrs_connect(url: &str) -> crate::Result<Self>;

    /// The file a relay locks for as long as it runs where one relay per database is the
    /// rule (see [`CqrsConnection::CONCURRENT_TAKE`]): SQLite `<database file>.relay-lock`.
    /// `None` where relays share the outbox safely (PostgreSQL) or there is no file (an
    /// in-memory SQLite database).
    fn relay_lock_path(url: &str) -> Option<std::path::PathBuf>;

    /// The DDL of the framework's own tables on this backend, as [`CqrsConnection::cqrs_setup`]
    /// runs it (idempotent: `IF NOT EXISTS` throughout): `cqrs_outbox` (the messages waiting
    /// for the relay), `cqrs_tombstones` (a replica's applied deletes), `cqrs_master_revisions`
    /// (a master's last revision of each deleted key) and, on PostgreSQL, the removal of the
    /// `NOTIFY` trigger of earlier versions (outbox inserts notify by themselves now). To put
    /// in a migration; the CLI's `schema` prints it.
    const SETUP_SQL: &'static str;

    /// Creates the framework's tables ([`CqrsConnection::SETUP_SQL`]) if they do not exist.
    /// Safe to call at every start, from several processes; the relay and the consumer call
    /// it at start-up, and a master's hooks need it to have run once.
    fn cqrs_setup(&mut self) -> crate::Result<()>;

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE` on SQLite, so that writers queue
    /// instead of failing), or in a savepoint when a transaction is already open.
    ///
    /// Services use [`crate::transaction`], which also wakes this process's relays after the
    /// commit; this is the framework's own building block.
    #[doc(hidden)]
    fn cqrs_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>;

    /// Whether a transaction is open on this connection.
    fn cqrs_in_transaction(&mut self) -> bool;

    /// Makes this connection's commits durable before they return, as a consumer needs: it
    /// acknowledges a message once its apply committed, so a commit the database could still
    /// lose would lose the message. PostgreSQL: `synchronous_commit` is raised to `on` for
    /// this session when the server's default is `off` (a stronger setting is kept). SQLite:
    /// `PRAGMA synchronous = FULL` (the framework's default `NORMAL` may lose the last commits
    /// on a power loss). Returns what the operator should know, to be logged once: a
    /// server default raised, or what no session can change (PostgreSQL `fsync = off`).
    fn cqrs_durable(&mut self) -> QueryResult<Vec<String>>;

    /// Holds, until the open transaction ends, a lock on each of these row keys
    /// ([`row_lock_key`]), so that two consumer processes never apply messages of one row at
    /// the same time: each reads the stored version only after the other's write committed.
    /// The keys must be sorted (every process then locks in one order: no deadlock).
    /// PostgreSQL takes transaction-scoped advisory locks; SQLite needs none, its write
    /// transactions (`BEGIN IMMEDIATE`) already run one at a time.
    fn lock_rows(&mut self, keys: &[i64]) -> QueryResult<()>;

    /// What makes a connection read-only for good (a read model's pool): SQLite
    /// `PRAGMA query_only`, PostgreSQL `default_transaction_read_only`.
    const READ_ONLY_SQL: &'static str;

    /// Runs `f` where the database refuses writes: PostgreSQL a `READ ONLY` transaction,
    /// SQLite `query_only` for the call.
    fn cqrs_read_only<T, F>(&mut self, f: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self) -> QueryResult<T>;

    /// Appends messages to the outbox.
    fn outbox_insert(&mut self, messages: &[OutboxMessage]) -> QueryResult<()>;

    /// Adds one message; returns its id (for a later [`CqrsConnection::outbox_rewrite`] in
    /// the same transaction).
    fn outbox_insert_one(&mut self, message: &OutboxMessage) -> QueryResult<i64>;

    /// Replaces the body of a message not yet published; how many rows changed (0: it is
    /// gone, published or rolled back).
    fn outbox_rewrite(&mut self, id: i64, body: &str) -> QueryResult<usize>;

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

    /// Removes the future events to `exchange` with `routing_key` that carry every one of
    /// `tags` and are not yet published; returns how many.
    fn outbox_cancel(
        &mut self,
        exchange: &str,
        routing_key: &str,
        tags: &[&str],
    ) -> QueryResult<usize>;

    /// How many messages are due and older than `older_than_micros`: written that long ago
    /// (or, for a future event, due that long ago) and still not published.
    fn outbox_overdue(&mut self, older_than_micros: i64) -> QueryResult<i64>;

    /// Records that `handler` took event `event_id`; `false` if it already had.
    fn inbox_insert(&mut self, handler: &str, event_id: &str) -> QueryResult<bool>;

    /// Forgets the inbox entries recorded before `before`; returns how many.
    fn inbox_purge(&mut self, before: DateTime<Utc>) -> QueryResult<usize>;

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

    /// Master side: records the revision of a deleted row's DELETE message.
    fn deleted_revision_put(&mut self, cqrs_id: &str, pk: &str, revision: i32) -> QueryResult<()>;

    /// Master side: the recorded DELETE revisions of these keys (absent ones are left out),
    /// removed from the table (the keys are being re-created).
    fn deleted_revisions_take(
        &mut self,
        cqrs_id: &str,
        pks: &[String],
    ) -> QueryResult<Vec<(String, i32)>>;

    /// Whether a master row's `UPDATE` and its message travel in one statement
    /// ([`RowUpdate`]): where a statement costs a round trip to a server (PostgreSQL), a full
    /// save of a row read under its lock builds its message first, from the row as it will be
    /// stored.
    const UPDATE_CARRIES_MESSAGE: bool;

    /// Adds one message, as [`CqrsConnection::outbox_insert_one`], and carries out `note`
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

/// A master row's single-row `UPDATE ... RETURNING` (the derive builds it), run on `C`; with
/// a `message`, the backend may write the message in the same statement
/// ([`CqrsConnection::UPDATE_CARRIES_MESSAGE`]).
#[doc(hidden)]
pub trait RowUpdate<'q, C, U> {
    /// Runs the update: the stored row (`None`: no row matched) and, when the message was
    /// written with it, the message's id (`None`: the caller writes it).
    fn run(
        self,
        conn: &mut C,
        message: Option<&'q OutboxMessage>,
    ) -> QueryResult<Option<(U, Option<i64>)>>;
}

/// What a master write does to its key's recorded DELETE revision
/// (`cqrs_master_revisions`), in the statement that writes its message where the backend can
/// ([`CqrsConnection::outbox_insert_noting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionNote<'a> {
    /// A created key: take (read and remove) the revision its last DELETE recorded.
    Take {
        /// The model's stream id.
        cqrs_id: &'a str,
        /// The primary key's text form.
        pk: &'a str,
    },
    /// A deleted key: record its DELETE message's revision.
    Put {
        /// The model's stream id.
        cqrs_id: &'a str,
        /// The primary key's text form.
        pk: &'a str,
        /// The DELETE message's revision.
        revision: i32,
    },
}

/// The statement as it is: where nothing listens (SQLite's relays poll), an outbox insert
/// needs no announcement.
#[cfg_attr(
    not(feature = "sqlite"),
    allow(dead_code, reason = "SQLite's outbox inserts use it")
)]
pub(crate) fn unannounced<Q>(query: Q) -> Q {
    query
}

/// The values of one outbox row for `diesel::insert_into(cqrs_outbox)`: the message `$m`
/// ([`OutboxMessage`]) written at `$now` (microseconds since the Unix epoch).
macro_rules! outbox_row {
    ($m:expr, $now:expr) => {{
        use ::diesel::ExpressionMethods as _;
        use $crate::db::cqrs_outbox::dsl;
        (
            dsl::cqrs_id.eq(&$m.cqrs_id),
            dsl::routing_key.eq(&$m.routing_key),
            dsl::body.eq(&$m.body),
            dsl::created_at.eq($now),
            dsl::exchange.eq(&$m.exchange),
            dsl::properties.eq(&$m.properties),
            dsl::not_before.eq($m.not_before),
            dsl::tags.eq(&$m.tags),
            dsl::ordering_key.eq($m.ordering_key),
        )
    }};
}

/// The statement that records a deleted key's DELETE revision
/// (`cqrs_master_revisions`, an upsert returning `revision`).
macro_rules! revision_put {
    ($cqrs_id:expr, $pk:expr, $revision:expr) => {{
        use ::diesel::ExpressionMethods as _;
        use $crate::db::cqrs_master_revisions::dsl;
        ::diesel::insert_into(dsl::cqrs_master_revisions)
            .values((
                dsl::cqrs_id.eq($cqrs_id),
                dsl::pk.eq($pk),
                dsl::revision.eq($revision),
            ))
            .on_conflict((dsl::cqrs_id, dsl::pk))
            .do_update()
            .set(dsl::revision.eq($revision))
            .returning(dsl::revision)
    }};
}

/// A multi-row outbox insert: announced (PostgreSQL, `RETURNING id` inside
/// [`announce::Announced`]) or plain (SQLite, whose multi-row inserts take no `RETURNING`).
macro_rules! outbox_insert_rows {
    (announced, $conn:expr, $insert:expr) => {
        $crate::db::announce::Announced($insert.returning($crate::db::cqrs_outbox::id))
            .execute($conn)
    };
    (plain, $conn:expr, $insert:expr) => {
        $insert.execute($conn)
    };
}

/// Implements the backend-independent part of [`CqrsConnection`] for a concrete connection;
/// `announce` wraps each outbox `INSERT ... RETURNING id` (PostgreSQL: [`announce::Announced`],
/// which notifies the relays in the same statement), `rows` says how multi-row inserts go
/// (`outbox_insert_rows!`).
macro_rules! common_impl {
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
            self.outbox_delete(&ids)
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
pub(crate) use common_impl;
pub(crate) use outbox_insert_rows;
pub(crate) use outbox_row;
pub(crate) use revision_put;

/// `text` with the `LIKE` wildcards (`%`, `_`) and the escape character `\` escaped.
pub fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Whether a diesel connection has an open transaction.
pub(crate) fn in_transaction<C>(conn: &mut C) -> bool
where
    C: diesel::Connection<TransactionManager = diesel::connection::AnsiTransactionManager>,
{
    use diesel::connection::TransactionManager;
    matches!(
        diesel::connection::AnsiTransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth(),
        Ok(Some(_))
    )
}
