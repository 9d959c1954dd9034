//! Acknowledgements in delivery order.

use std::collections::BTreeSet;

/// Acknowledges in delivery order: one `multiple` ack per contiguous run of finished tags.
#[derive(Debug)]
pub(super) struct AckTracker {
    next: u64,
    finished: BTreeSet<u64>,
}

impl AckTracker {
    /// A tracker for a new channel (delivery tags start at 1).
    pub(super) fn new() -> Self {
        Self {
            next: 1,
            finished: BTreeSet::new(),
        }
    }

    /// Records finished tags; returns the highest tag that can now be acknowledged.
    pub(super) fn finish(&mut self, tags: impl IntoIterator<Item = u64>) -> Option<u64> {
        self.finished.extend(tags);
        let mut last = None;
        while self.finished.remove(&self.next) {
            last = Some(self.next);
            self.next = self.next.saturating_add(1);
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::AckTracker;

    #[test]
    fn acks_go_out_in_order() {
        let mut t = AckTracker::new();
        assert_eq!(t.finish([2, 3]), None);
        assert_eq!(t.finish([1]), Some(3));
        assert_eq!(t.finish([5]), None);
        assert_eq!(t.finish([4, 6]), Some(6));
        assert!(t.finished.is_empty());
    }
}
