//! Where a relay's next look at a shared outbox starts: past what its last full batch left
//! behind, so that a long drain does not walk the index entries of every message it already
//! took.
//!
//! PostgreSQL keeps the index entries of deleted rows until a `VACUUM` removes them, and
//! while any session holds a snapshot older than the deletes (a report's or `pg_dump`'s
//! `REPEATABLE READ` transaction) it can neither remove them nor mark them dead: a scan from
//! the oldest id then visits every deleted row's heap tuple again, and a drain that starts
//! each batch there grows quadratic (see the README's backlog figures). While batches come
//! back full, the next look starts at the lowest id the last one left in the outbox (held
//! back, or in another relay's hands), or past its last candidate.
//!
//! A message can commit after a look under an id below the cursor (its transaction took the
//! id before a later one, and committed after). A look from the start finds it: each partial
//! batch is one, and while batches come back full one comes every 20 times the last such
//! look's duration (at least 50 ms and at most 10 s apart), so that they cost a drain about
//! 5% at most. Such a message cannot overtake a later message of its own row: the row's next
//! write waits for its lock, so its message takes its id after this one committed.

use std::time::{Duration, Instant};

use crate::db::OutboxTaken;

/// How many times its own duration passes between two looks from the start.
const FULL_LOOK_SPACING: u32 = 20;
/// The least and the most time between two looks from the start during a drain.
const FULL_LOOK_MIN: Duration = Duration::from_millis(50);
const FULL_LOOK_MAX: Duration = Duration::from_secs(10);

/// Where a relay's next look at the outbox starts (see the module's documentation). One per
/// relay; [`super::relay_batch`] keeps it.
#[derive(Debug, Clone, Default)]
pub struct OutboxCursor {
    /// The lowest id the next look reads; 0: the whole outbox.
    from: i64,
    /// When the next look from the start is due, while `from` is above 0.
    next_full_look: Option<Instant>,
}

/// One look, begun by [`OutboxCursor::begin`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look {
    /// The lowest id it reads.
    pub(crate) from: i64,
    started: Instant,
}

impl OutboxCursor {
    /// A cursor at the start of the outbox.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The lowest id the next look reads (0: the whole outbox).
    #[must_use]
    pub fn from(&self) -> i64 {
        self.from
    }

    /// Begins a look: from the cursor, or from the start when one is due.
    pub(crate) fn begin(&mut self) -> Look {
        let started = Instant::now();
        if self.next_full_look.is_none_or(|due| started >= due) {
            self.from = 0;
        }
        Look {
            from: self.from,
            started,
        }
    }

    /// Moves the cursor after `look` took `taken` with `limit`: past what it took when its
    /// batch came back full, else back to the start.
    pub(crate) fn end(&mut self, look: Look, taken: &OutboxTaken, limit: i64) {
        if look.from == 0 {
            let spacing = look.started.elapsed().saturating_mul(FULL_LOOK_SPACING);
            self.next_full_look = Some(look.started + spacing.clamp(FULL_LOOK_MIN, FULL_LOOK_MAX));
        }
        let looked = taken.records.len().saturating_add(taken.held_back);
        let full = i64::try_from(looked).is_ok_and(|looked| looked >= limit);
        let past_last = taken
            .records
            .iter()
            .map(|record| record.id.saturating_add(1))
            .max();
        self.from = match (full, taken.left_behind, past_last) {
            (true, Some(left), _) => left,
            (true, None, Some(past)) => past,
            _ => 0,
        };
    }

    /// Back to the start: taken messages went back into the outbox under their own ids.
    pub(crate) fn rewind(&mut self) {
        self.from = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::OutboxRecord;

    /// One look of a relay taking batches of 3 that got `taken`.
    fn look(cursor: &mut OutboxCursor, taken: &OutboxTaken) {
        let look = cursor.begin();
        cursor.end(look, taken, 3);
    }

    fn taken(ids: &[i64], held_back: usize, left_behind: Option<i64>) -> OutboxTaken {
        OutboxTaken {
            records: ids
                .iter()
                .map(|&id| OutboxRecord {
                    id,
                    cqrs_id: "book".to_owned(),
                    routing_key: "cqrs_replica".to_owned(),
                    body: "{}".to_owned(),
                    created_at: 0,
                    exchange: None,
                    properties: None,
                    not_before: None,
                    tags: None,
                    ordering_key: None,
                })
                .collect(),
            held_back,
            left_behind,
        }
    }

    #[test]
    fn a_full_batch_moves_past_what_it_took() {
        let mut cursor = OutboxCursor::new();
        let look = cursor.begin();
        assert_eq!(look.from, 0);
        cursor.end(look, &taken(&[3, 4, 7], 0, None), 3);
        assert_eq!(cursor.from(), 8);
        // the next look starts there (a look from the start is not due yet)
        assert_eq!(cursor.begin().from, 8);
    }

    #[test]
    fn what_a_full_batch_left_behind_is_read_again() {
        let mut cursor = OutboxCursor::new();
        look(&mut cursor, &taken(&[3, 7], 1, Some(5)));
        assert_eq!(cursor.from(), 5);
        // everything held back: the cursor stays at the first of them
        look(&mut cursor, &taken(&[], 3, Some(5)));
        assert_eq!(cursor.from(), 5);
    }

    #[test]
    fn a_partial_batch_or_a_put_back_returns_to_the_start() {
        let mut cursor = OutboxCursor::new();
        look(&mut cursor, &taken(&[1, 2, 3], 0, None));
        assert_eq!(cursor.from(), 4);
        look(&mut cursor, &taken(&[4], 0, None));
        assert_eq!(cursor.from(), 0);

        look(&mut cursor, &taken(&[1, 2, 3], 0, None));
        cursor.rewind();
        assert_eq!(cursor.from(), 0);
    }

    #[test]
    fn a_look_from_the_start_comes_when_due() {
        let mut cursor = OutboxCursor::new();
        look(&mut cursor, &taken(&[1, 2, 3], 0, None));
        cursor.next_full_look = Some(Instant::now());
        assert_eq!(cursor.begin().from, 0);
    }
}
