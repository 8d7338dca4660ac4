//! The closed-loop driver: N keep-alive connections, each sending its next request as soon as
//! the previous answer arrives, until the duration or the request budget runs out.
//!
//! Connections are opened before the clock starts. Outcomes are sorted three ways: the
//! expected status (`ok`), another 2xx or a 5xx or no answer at all (`unsure`: the server
//! may or may not have acted on it), and any other status (`rejected`: a wrong answer).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::conn::{Conn, Error, Target};
use crate::measure::{self, Watched, Window};

/// One request of a workload. `id` is the request's number, unique within the run.
pub struct Req {
    pub id: u64,
    pub method: Method,
    pub path: String,
    pub body: Option<Bytes>,
}

/// What to send; `n` counts requests across all connections.
pub trait Workload: Send + Sync + 'static {
    fn request(&self, n: u64) -> Req;
    fn expect(&self) -> StatusCode;
}

pub struct Settings {
    pub targets: Vec<Target>,
    pub connections: usize,
    pub duration: Duration,
    pub max_requests: u64,
}

#[derive(Default)]
pub struct Outcome {
    pub ok: u64,
    pub unsure: u64,
    pub rejected: u64,
    /// Ids of the requests answered with the expected status, and of the unsure ones.
    pub ok_ids: Vec<u64>,
    pub unsure_ids: Vec<u64>,
    /// Unexpected statuses (0 for no answer) and how often each came.
    pub statuses: BTreeMap<u16, u64>,
    /// One unexpected answer, to show what went wrong.
    pub sample: Option<String>,
    pub hist: Option<Histogram<u64>>,
    pub elapsed: Duration,
    pub cpu: Value,
}

impl Outcome {
    /// Requests answered as expected per second of the run.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// The fields every closed-loop scenario prints.
    pub fn summary(&self) -> Value {
        let mut v = json!({
            "ok": self.ok,
            "unsure": self.unsure,
            "rejected": self.rejected,
            "elapsed_s": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "rate_per_s": self.rate().round(),
            "unexpected_statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "sample_unexpected": self.sample,
            "cpu": self.cpu,
        });
        if let (Some(h), Value::Object(map)) = (&self.hist, &mut v) {
            if let Value::Object(lat) = measure::latency(h) {
                map.extend(lat);
            }
        }
        v
    }
}

pub async fn run(
    settings: &Settings,
    work: Arc<dyn Workload>,
    watched: &Watched,
) -> Result<Outcome, Error> {
    let mut conns = Vec::with_capacity(settings.connections);
    for i in 0..settings.connections {
        let target = &settings.targets[i % settings.targets.len()];
        conns.push((Conn::open(target).await?, target.clone()));
    }
    let counter = Arc::new(AtomicU64::new(0));
    let window = Window::open(watched);
    let start = Instant::now();
    let deadline = start + settings.duration;
    let mut tasks = Vec::with_capacity(conns.len());
    for (conn, target) in conns {
        let work = work.clone();
        let counter = counter.clone();
        let max = settings.max_requests;
        tasks.push(tokio::spawn(worker(
            conn, target, work, counter, max, deadline,
        )));
    }
    let mut total = Outcome {
        hist: Some(measure::histogram()),
        ..Outcome::default()
    };
    let mut last_done = start;
    for task in tasks {
        let (part, done) = task.await?;
        last_done = last_done.max(done);
        total.ok += part.ok;
        total.unsure += part.unsure;
        total.rejected += part.rejected;
        total.ok_ids.extend(part.ok_ids);
        total.unsure_ids.extend(part.unsure_ids);
        for (k, v) in part.statuses {
            *total.statuses.entry(k).or_default() += v;
        }
        total.sample = total.sample.or(part.sample);
        if let (Some(t), Some(h)) = (total.hist.as_mut(), part.hist.as_ref()) {
            t.add(h).ok();
        }
    }
    total.elapsed = last_done - start;
    total.cpu = window.close();
    Ok(total)
}

async fn worker(
    mut conn: Conn,
    target: Target,
    work: Arc<dyn Workload>,
    counter: Arc<AtomicU64>,
    max: u64,
    deadline: Instant,
) -> (Outcome, Instant) {
    let mut out = Outcome {
        hist: Some(measure::histogram()),
        ..Outcome::default()
    };
    let expect = work.expect();
    let hist = out.hist.as_mut().expect("set above");
    let mut healthy = true;
    while Instant::now() < deadline {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        if n >= max {
            break;
        }
        if !healthy {
            // The connection broke: reconnect, a bounded number of times, before the deadline.
            match reconnect(&target, deadline).await {
                Some(c) => {
                    conn = c;
                    healthy = true;
                }
                None => break,
            }
        }
        let req = work.request(n);
        let sent = Instant::now();
        match conn.send(req.method, &req.path, req.body).await {
            Ok(reply) if reply.status == expect => {
                measure::record(hist, sent);
                out.ok += 1;
                out.ok_ids.push(req.id);
            }
            Ok(reply) => {
                *out.statuses.entry(reply.status.as_u16()).or_default() += 1;
                if out.sample.is_none() {
                    let body = String::from_utf8_lossy(&reply.body);
                    out.sample = Some(format!(
                        "{} {}",
                        reply.status,
                        body.chars().take(300).collect::<String>()
                    ));
                }
                if reply.status.is_success() || reply.status.is_server_error() {
                    out.unsure += 1;
                    out.unsure_ids.push(req.id);
                } else {
                    out.rejected += 1;
                }
            }
            Err(e) => {
                *out.statuses.entry(0).or_default() += 1;
                out.sample.get_or_insert_with(|| format!("no answer: {e}"));
                out.unsure += 1;
                out.unsure_ids.push(req.id);
                healthy = false;
            }
        }
    }
    (out, Instant::now())
}

async fn reconnect(target: &Target, deadline: Instant) -> Option<Conn> {
    for _ in 0..50 {
        if Instant::now() >= deadline {
            return None;
        }
        if let Ok(conn) = Conn::open(target).await {
            return Some(conn);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
