//! Two models of one kind that share a `cqrs_id`, as `Error::DuplicateCqrsId` names them.

use std::fmt;

/// Two models of the same kind (`master` or `replica`) registered with one `cqrs_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateModel {
    /// `master` or `replica`.
    pub kind: &'static str,
    /// The shared stream id.
    pub cqrs_id: &'static str,
    /// The Rust type registered first.
    pub first: &'static str,
    /// The Rust type registered with the same id.
    pub second: &'static str,
}

impl fmt::Display for DuplicateModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} models `{}` and `{}` both use cqrs_id \"{}\"",
            self.kind, self.first, self.second, self.cqrs_id
        )
    }
}

/// Every pair, `; `-separated.
pub(super) struct DuplicateModels<'a>(pub(super) &'a [DuplicateModel]);

impl fmt::Display for DuplicateModels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, duplicate) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            duplicate.fmt(f)?;
        }
        Ok(())
    }
}
