//! When the relay lets the next batch gather before taking it: only while the master writes
//! fast enough that the wait fills a batch worth the round trips it saves.
//!
//! A relay cycle costs round trips to the database and the broker whatever its size, so under
//! load fewer, fuller batches take less CPU; but every message of a lingered batch waits up to
//! the linger. The rule looks at the arrival rate the last cycle saw (messages taken over the
//! time since the cycle before) and lingers only when that rate would bring at least the
//! backend's [`CqrsConnection::RELAY_LINGER_FROM`] messages within the linger. A fixed "linger
//! after any batch of 2+" fed itself: the lingered batch was big enough to linger again, so a
//! master writing 1,000 messages/s paid the full linger on every message (PostgreSQL p50 6-7
//! ms where 3 ms was possible).
//!
//! [`CqrsConnection::RELAY_LINGER_FROM`]: cqrs_core::db::CqrsConnection::RELAY_LINGER_FROM

use std::time::Duration;

/// Whether the relay should linger after a partial batch of `fetched` messages, taken
/// `since_previous` after the previous cycle began (`None`: the first cycle, or one after an
/// idle wait), for `linger`, when lingering pays from `gather_from` messages in that time.
pub(crate) fn pays(
    fetched: usize,
    since_previous: Option<Duration>,
    linger: Duration,
    gather_from: usize,
) -> bool {
    let Some(since) = since_previous.filter(|d| !d.is_zero()) else {
        return false;
    };
    if linger.is_zero() || fetched == 0 {
        return false;
    }
    // fetched / since * linger >= gather_from, in integers (no division by zero, no overflow:
    // u128 nanoseconds times a batch size)
    let gathered = (fetched as u128).saturating_mul(linger.as_nanos());
    gathered >= (gather_from as u128).saturating_mul(since.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINGER: Duration = Duration::from_millis(5);

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn a_quiet_or_moderate_master_is_published_at_once() {
        // the first cycle, or one after an idle wait: nothing to go by
        assert!(!pays(3, None, LINGER, 16));
        // 1,000 messages/s: 5 in a 5 ms linger, fewer than 16
        assert!(!pays(5, ms(5), LINGER, 16));
        assert!(!pays(2, ms(2), LINGER, 16));
        // a lingered batch does not make the next one linger by its size alone
        assert!(!pays(10, ms(10), LINGER, 16));
    }

    #[test]
    fn a_busy_master_lets_batches_gather() {
        // 4,000 messages/s: 20 in 5 ms
        assert!(pays(8, ms(2), LINGER, 16));
        assert!(pays(16, ms(5), LINGER, 16));
    }

    #[test]
    fn no_linger_configured_or_nothing_taken_never_lingers() {
        assert!(!pays(400, ms(1), Duration::ZERO, 16));
        assert!(!pays(0, ms(1), LINGER, 16));
        assert!(!pays(10, Some(Duration::ZERO), LINGER, 16));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        assert!(pays(usize::MAX, ms(1), Duration::MAX, usize::MAX));
        assert!(!pays(1, Some(Duration::MAX), LINGER, 16));
    }
}
