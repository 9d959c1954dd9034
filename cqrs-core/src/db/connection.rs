//! The backend trait: what a database must offer the framework beyond its stores (connect,
//! set-up, transactions, durability, read-only work), with the stores as supertraits.

use std::time::Duration;

use diesel::QueryResult;

use super::inbox::InboxStore;
use super::ledger::RevisionLedger;
use super::outbox_store::{OutboxReader, OutboxWriter};
use super::tombstones::TombstoneStore;

/// A diesel connection the framework can use: SQLite or PostgreSQL.
///
/// A backend implements this trait and the stores it builds on, one concern each: the outbox
/// ([`OutboxWriter`] for a master's writes, [`OutboxReader`] for the relay and the tools), the
/// inbox of event handlers ([`InboxStore`]), a replica's tombstones and row locks
/// ([`TombstoneStore`]) and a master's revisions of deleted keys ([`RevisionLedger`]). Generic
/// code bounded by `C: CqrsConnection` calls them all; code that names a concrete connection
/// imports the store it calls (`use cqrs_core::db::OutboxReader;` for `outbox_pending`). The
/// derive-generated code uses the connection's own diesel DSL for the model tables.
pub trait CqrsConnection:
    diesel::Connection
    + OutboxWriter
    + OutboxReader
    + InboxStore
    + TombstoneStore
    + RevisionLedger
    + Send
    + Sized
    + 'static
{
    /// The backend's name, for logs: `"sqlite"` or `"postgres"`.
    const BACKEND: &'static str;

    /// Whether the backend can cancel a statement that runs longer than a limit
    /// ([`CqrsConnection::cqrs_statement_timeout`](crate::db::CqrsConnection::cqrs_statement_timeout)): PostgreSQL's `statement_timeout`; SQLite
    /// has no such setting.
    const STATEMENT_TIMEOUT: bool;

    /// From now on, cancels every statement of this connection that runs longer than
    /// `timeout` (django-cqrs's `CQRS_QUERY_TIMEOUT`; the consumer sets it on its workers'
    /// connections, which do nothing but apply). Does nothing where
    /// [`CqrsConnection::STATEMENT_TIMEOUT`](crate::db::CqrsConnection::STATEMENT_TIMEOUT) is false.
    fn cqrs_statement_timeout(&mut self, timeout: Duration) -> QueryResult<()>;

    /// Opens a connection configured for the framework (SQLite: WAL, `synchronous=NORMAL`,
    /// a busy timeout and foreign keys; PostgreSQL: as diesel does).
    fn cqrs_connect(url: &str) -> crate::Result<Self>;

    /// The file a relay locks for as long as it runs where one relay per database is the
    /// rule (see [`OutboxReader::CONCURRENT_TAKE`](crate::db::OutboxReader::CONCURRENT_TAKE)): SQLite `<database file>.relay-lock`.
    /// `None` where relays share the outbox safely (PostgreSQL) or there is no file (an
    /// in-memory SQLite database).
    fn relay_lock_path(url: &str) -> Option<std::path::PathBuf>;

    /// The DDL of the framework's own tables on this backend, as [`CqrsConnection::cqrs_setup`](crate::db::CqrsConnection::cqrs_setup)
    /// runs it (idempotent: `IF NOT EXISTS` throughout): `cqrs_outbox` (the messages waiting
    /// for the relay), `cqrs_tombstones` (a replica's applied deletes), `cqrs_master_revisions`
    /// (a master's last revision of each deleted key) and, on PostgreSQL, the removal of the
    /// `NOTIFY` trigger of earlier versions (outbox inserts notify by themselves now). To put
    /// in a migration; the CLI's `schema` prints it.
    const SETUP_SQL: &'static str;

    /// Creates the framework's tables ([`CqrsConnection::SETUP_SQL`](crate::db::CqrsConnection::SETUP_SQL)) if they do not exist.
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

    /// What makes a connection read-only for good (a read model's pool): SQLite
    /// `PRAGMA query_only`, PostgreSQL `default_transaction_read_only`.
    const READ_ONLY_SQL: &'static str;

    /// Runs `f` where the database refuses writes: PostgreSQL a `READ ONLY` transaction,
    /// SQLite `query_only` for the call.
    fn cqrs_read_only<T, F>(&mut self, f: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self) -> QueryResult<T>;
}
