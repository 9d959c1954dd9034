//! The line formats of the tools' streams: numbered standard-input lines, buffered standard
//! output, and the JSON lines of the diff pipelines.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};

use serde_json::Value;

use super::progress::Tally;
use crate::error::{Error, Result};

/// Whether two primary keys are the same (JSON numbers and strings compare by their text, so
/// that `"1"` from a string-keyed stream matches `1`).
pub(super) fn same_pk(a: &Value, b: &Value) -> bool {
    a == b || cqrs_core::value::pk_key(a) == cqrs_core::value::pk_key(b)
}

pub(super) fn parse_pairs(line: &str) -> std::result::Result<Vec<(Value, i64)>, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Array(items) = value else {
        return Err("expected a JSON array of [pk, cqrs_revision] pairs".to_owned());
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Array(pair) if pair.len() == 2 => match (&pair[0], pair[1].as_i64()) {
                (pk @ (Value::Number(_) | Value::String(_)), Some(rev)) => Ok((pk.clone(), rev)),
                _ => Err(format!("bad pair {}", Value::Array(pair.clone()))),
            },
            other => Err(format!(
                "expected a [pk, cqrs_revision] pair, found {other}"
            )),
        })
        .collect()
}

pub(super) fn parse_pks(line: &str) -> std::result::Result<Vec<Value>, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    match value {
        Value::Array(items) if items.iter().all(|i| i.is_number() || i.is_string()) => Ok(items),
        _ => Err("expected a JSON array of primary keys".to_owned()),
    }
}

pub(super) fn open_input(input: &str) -> Result<Box<dyn BufRead>> {
    if input == "-" {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file = File::open(input).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::Input(format!("file {input} does not exist"))
        } else {
            Error::Io {
                context: format!("cannot open {input}"),
                source: e,
            }
        }
    })?;
    Ok(Box::new(BufReader::new(file)))
}

/// The `cqrs_id` of a diff stream's header line (`<cqrs_id>,<timestamp>[,<queue>]`).
pub(super) fn header_cqrs_id(header: &str) -> &str {
    header.split(',').next().unwrap_or_default()
}

/// Buffered standard output for the diff streams.
pub(super) struct Stdout(BufWriter<io::StdoutLock<'static>>);

impl Stdout {
    pub(super) fn new() -> Self {
        Self(BufWriter::new(io::stdout().lock()))
    }

    pub(super) fn line(
        &mut self,
        line: impl std::fmt::Display,
    ) -> std::result::Result<(), cqrs_core::Error> {
        writeln!(self.0, "{line}").map_err(stdout_error)
    }

    pub(super) fn flush(&mut self) -> std::result::Result<(), cqrs_core::Error> {
        self.0.flush().map_err(stdout_error)
    }
}

fn stdout_error(source: io::Error) -> cqrs_core::Error {
    cqrs_core::Error::Io {
        context: "cannot write to stdout".to_owned(),
        source,
    }
}

/// The lines of `reader` (without `\n` or `\r\n`), each as text, or `Err` with the reason
/// when it is not valid UTF-8: one bad line is reported and skipped, never the end of the
/// input. The outer `Err` is an I/O error.
pub(super) fn text_lines<R: BufRead>(
    reader: R,
) -> impl Iterator<Item = io::Result<std::result::Result<String, String>>> {
    reader.split(b'\n').map(|line| {
        line.map(|mut bytes| {
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            String::from_utf8(bytes).map_err(|e| format!("not valid UTF-8 ({})", e.utf8_error()))
        })
    })
}

type TextLines = Box<dyn Iterator<Item = io::Result<std::result::Result<String, String>>>>;

/// Numbered, non-empty lines of standard input.
pub(super) struct StdinLines {
    command: &'static str,
    lines: TextLines,
    number: usize,
    /// Lines that are not text (reported as they are met, counted by [`Self::next_parsed`]).
    invalid: u64,
}

impl StdinLines {
    pub(super) fn new(command: &'static str) -> Self {
        Self {
            command,
            lines: Box::new(text_lines(BufReader::new(io::stdin()))),
            number: 0,
            invalid: 0,
        }
    }

    pub(super) fn header(&mut self) -> Result<String> {
        match self.next_line()? {
            Some((_, line)) => Ok(line),
            None => Err(Error::Input(format!(
                "{}: standard input is empty (expected the header line `<cqrs_id>,<timestamp>`)",
                self.command
            ))),
        }
    }

    fn next_line(&mut self) -> Result<Option<(usize, String)>> {
        for line in self.lines.by_ref() {
            self.number += 1;
            let line = line.map_err(|e| Error::Io {
                context: format!("cannot read standard input at line {}", self.number),
                source: e,
            })?;
            let line = match line {
                Ok(line) => line,
                Err(reason) => {
                    eprintln!("line {}: {reason}", self.number);
                    self.invalid += 1;
                    continue;
                }
            };
            let line = line.trim();
            if !line.is_empty() {
                return Ok(Some((self.number, line.to_owned())));
            }
        }
        Ok(None)
    }

    /// The next line that `parse` accepts, with its number; the lines it refuses (and lines
    /// that are not text) are reported on stderr and counted as one failed item each.
    pub(super) fn next_parsed<T>(
        &mut self,
        parse: fn(&str) -> std::result::Result<T, String>,
        tally: &mut Tally,
    ) -> Result<Option<(usize, T)>> {
        while let Some((number, line)) = self.next_line()? {
            tally.failed += std::mem::take(&mut self.invalid);
            match parse(&line) {
                Ok(parsed) => return Ok(Some((number, parsed))),
                Err(reason) => {
                    tally.failed += 1;
                    eprintln!("line {number}: {reason}");
                }
            }
        }
        tally.failed += std::mem::take(&mut self.invalid);
        Ok(None)
    }
}
