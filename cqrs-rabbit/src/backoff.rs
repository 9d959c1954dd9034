//! The one backoff of the transport: how long the relay and the consumer wait before trying
//! a lost broker or database again (100 ms, doubling, at most 10 s, reset by a success).

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(10);

/// Exponential backoff from 100 ms up to 10 s.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// The delay the next wait sleeps.
    pub(crate) fn delay(&self) -> Duration {
        self.next
    }

    /// Takes the current delay and doubles the next one.
    pub(crate) fn step(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX);
        delay
    }

    /// Sleeps for the current delay (on the async runtime) and doubles it.
    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.step()).await;
    }

    /// Sleeps for the current delay (on a blocking thread) and doubles it.
    pub(crate) fn wait_blocking(&mut self) {
        std::thread::sleep(self.step());
    }

    /// Back to the shortest delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let steps: Vec<u128> = (0..9).map(|_| b.step().as_millis()).collect();
        assert_eq!(
            steps,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        b.reset();
        assert_eq!(b.delay(), FIRST);
    }
}
