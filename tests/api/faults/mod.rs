//! Faults a server facing the internet meets, on the real binary (`ServerProcess`): `kill -9`
//! while webhooks arrive, while sends wait behind a failing provider and while an auto-reply's
//! LLM call is in flight, and SIGTERM under load. Each restarts the process on the same
//! database and checks that what was acknowledged is stored once and that nothing is done twice.
//! Leases are shortened through configuration (the providers' and the LLM's timeouts), so
//! each test takes seconds. `new_conversations` (in process) is what the chaos soak of
//! `bench/run` found: replies and webhooks creating the same new conversations at once.

mod autoreply;
mod ingest;
mod new_conversations;
mod outbox;
mod sigterm;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::{Request, Respond, ResponseTemplate};

use crate::helpers::process::ServerProcess;

/// A Cloud API that accepts every send with a fresh wamid: `PREFIX-0`, `PREFIX-1`, …
struct Accepting {
    prefix: &'static str,
    sent: AtomicUsize,
}

impl Accepting {
    fn new(prefix: &'static str) -> Accepting {
        Accepting {
            prefix,
            sent: AtomicUsize::new(0),
        }
    }
}

impl Respond for Accepting {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "messages": [{"id": format!("{}-{n}", self.prefix)}]
        }))
    }
}

/// A client for one run of the server: a restarted process gets a new client, so no connection
/// pooled with the killed one is reused.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// Every message the server has, read page by page through the API (pages are in timestamp
/// order, which is not id order: webhooks carry the provider's time).
async fn all_messages(server: &ServerProcess) -> Vec<Value> {
    let http = client();
    let mut all: Vec<Value> = Vec::new();
    loop {
        let offset = all.len();
        let page: Value = http
            .get(server.url(&format!(
                "/api/v1/messages?order=asc&limit=500&offset={offset}"
            )))
            .send()
            .await
            .expect("GET /api/v1/messages")
            .json()
            .await
            .expect("a JSON list");
        let page = page.as_array().cloned().expect("a list of messages");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// How many of `messages` carry each value of `field` (messages without it are left out).
fn tally(messages: &[Value], field: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for value in messages.iter().filter_map(|m| m[field].as_str()) {
        *counts.entry(value.to_owned()).or_insert(0) += 1;
    }
    counts
}
