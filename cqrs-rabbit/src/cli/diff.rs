//! The diff pipelines of django-cqrs: `diff-master | diff-replica | diff-sync` re-sends rows
//! whose revisions differ, `deleted-diff-replica | deleted-diff-master | deleted-sync-replica`
//! deletes replica rows the master no longer has. Lines are JSON; bad lines are reported and
//! counted, and the run goes on.

use cqrs_core::registry::{self, Registered};
use cqrs_core::value::{format_datetime, now_micros};
use serde_json::Value;

use super::progress::{Progress, Tally, summary};
use super::stream::{Key, Pair, StdinLines, Stdout, header_cqrs_id, same_pk};

/// Elements of a stream line handled at a time (a line may hold millions of keys).
const STREAM_CHUNK: usize = 10_000;
use super::{connect, filter};
use crate::config::Config;
use crate::error::Result;

/// Prints `[pk, cqrs_revision]` batches of the master.
pub(super) fn diff_master<C: Registered>(
    cqrs_id: &str,
    text: Option<&str>,
    batch: usize,
    database_url: &str,
) -> Result<u64> {
    let entry = registry::master::<C>(cqrs_id)?;
    let lookups = filter(text)?;
    let mut conn = connect::<C>(database_url)?;
    let mut out = Stdout::new();
    out.line(format_args!("{cqrs_id},{}", format_datetime(&now_micros())))?;
    let mut rows = 0u64;
    entry
        .ops
        .versions(&mut conn, &lookups, batch, &mut |pairs| {
            if pairs.is_empty() {
                return Ok(());
            }
            rows += pairs.len() as u64;
            out.line(Value::Array(
                pairs
                    .into_iter()
                    .map(|(pk, rev)| Value::Array(vec![pk, Value::from(rev)]))
                    .collect(),
            ))
        })?;
    out.flush()?;
    if rows == 0 {
        eprintln!("diff-master: no objects found for the filter");
    }
    summary("diff-master", rows, rows, 0);
    Ok(0)
}

/// Reads diff-master's output; prints the pks whose revision differs on the replica.
pub(super) fn diff_replica<C: Registered>(config: &Config, database_url: &str) -> Result<u64> {
    let mut input = StdinLines::new("diff-replica");
    let header = input.header()?;
    let entry = registry::replica::<C>(header_cqrs_id(&header))?;
    let mut conn = connect::<C>(database_url)?;
    let queue = config.queue.as_deref().unwrap_or("None");
    let mut out = Stdout::new();
    out.line(format_args!("{header},{queue}"))?;
    let mut tally = Tally::default();
    let mut differ = 0u64;
    input.for_each_chunk::<Pair>(
        STREAM_CHUNK,
        "[pk, cqrs_revision] pairs",
        &mut tally,
        &mut |_, pairs| {
            let pairs: Vec<(Value, i64)> = pairs
                .into_iter()
                .map(|(pk, rev)| (pk.into_value(), rev))
                .collect();
            let pks: Vec<Value> = pairs.iter().map(|(pk, _)| pk.clone()).collect();
            let stored = match entry.ops.versions(&mut conn, &pks) {
                Ok(stored) => stored,
                Err(error) => return Ok(Err(error.to_string())),
            };
            let diff: Vec<Value> = pairs
                .into_iter()
                .filter(|(pk, rev)| {
                    !stored
                        .iter()
                        .any(|(s, v)| same_pk(s, pk) && i64::from(v.revision) == *rev)
                })
                .map(|(pk, _)| pk)
                .collect();
            if !diff.is_empty() {
                differ += diff.len() as u64;
                let line = Value::Array(diff);
                out.line(&line)?;
                eprintln!("PK to resync: {line}");
            }
            Ok(Ok(()))
        },
    )?;
    out.flush()?;
    eprintln!(
        "diff-replica: {} compared, {differ} to re-sync",
        tally.succeeded
    );
    tally.summary("diff-replica");
    Ok(0)
}

