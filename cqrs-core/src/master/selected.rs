//! Syncing rows an operator picked (django-cqrs's admin action
//! `CQRSAdminMasterSyncMixin.sync_items`): which were sent, which were not and why, and the
//! reply that action shows.

use std::fmt;

/// Why a picked row was not synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSynced {
    /// No row has this primary key (any more).
    Missing,
    /// The model's sync filter (`is_sync_instance`) leaves the row out.
    Filtered,
}

impl fmt::Display for NotSynced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "does not exist",
            Self::Filtered => "excluded by the sync filter",
        })
    }
}

/// The outcome of syncing picked rows ([`crate::master::MasterStore::cqrs_sync_selected`]):
/// the primary keys (their text) synced, and those not synced with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The rows whose SYNC message was written (a `produce = false` model's rows count here,
    /// though nothing is sent: django-cqrs's `cqrs_sync` reports them as synced too).
    pub synced: Vec<String>,
    /// The rows not synced, and why.
    pub failed: Vec<(String, NotSynced)>,
}

impl fmt::Display for SyncReport {
    /// django-cqrs's reply, `N successfully synced. M failed: [pk, ...]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed: Vec<&str> = self.failed.iter().map(|(pk, _)| pk.as_str()).collect();
        write!(
            f,
            "{} successfully synced. {} failed: [{}]",
            self.synced.len(),
            self.failed.len(),
            failed.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_is_django_cqrs_s() {
        let report = SyncReport {
            synced: vec!["1".into(), "3".into()],
            failed: vec![
                ("2".into(), NotSynced::Missing),
                ("4".into(), NotSynced::Filtered),
            ],
        };
        assert_eq!(
            report.to_string(),
            "2 successfully synced. 2 failed: [2, 4]"
        );
        assert_eq!(
            SyncReport::default().to_string(),
            "0 successfully synced. 0 failed: []"
        );
    }
}
