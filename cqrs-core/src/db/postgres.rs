//! PostgreSQL backend.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use super::{CqrsConnection, OutboxRecord, common_impl, in_transaction};

/// The `LISTEN` channel notified (at commit) when messages are added to the outbox.
pub const NOTIFY_CHANNEL: &str = "cqrs_outbox";

const SETUP: &str = "
SELECT pg_advisory_xact_lock(7243901);
CREATE TABLE IF NOT EXISTS cqrs_outbox (
    id BIGSERIAL PRIMARY KEY,
    cqrs_id TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS cqrs_tombstones (
    cqrs_id TEXT NOT NULL,
    pk TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL,
    PRIMARY KEY (cqrs_id, pk)
);
CREATE INDEX IF NOT EXISTS cqrs_tombstones_deleted_at ON cqrs_tombstones (deleted_at);
CREATE OR REPLACE FUNCTION cqrs_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cqrs_outbox', '');
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER cqrs_outbox_notify AFTER INSERT ON cqrs_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION cqrs_outbox_notify();
";

impl CqrsConnection for PgConnection {
    const BACKEND: &'static str = "postgres";

    fn cqrs_connect(url: &str) -> crate::Result<Self> {
        Ok(PgConnection::establish(url)?)
    }

    fn cqrs_setup(&mut self) -> crate::Result<()> {
        self.transaction(|conn| conn.batch_execute(SETUP))?;
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

    fn outbox_fetch(&mut self, limit: i64, lock: bool) -> QueryResult<Vec<OutboxRecord>> {
        use super::cqrs_outbox::dsl;
        let query = dsl::cqrs_outbox.order(dsl::id).limit(limit);
        if lock {
            query.for_update().skip_locked().load(self)
        } else {
            query.load(self)
        }
    }

    common_impl!();
}

inventory::collect!(crate::registry::MasterEntry<PgConnection>);
inventory::collect!(crate::registry::ReplicaEntry<PgConnection>);
