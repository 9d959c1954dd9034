//! What a consumer checks before it takes a message: the database opens, the framework's
//! tables exist, commits are durable, and every replica model can read its table. A database
//! without a model's table fails here, naming it, instead of dead-lettering every message
//! after a minute of retries.

use cqrs_core::db::CqrsConnection;
use cqrs_core::registry::ReplicaEntry;

use crate::error::{Error, Result};

/// Runs the checks off the async runtime.
pub(super) async fn check_database<C: CqrsConnection>(
    url: &str,
    entries: Vec<&'static ReplicaEntry<C>>,
) -> Result<()> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut conn = C::cqrs_connect(&url)?;
        conn.cqrs_setup()?;
        for note in conn.cqrs_durable()? {
            tracing::warn!("{note}");
        }
        for entry in entries {
            probe(&mut conn, entry).map_err(|source| Error::ReplicaTable {
                cqrs_id: entry.cqrs_id,
                type_name: entry.type_name,
                source: Box::new(source),
            })?;
        }
        Ok(())
    })
    .await
    .map_err(Error::task("the consumer's database check"))?
}

/// Reads one key of the model's table, and that row whole (every column the model maps).
fn probe<C: CqrsConnection>(conn: &mut C, entry: &ReplicaEntry<C>) -> cqrs_core::Result<()> {
    let pks = entry.ops.pks(conn, &[], None, 1)?;
    entry.ops.versions(conn, &pks)?;
    Ok(())
}
