//! Progress and summaries of the tools, on standard error.

use std::io::{self, IsTerminal};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress display: a bar on a terminal, a line per 10% with `--progress` otherwise.
pub(super) struct Progress {
    bar: ProgressBar,
    lines: bool,
    total: u64,
    next_line: u64,
    label: &'static str,
}

impl Progress {
    pub(super) fn new(label: &'static str, total: u64, requested: bool) -> Self {
        let terminal = io::stderr().is_terminal();
        let bar = if terminal {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>10} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(label);
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            lines: requested && !terminal,
            total,
            next_line: total / 10,
            label,
        }
    }

    pub(super) fn set(&mut self, done: u64) {
        self.bar.set_position(done);
        if self.lines && done >= self.next_line && self.total > 0 {
            eprintln!(
                "{}: {done} of {} ({}%)",
                self.label,
                self.total,
                done * 100 / self.total
            );
            self.next_line = done + self.total / 10;
        }
    }

    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The counts of a stream tool: every item (a primary key, a line that could not be read)
/// either succeeded or failed, so that the summary adds up.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tally {
    pub(super) succeeded: u64,
    pub(super) failed: u64,
}

impl Tally {
    pub(super) fn summary(self, command: &str) {
        summary(
            command,
            self.succeeded + self.failed,
            self.succeeded,
            self.failed,
        );
    }
}

/// The summary line of every tool: what it processed, what succeeded, what failed.
pub(super) fn summary(command: &str, processed: u64, succeeded: u64, failed: u64) {
    eprintln!("{command}: processed {processed}, succeeded {succeeded}, failed {failed}");
}

/// The closing lines of django-cqrs's `cqrs_bulk_dump`, `cqrs_bulk_load` and `cqrs_sync`,
/// word for word and on the same stream, after ours: scripts written against django-cqrs parse
/// them (`Done!`, then `N instance(s) saved.` and the like).
#[derive(Debug, Clone, Copy)]
pub(super) enum DjangoDone {
    /// `cqrs_bulk_dump`, on standard error.
    Dump { saved: u64, processed: u64 },
    /// `cqrs_bulk_load`, on standard error.
    Load { loaded: u64 },
    /// `cqrs_sync`, on standard output.
    Sync { synced: u64, processed: u64 },
}

impl DjangoDone {
    /// The lines, as django-cqrs prints them.
    pub(super) fn text(self) -> String {
        match self {
            Self::Dump { saved, processed } => {
                format!("Done!\n{saved} instance(s) saved.\n{processed} instance(s) processed.")
            }
            Self::Load { loaded } => format!("Done!\n{loaded} instance(s) loaded."),
            Self::Sync { synced, processed } => {
                format!("Done!\n{synced} instance(s) synced.\n{processed} instance(s) processed.")
            }
        }
    }

    /// Prints the lines where django-cqrs does.
    pub(super) fn print(self) {
        let text = self.text();
        if matches!(self, Self::Sync { .. }) {
            #[allow(
                clippy::print_stdout,
                reason = "django-cqrs's cqrs_sync prints on stdout"
            )]
            {
                println!("{text}");
            }
        } else {
            eprintln!("{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DjangoDone;

    #[test]
    fn closing_lines_are_django_cqrs_s() {
        assert_eq!(
            DjangoDone::Dump {
                saved: 9,
                processed: 10
            }
            .text(),
            "Done!\n9 instance(s) saved.\n10 instance(s) processed."
        );
        assert_eq!(
            DjangoDone::Load { loaded: 3 }.text(),
            "Done!\n3 instance(s) loaded."
        );
        assert_eq!(
            DjangoDone::Sync {
                synced: 0,
                processed: 0
            }
            .text(),
            "Done!\n0 instance(s) synced.\n0 instance(s) processed."
        );
    }
}
