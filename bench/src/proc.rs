//! What the processes of a run cost, from `/proc`: peak memory, and CPU seconds by process
//! (the master's writer thread, the rest of its process, the consumer, RabbitMQ and the
//! PostgreSQL server with every backend it forked).

use std::path::Path;

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat`'s times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of a `stat` file after the command name (which may hold spaces), so that index
/// 0 is the state (field 3 in `proc(5)`).
fn stat_fields(path: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(
        rest.split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0))
            .collect(),
    )
}

/// utime + stime (fields 14 and 15) and, with `children`, cutime + cstime (16 and 17: the
/// children it has reaped), in seconds.
fn times(fields: &[u64], children: bool) -> f64 {
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    let own = field(11) + field(12);
    let reaped = if children { field(13) + field(14) } else { 0 };
    (own + reaped) as f64 / TICKS_PER_SECOND
}

/// Peak resident memory of a process (VmHWM), in kB; 0 when it is gone.
pub fn peak_rss_kb(pid: u32) -> u64 {
    kb_field(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// The kB value of the line starting with `field` in a `/proc` file; 0 when absent.
fn kb_field(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system, every thread) a process has used; 0 when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    stat_fields(&format!("/proc/{pid}/stat")).map_or(0.0, |f| times(&f, false))
}

/// CPU seconds the calling thread has used.
pub fn thread_cpu_seconds() -> f64 {
    stat_fields("/proc/thread-self/stat").map_or(0.0, |f| times(&f, false))
}

/// The pids of the live processes whose `stat` field `index` (counted after the command
/// name: 1 is the parent pid, 2 the process group) is `value`.
fn processes_with(index: usize, value: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            stat_fields(&format!("/proc/{pid}/stat"))
                .is_some_and(|f| f.get(index).copied() == Some(u64::from(value)))
        })
        .collect()
}

/// The pids of the live processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    processes_with(1, parent)
}

/// CPU seconds of a server and its workers: its own, what its reaped children used, and what
/// its live children used so far (PostgreSQL's backends come and go with the connections).
pub fn server_cpu_seconds(pid: u32) -> f64 {
    let Some(own) = stat_fields(&format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    times(&own, true)
        + children(pid)
            .into_iter()
            .filter_map(|child| stat_fields(&format!("/proc/{child}/stat")))
            .map(|f| times(&f, true))
            .sum::<f64>()
}

/// Peak resident memory of every process of a group (django-cqrs's consumer forks), in kB.
pub fn group_peak_rss_kb(pgid: u32) -> u64 {
    group(pgid).into_iter().map(peak_rss_kb).sum()
}

/// CPU seconds of every live process of a group.
pub fn group_cpu_seconds(pgid: u32) -> f64 {
    group(pgid).into_iter().map(cpu_seconds).sum()
}

/// The pids of the live processes of a group.
fn group(pgid: u32) -> Vec<u32> {
    processes_with(2, pgid)
}

/// CPU seconds this process's reaped children have used (to charge a child that ran to its
/// end: the difference across its `wait`).
pub fn reaped_children_cpu_seconds() -> f64 {
    stat_fields("/proc/self/stat").map_or(0.0, |f| {
        let field = |i: usize| f.get(i).copied().unwrap_or(0);
        (field(13) + field(14)) as f64 / TICKS_PER_SECOND
    })
}

/// The first line of a pid file (RabbitMQ's, PostgreSQL's `postmaster.pid`) as a pid.
fn pid_in(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The servers a run shares: RabbitMQ and the PostgreSQL server, found through their pid
/// files (`BENCH_RABBIT_PID_FILE`, `BENCH_PG_PID_FILE`, which `scripts/bench` sets).
#[derive(Debug, Clone, Default)]
pub struct Servers {
    rabbit: Option<u32>,
    postgres: Option<u32>,
}

/// The servers' CPU seconds so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServersCpu {
    broker: f64,
    database: f64,
}

impl Servers {
    pub fn new(rabbit_pid_file: Option<&str>, pg_pid_file: Option<&str>) -> Self {
        Self {
            rabbit: rabbit_pid_file.and_then(|f| pid_in(Path::new(f))),
            postgres: pg_pid_file.and_then(|f| pid_in(Path::new(f))),
        }
    }

    pub fn sample(&self) -> ServersCpu {
        ServersCpu {
            broker: self.rabbit.map_or(0.0, cpu_seconds),
            database: self.postgres.map_or(0.0, server_cpu_seconds),
        }
    }
}

impl ServersCpu {
    /// What the servers used since `before`: (broker, database).
    pub fn since(self, before: Self) -> (f64, f64) {
        (
            (self.broker - before.broker).max(0.0),
            (self.database - before.database).max(0.0),
        )
    }
}

/// CPU seconds of a run, by process; 0 where not measured.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct Cpu {
    /// The master's writes: its writer thread.
    pub master: f64,
    /// The rest of the master's process: the relay (or a dual write's publishing).
    pub relay: f64,
    pub consumer: f64,
    /// RabbitMQ's node.
    pub broker: f64,
    /// The PostgreSQL server and its backends (SQLite runs in the processes above).
    pub database: f64,
}

impl Cpu {
    pub fn total(&self) -> f64 {
        self.master + self.relay + self.consumer + self.broker + self.database
    }

    /// Whether anything was measured.
    pub fn measured(&self) -> bool {
        self.total() > 0.0
    }

    /// Each process's CPU seconds, named, in the order of the report's CPU table.
    pub fn by_process(&self) -> [(&'static str, f64); 5] {
        [
            ("the master's writes", self.master),
            ("the relay", self.relay),
            ("the consumer", self.consumer),
            ("RabbitMQ", self.broker),
            ("PostgreSQL", self.database),
        ]
    }
}

/// Proportional set size of a process, in kB (`Pss` of `smaps_rollup`): its private pages
/// plus, for each page it shares, its share of it. Summed over a set of processes it counts
/// every page they use once, where summed RSS counts a shared page (a binary's code, a
/// library) once per process; 0 when the process is gone.
pub fn pss_kb(pid: u32) -> u64 {
    kb_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// The peak PSS of the processes of some groups, each group's and their sum at one instant,
/// sampled every 100 ms on a thread of its own until [`PssPeaks::finish`].
pub struct PssPeaks {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<(Vec<u64>, u64)>,
}

impl PssPeaks {
    /// Starts sampling the groups `pgids`.
    pub fn watch(pgids: Vec<u32>) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let sampler = std::thread::spawn(move || {
            let mut peaks = vec![0; pgids.len()];
            let mut together = 0;
            loop {
                let now: Vec<u64> = pgids
                    .iter()
                    .map(|&pgid| group(pgid).into_iter().map(pss_kb).sum())
                    .collect();
                for (peak, kb) in peaks.iter_mut().zip(&now) {
                    *peak = (*peak).max(*kb);
                }
                together = together.max(now.iter().sum());
                if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    break (peaks, together);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        Self { stop, sampler }
    }

    /// Takes a last sample and returns each group's peak and the peak of their sum, in kB.
    pub fn finish(self) -> (Vec<u64>, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler.join().unwrap_or_default()
    }
}
