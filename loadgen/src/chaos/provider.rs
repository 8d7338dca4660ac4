//! The fake provider of the chaos soak: a Graph API that takes `--provider-ms` to answer each
//! send with a fresh wamid, and records every send it accepts, by the number in its text.
//!
//! A send counts as accepted once its whole request has arrived, as it would at Meta: a server
//! killed while waiting for the answer has had its message delivered all the same, and a
//! second attempt after the restart reaches the customer twice (at least once, not exactly
//! once: the soak counts how often).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::measure::mix;

/// What the provider accepted: sends per message number, and requests it could not read.
#[derive(Default)]
pub struct Accepted {
    pub per_send: HashMap<u64, u32>,
    pub stray: u64,
}

pub type Record = Arc<Mutex<Accepted>>;

/// Reads a send's number from its text.
pub type Numbers = Arc<dyn Fn(&str) -> Option<u64> + Send + Sync>;

/// Accepts until aborted; each connection on its own task.
pub async fn serve(listener: TcpListener, record: Record, delay: Duration, number: Numbers) {
    let nonce = mix(std::process::id() as u64) & 0xffff_ffff;
    let wamids = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (record, wamids, number) = (record.clone(), wamids.clone(), number.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let (record, wamids, number) = (record.clone(), wamids.clone(), number.clone());
                async move {
                    let is_send = request.method() == Method::POST
                        && request.uri().path().ends_with("/messages");
                    let body = request.into_body().collect().await.map(|b| b.to_bytes());
                    let n = body
                        .ok()
                        .filter(|_| is_send)
                        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                        .and_then(|v| v["text"]["body"].as_str().and_then(|t| number(t)));
                    if let Ok(mut accepted) = record.lock() {
                        match n {
                            Some(n) => *accepted.per_send.entry(n).or_default() += 1,
                            None => accepted.stray += 1,
                        }
                    }
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(answer(n, nonce, &wamids))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(n: Option<u64>, nonce: u64, wamids: &AtomicU64) -> Response<Full<Bytes>> {
    let (status, body) = match n {
        Some(_) => {
            let id = wamids.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::OK,
                format!(
                    r#"{{"messaging_product":"whatsapp","contacts":[{{"input":"34600000000","wa_id":"34600000000"}}],"messages":[{{"id":"wamid.chaos.{nonce:x}.{id}"}}]}}"#
                ),
            )
        }
        None => (
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"not a send of this soak","code":100}}"#.to_owned(),
        ),
    };
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}
