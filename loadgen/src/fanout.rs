//! `fanout`: many idle WebSocket clients, messages posted at a fixed rate, and each client's
//! delivery measured from the moment its POST was sent. Also the server's RSS before and after
//! the clients connect, and (with `--ramp`) the rate raised step by step until p99 passes the
//! threshold.
//!
//! The content of message `seq` is `fo:<seq>:`; a client finds the number with a substring
//! search instead of parsing the JSON, so that 10,000 clients on one core stay cheap. Each
//! client keeps a bitset of the numbers it saw: a second sighting is a duplicate, an
//! acknowledged number never seen is a miss.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Conn, Error, Target};
use crate::measure::{self, Watched, Window};

/// Connections posting messages (each posts every `POSTERS`-th message of the schedule).
const POSTERS: usize = 16;
/// How long a step waits for its last deliveries once posting has stopped.
const DRAIN: Duration = Duration::from_secs(3);
/// How long all clients may take to connect.
const CONNECT_LIMIT: Duration = Duration::from_secs(120);

pub struct Plan {
    pub targets: Vec<Target>,
    pub clients: usize,
    pub connect_concurrency: usize,
    /// `(messages per second, seconds)` of each step, in order.
    pub steps: Vec<(f64, f64)>,
    /// With a ramp: stop after the first step whose p99 passes this, or that misses anything.
    pub threshold_ms: Option<f64>,
    pub settle: Duration,
}

/// State shared by the posters and every client.
struct Shared {
    start: Instant,
    /// When message `seq`'s POST was sent, in ns since `start` (0: not sent).
    sent_at: Vec<AtomicU64>,
    acked: Vec<AtomicBool>,
    /// First seq of each step, and one past the last.
    bounds: Vec<u64>,
    hists: Vec<Mutex<Histogram<u64>>>,
    received: Vec<AtomicU64>,
    duplicates: AtomicU64,
    unknown: AtomicU64,
    resyncs: AtomicU64,
    ready: AtomicUsize,
    failed: AtomicUsize,
    closed_early: AtomicUsize,
}

impl Shared {
    fn step_of(&self, seq: u64) -> usize {
        self.bounds.partition_point(|&b| b <= seq).saturating_sub(1)
    }
}

