//! The database side of the framework: the [`CqrsConnection`] trait, implemented for diesel's
//! `SqliteConnection` (feature `sqlite`) and `PgConnection` (feature `postgres`), the two
//! tables the library owns (the transactional outbox and the replica tombstones), and
//! [`Backend`], which picks the connection type a database URL names.

use diesel::QueryResult;

mod backend;
pub(crate) mod cached;
mod connection;
mod inbox;
mod ledger;
mod outbox_store;
mod tombstones;

pub use backend::Backend;
pub use connection::CqrsConnection;
pub use inbox::InboxStore;
pub use ledger::RevisionLedger;
pub use outbox_store::{OutboxReader, OutboxWriter};
pub use tombstones::TombstoneStore;

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

/// Up to how many outbox rows [`OutboxReader::outbox_stats`] counts one by one; past it,
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

/// What [`OutboxReader::outbox_take`] took.
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

/// A master row's single-row `UPDATE ... RETURNING` (the derive builds it), run on `C`; with
/// a `message`, the backend may write the message in the same statement
/// ([`OutboxWriter::UPDATE_CARRIES_MESSAGE`]).
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
/// ([`OutboxWriter::outbox_insert_noting`]).
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
