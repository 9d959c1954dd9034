//! `sync`: SYNC messages for the master rows matching a filter.

use cqrs_core::registry::{self, Registered};

use super::progress::{DjangoDone, Progress, summary};
use super::{connect, filter};
use crate::error::Result;

/// Writes SYNC messages to the outbox; returns how many.
pub(super) fn sync<C: Registered>(
    cqrs_id: &str,
    text: Option<&str>,
    queue: Option<&str>,
    batch: usize,
    progress: bool,
    database_url: &str,
) -> Result<u64> {
    let entry = registry::master::<C>(cqrs_id)?;
    let lookups = filter(text)?;
    let mut conn = connect::<C>(database_url)?;
    let total = entry.ops.count(&mut conn, &lookups)?;
    if total == 0 {
        eprintln!("sync: no rows match the filter");
        summary("sync", 0, 0, 0);
        // django-cqrs's words, on its stream (it prints no `Done!` then)
        #[allow(
            clippy::print_stdout,
            reason = "django-cqrs's cqrs_sync prints on stdout"
        )]
        {
            println!("No objects found for filter!");
        }
        return Ok(0);
    }
    let mut bar = Progress::new("sync", total, progress);
    let sent = entry
        .ops
        .sync(&mut conn, &lookups, queue.into(), batch, &mut |done| {
            bar.set(done);
        })?;
    bar.finish();
    if !entry.ops.produces() {
        // django-cqrs's cqrs_sync counts such rows as synced and sends nothing
        eprintln!("sync: {cqrs_id} has produce = false: no SYNC message is sent");
    } else if sent < total {
        eprintln!(
            "sync: {} row(s) are excluded by the model's sync filter",
            total - sent
        );
    }
    summary("sync", total, sent, 0);
    DjangoDone::Sync {
        synced: if entry.ops.produces() { sent } else { total },
        processed: total,
    }
    .print();
    Ok(sent)
}
