//! A `metrics` recorder that can be switched on and off, so that one bench process measures
//! its in-process relay with the Prometheus recorder recording and without it, side by side.
//! Off, it hands out no-op handles: what a process without a recorder pays.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::PrometheusRecorder;

struct Switch {
    on: AtomicBool,
    inner: PrometheusRecorder,
}

static SWITCH: OnceLock<&'static Switch> = OnceLock::new();

/// Installs the switch (off) as the process's recorder.
pub fn install() -> anyhow::Result<()> {
    let switch: &'static Switch = Box::leak(Box::new(Switch {
        on: AtomicBool::new(false),
        // the framework's own configuration (its histogram buckets), as the CLI installs it
        inner: cqrs_rabbit::telemetry::prometheus_builder()?.build_recorder(),
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

/// The recorder's metrics in Prometheus text format (and their histograms then start again).
pub fn render() -> String {
    SWITCH
        .get()
        .map(|s| s.inner.handle().render())
        .unwrap_or_default()
}

/// The `q` quantile of a histogram in a rendering, from its cumulative buckets (the upper
/// bound of the bucket it falls in), over every label set; `None` without samples.
pub fn quantile(text: &str, metric: &str, q: f64) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).ok()?;
    let mut buckets: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    for sample in scrape.samples.iter().filter(|s| s.metric == metric) {
        if let prometheus_parse::Value::Histogram(hist) = &sample.value {
            for b in hist {
                *buckets.entry(b.less_than.to_bits()).or_default() += b.count;
            }
        }
    }
    let mut bounds: Vec<(f64, f64)> = buckets
        .into_iter()
        .map(|(b, c)| (f64::from_bits(b), c))
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = bounds.last()?.1;
    if total <= 0.0 {
        return None;
    }
    bounds
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(b, _)| *b)
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