pub async fn run(plan: Plan, watched: &Watched) -> Result<Value, Error> {
    let target = &plan.targets[0];
    let conversation_id = create_conversation(target).await?;

    let mut bounds = vec![0u64];
    for &(rate, secs) in &plan.steps {
        let last = *bounds.last().expect("non-empty");
        bounds.push(last + (rate * secs).ceil() as u64);
    }
    let total = *bounds.last().expect("non-empty") as usize;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        sent_at: (0..total).map(|_| AtomicU64::new(0)).collect(),
        acked: (0..total).map(|_| AtomicBool::new(false)).collect(),
        hists: plan
            .steps
            .iter()
            .map(|_| Mutex::new(measure::histogram()))
            .collect(),
        received: plan.steps.iter().map(|_| AtomicU64::new(0)).collect(),
        bounds,
        duplicates: AtomicU64::new(0),
        unknown: AtomicU64::new(0),
        resyncs: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        closed_early: AtomicUsize::new(0),
    });

    // Connect every client, a bounded number at a time, and wait for each one's `connected`.
    let rss_before = watched.servers_rss_kib();
    let connect_started = Instant::now();
    let gate = Arc::new(Semaphore::new(plan.connect_concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = Vec::with_capacity(plan.clients);
    for i in 0..plan.clients {
        let target = plan.targets[i % plan.targets.len()].clone();
        clients.push(tokio::spawn(client(
            target,
            shared.clone(),
            gate.clone(),
            stop_rx.clone(),
            total,
        )));
    }
    let connect_deadline = Instant::now() + CONNECT_LIMIT;
    while shared.ready.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < plan.clients
        && Instant::now() < connect_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = shared.ready.load(Ordering::Relaxed);
    let connect_secs = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(plan.settle).await;
    let rss_after = watched.servers_rss_kib();

    // The posters' connections, spread over the servers.
    let mut posters = Vec::with_capacity(POSTERS);
    for k in 0..POSTERS {
        posters.push(Conn::open(&plan.targets[k % plan.targets.len()]).await?);
    }
    let post_hist = Arc::new(Mutex::new(measure::histogram()));
    let mut steps = Vec::new();
    let mut highest_held: Option<f64> = None;
    for (i, &(rate, secs)) in plan.steps.iter().enumerate() {
        let window = Window::open(watched);
        let (lo, hi) = (shared.bounds[i], shared.bounds[i + 1]);
        let step_start = Instant::now();
        let mut tasks = Vec::with_capacity(POSTERS);
        for (k, conn) in posters.drain(..).enumerate() {
            tasks.push(tokio::spawn(poster(
                conn,
                k as u64,
                lo,
                hi,
                rate,
                step_start,
                conversation_id,
                shared.clone(),
                post_hist.clone(),
            )));
        }
        let mut acked = 0u64;
        let mut post_failures = 0u64;
        for task in tasks {
            let (conn, ok, failed) = task.await?;
            posters.push(conn);
            acked += ok;
            post_failures += failed;
        }
        let post_secs = step_start.elapsed().as_secs_f64();
        let alive = connected.saturating_sub(shared.closed_early.load(Ordering::Relaxed)) as u64;
        let expected = acked * alive;
        let drain_deadline = Instant::now() + DRAIN;
        while shared.received[i].load(Ordering::Relaxed) < expected
            && Instant::now() < drain_deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let received = shared.received[i].load(Ordering::Relaxed);
        let cpu = window.close();
        let hist = shared.hists[i].lock().expect("not poisoned").clone();
        let lat = measure::latency(&hist);
        let p99 = lat["p99_ms"].as_f64().unwrap_or(f64::INFINITY);
        let deliveries_per_s = (received as f64 / secs.max(post_secs)).round();
        let clean = received >= expected && post_failures == 0;
        steps.push(json!({
            "rate_per_s": rate,
            "posted": hi - lo,
            "acknowledged": acked,
            "post_failures": post_failures,
            "expected_deliveries": expected,
            "received": received,
            "deliveries_per_s": deliveries_per_s,
            "latency": lat,
            "cpu": cpu,
        }));
        if let Some(threshold) = plan.threshold_ms {
            if p99 > threshold || !clean {
                break;
            }
            highest_held =
                Some(highest_held.map_or(deliveries_per_s, |h: f64| h.max(deliveries_per_s)));
        }
    }

    // Stop the clients and count, per client, what it missed.
    let _ = stop_tx.send(true);
    let mut missed = 0u64;
    let mut unexpected = 0u64;
    for handle in clients {
        let seen = handle.await?;
        let Some(seen) = seen else { continue };
        for seq in 0..total {
            let got = seen[seq / 64] & (1 << (seq % 64)) != 0;
            let acked = shared.acked[seq].load(Ordering::Relaxed);
            if acked && !got {
                missed += 1;
            } else if got && !acked {
                unexpected += 1;
            }
        }
    }
    let mut all = measure::histogram();
    for h in &shared.hists {
        all.add(&*h.lock().expect("not poisoned")).ok();
    }
    let duplicates = shared.duplicates.load(Ordering::Relaxed);
    let resyncs = shared.resyncs.load(Ordering::Relaxed);
    let closed_early = shared.closed_early.load(Ordering::Relaxed);
    let mut problems = Vec::new();
    if connected < plan.clients {
        problems.push(format!(
            "{} of {} clients connected",
            connected, plan.clients
        ));
    }
    if missed > 0 {
        problems.push(format!("{missed} deliveries missed"));
    }
    if duplicates > 0 {
        problems.push(format!("{duplicates} deliveries doubled"));
    }
    if closed_early > 0 {
        problems.push(format!("{closed_early} sockets closed by the server"));
    }
    let per_socket = match (rss_before, rss_after) {
        (Some(b), Some(a)) if connected > 0 => {
            Some(((a as f64 - b as f64) / connected as f64 * 100.0).round() / 100.0)
        }
        _ => None,
    };
    let post_latency = measure::latency(&post_hist.lock().expect("not poisoned"));
    Ok(json!({
        "clients": plan.clients,
        "connected": connected,
        "connect_s": (connect_secs * 1000.0).round() / 1000.0,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_socket": per_socket,
        "steps": steps,
        "latency": measure::latency(&all),
        "post_latency": post_latency,
        "missed": missed,
        "duplicated": duplicates,
        "unexpected": unexpected,
        "unknown_frames": shared.unknown.load(Ordering::Relaxed),
        "resyncs": resyncs,
        "closed_early": closed_early,
        "highest_held_deliveries_per_s": highest_held,
        "check": crate::read::check(problems),
    }))
}

async fn create_conversation(target: &Target) -> Result<i64, Error> {
    let body = r#"{"channel_id": 1, "participant_identifier": "+34 600 999 000", "participant_name": "Fan-out"}"#;
    let reply = conn::once(
        target,
        Method::POST,
        "/api/v1/conversations",
        Some(Bytes::from_static(body.as_bytes())),
    )
    .await?;
    if reply.status != StatusCode::CREATED {
        return Err(format!("POST /api/v1/conversations: {}", reply.status).into());
    }
    let v: Value = serde_json::from_slice(&reply.body)?;
    v["id"]
        .as_i64()
        .ok_or_else(|| "POST /api/v1/conversations: no id".into())
}

/// Posts the seqs `k, k + POSTERS, …` of `lo..hi`, each at its scheduled time.
#[allow(clippy::too_many_arguments)]
async fn poster(
    mut conn: Conn,
    k: u64,
    lo: u64,
    hi: u64,
    rate: f64,
    step_start: Instant,
    conversation_id: i64,
    shared: Arc<Shared>,
    hist: Arc<Mutex<Histogram<u64>>>,
) -> (Conn, u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    let mut seq = lo + k;
    while seq < hi {
        let at = step_start + Duration::from_secs_f64((seq - lo) as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        let body = format!(
            r#"{{"conversation_id":{conversation_id},"content":"fo:{seq}:","direction":"inbound"}}"#
        );
        let sent = Instant::now();
        let ns = (sent - shared.start).as_nanos().max(1) as u64;
        shared.sent_at[seq as usize].store(ns, Ordering::Relaxed);
        match conn
            .send(Method::POST, "/api/v1/messages", Some(Bytes::from(body)))
            .await
        {
            Ok(reply) if reply.status == StatusCode::CREATED => {
                shared.acked[seq as usize].store(true, Ordering::Relaxed);
                measure::record(&mut hist.lock().expect("not poisoned"), sent);
                ok += 1;
            }
            _ => failed += 1,
        }
        seq += POSTERS as u64;
    }
    (conn, ok, failed)
}

/// One client: connects, waits for `connected`, then records every delivery until stopped.
/// Returns the bitset of seqs it received (`None` if it never connected).
async fn client(
    target: Target,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    total: usize,
) -> Option<Vec<u64>> {
    let permit = gate.acquire().await.ok()?;
    let Some(mut ws) = connect(&target).await else {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    drop(permit);
    shared.ready.fetch_add(1, Ordering::Relaxed);
    let mut seen = vec![0u64; total.div_ceil(64).max(1)];
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => deliver(&shared, &mut seen, text.as_str()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    shared.closed_early.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    Some(seen)
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// TCP connect, upgrade and the `connected` frame, retried a few times.
async fn connect(target: &Target) -> Option<Ws> {
    // Small buffers: 10,000 idle clients must not cost this process gigabytes.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
        let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(target.addr)).await
        else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let url = format!("ws://{}/", target.authority);
        let handshake = tokio_tungstenite::client_async_with_config(url, stream, Some(config));
        let Ok(Ok((mut ws, _))) = tokio::time::timeout(Duration::from_secs(10), handshake).await
        else {
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().starts_with(r#"{"type":"connected""#) => {
                return Some(ws)
            }
            _ => continue,
        }
    }
    None
}

fn deliver(shared: &Shared, seen: &mut [u64], text: &str) {
    if !text.starts_with(r#"{"type":"new_message""#) {
        if text.starts_with(r#"{"type":"resync""#) {
            shared.resyncs.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    const MARK: &str = r#""content":"fo:"#;
    let seq = text.find(MARK).and_then(|i| {
        let digits = &text[i + MARK.len()..];
        let end = digits.find(':')?;
        digits[..end].parse::<usize>().ok()
    });
    let Some(seq) = seq.filter(|&s| s < shared.sent_at.len()) else {
        shared.unknown.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let now = (shared.start.elapsed().as_nanos()) as u64;
    let sent = shared.sent_at[seq].load(Ordering::Relaxed);
    let word = &mut seen[seq / 64];
    let bit = 1u64 << (seq % 64);
    if *word & bit != 0 {
        shared.duplicates.fetch_add(1, Ordering::Relaxed);
        return;
    }
    *word |= bit;
    let step = shared.step_of(seq as u64);
    shared.received[step].fetch_add(1, Ordering::Relaxed);
    if sent > 0 {
        let us = (now.saturating_sub(sent) / 1000).max(1);
        shared.hists[step]
            .lock()
            .expect("not poisoned")
            .saturating_record(us);
    }
}
