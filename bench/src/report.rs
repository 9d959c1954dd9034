//! The results: a table on stdout, Markdown and JSON under target/bench, and an SVG chart.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario, page or report reads top to bottom"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub backend: String,
    pub pipeline: String,
    pub batch: usize,
    pub workers: usize,
    pub messages: usize,
    pub seconds: f64,
    /// The consumer's peak RSS.
    pub rss_mb: f64,
    /// The master's process (its writes and its in-process relay); 0 when not measured.
    pub relay_rss_mb: f64,
    /// CPU seconds by process over the run.
    pub cpu: crate::proc::Cpu,
    pub equal: bool,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }

    /// `cpu_seconds` of this run per message, in microseconds.
    fn us_per_message(&self, cpu_seconds: f64) -> f64 {
        1e6 * cpu_seconds / self.messages.max(1) as f64
    }

    fn label(&self) -> String {
        match self.pipeline.as_str() {
            "plain" => "(a) plain lapin, no database".to_owned(),
            "ideal" => format!("(b) ideal pipeline, {} per transaction", self.batch),
            "ours" => format!(
                "cqrs-rs, batch {}, {} worker{}",
                self.batch,
                self.workers,
                if self.workers > 1 { "s" } else { "" }
            ),
            "ours-drain" => format!("cqrs-rs outbox drain only, batch {}", self.batch),
            "hand-dual" => "hand-written dual write (publish after commit)".to_owned(),
            "hand-outbox" => "hand-written outbox and minimal relay".to_owned(),
            "ours-metrics" => format!(
                "cqrs-rs, batch {}, {} worker, metrics on",
                self.batch, self.workers
            ),
            other => other.to_owned(),
        }
    }
}

/// One events run: N events published (each in its own transaction) until the handler has
/// committed them all.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRun {
    pub backend: String,
    pub pipeline: String,
    pub events: usize,
    pub seconds: f64,
    pub consumer_rss_mb: f64,
    /// The publishing process: the relay, or the package's `runpublisher`.
    pub publisher_rss_mb: f64,
    /// The peak of the two processes' PSS together (`proc::pss_kb`): every page they use
    /// counted once, a shared one by their share of it.
    #[serde(default)]
    pub pss_mb: f64,
    /// The events/s the writer reached (it writes while the pipeline runs).
    #[serde(default)]
    pub write_rate: f64,
}

impl EventRun {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub writes: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of these latencies (milliseconds; at least one).
    pub fn of(mut latencies: Vec<f64>) -> Self {
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
        };
        Self {
            writes: latencies.len(),
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            max_ms: pick(1.0),
        }
    }
}

/// Every run of one latency measurement, in the order they ran (`--full` runs each three
/// times; a target holds only if it holds in every run).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "OneOrMany")]
pub struct LatencyRuns(pub Vec<Latency>);

/// What a results.json holds for one latency measurement: every run, or (before the
/// measurements were repeated) the one.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Latency>),
    One(Latency),
}

impl From<OneOrMany> for LatencyRuns {
    fn from(runs: OneOrMany) -> Self {
        match runs {
            OneOrMany::Many(runs) => Self(runs),
            OneOrMany::One(run) => Self(vec![run]),
        }
    }
}

impl LatencyRuns {
    /// The worst run's figure: the largest.
    pub fn worst(&self, figure: fn(&Latency) -> f64) -> f64 {
        self.0.iter().map(figure).fold(0.0, f64::max)
    }

    /// The median run's figure.
    pub fn median(&self, figure: fn(&Latency) -> f64) -> f64 {
        median(self.0.iter().map(figure).collect())
    }

