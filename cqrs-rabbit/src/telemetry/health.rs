//! The health of the running relay, consumer and handlers: what `/health/live` and
//! `/health/ready` answer.
//!
//! Each component registers when its loop starts and keeps a [`Reporter`]; it says when the
//! broker and the database come and go (atomics: nothing is locked on the message path), and
//! the relay says how old the first due outbox message is. Dropping the reporter (the loop
//! ended) makes the process not live.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

/// How old the first due outbox message may be for a ready relay, by default (the same as
/// `outbox check --max-delay`).
pub const DEFAULT_MAX_OUTBOX_AGE: Duration = Duration::from_mins(1);

/// The shared health of a process's components (clone it; the clones share one state).
///
/// ```
/// use cqrs_rabbit::telemetry::Health;
/// let health = Health::new();
/// assert!(!health.ready().ok, "nothing has started yet");
/// ```
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    components: Mutex<Vec<Arc<State>>>,
    max_outbox_age: Duration,
}

#[derive(Debug)]
struct State {
    name: &'static str,
    running: AtomicBool,
    broker: AtomicBool,
    database: AtomicBool,
    /// Microseconds; negative: the relay has nothing due (or this is not a relay).
    outbox_age: AtomicI64,
}

/// A component's voice in [`Health`]; dropping it says the component stopped.
#[derive(Debug)]
pub struct Reporter {
    state: Arc<State>,
}

/// One check of a health answer.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The component (`relay`, `consumer`, `handlers`).
    pub component: &'static str,
    /// What was checked (`running`, `broker`, `database`, `outbox_age`).
    pub check: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// A word on why not, or the measured value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A health answer: ok when every check passed (and at least one component runs).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether the probe passes.
    pub ok: bool,
    /// What was checked.
    pub checks: Vec<Check>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A health with the default outbox age limit.
    pub fn new() -> Self {
        Self::with_max_outbox_age(DEFAULT_MAX_OUTBOX_AGE)
    }

    /// A health whose relay is unready when its first due message is older than `max`.
    pub fn with_max_outbox_age(max: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                components: Mutex::new(Vec::new()),
                max_outbox_age: max,
            }),
        }
    }

    /// Registers a running component (down until it says otherwise).
    pub fn register(&self, name: &'static str) -> Reporter {
        let state = Arc::new(State {
            name,
            running: AtomicBool::new(true),
            broker: AtomicBool::new(false),
            database: AtomicBool::new(false),
            outbox_age: AtomicI64::new(-1),
        });
        let mut components = self
            .inner
            .components
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        components.retain(|c| c.running.load(Ordering::Relaxed) || c.name != name);
        components.push(Arc::clone(&state));
        Reporter { state }
    }

    fn components(&self) -> Vec<Arc<State>> {
        self.inner
            .components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Liveness: every registered component's loop is running.
    pub fn live(&self) -> Report {
        let checks: Vec<Check> = self
            .components()
            .iter()
            .map(|c| Check {
                component: c.name,
                check: "running",
                ok: c.running.load(Ordering::Relaxed),
                detail: None,
            })
            .collect();
        Report::of(checks)
    }

    /// Readiness: every component runs, reaches its broker and its database, and the relay's
    /// first due message is younger than the limit.
    pub fn ready(&self) -> Report {
        let mut checks = Vec::new();
        for c in self.components() {
            let flag = |check, value: &AtomicBool, down: &str| {
                let ok = value.load(Ordering::Relaxed);
                Check {
                    component: c.name,
                    check,
                    ok,
                    detail: (!ok).then(|| down.to_owned()),
                }
            };
            checks.push(flag("running", &c.running, "stopped"));
            checks.push(flag("broker", &c.broker, "not connected"));
            checks.push(flag("database", &c.database, "unreachable"));
            let age = c.outbox_age.load(Ordering::Relaxed);
            if age >= 0 {
                let seconds = Duration::from_micros(age.unsigned_abs());
                checks.push(Check {
                    component: c.name,
                    check: "outbox_age",
                    ok: seconds <= self.inner.max_outbox_age,
                    detail: Some(format!(
                        "{:.3} s (limit {} s)",
                        seconds.as_secs_f64(),
                        self.inner.max_outbox_age.as_secs_f64()
                    )),
                });
            }
        }
        Report::of(checks)
    }
}

impl Report {
    fn of(checks: Vec<Check>) -> Self {
        Self {
            ok: !checks.is_empty() && checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

impl Reporter {
    /// The broker connection is up (or down).
    pub fn broker(&self, up: bool) {
        self.state.broker.store(up, Ordering::Relaxed);
    }

    /// The database answers (or does not).
    pub fn database(&self, up: bool) {
        self.state.database.store(up, Ordering::Relaxed);
    }

    /// How long the relay's first due message has waited (`None`: nothing is due).
    pub fn outbox_age(&self, micros: Option<i64>) {
        self.state
            .outbox_age
            .store(micros.map_or(-1, |m| m.max(0)), Ordering::Relaxed);
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.state.running.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_every_check() {
        let health = Health::with_max_outbox_age(Duration::from_secs(1));
        assert!(!health.live().ok && !health.ready().ok);
        let relay = health.register("relay");
        assert!(health.live().ok);
        assert!(!health.ready().ok);
        relay.broker(true);
        relay.database(true);
        assert!(health.ready().ok);
        relay.outbox_age(Some(2_000_000));
        let report = health.ready();
        assert!(!report.ok);
        assert!(
            report
                .checks
                .iter()
                .any(|c| c.check == "outbox_age" && !c.ok)
        );
        relay.outbox_age(None);
        assert!(health.ready().ok);
        drop(relay);
        assert!(!health.live().ok);
    }

    #[test]
    fn a_restarted_component_replaces_its_stopped_self() {
        let health = Health::new();
        drop(health.register("consumer"));
        let again = health.register("consumer");
        again.broker(true);
        again.database(true);
        assert!(health.live().ok);
        assert!(health.ready().ok);
    }
}
