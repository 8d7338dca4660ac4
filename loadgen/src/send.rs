//! `send`: `POST /api/v1/send` while this process plays the Graph API, answering every send at
//! once with a fresh wamid. The server must have been started with `WHATSAPP_API_BASE_URL`
//! pointing at `--graph`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::closed_loop::{self, Req, Settings, Workload};
use crate::conn::Error;
use crate::ingest::count;
use crate::measure::{mix, Watched};
use crate::read::check;

struct Send {
    recipients: u64,
}

impl Workload for Send {
    fn request(&self, n: u64) -> Req {
        let to = mix(n) % self.recipients;
        Req {
            id: n,
            method: Method::POST,
            path: "/api/v1/send".into(),
            body: Some(Bytes::from(format!(
                r#"{{"channel":"whatsapp","to":"+34 6{to:08}","message":"Gracias, te confirmamos la reserva número {n}."}}"#
            ))),
        }
    }

    fn expect(&self) -> StatusCode {
        StatusCode::OK
    }
}

/// What the fake Graph API saw.
#[derive(Default)]
struct GraphCounts {
    sends: AtomicU64,
    /// Requests that were not `POST /<version>/<phone id>/messages`.
    stray: AtomicU64,
}

pub async fn run(
    settings: Settings,
    graph: SocketAddr,
    recipients: u64,
    watched: &Watched,
) -> Result<Value, Error> {
    if !graph.ip().is_loopback() {
        return Err("--graph: the fake Graph API listens on loopback only".into());
    }
    let counts = Arc::new(GraphCounts::default());
    let listener = TcpListener::bind(graph).await?;
    let fake = tokio::spawn(serve_graph(listener, counts.clone()));
    let outcome = closed_loop::run(&settings, Arc::new(Send { recipients }), watched).await?;
    fake.abort();
    let stored = count(
        &settings.targets[0],
        "/api/v1/messages?direction=outbound&limit=1",
    )
    .await?;
    let calls = counts.sends.load(Ordering::Relaxed);
    let stray = counts.stray.load(Ordering::Relaxed);
    let mut problems = Vec::new();
    if outcome.rejected > 0 {
        problems.push(format!("{} sends rejected", outcome.rejected));
    }
    if stored < outcome.ok || stored > outcome.ok + outcome.unsure {
        problems.push(format!(
            "{stored} outbound messages stored for {} accepted sends",
            outcome.ok
        ));
    }
    if calls < outcome.ok {
        problems.push(format!(
            "{calls} Graph API calls for {} accepted sends",
            outcome.ok
        ));
    }
    if stray > 0 {
        problems.push(format!("{stray} Graph API requests to an unexpected path"));
    }
    let mut v = outcome.summary();
    if let Value::Object(map) = &mut v {
        map.insert("stored_outbound".into(), json!(stored));
        map.insert("graph_calls".into(), json!(calls));
        map.insert("check".into(), check(problems));
    }
    Ok(v)
}

/// Accepts until aborted; every connection is served on its own task.
async fn serve_graph(listener: TcpListener, counts: Arc<GraphCounts>) {
    let nonce = mix(std::process::id() as u64) & 0xffff_ffff;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let counts = counts.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let counts = counts.clone();
                async move {
                    let good = request.method() == Method::POST
                        && request.uri().path().ends_with("/messages");
                    let _ = request.into_body().collect().await;
                    let n = if good {
                        counts.sends.fetch_add(1, Ordering::Relaxed) + 1
                    } else {
                        counts.stray.fetch_add(1, Ordering::Relaxed);
                        0
                    };
                    let body = format!(
                        r#"{{"messaging_product":"whatsapp","contacts":[{{"input":"34600000000","wa_id":"34600000000"}}],"messages":[{{"id":"wamid.fake.{nonce:x}.{n}"}}]}}"#
                    );
                    let response = Response::builder()
                        .header(CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .expect("static parts");
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
