//! Latency histograms and what /proc says about the machine during a measurement: each
//! core's busy share, the CPU used by this client, by the servers and by PostgreSQL, and RSS.

use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Clock ticks per second of /proc's CPU times (`USER_HZ`, 100 on every Linux target).
const TICKS_PER_SEC: f64 = 100.0;

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

pub fn record(h: &mut Histogram<u64>, since: Instant) {
    h.saturating_record(since.elapsed().as_micros().max(1) as u64);
}

/// `p50_ms`, `p99_ms`, `max_ms`, `mean_ms` of a histogram in µs.
pub fn latency(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return json!({"p50_ms": null, "p99_ms": null, "max_ms": null, "mean_ms": null});
    }
    json!({
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
        "mean_ms": h.mean().round() / 1000.0,
    })
}

/// Busy and total ticks of each core, from /proc/stat.
fn core_ticks() -> Vec<(u64, u64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            let get = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal
            let idle = get(3) + get(4);
            let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
            (busy, busy + idle)
        })
        .collect()
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// User plus system ticks of a process (all its threads).
fn process_ticks(pid: u32) -> u64 {
    stat_fields(pid)
        .map(|f| {
            let get = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            get(11) + get(12)
        })
        .unwrap_or(0)
}

/// Ticks of a process and its children: the postmaster and its backends.
fn tree_ticks(root: u32) -> u64 {
    let mut total = process_ticks(root);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let is_child = stat_fields(pid)
                .and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
                .is_some_and(|ppid| ppid == root);
            if is_child {
                total += process_ticks(pid);
            }
        }
    }
    total
}

/// Resident set size of a process in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The processes whose CPU a measurement reports besides this one.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    pub servers: Vec<u32>,
    pub db: Option<u32>,
}

impl Watched {
    pub fn servers_rss_kib(&self) -> Option<u64> {
        if self.servers.is_empty() {
            return None;
        }
        self.servers.iter().map(|&p| rss_kib(p)).sum()
    }
}

/// CPU accounting over one measurement window.
pub struct Window {
    started: Instant,
    cores: Vec<(u64, u64)>,
    me: u64,
    servers: u64,
    db: u64,
    watched: Watched,
}

impl Window {
    pub fn open(watched: &Watched) -> Window {
        Window {
            started: Instant::now(),
            cores: core_ticks(),
            me: process_ticks(std::process::id()),
            servers: watched.servers.iter().map(|&p| process_ticks(p)).sum(),
            db: watched.db.map(tree_ticks).unwrap_or(0),
            watched: watched.clone(),
        }
    }

    /// Percentages: each core's busy share, and the CPU of this client, the servers and the
    /// database in percent of one core.
    pub fn close(&self) -> Value {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let pct = |ticks: u64| ((ticks as f64 / TICKS_PER_SEC / secs) * 1000.0).round() / 10.0;
        let cores: Vec<f64> = core_ticks()
            .iter()
            .zip(&self.cores)
            .map(|(now, then)| {
                let busy = now.0.saturating_sub(then.0) as f64;
                let total = now.1.saturating_sub(then.1).max(1) as f64;
                (busy / total * 1000.0).round() / 10.0
            })
            .collect();
        let me = process_ticks(std::process::id()).saturating_sub(self.me);
        let servers: u64 = self.watched.servers.iter().map(|&p| process_ticks(p)).sum();
        let db = self.watched.db.map(tree_ticks).unwrap_or(0);
        json!({
            "window_s": (secs * 1000.0).round() / 1000.0,
            "cores_busy_pct": cores,
            "client_cpu_pct": pct(me),
            "server_cpu_pct": if self.watched.servers.is_empty() { Value::Null } else { pct(servers.saturating_sub(self.servers)).into() },
            "db_cpu_pct": if self.watched.db.is_none() { Value::Null } else { pct(db.saturating_sub(self.db)).into() },
        })
    }
}

/// A fast, well-spread hash of `n` (splitmix64), for picking senders and conversations.
pub fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