/// Reads diff-replica's output; sends SYNC for those pks.
pub(super) fn diff_sync<C: Registered>(
    batch: usize,
    progress: bool,
    database_url: &str,
) -> Result<u64> {
    let mut input = StdinLines::new("diff-sync");
    let header = input.header()?;
    let queue = header
        .rsplit(',')
        .next()
        .filter(|q| *q != "None" && header.matches(',').count() >= 2)
        .map(str::to_owned);
    let entry = registry::master::<C>(header_cqrs_id(&header))?;
    let mut conn = connect::<C>(database_url)?;
    let mut tally = Tally::default();
    let mut sent = 0u64;
    let mut bar = Progress::new("diff-sync", 0, progress);
    let mut done = 0u64;
    input.for_each_chunk::<Key>(batch, "primary keys", &mut tally, &mut |_, pks| {
        let pks: Vec<Value> = pks.into_iter().map(Key::into_value).collect();
        done += pks.len() as u64;
        bar.set(done);
        match entry.ops.sync_pks(&mut conn, &pks, queue.as_deref().into()) {
            Ok(n) => {
                sent += n;
                Ok(Ok(()))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    })?;
    bar.finish();
    let absent = tally.succeeded.saturating_sub(sent);
    eprintln!(
        "diff-sync: {sent} SYNC message(s) written, {absent} row(s) no longer exist or are excluded by the sync filter"
    );
    tally.summary("diff-sync");
    Ok(sent)
}

/// Prints the replica's pks (those matching `text`'s lookups, if given).
pub(super) fn deleted_diff_replica<C: Registered>(
    cqrs_id: &str,
    text: Option<&str>,
    batch: usize,
    database_url: &str,
) -> Result<u64> {
    let entry = registry::replica::<C>(cqrs_id)?;
    let lookups = filter(text)?;
    let mut conn = connect::<C>(database_url)?;
    let mut out = Stdout::new();
    out.line(format_args!("{cqrs_id},{}", format_datetime(&now_micros())))?;
    let mut after: Option<Value> = None;
    let mut total = 0u64;
    loop {
        let pks = entry.ops.pks(&mut conn, &lookups, after.as_ref(), batch)?;
        let Some(last) = pks.last().cloned() else {
            break;
        };
        total += pks.len() as u64;
        let full = pks.len() == batch;
        out.line(Value::Array(pks))?;
        if !full {
            break;
        }
        after = Some(last);
    }
    out.flush()?;
    summary("deleted-diff-replica", total, total, 0);
    Ok(0)
}

/// Reads replica pks; prints those the master no longer has.
pub(super) fn deleted_diff_master<C: Registered>(database_url: &str) -> Result<u64> {
    let mut input = StdinLines::new("deleted-diff-master");
    let header = input.header()?;
    let entry = registry::master::<C>(header_cqrs_id(&header))?;
    let mut conn = connect::<C>(database_url)?;
    let mut out = Stdout::new();
    out.line(&header)?;
    let mut tally = Tally::default();
    let mut missing_total = 0u64;
    input.for_each_chunk::<Key>(STREAM_CHUNK, "primary keys", &mut tally, &mut |_, pks| {
        let pks: Vec<Value> = pks.into_iter().map(Key::into_value).collect();
        match entry.ops.missing(&mut conn, &pks) {
            Ok(missing) => {
                if !missing.is_empty() {
                    missing_total += missing.len() as u64;
                    let line = Value::Array(missing);
                    out.line(&line)?;
                    eprintln!("PK to delete: {line}");
                }
                Ok(Ok(()))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    })?;
    out.flush()?;
    eprintln!("deleted-diff-master: {missing_total} row(s) to delete");
    tally.summary("deleted-diff-master");
    Ok(0)
}

/// Reads deleted-diff-master's output; deletes those replica rows.
pub(super) fn deleted_sync_replica<C: Registered>(database_url: &str) -> Result<u64> {
    let mut input = StdinLines::new("deleted-sync-replica");
    let header = input.header()?;
    let entry = registry::replica::<C>(header_cqrs_id(&header))?;
    let mut conn = connect::<C>(database_url)?;
    let mut tally = Tally::default();
    let mut deleted = 0u64;
    input.for_each_chunk::<Key>(STREAM_CHUNK, "primary keys", &mut tally, &mut |_, pks| {
        let pks: Vec<Value> = pks.into_iter().map(Key::into_value).collect();
        match conn.cqrs_transaction(|conn| entry.ops.delete(conn, &pks)) {
            Ok(n) => {
                deleted += n;
                Ok(Ok(()))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    })?;
    eprintln!("deleted-sync-replica: {deleted} row(s) deleted");
    tally.summary("deleted-sync-replica");
    Ok(0)
}
