//! `events`: the ingest workload while this process plays the operator's event webhook receiver
//! on `--receiver` (the server's `EVENT_WEBHOOK_URL`), answering 200 at once. With `--hold` it
//! holds every delivery until the load has ended instead, so the events pile up and are then
//! drained at the worker's full speed: the ingest rate is the recording cost alone, the drain
//! rate the delivery ceiling.
//!
//! Checks, besides the ingest's own: every event arrives (a `new_conversation` per conversation
//! and a `new_message` per stored message), none twice, each conversation's in the order stored
//! (its creation first, then its messages by increasing id), and with `--secret` every
//! signature is right.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::closed_loop::Settings;
use crate::conn::Error;
use crate::ingest;
use crate::measure::{Watched, Window};

pub struct Plan {
    pub settings: Settings,
    pub senders: u64,
    pub receiver: SocketAddr,
    pub secret: Option<String>,
    pub hold: bool,
    /// Longest wait for the last event after the load.
    pub drain_timeout: Duration,
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    /// Per conversation, the last message id seen (0: only its creation yet).
    last_message: HashMap<i64, i64>,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
}

struct Receiver {
    secret: Option<String>,
    held: AtomicBool,
    release: Notify,
    requests: AtomicU64,
    duplicates: AtomicU64,
    out_of_order: AtomicU64,
    bad_signatures: AtomicU64,
    unreadable: AtomicU64,
    seen: Mutex<Seen>,
}

impl Receiver {
    fn distinct(&self) -> usize {
        self.seen.lock().map(|s| s.ids.len()).unwrap_or(0)
    }

    async fn take(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (timestamp, signature) = (
            header("x-switchboard-timestamp"),
            header("x-switchboard-signature"),
        );
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if let Some(secret) = &self.secret {
            if !signed(secret, timestamp.as_deref(), &body, signature.as_deref()) {
                self.bad_signatures.fetch_add(1, Ordering::Relaxed);
            }
        }
        while self.held.load(Ordering::SeqCst) {
            let released = self.release.notified();
            if !self.held.load(Ordering::SeqCst) {
                break;
            }
            released.await;
        }
        self.note(&body);
        Response::new(Full::new(Bytes::new()))
    }

    fn note(&self, body: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Value>(body) else {
            self.unreadable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let id = event["id"].as_str().unwrap_or_default().to_string();
        let data = &event["data"];
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let now = Instant::now();
        seen.first_at.get_or_insert(now);
        seen.last_at = Some(now);
        if !seen.ids.insert(id) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let in_order = match event["type"].as_str() {
            Some("new_conversation") => {
                let conversation = data["id"].as_i64().unwrap_or(-1);
                seen.last_message.insert(conversation, 0).is_none()
            }
            Some("new_message") => {
                let conversation = data["conversation_id"].as_i64().unwrap_or(-1);
                let message = data["id"].as_i64().unwrap_or(-1);
                match seen.last_message.get_mut(&conversation) {
                    Some(last) if *last < message => {
                        *last = message;
                        true
                    }
                    _ => false,
                }
            }
            _ => true,
        };
        if !in_order {
            self.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn signed(secret: &str, timestamp: Option<&str>, body: &[u8], signature: Option<&str>) -> bool {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    signature.strip_prefix("sha256=") == Some(hex.as_str())
}

pub async fn run(plan: Plan, watched: &Watched) -> Result<Value, Error> {
    if !plan.receiver.ip().is_loopback() {
        return Err("--receiver: the receiver listens on loopback only".into());
    }
    let receiver = Arc::new(Receiver {
        secret: plan.secret.clone(),
        held: AtomicBool::new(plan.hold),
        release: Notify::new(),
        requests: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
        bad_signatures: AtomicU64::new(0),
        unreadable: AtomicU64::new(0),
        seen: Mutex::new(Seen::default()),
    });
    let listener = TcpListener::bind(plan.receiver).await?;
    let server = tokio::spawn(serve(listener, receiver.clone()));
    let started = Instant::now();
    let mut v = ingest::run(
        plan.settings,
        plan.senders,
        ingest::Channel::Whatsapp,
        watched,
    )
    .await?;
    let count = |key: &str| v[key].as_u64().unwrap_or(0);
    let expected = (count("stored") + count("conversations")) as usize;
    let delivered_during_load = receiver.distinct();

    // The drain: everything still owed, delivered as fast as the worker goes.
    receiver.held.store(false, Ordering::SeqCst);
    receiver.release.notify_waiters();
    let window = Window::open(watched);
    let drain_started = Instant::now();
    while receiver.distinct() < expected && drain_started.elapsed() < plan.drain_timeout {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_s = drain_started.elapsed().as_secs_f64();
    let drain_cpu = window.close();
    // A (wrong) second delivery gets a moment to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.abort();

    let (distinct, span) = {
        let seen = receiver.seen.lock().map_err(|_| "receiver state")?;
        let span = match (seen.first_at, seen.last_at) {
            (Some(first), Some(last)) => Some((first, last)),
            _ => None,
        };
        (seen.ids.len(), span)
    };
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut problems = Vec::new();
    if let Some(check) = v["check"].as_str().filter(|c| *c != "ok") {
        problems.push(format!("ingest: {check}"));
    }
    if distinct < expected {
        problems.push(format!(
            "{} of {expected} events never arrived within {:?}",
            expected - distinct,
            plan.drain_timeout
        ));
    }
    for (what, counter) in [
        ("delivered twice", &receiver.duplicates),
        ("out of order", &receiver.out_of_order),
        ("with a wrong signature", &receiver.bad_signatures),
        ("unreadable", &receiver.unreadable),
    ] {
        if load(counter) > 0 {
            problems.push(format!("{} events {what}", load(counter)));
        }
    }
    // Delivered per second: with --hold, the backlog over the drain; otherwise every event
    // over the time from the load's start to the last delivery.
    let delivered_per_s = if plan.hold {
        let owed = distinct.saturating_sub(delivered_during_load) as f64;
        span.map(|(_, last)| {
            owed / last
                .saturating_duration_since(drain_started)
                .as_secs_f64()
                .max(1e-3)
        })
    } else {
        span.map(|(_, last)| {
            distinct as f64
                / last
                    .saturating_duration_since(started)
                    .as_secs_f64()
                    .max(1e-3)
        })
    };
    if let Value::Object(map) = &mut v {
        map.insert("check".into(), crate::read::check(problems));
        map.insert("hold".into(), json!(plan.hold));
        map.insert("events_expected".into(), json!(expected));
        map.insert("events_delivered".into(), json!(distinct));
        map.insert("receiver_requests".into(), json!(load(&receiver.requests)));
        map.insert("delivered_during_load".into(), json!(delivered_during_load));
        map.insert(
            "delivered_per_s".into(),
            json!(delivered_per_s.map(f64::round)),
        );
        map.insert("drain_s".into(), json!((drain_s * 1000.0).round() / 1000.0));
        map.insert("drain_cpu".into(), drain_cpu);
    }
    Ok(v)
}

/// Accepts until aborted; every connection is served on its own task.
async fn serve(listener: TcpListener, receiver: Arc<Receiver>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let receiver = receiver.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let receiver = receiver.clone();
                async move {
                    let mut response = receiver.take(request).await;
                    *response.status_mut() = StatusCode::OK;
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
