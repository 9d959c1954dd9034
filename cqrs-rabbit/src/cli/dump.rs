//! `bulk-dump` and `bulk-load`: django-cqrs's dump files (the `cqrs_id` on the first line,
//! then one `instance_data` JSON object per line).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use cqrs_core::batch::{BatchItem, apply_batch};
use cqrs_core::message::{Message, SignalType};
use cqrs_core::registry::{self, Registered};
use serde_json::Value;

use super::connect;
use super::progress::{DjangoDone, Progress, summary};
use super::stream::{open_input, text_lines};
use crate::error::{Error, Result};

/// Writes every row of a master model to a dump file.
pub(super) fn bulk_dump<C: Registered>(
    cqrs_id: &str,
    output: Option<String>,
    batch: usize,
    progress: bool,
    force: bool,
    database_url: &str,
) -> Result<u64> {
    let entry = registry::master::<C>(cqrs_id)?;
    let output = output.unwrap_or_else(|| format!("{cqrs_id}.dump"));
    let mut conn = connect::<C>(database_url)?;
    let total = entry.ops.count(&mut conn, &[])?;
    let mut out: Box<dyn Write> = if output == "-" {
        Box::new(BufWriter::new(io::stdout().lock()))
    } else {
        let path = PathBuf::from(&output);
        if path.exists() && !force {
            return Err(Error::Input(format!(
                "file {output} exists; use --force to overwrite it"
            )));
        }
        Box::new(BufWriter::new(File::create(&path).map_err(|e| {
            Error::Io {
                context: format!("cannot create {output}"),
                source: e,
            }
        })?))
    };
    let io_err = |e: io::Error| Error::Io {
        context: format!("cannot write {output}"),
        source: e,
    };
    out.write_all(cqrs_id.as_bytes()).map_err(io_err)?;
    let mut bar = Progress::new("dump", total, progress);
    let (mut processed, mut failed) = (0u64, 0u64);
    let filtered = entry.ops.dump(&mut conn, batch, &mut |row| {
        processed += 1;
        match row {
            Ok(data) => {
                let line = Value::Object(data).to_string();
                out.write_all(b"\n")
                    .and_then(|()| out.write_all(line.as_bytes()))
                    .map_err(|e| cqrs_core::Error::Io {
                        context: "cannot write the dump".to_owned(),
                        source: e,
                    })?;
            }
            Err(error) => {
                failed += 1;
                eprintln!("dump: row {processed} failed: {error}");
            }
        }
        bar.set(processed);
        Ok(())
    })?;
    out.flush().map_err(io_err)?;
    bar.finish();
    if filtered > 0 {
        eprintln!("bulk-dump: {filtered} row(s) left out by the model's sync filter");
    }
    summary("bulk-dump", processed, processed - failed, failed);
    DjangoDone::Dump {
        saved: processed - failed,
        processed,
    }
    .print();
    Ok(0)
}

/// Loads a dump file into a replica model.
#[allow(
    clippy::too_many_lines,
    reason = "one load loop: read, apply a batch, report progress"
)]
pub(super) fn bulk_load<C: Registered>(
    input: &str,
    clear: Option<bool>,
    batch: usize,
    progress: bool,
    allow_bad_lines: bool,
    database_url: &str,
) -> Result<u64> {
    let reader = open_input(input)?;
    let mut lines = text_lines(reader);
    let first = lines
        .next()
        .transpose()
        .map_err(|e| Error::Io {
            context: format!("cannot read {input}"),
            source: e,
        })?
        .transpose()
        .map_err(|reason| Error::Input(format!("file {input}: line 1 (the cqrs_id): {reason}")))?;
    let cqrs_id = first
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if cqrs_id.is_empty() {
        return Err(Error::Input(format!(
            "file {input} is empty (the first line must be the cqrs_id)"
        )));
    }
    let entry = registry::replica::<C>(&cqrs_id)?;
    let mut conn = connect::<C>(database_url)?;
    if clear.unwrap_or(false) {
        let cleared = conn.cqrs_transaction(|conn| entry.ops.clear(conn))?;
        eprintln!("bulk-load: deleted {cleared} existing row(s) of {cqrs_id}");
    }
    let mut bar = Progress::new("load", 0, progress);
    let (mut processed, mut succeeded, mut failed) = (0u64, 0u64, 0u64);
    let mut pending: Vec<(usize, Message)> = Vec::with_capacity(batch);
    let flush = |conn: &mut C,
                 pending: &mut Vec<(usize, Message)>,
                 succeeded: &mut u64,
                 failed: &mut u64|
     -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let items: Vec<BatchItem<'_, C>> = pending
            .iter()
            .map(|(_, message)| BatchItem {
                ops: entry.ops,
                message,
                direct: true,
            })
            .collect();
        let results = apply_batch(conn, &items).map_err(|e| Error::Core(e.into()))?;
        for ((line, _), result) in pending.iter().zip(results) {
            match result {
                Ok(_) => *succeeded += 1,
                Err(error) => {
                    *failed += 1;
                    eprintln!("line {line}: cannot be saved: {error}");
                }
            }
        }
        pending.clear();
        Ok(())
    };
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let line = line.map_err(|e| Error::Io {
            context: format!("cannot read {input} at line {number}"),
            source: e,
        })?;
        let line = match line {
            Ok(line) => line,
            Err(reason) => {
                processed += 1;
                failed += 1;
                eprintln!("line {number}: {reason}");
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        processed += 1;
        match serde_json::from_str::<Value>(line.trim()) {
            Ok(Value::Object(data)) => {
                let pk = data.get("id").cloned().unwrap_or(Value::Null);
                pending.push((
                    number,
                    Message::new(SignalType::Save, cqrs_id.clone(), data, pk),
                ));
            }
            Ok(_) => {
                failed += 1;
                eprintln!("line {number}: not a JSON object");
            }
            Err(error) => {
                failed += 1;
                eprintln!("line {number}: cannot be parsed: {error}");
            }
        }
        if pending.len() >= batch {
            flush(&mut conn, &mut pending, &mut succeeded, &mut failed)?;
        }
        bar.set(processed);
    }
    flush(&mut conn, &mut pending, &mut succeeded, &mut failed)?;
    bar.finish();
    summary("bulk-load", processed, succeeded, failed);
    DjangoDone::Load { loaded: succeeded }.print();
    if failed > 0 && !allow_bad_lines {
        return Err(Error::Input(format!(
            "bulk-load: {failed} line(s) could not be loaded (the {succeeded} others were; --allow-bad-lines exits 0)"
        )));
    }
    Ok(0)
}
