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

/// A primary key in a stream: a JSON number or string.
#[derive(Debug)]
pub(super) struct Key(Value);

impl Key {
    pub(super) fn into_value(self) -> Value {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a primary key (a JSON number or string)")
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Key, E> {
                Ok(Key(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Key, E> {
                Ok(Key(Value::from(v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Key, E> {
                serde_json::Number::from_f64(v)
                    .map(|n| Key(Value::Number(n)))
                    .ok_or_else(|| E::custom("a key that is not a finite number"))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Key, E> {
                Ok(Key(Value::from(v)))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

/// A `[pk, cqrs_revision]` pair of `diff-master`'s stream.
pub(super) type Pair = (Key, i64);

/// Parses the JSON array `line` element by element, handing `each` up to `chunk` elements at a
/// time, so that a line of millions of keys never becomes millions of JSON trees at once (only
/// the line's text and one chunk are held). Returns how many elements were handed over; `Err`
/// names the first element that is not a `T` (the elements before it were handed over), or
/// what `each` failed with.
pub(super) fn for_each_chunk<T: serde::de::DeserializeOwned>(
    line: &str,
    chunk: usize,
    what: &'static str,
    each: &mut dyn FnMut(Vec<T>) -> std::result::Result<(), String>,
) -> std::result::Result<u64, String> {
    use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};

    struct Chunks<'f, T> {
        chunk: usize,
        what: &'static str,
        each: &'f mut dyn FnMut(Vec<T>) -> std::result::Result<(), String>,
        done: u64,
        failed: Option<String>,
    }

    impl<'de, T: serde::de::DeserializeOwned> Visitor<'de> for &mut Chunks<'_, T> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a JSON array of {}", self.what)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            let mut buffer = Vec::with_capacity(self.chunk.min(4096));
            while let Some(item) = seq.next_element::<T>()? {
                buffer.push(item);
                if buffer.len() >= self.chunk {
                    self.flush(&mut buffer).map_err(serde::de::Error::custom)?;
                }
            }
            self.flush(&mut buffer).map_err(serde::de::Error::custom)
        }
    }

    impl<T> Chunks<'_, T> {
        fn flush(&mut self, buffer: &mut Vec<T>) -> std::result::Result<(), String> {
            if buffer.is_empty() {
                return Ok(());
            }
            let items = std::mem::take(buffer);
            self.done += items.len() as u64;
            (self.each)(items).inspect_err(|e| self.failed = Some(e.clone()))
        }
    }

    impl<'de, T: serde::de::DeserializeOwned> DeserializeSeed<'de> for &mut Chunks<'_, T> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    let mut chunks = Chunks {
        chunk: chunk.max(1),
        what,
        each,
        done: 0,
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_str(line);
    let parsed = (&mut chunks).deserialize(&mut de).and_then(|()| de.end());
    match (parsed, chunks.failed) {
        (_, Some(failed)) => Err(failed),
        (Ok(()), None) => Ok(chunks.done),
        (Err(error), None) if chunks.done > 0 => Err(format!(
            "{error} (the {} element(s) before it were processed)",
            chunks.done
        )),
        (Err(error), None) => Err(format!("expected a JSON array of {what}: {error}")),
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

    /// Hands every line's array to `each`, `chunk` elements at a time (see [`for_each_chunk`]),
    /// with the line's number. `each` returns `Ok(Err(reason))` when it could not handle a
    /// chunk (reported; its elements count as failed), `Err` to stop the command. A line that
    /// is not text or not such an array counts as one failed item.
    pub(super) fn for_each_chunk<T: serde::de::DeserializeOwned>(
        &mut self,
        chunk: usize,
        what: &'static str,
        tally: &mut Tally,
        each: &mut dyn FnMut(usize, Vec<T>) -> Result<std::result::Result<(), String>>,
    ) -> Result<()> {
        while let Some((number, line)) = self.next_text(tally)? {
            let mut fatal = None;
            let parsed = for_each_chunk::<T>(&line, chunk, what, &mut |items| {
                let count = items.len() as u64;
                match each(number, items) {
                    Ok(Ok(())) => tally.succeeded += count,
                    Ok(Err(reason)) => {
                        tally.failed += count;
                        eprintln!("line {number}: {reason}");
                    }
                    Err(error) => {
                        fatal = Some(error);
                        return Err("stopped".to_owned());
                    }
                }
                Ok(())
            });
            if let Some(error) = fatal {
                return Err(error);
            }
            if let Err(reason) = parsed {
                tally.failed += 1;
                eprintln!("line {number}: {reason}");
            }
        }
        Ok(())
    }

    /// The next non-empty line, with its number; lines that are not text are reported on
    /// stderr and counted in `tally` as one failed item each.
    pub(super) fn next_text(&mut self, tally: &mut Tally) -> Result<Option<(usize, String)>> {
        let line = self.next_line();
        tally.failed += std::mem::take(&mut self.invalid);
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_line_is_handed_over_in_chunks() {
        let line = format!(
            "[{}]",
            (0..200_000)
                .map(|i| format!("[{i}, 3]"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut sizes = Vec::new();
        let done = for_each_chunk::<Pair>(&line, 10_000, "pairs", &mut |chunk| {
            sizes.push(chunk.len());
            Ok(())
        });
        assert_eq!(done, Ok(200_000));
        assert!(sizes.iter().all(|n| *n == 10_000) && sizes.len() == 20);
    }

    #[test]
    fn bad_elements_name_themselves() {
        let mut seen = 0;
        let mut count = |chunk: Vec<Key>| {
            seen += chunk.len();
            Ok(())
        };
        let err = for_each_chunk::<Key>("[1, 2, {}]", 2, "primary keys", &mut count).unwrap_err();
        assert!(
            err.contains("a primary key (a JSON number or string)"),
            "{err}"
        );
        assert!(
            err.contains("the 2 element(s) before it were processed"),
            "{err}"
        );
        let err = for_each_chunk::<Key>("{\"a\": 1}", 2, "primary keys", &mut count).unwrap_err();
        assert!(
            err.starts_with("expected a JSON array of primary keys"),
            "{err}"
        );
        let err = for_each_chunk::<Key>("[1] [2]", 2, "primary keys", &mut count).unwrap_err();
        assert!(err.contains("trailing characters"), "{err}");
        assert_eq!(seen, 3);
    }
}
