//! `attachments`: N clients download one attachment file over and over (keep-alive, closed
//! loop) while the server's RSS is sampled. This process plays the Graph API on `--graph`: one
//! WhatsApp image message is posted, and the server fetches its file (the description, then the
//! download) from here. Checks: the first download is byte for byte the file; every download is
//! 200 with the whole length; the file was fetched from the fake exactly once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::closed_loop::Settings;
use crate::conn::{self, Conn, Error, Target};
use crate::measure::{self, rss_kib, Watched, Window};
use crate::read::check;

/// The media id of the one file.
const MEDIA_ID: &str = "900100200300";

/// What the fake Graph API saw.
#[derive(Default)]
struct GraphCounts {
    descriptions: AtomicU64,
    downloads: AtomicU64,
    stray: AtomicU64,
}

pub async fn run(
    settings: Settings,
    graph: SocketAddr,
    size: usize,
    watched: &Watched,
) -> Result<Value, Error> {
    if !graph.ip().is_loopback() {
        return Err("--graph: the fake Graph API listens on loopback only".into());
    }
    let file = Bytes::from(content(size));
    let counts = Arc::new(GraphCounts::default());
    let listener = TcpListener::bind(graph).await?;
    let fake = tokio::spawn(serve_graph(listener, graph, file.clone(), counts.clone()));
    let target = settings.targets[0].clone();
    let url = post_and_find(&target).await?;
    let mut problems = Vec::new();
    // The first request fetches it (on demand, or by joining the job); then it is checked.
    let first = conn::once(&target, Method::GET, &url, None).await?;
    if first.status != StatusCode::OK || first.body != file {
        problems.push(format!(
            "the first download was {} with {} bytes, not the file",
            first.status,
            first.body.len()
        ));
    }
    drop(first);
    let pid = watched.servers.first().copied();
    let rss_before = pid.and_then(rss_kib);
    let peak = Arc::new(AtomicU64::new(rss_before.unwrap_or(0)));
    let sampling = pid.map(|pid| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let mut conns = Vec::with_capacity(settings.connections);
    for i in 0..settings.connections {
        conns.push(Conn::open(&settings.targets[i % settings.targets.len()]).await?);
    }
    let window = Window::open(watched);
    let start = Instant::now();
    let deadline = start + settings.duration;
    let mut tasks = Vec::new();
    for conn in conns {
        tasks.push(tokio::spawn(worker(
            conn,
            url.clone(),
            size as u64,
            deadline,
        )));
    }
    let mut hist = measure::histogram();
    let (mut ok, mut bad, mut last) = (0u64, 0u64, start);
    let mut sample = None;
    for task in tasks {
        let part = task.await?;
        ok += part.ok;
        bad += part.bad;
        hist.add(&part.hist).ok();
        sample = sample.or(part.sample);
        last = last.max(part.done);
    }
    let elapsed = (last - start).as_secs_f64().max(1e-3);
    let cpu = window.close();
    if let Some(sampling) = sampling {
        sampling.abort();
    }
    let rss_after = pid.and_then(rss_kib);
    fake.abort();
    if bad > 0 {
        problems.push(format!("{bad} downloads failed or were short: {sample:?}"));
    }
    if ok == 0 {
        problems.push("no download completed".into());
    }
    let (descriptions, downloads, stray) = (
        counts.descriptions.load(Ordering::Relaxed),
        counts.downloads.load(Ordering::Relaxed),
        counts.stray.load(Ordering::Relaxed),
    );
    if descriptions != 1 || downloads != 1 {
        problems.push(format!(
            "the file was described {descriptions} times and downloaded {downloads} times from \
             the provider (expected once)"
        ));
    }
    if stray > 0 {
        problems.push(format!("{stray} Graph API requests to an unexpected path"));
    }
    let mut v = json!({
        "ok": ok,
        "failed": bad,
        "clients": settings.connections,
        "file_bytes": size,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "rate_per_s": (ok as f64 / elapsed).round(),
        "mib_per_s": ((ok as f64 * size as f64 / 1048576.0 / elapsed) * 10.0).round() / 10.0,
        "rss_before_kib": rss_before,
        "rss_peak_kib": pid.map(|_| peak.load(Ordering::Relaxed)),
        "rss_after_kib": rss_after,
        "cpu": cpu,
        "check": check(problems),
    });
    if let (Value::Object(map), Value::Object(lat)) = (&mut v, measure::latency(&hist)) {
        map.extend(lat);
    }
    Ok(v)
}

/// Deterministic bytes that do not compress to nothing.
fn content(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (measure::mix(i as u64 / 8) >> ((i % 8) * 8)) as u8)
        .collect()
}

