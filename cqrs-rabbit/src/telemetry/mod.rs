//! Observability: the counters of a running relay and consumer, the framework's metrics
//! (through the `metrics` facade: names in [`names`]), the health of the running components,
//! and, with the feature `prometheus` (on with `cli`), the HTTP endpoint that serves them:
//! `/metrics`, `/health/live`, `/health/ready`.
//!
//! The framework records into whatever `metrics` recorder the process installed; none
//! installed, recording costs a load and a branch. [`install_recorder`] installs the Prometheus
//! one.

mod counters;
mod health;
pub mod names;
#[cfg(feature = "otel")]
mod otel;
mod queues;
#[cfg(feature = "prometheus")]
mod server;

pub(crate) use counters::{Cause, DeadReason, queue_depth};
pub use counters::{ConsumerMetrics, RelayMetrics};
pub use health::{Check, DEFAULT_MAX_OUTBOX_AGE, Health, Report, Reporter};
#[cfg(feature = "otel")]
pub use otel::{OtelGuard, otlp_layer};
pub(crate) use queues::watch as watch_queues;
#[cfg(feature = "prometheus")]
pub use server::{Endpoint, install_recorder, prometheus_builder, serve};
