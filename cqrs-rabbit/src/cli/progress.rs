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

/// The last line of every tool: django-cqrs's counts.
pub(super) fn summary(command: &str, processed: u64, succeeded: u64, failed: u64) {
    eprintln!("{command}: processed {processed}, succeeded {succeeded}, failed {failed}");
}
