//! PostgreSQL really restarts behind a running server: while it is down, every write is 503
//! (never a 200 for something not stored) and `/health` is 503; once it is back, the server
//! recovers by itself, sockets are told to resync, and new work is stored and broadcast once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::cluster::Cluster;
use crate::helpers::{text_delivery, Backend, Socket, TestApp};

const PHONE_NUMBER_ID: &str = "106540352242922";

/// A Cloud API that accepts every send with a fresh wamid.
struct Accepting(AtomicUsize);

impl Respond for Accepting {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "messages": [{"id": format!("wamid.restart-{n}")}]
        }))
    }
}

/// The writes a client can make: a recorded message, a webhook delivery, an agent's reply.
async fn writes(
    http: &reqwest::Client,
    base: &str,
    conversation: i64,
    tag: &str,
) -> Vec<(&'static str, u16, Value)> {
    let requests = [
        (
            "messages",
            "/api/v1/messages",
            json!({"conversation_id": conversation, "content": format!("note {tag}"), "direction": "inbound"}),
        ),
        (
            "webhook",
            "/webhook/whatsapp",
            text_delivery(&format!("wamid.in-{tag}"), "34600111333", "Bea", tag),
        ),
        (
            "send",
            "/api/v1/send",
            json!({"channel": "whatsapp", "to": "34600111222", "message": format!("reply {tag}")}),
        ),
    ];
    let mut out = Vec::new();
    for (what, path, body) in requests {
        let response = http
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        out.push((what, status, response.json().await.unwrap_or(Value::Null)));
    }
    out
}

/// Every event that arrives until none has for `quiet`.
async fn events_until_quiet(socket: &mut Socket, quiet: Duration) -> Vec<Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message as Frame;
    let mut events = Vec::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(quiet, socket.stream.next()).await {
        if let Frame::Text(text) = frame {
            events.push(serde_json::from_str(&text).expect("event JSON"));
        }
    }
    events
}

async fn wait_for_health(app: &TestApp, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = app.get("/health").await.status().as_u16();
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/health stayed {got}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_is_503_meanwhile_then_work_is_stored_and_broadcast_once() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let url = cluster.create_database("switchboard").await;
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Accepting(AtomicUsize::new(0)))
        .mount(&graph)
        .await;
    let graph_url = graph.uri();
    let vars = [
        ("WHATSAPP_API_BASE_URL", graph_url.as_str()),
        ("WHATSAPP_ACCESS_TOKEN", "token"),
        ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
    ];
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let app = TestApp::start(Backend::Postgres, url, None, vars.collect()).await;
    let conversation = app.create_conversation(1, "34600111222", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let mut socket = app.websocket("/").await;
    for (what, status, body) in writes(&app.client, &app.address, conversation, "before").await {
        assert_eq!(status / 100, 2, "{what} before the restart: {body}");
    }
    events_until_quiet(&mut socket, Duration::from_millis(500)).await;

    cluster.stop().await;
    // Twice: the first round meets the pool's dead connections, the second finds none.
    for round in ["down-1", "down-2"] {
        for (what, status, body) in writes(&app.client, &app.address, conversation, round).await {
            assert_eq!(status, 503, "{what} while the database is down: {body}");
            assert_eq!(body["code"], "database_unavailable", "{what}: {body}");
        }
        let health = app.get("/health").await;
        assert_eq!(health.status(), 503);
    }
    assert_eq!(
        app.list("/api/v1/messages").await.0,
        503,
        "reads too, while the database is down"
    );
    assert_eq!(
        graph.received_requests().await.map(|r| r.len()),
        Some(1),
        "no reply reached the provider while the database was down"
    );

    // Writes keep coming while the database starts up again: each is 503 or stored, never a
    // 500 and never a 2xx for something that is not there.
    let probing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let prober = {
        let (http, base, probing) = (app.client.clone(), app.address.clone(), probing.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut round = 0;
            while probing.load(Ordering::Relaxed) {
                round += 1;
                let tag = format!("up-{round}");
                answers.extend(writes(&http, &base, conversation, &tag).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answers
        })
    };
    cluster.start_again().await;
    wait_for_health(&app, 200, Duration::from_secs(30)).await;
    // Writes stored before the listener is back may have events; then comes the resync.
    let deadline = Instant::now() + Duration::from_secs(20);
    while socket.next_event().await["type"] != "resync" {
        assert!(Instant::now() < deadline, "no resync after the restart");
    }
    probing.store(false, Ordering::Relaxed);
    let answers = prober.await.expect("prober");
    for (what, status, body) in &answers {
        assert!(
            *status == 503 || status / 100 == 2,
            "{what} while the database started: {status} {body}"
        );
        if let Some(id) = body["message"]["id"].as_i64().or(body["id"].as_i64()) {
            let stored = app.get(&format!("/api/v1/messages/{id}")).await;
            assert_eq!(
                stored.status(),
                200,
                "{what} answered {status} for message {id}"
            );
        }
    }
    assert!(!answers.is_empty(), "the probe made requests");
    let (_, _, all) = app.list("/api/v1/messages?limit=500").await;
    let refused: Vec<&Value> = all
        .as_array()
        .expect("a list")
        .iter()
        .filter(|m| m["content"].as_str().unwrap_or("").contains("down-"))
        .collect();
    assert!(
        refused.is_empty(),
        "stored while the database was down: {refused:?}"
    );
    events_until_quiet(&mut socket, Duration::from_millis(500)).await;
    let (_, _, latest) = app.list("/api/v1/messages?limit=1").await;
    let last_before = latest[0]["id"].as_i64().expect("the latest id");
    let sends_before = graph.received_requests().await.map(|r| r.len());

    // Work after the restart, and Meta redelivering what it was refused during the outage.
    for (what, status, body) in writes(&app.client, &app.address, conversation, "after").await {
        assert_eq!(status / 100, 2, "{what} after the restart: {body}");
    }
    let redelivered = app
        .post_json(
            "/webhook/whatsapp",
            &text_delivery("wamid.in-down-1", "34600111333", "Bea", "down-1"),
        )
        .await;
    assert_eq!(redelivered.status(), 200);
    let events = events_until_quiet(&mut socket, Duration::from_secs(2)).await;
    let (_, _, stored) = app
        .list(&format!("/api/v1/messages?after_id={last_before}"))
        .await;
    let mut stored: Vec<i64> = stored
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect();
    stored.sort_unstable();
    assert_eq!(
        stored.len(),
        4,
        "three writes and the redelivered webhook message, each stored once"
    );
    let broadcast: Vec<i64> = events
        .iter()
        .filter(|e| e["type"] == "new_message")
        .filter_map(|e| e["data"]["id"].as_i64())
        .collect();
    assert_eq!(
        broadcast, stored,
        "each stored message broadcast once, in order: {events:?}"
    );
    let sent = events
        .iter()
        .filter(|e| e["type"] == "message_status" && e["data"]["status"] == "sent")
        .count();
    assert_eq!(sent, 1, "{events:?}");
    assert!(events.iter().all(|e| e["type"] != "resync"), "{events:?}");
    assert_eq!(
        graph.received_requests().await.map(|r| r.len()),
        sends_before.map(|n| n + 1)
    );
}
