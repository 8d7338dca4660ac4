//! `kill -9` while sends wait behind a failing provider, one of them in the middle of a provider
//! call: restarted with the provider healthy, each message reaches it exactly once and ends
//! `sent`, the one the killed process held only once its lease has expired.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{all_messages, client, Accepting};
use crate::helpers::process::ServerProcess;
use crate::helpers::Backend;
use crate::on_both_backends;
use crate::whatsapp::{graph_path, PHONE_NUMBER_ID, TOKEN};

on_both_backends!(queued_sends_reach_the_provider_once_after_kill_9);

const MESSAGES: usize = 6;
/// The failing provider's answer comes after this: the killed process is inside a call.
const FAILING_CALL: Duration = Duration::from_millis(300);

/// The text of each send the provider received, and its answer's wamid, in order.
async fn texts_received(graph: &MockServer) -> Vec<String> {
    graph
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|b| b["text"]["body"].as_str().map(str::to_owned))
        .collect()
}

async fn queued_sends_reach_the_provider_once_after_kill_9(backend: Backend) {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_json(json!({"error": {"message": "Service temporarily unavailable", "code": 2, "fbtrace_id": "x"}}))
                .set_delay(FAILING_CALL),
        )
        .mount(&graph)
        .await;
    let uri = graph.uri();
    let mut server = ServerProcess::spawn(
        backend,
        &[
            ("WHATSAPP_API_BASE_URL", uri.as_str()),
            ("WHATSAPP_ACCESS_TOKEN", TOKEN),
            ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
            // Lease: twice the longer provider timeout (400 ms) + 5 s.
            ("WHATSAPP_TIMEOUT_MS", "400"),
            ("INSTAGRAM_TIMEOUT_MS", "400"),
            ("SEND_RETRY_BASE_MS", "100"),
            ("SEND_MAX_ATTEMPTS", "100"),
            ("OUTBOX_POLL_MS", "50"),
        ],
    )
    .await;
    let http = client();
    let texts: Vec<String> = (0..MESSAGES).map(|n| format!("queued reply {n}")).collect();
    for text in &texts {
        let response = http
            .post(server.url("/api/v1/send"))
            .json(&json!({"channel": "whatsapp", "to": "34600123456", "message": text}))
            .send()
            .await
            .expect("POST /api/v1/send");
        assert_eq!(
            response.status(),
            202,
            "{text} waits behind the failing provider"
        );
    }
    // Kill as soon as the worker's retries have begun and one of them is in a call.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = texts_received(&graph).await.len();
    loop {
        assert!(Instant::now() < deadline, "the worker never retried");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = texts_received(&graph).await.len();
        if now > seen && now > MESSAGES {
            break;
        }
        seen = now;
    }
    server.kill9();
    let failed_calls = texts_received(&graph).await.len();

    graph.reset().await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(Accepting::new("wamid.after-restart"))
        .mount(&graph)
        .await;
    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outbound = outbound(&server).await;
        if outbound.len() == MESSAGES && outbound.iter().all(|m| m["status"] == "sent") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all sent after the restart: {outbound:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Whatever would send a message twice has had time to.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = texts_received(&graph).await;
    let mut per_text: HashMap<&str, usize> = HashMap::new();
    for text in &received {
        *per_text.entry(text.as_str()).or_default() += 1;
    }
    for text in &texts {
        assert_eq!(
            per_text.get(text.as_str()),
            Some(&1),
            "{text} reached the provider once after the restart: {received:?}"
        );
    }
    assert_eq!(received.len(), MESSAGES, "{received:?}");
    let outbound = outbound(&server).await;
    for message in &outbound {
        let wamid = message["external_message_id"].as_str().unwrap_or("");
        assert!(wamid.starts_with("wamid.after-restart-"), "{message}");
    }
    eprintln!(
        "{backend:?}: {failed_calls} failed calls before kill -9, then each of {MESSAGES} sent once"
    );
}

async fn outbound(server: &ServerProcess) -> Vec<Value> {
    all_messages(server)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "outbound")
        .collect()
}
