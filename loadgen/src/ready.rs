//! `ready`: starts the server command itself, times exec → first 200 from `/health`, then reads
//! its idle RSS, and stops it. Each run gets a new SQLite file, so migrations are included.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::conn::{self, Error, Target};
use crate::measure;

/// Longest wait for one start.
const START_LIMIT: Duration = Duration::from_secs(30);

pub struct Plan {
    pub target: Target,
    pub runs: usize,
    pub idle: Duration,
    pub sqlite_dir: PathBuf,
    pub command: Vec<String>,
}

pub async fn run(plan: Plan) -> Result<Value, Error> {
    let (program, args) = plan
        .command
        .split_first()
        .ok_or("give the server command after --")?;
    let mut ready_ms = Vec::new();
    let mut rss_kib = Vec::new();
    let mut problems = Vec::new();
    for i in 0..plan.runs {
        let db = plan.sqlite_dir.join(format!("ready-{i}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let started = Instant::now();
        // Only what the server needs: nothing from the caller (API keys, secrets) leaks in.
        let mut command = Command::new(program);
        command.args(args).env_clear();
        for keep in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(keep) {
                command.env(keep, value);
            }
        }
        let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = command
            .env("RUST_LOG", log)
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .env("HOST", plan.target.addr.ip().to_string())
            .env("PORT", plan.target.addr.port().to_string())
            .stdin(Stdio::null())
            // This process's stdout carries its JSON result and nothing else.
            .stdout(Stdio::null())
            .spawn()?;
        let mut ready = None;
        while started.elapsed() < START_LIMIT {
            if let Ok(reply) = conn::once(&plan.target, Method::GET, "/health", None).await {
                if reply.status == StatusCode::OK {
                    ready = Some(started.elapsed());
                    break;
                }
            }
            if child.try_wait()?.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        match ready {
            Some(took) => {
                ready_ms.push(took.as_secs_f64() * 1000.0);
                tokio::time::sleep(plan.idle).await;
                if let Some(rss) = measure::rss_kib(child.id()) {
                    rss_kib.push(rss);
                }
            }
            None => problems.push(format!(
                "run {i}: no 200 from /health within {START_LIMIT:?}"
            )),
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let mut ready_sorted = ready_ms.clone();
    let mut rss_sorted: Vec<f64> = rss_kib.iter().map(|&k| k as f64).collect();
    Ok(json!({
        "runs": plan.runs,
        "ready_ms": ready_ms.iter().map(|m| (m * 10.0).round() / 10.0).collect::<Vec<_>>(),
        "ready_ms_median": median(&mut ready_sorted).map(|m| (m * 10.0).round() / 10.0),
        "ready_ms_max": ready_sorted.last().map(|m| (m * 10.0).round() / 10.0),
        "idle_rss_kib": rss_kib,
        "idle_rss_kib_median": median(&mut rss_sorted),
        "check": crate::read::check(problems),
    }))
}