/// Posts one image message and returns its attachment's URL.
async fn post_and_find(target: &Target) -> Result<String, Error> {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": "123456"},
        "contacts": [{"profile": {"name": "Bench"}, "wa_id": "34600000001"}],
        "messages": [{"from": "34600000001", "id": "wamid.bench.attachment", "timestamp": "1736330400",
                      "type": "image", "image": {"id": MEDIA_ID, "mime_type": "image/jpeg"}}]
    }}]}]});
    let reply = conn::once(
        target,
        Method::POST,
        "/webhook/whatsapp",
        Some(Bytes::from(body.to_string())),
    )
    .await?;
    if reply.status != StatusCode::OK {
        return Err(format!("the webhook answered {}", reply.status).into());
    }
    let reply = conn::once(target, Method::GET, "/api/v1/messages?limit=1", None).await?;
    let page: Value = serde_json::from_slice(&reply.body)?;
    page.pointer("/0/attachments/0/url")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("the message lists no attachment: {page}").into())
}

struct Part {
    ok: u64,
    bad: u64,
    hist: hdrhistogram::Histogram<u64>,
    sample: Option<String>,
    done: Instant,
}

/// Downloads `url` in a loop on one connection until `deadline`, counting bytes as they come.
async fn worker(mut conn: Conn, url: String, size: u64, deadline: Instant) -> Part {
    let mut part = Part {
        ok: 0,
        bad: 0,
        hist: measure::histogram(),
        sample: None,
        done: Instant::now(),
    };
    while Instant::now() < deadline {
        let sent = Instant::now();
        match conn.download(&url).await {
            Ok((StatusCode::OK, length)) if length == size => {
                measure::record(&mut part.hist, sent);
                part.ok += 1;
            }
            Ok((status, length)) => {
                part.bad += 1;
                part.sample
                    .get_or_insert(format!("{status} with {length} bytes"));
            }
            Err(e) => {
                part.bad += 1;
                part.sample.get_or_insert(format!("no answer: {e}"));
                break;
            }
        }
    }
    part.done = Instant::now();
    part
}

/// The Graph API's media endpoint and the download it points to.
async fn serve_graph(
    listener: TcpListener,
    graph: SocketAddr,
    file: Bytes,
    counts: Arc<GraphCounts>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (file, counts) = (file.clone(), counts.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let (file, counts) = (file.clone(), counts.clone());
                async move {
                    let path = request.uri().path().to_owned();
                    let _ = request.into_body().collect().await;
                    let response = if path == format!("/v26.0/{MEDIA_ID}") {
                        counts.descriptions.fetch_add(1, Ordering::Relaxed);
                        let body = json!({
                            "messaging_product": "whatsapp",
                            "url": format!("http://{graph}/whatsapp_business/attachments/?mid={MEDIA_ID}"),
                            "mime_type": "image/jpeg", "file_size": file.len(), "id": MEDIA_ID,
                        });
                        Response::builder()
                            .header(CONTENT_TYPE, "application/json")
                            .body(Full::new(Bytes::from(body.to_string())))
                    } else if path == "/whatsapp_business/attachments/" {
                        counts.downloads.fetch_add(1, Ordering::Relaxed);
                        Response::builder()
                            .header(CONTENT_TYPE, "image/jpeg")
                            .body(Full::new(file))
                    } else {
                        counts.stray.fetch_add(1, Ordering::Relaxed);
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::new()))
                    };
                    Ok::<_, Infallible>(response.expect("static parts"))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
