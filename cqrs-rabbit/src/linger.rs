//! When the relay lets the next batch gather before taking it: only while the master writes
//! fast enough that the wait fills a batch worth the round trips it saves.
//!
//! A relay cycle costs round trips to the database and the broker whatever its size, so under
//! load fewer, fuller batches take less CPU; but every message of a lingered batch waits up to
//! the linger. The rule keeps the arrival rate the cycles see (messages taken over the time
//! since the cycle before, smoothed over a few cycles so that one burst of a moderate master
//! does not count as load) and lingers only when that rate would bring at least the backend's
//! [`OutboxReader::RELAY_LINGER_FROM`] messages within the linger (8 on PostgreSQL, 16 on
//! SQLite). A fixed "linger
//! after any batch of 2+" fed itself: the lingered batch was big enough to linger again, so a
//! master writing 1,000 messages/s paid the full linger on every message (PostgreSQL p50 6-7
//! ms where 3 ms was possible).
//!
//! [`OutboxReader::RELAY_LINGER_FROM`]: cqrs_core::db::OutboxReader::RELAY_LINGER_FROM

use std::time::Duration;

/// The weight of the newest cycle in the smoothed rate.
const NEWEST: f64 = 0.25;

/// The master's write rate as the relay's cycles see it, in messages per second.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ArrivalRate {
    per_second: f64,
}

impl ArrivalRate {
    /// Counts a cycle that took `fetched` messages `since_previous` after the previous cycle
    /// began; `None` (the first cycle, or one after an idle wait) starts again from quiet.
    pub(crate) fn observe(&mut self, fetched: usize, since_previous: Option<Duration>) {
        let Some(since) = since_previous.filter(|d| !d.is_zero()) else {
            self.per_second = 0.0;
            return;
        };
        #[allow(
            clippy::cast_precision_loss,
            reason = "a rate: precision is not needed"
        )]
        let newest = fetched as f64 / since.as_secs_f64();
        self.per_second = if self.per_second == 0.0 {
            newest
        } else {
            NEWEST * newest + (1.0 - NEWEST) * self.per_second
        };
    }

    /// Whether lingering `linger` would gather at least `gather_from` messages.
    pub(crate) fn pays(self, linger: Duration, gather_from: usize) -> bool {
        #[allow(clippy::cast_precision_loss, reason = "a count of messages")]
        let wanted = gather_from as f64;
        !linger.is_zero() && self.per_second * linger.as_secs_f64() >= wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINGER: Duration = Duration::from_millis(5);
    /// PostgreSQL's threshold.
    const FROM: usize = 8;

    fn rate(cycles: &[(usize, Option<u64>)]) -> ArrivalRate {
        let mut rate = ArrivalRate::default();
        for &(fetched, ms) in cycles {
            rate.observe(fetched, ms.map(Duration::from_millis));
        }
        rate
    }

    #[test]
    fn a_quiet_or_moderate_master_is_published_at_once() {
        // the first cycle, or one after an idle wait: nothing to go by
        assert!(!rate(&[(3, None)]).pays(LINGER, FROM));
        assert!(!rate(&[(20, Some(1)), (1, None)]).pays(LINGER, FROM));
        // 1,000 messages/s: 5 in a 5 ms linger, fewer than 8
        assert!(!rate(&[(5, Some(5)); 10]).pays(LINGER, FROM));
        // one burst of a moderate master (a late writer catching up) is smoothed away
        assert!(
            !rate(&[
                (1, Some(1)),
                (1, Some(1)),
                (1, Some(1)),
                (4, Some(1)),
                (1, Some(1))
            ])
            .pays(LINGER, FROM)
        );
    }

    #[test]
    fn a_busy_master_lets_batches_gather() {
        // 2,000 messages/s: 10 in 5 ms; the lingered batches that follow keep it lingering
        assert!(rate(&[(4, Some(2))]).pays(LINGER, FROM));
        assert!(rate(&[(4, Some(2)), (10, Some(5)), (12, Some(6))]).pays(LINGER, FROM));
    }

    #[test]
    fn no_linger_configured_or_nothing_taken_never_lingers() {
        assert!(!rate(&[(400, Some(1))]).pays(Duration::ZERO, FROM));
        assert!(!rate(&[(0, Some(1))]).pays(LINGER, FROM));
        assert!(!rate(&[(10, Some(0))]).pays(LINGER, FROM));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        assert!(rate(&[(usize::MAX, Some(1))]).pays(Duration::MAX, usize::MAX));
        let mut slow = ArrivalRate::default();
        slow.observe(1, Some(Duration::MAX));
        assert!(!slow.pays(LINGER, FROM));
    }
}
