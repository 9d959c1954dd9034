//! SQLite backend.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::{CqrsConnection, OutboxTaken, in_transaction, outbox_insert_rows};

/// Pragmas set on every connection the framework opens. The busy timeout comes first: switching
/// to WAL takes a lock, and without the timeout a connection opened while another one writes
/// would fail at once with "database is locked".
pub const PRAGMAS: &str = "PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

const SETUP: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS cqrs_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cqrs_id TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    exchange TEXT,
    properties TEXT,
    not_before BIGINT,
    tags TEXT,
    ordering_key BIGINT
);
",
    tombstones_ddl!(),
);

/// The file path of a SQLite URL: `sqlite://path`, `sqlite:path`, `file:path` or a plain path.
pub fn path_of(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

// The impls have the same shape as PostgreSQL's (one per store, as diesel's are per backend);
// what the backends share is written once, in each store's `*_impl!` macro.
impl CqrsConnection for SqliteConnection {
    const SETUP_SQL: &'static str = SETUP;

    const BACKEND: &'static str = "sqlite";

    const STATEMENT_TIMEOUT: bool = false;

    fn relay_lock_path(url: &str) -> Option<std::path::PathBuf> {
        let path = path_of(url);
        (!path.is_empty() && !path.contains(":memory:") && !path.contains("mode=memory"))
            .then(|| std::path::PathBuf::from(format!("{path}.relay-lock")))
    }

    fn cqrs_statement_timeout(&mut self, _timeout: Duration) -> QueryResult<()> {
        Ok(())
    }

    fn cqrs_connect(url: &str) -> crate::Result<Self> {
        let mut conn = SqliteConnection::establish(path_of(url))?;
        conn.batch_execute(PRAGMAS)?;
        Ok(conn)
    }

    fn cqrs_setup(&mut self) -> crate::Result<()> {
        #[derive(QueryableByName)]
        struct Column {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        self.batch_execute(SETUP)?;
        // An outbox created before domain events lacks their columns (SQLite has no
        // `ADD COLUMN IF NOT EXISTS`): add the missing ones.
        let columns: Vec<Column> =
            diesel::sql_query("SELECT name FROM pragma_table_info('cqrs_outbox')").load(self)?;
        for (name, ty) in super::OUTBOX_ADDED_COLUMNS {
            if !columns.iter().any(|c| c.name == *name) {
                self.batch_execute(&format!("ALTER TABLE cqrs_outbox ADD COLUMN {name} {ty}"))
                    .or_else(|error| {
                        // another process added it first
                        if error.to_string().contains("duplicate column") {
                            Ok(())
                        } else {
                            Err(error)
                        }
                    })?;
            }
        }
        Ok(())
    }

    fn cqrs_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        if in_transaction(self) {
            self.transaction(f)
        } else {
            self.immediate_transaction(f)
        }
    }

    fn cqrs_in_transaction(&mut self) -> bool {
        in_transaction(self)
    }

    fn cqrs_durable(&mut self) -> QueryResult<Vec<String>> {
        self.batch_execute("PRAGMA synchronous = FULL")?;
        Ok(Vec::new())
    }

    const READ_ONLY_SQL: &'static str = "PRAGMA query_only = ON;";

    fn cqrs_read_only<T, F>(&mut self, f: F) -> QueryResult<T>
    where
        F: FnOnce(&mut Self) -> QueryResult<T>,
    {
        #[derive(QueryableByName)]
        struct QueryOnly {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            query_only: i32,
        }
        let was: QueryOnly = diesel::sql_query("PRAGMA query_only").get_result(self)?;
        self.batch_execute(Self::READ_ONLY_SQL)?;
        let result = f(self);
        if was.query_only == 0 {
            self.batch_execute("PRAGMA query_only = OFF;")?;
        }
        result
    }
}

impl super::OutboxWriter for SqliteConnection {
    // a statement costs no round trip: the message is built from the stored row
    const UPDATE_CARRIES_MESSAGE: bool = false;

    super::outbox_store::outbox_writer_impl!(announce = super::unannounced, rows = plain);
}

impl super::OutboxReader for SqliteConnection {
    const CONCURRENT_TAKE: bool = false;

    const RELAY_POLL: Duration = Duration::from_millis(25);

    const RELAY_LINGER_FROM: usize = 16;

    fn outbox_take(&mut self, limit: i64, _from: i64) -> QueryResult<OutboxTaken> {
        // one relay per file: nothing is in another relay's hands, and a delete frees its
        // index entries at once (a look from the start costs nothing more)
        let records = self.outbox_fetch(limit)?;
        let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
        self.outbox_delete(&ids)?;
        Ok(OutboxTaken {
            records,
            held_back: 0,
            left_behind: None,
        })
    }

    super::outbox_store::outbox_reader_impl!();
}

impl super::InboxStore for SqliteConnection {
    super::inbox::inbox_impl!();
}

impl super::TombstoneStore for SqliteConnection {
    fn lock_rows(&mut self, _keys: &[i64]) -> QueryResult<()> {
        Ok(())
    }

    super::tombstones::tombstone_impl!();
}

impl super::RevisionLedger for SqliteConnection {
    super::ledger::ledger_impl!();
}

impl<'q, Q, U> super::RowUpdate<'q, SqliteConnection, U> for Q
where
    Q: diesel::query_dsl::LoadQuery<'q, SqliteConnection, U> + 'q,
{
    fn run(
        self,
        conn: &mut SqliteConnection,
        _message: Option<&'q super::OutboxMessage>,
    ) -> QueryResult<Option<(U, Option<i64>)>> {
        Ok(self.get_result(conn).optional()?.map(|row| (row, None)))
    }
}