    /// The worst run's figure in milliseconds, and every run's when there are several:
    /// "4.48 ms (runs: 3.20, 4.48, 3.91)".
    fn worst_of(&self, figure: fn(&Latency) -> f64, decimals: usize) -> String {
        let worst = format!("{:.decimals$} ms", self.worst(figure));
        if self.0.len() < 2 {
            return worst;
        }
        let all: Vec<String> = self
            .0
            .iter()
            .map(|l| format!("{:.decimals$}", figure(l)))
            .collect();
        format!("{worst} (runs: {})", all.join(", "))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub mode: String,
    pub rows: i32,
    pub django_rows: i32,
    pub message_bytes: usize,
    pub machine: String,
    pub runs: Vec<Run>,
    /// The master's writes alone, writes/s: by backend, by writer (`plain`, `framework`,
    /// `outbox`, `dual`), every repetition.
    pub master_write: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
    /// Commit-to-applied latency at 1,000 writes/s by backend, every run.
    pub latency: BTreeMap<String, LatencyRuns>,
    /// Read-your-writes latency by `"<backend> <rate>/s"`, every run.
    pub read_your_writes: BTreeMap<String, LatencyRuns>,
    /// Domain events end to end, every repetition.
    pub events: Vec<EventRun>,
    /// Metrics off and on, run back to back: (backend, off, on).
    pub metrics_pairs: Vec<(String, Run, Run)>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Target {
    pub backend: String,
    pub what: String,
    pub value: String,
    pub met: bool,
    /// What bounds the figure, from this run's own figures (empty when nothing tells).
    #[serde(default)]
    pub why: String,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024 / 1024);
    format!(
        "{cores} cores ({cpu}), {memory} GiB, RabbitMQ 3.10, SQLite (WAL, synchronous=NORMAL), PostgreSQL 15 (fsync off)"
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

impl Report {
    pub fn new(mode: &str, rows: i32, django_rows: i32) -> Self {
        Self {
            mode: mode.to_owned(),
            rows,
            django_rows,
            message_bytes: 0,
            machine: machine(),
            runs: Vec::new(),
            master_write: BTreeMap::new(),
            latency: BTreeMap::new(),
            read_your_writes: BTreeMap::new(),
            events: Vec::new(),
            metrics_pairs: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// The cost of metrics from the back-to-back pairs: the median of the pairs' ratios
    /// (on / off) of throughput and of consumer CPU per message, so that the machine's drift
    /// between pairs cancels out.
    fn check_metrics_cost(&mut self) {
        let backends: std::collections::BTreeSet<String> = self
            .metrics_pairs
            .iter()
            .map(|(b, _, _)| b.clone())
            .collect();
        for backend in backends {
            let pairs: Vec<&(String, Run, Run)> = self
                .metrics_pairs
                .iter()
                .filter(|(b, _, _)| *b == backend)
                .collect();
            let cpu = |r: &Run| r.cpu.consumer / r.messages.max(1) as f64;
            let speed = median(
                pairs
                    .iter()
                    .map(|(_, off, on)| on.rate() / off.rate())
                    .collect(),
            );
            let cost = median(
                pairs
                    .iter()
                    .filter(|(_, off, _)| off.cpu.consumer > 0.0)
                    .map(|(_, off, on)| cpu(on) / cpu(off))
                    .collect(),
            );
            let n = pairs.len();
            self.target(
                &backend,
                format!(
                    "metrics on: end-to-end throughput, median of {n} back-to-back pairs (>= -3%)"
                ),
                format!("{:+.1}%", 100.0 * (speed - 1.0)),
                speed >= 0.97,
            );
            self.target(
                &backend,
                format!("metrics on: consumer CPU per message, median of {n} pairs (<= +3%)"),
                format!("{:+.1}%", 100.0 * (cost - 1.0)),
                cost <= 1.03,
            );
        }
    }

    /// Repetitions folded into their medians.
    fn medians(&self) -> Vec<Run> {
        let mut groups: BTreeMap<(String, String, usize, usize), Vec<&Run>> = BTreeMap::new();
        for run in &self.runs {
            groups
                .entry((
                    run.backend.clone(),
                    run.pipeline.clone(),
                    run.batch,
                    run.workers,
                ))
                .or_default()
                .push(run);
        }
        let order = |p: &str| match p {
            "plain" => 0,
            "ideal" => 1,
            "hand-dual" => 2,
            "hand-outbox" => 3,
            "ours" => 4,
            "ours-metrics" => 5,
            "ours-drain" => 6,
            _ => 7,
        };
        let mut out: Vec<Run> = groups
            .into_values()
            .map(|runs| {
                let mut first = runs[0].clone();
                first.seconds = median(runs.iter().map(|r| r.seconds).collect());
                first.rss_mb = median(runs.iter().map(|r| r.rss_mb).collect());
                first.relay_rss_mb = median(runs.iter().map(|r| r.relay_rss_mb).collect());
                let cpu = |f: fn(&crate::proc::Cpu) -> f64| {
                    median(runs.iter().map(|r| f(&r.cpu)).collect())
                };
                first.cpu = crate::proc::Cpu {
                    master: cpu(|c| c.master),
                    relay: cpu(|c| c.relay),
                    consumer: cpu(|c| c.consumer),
                    broker: cpu(|c| c.broker),
                    database: cpu(|c| c.database),
                };
                first.equal = runs.iter().all(|r| r.equal);
                first
            })
            .collect();
        out.sort_by_key(|r| (r.backend.clone(), order(&r.pipeline), r.batch, r.workers));
        out
    }

    /// The events runs folded into their medians, by backend and pipeline.
    fn event_medians(&self) -> Vec<EventRun> {
        let mut groups: BTreeMap<(String, String), Vec<&EventRun>> = BTreeMap::new();
        for run in &self.events {
            groups
                .entry((run.backend.clone(), run.pipeline.clone()))
                .or_default()
                .push(run);
        }
        groups
            .into_values()
            .map(|runs| {
                let mut first = runs[0].clone();
                first.seconds = median(runs.iter().map(|r| r.seconds).collect());
                first.consumer_rss_mb = median(runs.iter().map(|r| r.consumer_rss_mb).collect());
                first.publisher_rss_mb = median(runs.iter().map(|r| r.publisher_rss_mb).collect());
                first.pss_mb = median(runs.iter().map(|r| r.pss_mb).collect());
                first.write_rate = median(runs.iter().map(|r| r.write_rate).collect());
                first
            })
            .collect()
    }

    fn check_event_targets(&mut self, runs: &[EventRun]) {
        for python in runs.iter().filter(|r| r.pipeline != "cqrs-rs") {
            let Some(ours) = runs
                .iter()
                .find(|r| r.pipeline == "cqrs-rs" && r.backend == python.backend)
            else {
                continue;
            };
            self.target_why(
                &ours.backend,
                format!("events end to end >= 15x {}", python.pipeline),
                format!("{:.1}x", ours.rate() / python.rate()),
                ours.rate() >= 15.0 * python.rate(),
                if ours.write_rate > 0.0 {
                    format!(
                        "the package ran at {:.0} events/s: 15x is {:.0}; this run's writer (one connection, a transaction per event, beside the pipeline on 2 cores) committed {:.0} events/s",
                        python.rate(),
                        15.0 * python.rate(),
                        ours.write_rate
                    )
                } else {
                    String::new()
                },
            );
            // the package runs on PostgreSQL only (its ids come from a sequence): the
            // framework on its other backends, against the package on its one
            for other in runs
                .iter()
                .filter(|r| r.pipeline == "cqrs-rs" && r.backend != python.backend)
            {
                self.target(
                    &other.backend,
                    format!(
                        "events end to end >= 15x {} (which runs on {} only)",
                        python.pipeline, python.backend
                    ),
                    format!("{:.1}x", other.rate() / python.rate()),
                    other.rate() >= 15.0 * python.rate(),
                );
            }
            let ours_mb = ours.consumer_rss_mb + ours.publisher_rss_mb;
            let python_mb = python.consumer_rss_mb + python.publisher_rss_mb;
            self.target_why(
                &ours.backend,
                format!(
                    "events: consumer + publisher peak RSS <= 1/3 of {}'s",
                    python.pipeline
                ),
                format!("{ours_mb:.1} MB vs {python_mb:.1} MB"),
                3.0 * ours_mb <= python_mb,
                "summed RSS counts every shared page (the binary's code, the libraries) once per process: see PSS".to_owned(),
            );
            self.target(
                &ours.backend,
                format!(
                    "events: consumer + publisher peak PSS (shared pages counted once) <= 1/3 of {}'s",
                    python.pipeline
                ),
                format!("{:.1} MB vs {:.1} MB", ours.pss_mb, python.pss_mb),
                3.0 * ours.pss_mb <= python.pss_mb,
            );
        }
    }

    /// The rate of the one-worker run of `pipeline` with `batch` on `backend`.
    fn rate_of(runs: &[Run], backend: &str, pipeline: &str, batch: usize) -> Option<f64> {
        Self::run_of(runs, backend, pipeline, batch).map(Run::rate)
    }

    /// The median writes/s of a writer alone on a backend.
    fn master_rate(&self, backend: &str, writer: &str) -> Option<f64> {
        self.master_write
            .get(backend)
            .and_then(|w| w.get(writer))
            .filter(|v| !v.is_empty())
            .map(|v| median(v.clone()))
    }

    fn target(&mut self, backend: &str, what: impl Into<String>, value: String, met: bool) {
        self.target_why(backend, what, value, met, String::new());
    }

    fn target_why(
        &mut self,
        backend: &str,
        what: impl Into<String>,
        value: String,
        met: bool,
        why: String,
    ) {
        self.targets.push(Target {
            backend: backend.to_owned(),
            what: what.into(),
            value,
            met,
            why,
        });
    }

    /// Where two runs' CPU per message differ most, by process: `"CPU per message A vs B us,
    /// most of the difference in P (+D us)"`.
    fn cpu_gap(ours: &Run, peer: &Run) -> String {
        if !ours.cpu.measured() || !peer.cpu.measured() {
            return String::new();
        }
        let widest = ours
            .cpu
            .by_process()
            .iter()
            .zip(peer.cpu.by_process())
            .map(|((name, x), (_, y))| (*name, ours.us_per_message(*x) - peer.us_per_message(y)))
            .fold(
                ("", f64::MIN),
                |best, gap| if gap.1 > best.1 { gap } else { best },
            );
        format!(
            "CPU per message {:.0} vs {:.0} us, most of the difference in {} (+{:.0} us)",
            ours.us_per_message(ours.cpu.total()),
            peer.us_per_message(peer.cpu.total()),
            widest.0,
            widest.1
        )
    }

    /// The one-worker run of `pipeline` with `batch` on `backend`.
    fn run_of<'r>(runs: &'r [Run], backend: &str, pipeline: &str, batch: usize) -> Option<&'r Run> {
        runs.iter().find(|r| {
            r.backend == backend && r.pipeline == pipeline && r.batch == batch && r.workers == 1
        })
    }

    /// Issue 16's targets (ratios within one run), then the latency, memory and equality
    /// ones.
    fn check_targets(&mut self, runs: &[Run]) {
        let backends: std::collections::BTreeSet<String> =
            runs.iter().map(|r| r.backend.clone()).collect();
        for backend in backends {
            let rate =
                |pipeline: &str, batch: usize| Self::rate_of(runs, &backend, pipeline, batch);
            let ours = rate("ours", 500);
            let ratio = |a: f64, b: f64| format!("{:.0}%", 100.0 * a / b);
            let run = |pipeline: &str, batch: usize| Self::run_of(runs, &backend, pipeline, batch);
            let gap = |peer: &str| {
                run("ours", 500)
                    .zip(run(peer, 500))
                    .map_or(String::new(), |(o, p)| Self::cpu_gap(o, p))
            };
            // the master alone, against the hand-written outbox's: what its writes leave
            let master_share = self
                .master_rate(&backend, "framework")
                .zip(self.master_rate(&backend, "outbox"))
                .map_or(String::new(), |(f, o)| {
                    format!(
                        "; the master alone at {} of the hand-written outbox's rate",
                        ratio(f, o)
                    )
                });
            if let (Some(ours), Some(peer)) = (ours, rate("hand-outbox", 500)) {
                let why = format!("{}{master_share}", gap("hand-outbox"));
                self.target_why(
                    &backend,
                    "end to end >= 95% of the hand-written outbox",
                    ratio(ours, peer),
                    ours >= 0.95 * peer,
                    why,
                );
            }
            if let (Some(ours), Some(peer)) = (ours, rate("hand-dual", 500)) {
                let why = gap("hand-dual");
                self.target_why(
                    &backend,
                    "end to end >= 85% of the hand-written dual write",
                    ratio(ours, peer),
                    ours >= 0.85 * peer,
                    why,
                );
            }
            if let (Some(ours), Some(plain)) = (
                self.master_rate(&backend, "framework"),
                self.master_rate(&backend, "plain"),
            ) {
                let why = self.master_rate(&backend, "outbox").map_or(String::new(), |o| {
                    format!(
                        "a message is a second row per write: the hand-written outbox writes at {} of plain diesel, cqrs-rs at {} of the hand-written outbox",
                        ratio(o, plain),
                        ratio(ours, o)
                    )
                });
                self.target_why(
                    &backend,
                    "master write (outbox included) >= 80% of plain diesel",
                    ratio(ours, plain),
                    ours >= 0.8 * plain,
                    why,
                );
            }
            if let (Some(drain), Some(ideal)) = (rate("ours-drain", 500), rate("ideal", 500)) {
                let why = run("ours-drain", 500).zip(run("ideal", 500)).map_or(
                    String::new(),
                    |(o, i)| {
                        format!(
                            "{} (the ideal consumer checks no revision and takes no lock)",
                            Self::cpu_gap(o, i)
                        )
                    },
                );
                self.target_why(
                    &backend,
                    "outbox drain >= 90% of the ideal pipeline (b)",
                    ratio(drain, ideal),
                    drain >= 0.9 * ideal,
                    why,
                );
            }
            if let (Some(ours), Some(django)) = (ours, rate("django-cqrs", 1)) {
                let why = rate("hand-outbox", 500).map_or(String::new(), |peer| {
                    format!(
                        "django-cqrs ran at {django:.0} msg/s: 20x is {:.0} msg/s, {} of the hand-written outbox's rate",
                        20.0 * django,
                        ratio(20.0 * django, peer)
                    )
                });
                self.target_why(
                    &backend,
                    "end to end >= 20x django-cqrs",
                    format!("{:.1}x", ours / django),
                    ours >= 20.0 * django,
                    why,
                );
            }
            if let Some(l) = self.latency.get(&backend).cloned() {
                // one write alone: read-your-writes at 100 writes/s
                let why = self
                    .read_your_writes
                    .get(&format!("{backend} 100/s"))
                    .map_or(String::new(), |alone| {
                        format!(
                            "at 100 writes/s one write takes {:.2} ms (p50, read-your-writes, median run): its round trips through the relay, RabbitMQ and the consumer; at 1,000 writes/s the rest is waiting behind the others on 2 cores",
                            alone.median(|l| l.p50_ms)
                        )
                    });
                self.target_why(
                    &backend,
                    "commit-to-applied p50 < 2 ms at 1,000 writes/s, in every run",
                    l.worst_of(|l| l.p50_ms, 2),
                    l.worst(|l| l.p50_ms) < 2.0,
                    why,
                );
                self.target(
                    &backend,
                    "commit-to-applied p99 < 10 ms at 1,000 writes/s, in every run",
                    l.worst_of(|l| l.p99_ms, 1),
                    l.worst(|l| l.p99_ms) < 10.0,
                );
            }
            if let Some(ryw) = self
                .read_your_writes
                .get(&format!("{backend} 1000/s"))
                .cloned()
            {
                self.target(
                    &backend,
                    "read-your-writes p99 < 10 ms at 1,000 writes/s, in every run",
                    ryw.worst_of(|l| l.p99_ms, 1),
                    ryw.worst(|l| l.p99_ms) < 10.0,
                );
            }
            let ours_runs = || {
                runs.iter()
                    .filter(|r| r.backend == backend && r.pipeline.starts_with("ours"))
            };
            if ours_runs().next().is_some() {
                let peak = |f: fn(&Run) -> f64| ours_runs().map(f).fold(0.0, f64::max);
                let consumer = peak(|r| r.rss_mb);
                let relay = peak(|r| r.relay_rss_mb);
                self.target(
                    &backend,
                    "consumer peak RSS < 30 MB",
                    format!("{consumer:.1} MB"),
                    consumer < 30.0,
                );
                self.target(
                    &backend,
                    "relay peak RSS < 30 MB (the master's process: its writes and its relay)",
                    format!("{relay:.1} MB"),
                    relay < 30.0,
                );
                let equal = ours_runs().all(|r| r.equal);
                self.target(
                    &backend,
                    "replica equal to the master after every run (1 and 2 workers)",
                    if equal { "yes".into() } else { "NO".into() },
                    equal,
                );
            }
        }
    }

    fn rows_markdown(&self, md: &mut String, runs: &[Run]) {
        let _ = writeln!(md, "Machine: {}.  ", self.machine);
        let _ = writeln!(
            md,
            "Workload: {} rows created, each updated once (tracked field), 10% deleted, every write its own transaction ({} messages of ~{} bytes); django-cqrs with {} rows. One replica service. Rates are messages/s from the first master commit to the replica holding the master's exact final state.\n",
            self.rows,
            2 * self.rows + (self.rows + 9) / 10,
            self.message_bytes,
            self.django_rows
        );
        if let Some(durable) = runs.iter().find(|r| r.backend.contains("fsync on")) {
            let _ = writeln!(
                md,
                "`{}`: a second PostgreSQL server with its defaults (`fsync`, `synchronous_commit` and `full_page_writes` on; the other PostgreSQL rows run with fsync off), and a smaller workload ({} messages).\n",
                durable.backend, durable.messages
            );
        }
        let _ = writeln!(
            md,
            "| backend | pipeline | messages | seconds | msg/s | vs hand-written outbox | vs hand-written dual write | vs django-cqrs | CPU per message | consumer peak RSS | master process peak RSS | replica = master |"
        );
        let _ = writeln!(
            md,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        let mb = |v: f64| {
            if v > 0.0 {
                format!("{v:.1} MB")
            } else {
                String::new()
            }
        };
        for run in runs {
            let vs = |pipeline: &str, batch: usize| {
                Self::rate_of(runs, &run.backend, pipeline, batch)
                    .map_or(String::new(), |p| format!("{:.0}%", 100.0 * run.rate() / p))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
                run.backend,
                run.label(),
                run.messages,
                run.seconds,
                run.rate(),
                vs("hand-outbox", 500),
                vs("hand-dual", 500),
                Self::rate_of(runs, &run.backend, "django-cqrs", 1)
                    .map_or(String::new(), |d| format!("{:.1}x", run.rate() / d)),
                if run.cpu.measured() {
                    format!(
                        "{:.0} us",
                        1e6 * run.cpu.total() / run.messages.max(1) as f64
                    )
                } else {
                    String::new()
                },
                mb(run.rss_mb),
                mb(run.relay_rss_mb),
                if run.equal { "yes" } else { "NO" }
            );
        }
        let _ = writeln!(
            md,
            "\nCPU per replicated message, by process (microseconds; `/proc` times over the run; \"master\" is the writer thread, \"relay\" the rest of the master's process: the relay, a dual write's publishing, or the baselines' publisher; the PostgreSQL column counts the server and every backend; SQLite runs inside the processes):\n"
        );
        let _ = writeln!(
            md,
            "| backend | pipeline | master | relay / publisher | consumer | RabbitMQ | PostgreSQL | total |\n|---|---|---:|---:|---:|---:|---:|---:|"
        );
        for run in runs.iter().filter(|r| r.cpu.measured()) {
            let us = |v: f64| format!("{:.0}", run.us_per_message(v));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                run.backend,
                run.label(),
                us(run.cpu.master),
                us(run.cpu.relay),
                us(run.cpu.consumer),
                us(run.cpu.broker),
                us(run.cpu.database),
                us(run.cpu.total()),
            );
        }
        if !self.master_write.is_empty() {
            let _ = writeln!(
                md,
                "\nThe master's writes alone (writes/s, no relay and no consumer running; each write its own transaction):\n\n| backend | plain diesel | cqrs-rs (outbox included) | hand-written outbox | hand-written dual write (publish after commit) | cqrs-rs vs plain diesel |\n|---|---:|---:|---:|---:|---:|"
            );
            for backend in self.master_write.keys() {
                let rate = |w: &str| self.master_rate(backend, w);
                let cell = |w: &str| rate(w).map_or(String::new(), |r| format!("{r:.0}"));
                let _ = writeln!(
                    md,
                    "| {backend} | {} | {} | {} | {} | {} |",
                    cell("plain"),
                    cell("framework"),
                    cell("outbox"),
                    cell("dual"),
                    rate("framework")
                        .zip(rate("plain"))
                        .map_or(String::new(), |(f, p)| format!("{:.0}%", 100.0 * f / p)),
                );
            }
        }
    }

    fn latency_markdown(&self, md: &mut String) {
        Self::latency_table(md, "commit-to-applied at 1,000 writes/s", &self.latency);
        Self::latency_table(
            md,
            "read-your-writes (one service, commit to `wait_applied`)",
            &self.read_your_writes,
        );
    }

    /// One row per run of every measurement in `latencies`.
    fn latency_table(md: &mut String, title: &str, latencies: &BTreeMap<String, LatencyRuns>) {
        if latencies.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "\n| {title} | run | writes | p50 | p99 | max |\n|---|---:|---:|---:|---:|---:|"
        );
        for (what, runs) in latencies {
            for (i, l) in runs.0.iter().enumerate() {
                let _ = writeln!(
                    md,
                    "| {what} | {} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
                    i + 1,
                    l.writes,
                    l.p50_ms,
                    l.p99_ms,
                    l.max_ms
                );
            }
        }
    }

    fn markdown(&self, runs: &[Run], event_runs: &[EventRun], with_targets: bool) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Replication benchmark ({} mode)\n", self.mode);
        if !runs.is_empty() {
            self.rows_markdown(&mut md, runs);
        }
        self.latency_markdown(&mut md);
        if !event_runs.is_empty() {
            let _ = writeln!(
                md,
                "\n| domain events (each published in its own transaction; commit to handler committed) | events | seconds | events/s | consumer peak RSS | publisher peak RSS | both, peak PSS |\n|---|---:|---:|---:|---:|---:|---:|"
            );
            for r in event_runs {
                let _ = writeln!(
                    md,
                    "| {} {} | {} | {:.2} | {:.0} | {:.1} MB | {:.1} MB | {:.1} MB |",
                    r.backend,
                    r.pipeline,
                    r.events,
                    r.seconds,
                    r.rate(),
                    r.consumer_rss_mb,
                    r.publisher_rss_mb,
                    r.pss_mb
                );
            }
        }
        if with_targets {
            let _ = writeln!(
                md,
                "\n| backend | target | measured | met | what bounds it (this run's figures) |\n|---|---|---:|---|---|"
            );
            for t in &self.targets {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    t.backend,
                    t.what,
                    t.value,
                    if t.met { "yes" } else { "**no**" },
                    t.why
                );
            }
        }
        md
    }

