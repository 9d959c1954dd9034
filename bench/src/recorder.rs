//! A `metrics` recorder that can be switched on and off, so that one bench process measures
//! its in-process relay with the Prometheus recorder recording and without it, side by side.
//! Off, it hands out no-op handles: what a process without a recorder pays.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

struct Switch {
    on: AtomicBool,
    inner: PrometheusRecorder,
}

static SWITCH: OnceLock<&'static Switch> = OnceLock::new();

/// Installs the switch (off) as the process's recorder.
pub fn install() -> anyhow::Result<()> {
    let switch: &'static Switch = Box::leak(Box::new(Switch {
        on: AtomicBool::new(false),
        inner: PrometheusBuilder::new().build_recorder(),
    }));
    metrics::set_global_recorder(switch)
        .map_err(|e| anyhow::anyhow!("cannot install the bench's recorder: {e}"))?;
    let _ = SWITCH.set(switch);
    Ok(())
}

/// Turns recording on or off.
pub fn set(on: bool) {
    if let Some(switch) = SWITCH.get() {
        switch.on.store(on, Ordering::Relaxed);
        if !on {
            switch.inner.handle().run_upkeep();
        }
    }
}

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_histogram(key, metadata)
        } else {
            Histogram::noop()
        }
    }
}