    /// Reads `out/results.json` of an earlier run and writes its results again (targets
    /// checked anew): what this version of the report says of those figures.
    pub fn render(out: &Path) -> anyhow::Result<()> {
        let path = out.join("results.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut report: Self = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a benchmark's results: {e}", path.display()))?;
        report.targets.clear();
        let with_targets = report.mode != "smoke";
        report.write(out, with_targets)
    }

    pub fn write(mut self, out: &Path, with_targets: bool) -> anyhow::Result<()> {
        let runs = self.medians();
        let event_runs = self.event_medians();
        if with_targets {
            self.check_targets(&runs);
            self.check_metrics_cost();
            self.check_event_targets(&event_runs);
        }
        let md = self.markdown(&runs, &event_runs, with_targets);
        println!("{md}");
        std::fs::write(out.join("results.md"), &md)?;
        std::fs::write(
            out.join("results.json"),
            serde_json::to_string_pretty(&self)?,
        )?;
        self.chart(&runs, &out.join("results.svg"))?;
        eprintln!(
            "wrote {0}/results.md, {0}/results.json and {0}/results.svg",
            out.display()
        );
        Ok(())
    }

    fn chart(&self, runs: &[Run], path: &Path) -> anyhow::Result<()> {
        let rows: Vec<(String, f64)> = runs
            .iter()
            .map(|r| (format!("{}: {}", r.backend, r.label()), r.rate()))
            .collect();
        let height = 120 + 28 * u32::try_from(rows.len()).unwrap_or(0) + 200;
        let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(height - 200);
        let max = rows.iter().map(|r| r.1).fold(1.0, f64::max) * 1.1;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let count = i32::try_from(rows.len()).unwrap_or(0);
        let mut chart = ChartBuilder::on(&top)
            .caption("End-to-end replication (messages/s)", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(380)
            .build_cartesian_2d(0.0..max, 0..count)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len().max(1))
            .y_label_formatter(&|y| {
                labels
                    .get(usize::try_from(*y).unwrap_or(0))
                    .cloned()
                    .unwrap_or_default()
            })
            .x_desc("messages/s")
            .draw()?;
        chart.draw_series(rows.iter().enumerate().map(|(i, (label, rate))| {
            let i = i32::try_from(i).unwrap_or(0);
            let color = if label.contains("cqrs-rs") {
                BLUE.mix(0.7)
            } else if label.contains("django") {
                RED.mix(0.7)
            } else {
                BLACK.mix(0.35)
            };
            Rectangle::new([(0.0, i), (*rate, i + 1)], color.filled())
        }))?;
        let lat: Vec<(String, f64, f64)> = self
            .latency
            .iter()
            .map(|(b, l)| (b.clone(), l.worst(|l| l.p50_ms), l.worst(|l| l.p99_ms)))
            .collect();
        let lmax = lat.iter().map(|l| l.2).fold(1.0, f64::max) * 1.2;
        let n = i32::try_from(lat.len()).unwrap_or(0);
        let names: Vec<String> = lat.iter().map(|l| l.0.clone()).collect();
        let mut chart = ChartBuilder::on(&bottom)
            .caption(
                "Commit-to-applied latency at 1,000 writes/s, worst run: p50 (light) and p99 (dark), ms",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(380)
            .build_cartesian_2d(0.0..lmax, 0..n.max(1))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(lat.len().max(1))
            .y_label_formatter(&|y| {
                names
                    .get(usize::try_from(*y).unwrap_or(0))
                    .cloned()
                    .unwrap_or_default()
            })
            .draw()?;
        chart.draw_series(lat.iter().enumerate().map(|(i, l)| {
            let i = i32::try_from(i).unwrap_or(0);
            Rectangle::new([(0.0, i), (l.2, i + 1)], BLUE.mix(0.8).filled())
        }))?;
        chart.draw_series(lat.iter().enumerate().map(|(i, l)| {
            let i = i32::try_from(i).unwrap_or(0);
            Rectangle::new([(0.0, i), (l.1, i + 1)], BLUE.mix(0.3).filled())
        }))?;
        root.present()?;
        Ok(())
    }
}
