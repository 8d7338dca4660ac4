//! Several instances on one PostgreSQL: every socket gets every event once, whichever instance
//! stored it; the outbox sends each message once; webhook batches of two instances do not
//! deadlock; a dropped database connection is survived.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{
    fresh_database, postgres_available, proxied_postgres, text_delivery, Backend, TestApp,
};
use crate::ingest::{counter, deliver, Blocker};

/// Two instances on one fresh database, with extra configuration.
async fn two_instances(vars: &[(&str, &str)]) -> (TestApp, TestApp) {
    let (url, _) = fresh_database(Backend::Postgres).await;
    let overrides: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let a = TestApp::start(Backend::Postgres, url.clone(), None, overrides.clone()).await;
    let b = TestApp::start(Backend::Postgres, url, None, overrides).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_on_one_instance_gets_what_another_stored_exactly_once() {
    if !postgres_available() {
        return;
    }
    let (a, b) = two_instances(&[]).await;
    let mut on_a = a.websocket("/").await;
    let mut on_b = b.websocket("/").await;
    // Stored through B's webhook, seen on both.
    assert_eq!(
        b.post_json(
            "/webhook/whatsapp",
            &text_delivery("wamid.X1", "34600000001", "Ana", "hola")
        )
        .await
        .status(),
        200
    );
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(socket.next_event().await["type"], "new_conversation");
        let message = socket.next_event().await;
        assert_eq!(
            (
                message["type"].as_str(),
                message["data"]["content"].as_str()
            ),
            (Some("new_message"), Some("hola"))
        );
    }
    // A redelivery to A changes nothing anywhere.
    assert_eq!(
        a.post_json(
            "/webhook/whatsapp",
            &text_delivery("wamid.X1", "34600000001", "Ana", "hola")
        )
        .await
        .status(),
        200
    );
    // An event larger than NOTIFY's 8,000-byte limit travels by reference and arrives whole.
    let conversation = a.list("/api/v1/conversations").await.2[0]["id"]
        .as_i64()
        .expect("id");
    let big = "ñ".repeat(6_000);
    let stored = a.message(conversation, json!({"content": big})).await;
    for socket in [&mut on_a, &mut on_b] {
        let event = socket.next_event().await;
        assert_eq!(event["type"], "new_message");
        assert_eq!(event["data"]["id"], stored["id"]);
        assert_eq!(
            event["data"]["content"].as_str().map(str::len),
            Some(12_000)
        );
        socket.expect_silence(Duration::from_millis(400)).await;
    }
    let health: Value = a.get("/health").await.json().await.expect("json");
    assert_eq!(health["events"], "listening");
}

/// A Graph API that is down (503) until switched up, then accepts every send with a fresh
/// wamid and counts how often it accepted each text.
#[derive(Default)]
struct Switch {
    up: AtomicBool,
    next: AtomicU64,
    accepted: Mutex<HashMap<String, usize>>,
}

struct SwitchRef(Arc<Switch>);

impl Respond for SwitchRef {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if !self.0.up.load(Ordering::SeqCst) {
            return ResponseTemplate::new(503);
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let text = body["text"]["body"].as_str().unwrap_or("").to_string();
        if let Ok(mut accepted) = self.0.accepted.lock() {
            *accepted.entry(text).or_default() += 1;
        }
        let n = self.0.next.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200)
            .set_body_json(json!({"messages": [{"id": format!("wamid.race-{n}")}]}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_outbox_workers_send_each_pending_message_once() {
    if !postgres_available() {
        return;
    }
    let graph = MockServer::start().await;
    let switch = Arc::new(Switch::default());
    Mock::given(method("POST"))
        .respond_with(SwitchRef(switch.clone()))
        .mount(&graph)
        .await;
    let uri = graph.uri();
    let (a, b) = two_instances(&[
        ("WHATSAPP_API_BASE_URL", uri.as_str()),
        ("WHATSAPP_ACCESS_TOKEN", "t"),
        ("WHATSAPP_PHONE_NUMBER_ID", "123"),
        ("SEND_RETRY_BASE_MS", "200"),
        ("SEND_MAX_ATTEMPTS", "20"),
        ("OUTBOX_POLL_MS", "20"),
    ])
    .await;
    // Meta is down: all 200 messages wait in the shared outbox, retried by both instances.
    for i in 0..200 {
        let app = if i % 2 == 0 { &a } else { &b };
        let body = json!({"channel": "whatsapp", "to": format!("3460{:07}", i % 20), "message": format!("race {i}")});
        let response = app.post_json("/api/v1/send", &body).await;
        assert_eq!(response.status(), 202);
    }
    switch.up.store(true, Ordering::SeqCst);
    let mut sent = 0;
    for _ in 0..400 {
        let (_, _, page) = a
            .list("/api/v1/messages?direction=outbound&limit=500")
            .await;
        sent = page
            .as_array()
            .map(|m| m.iter().filter(|m| m["status"] == "sent").count())
            .unwrap_or(0);
        if sent == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent, 200, "every message was sent");
    // Give a (wrong) second send the time to happen before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted = switch
        .accepted
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    assert_eq!(accepted.len(), 200, "every text reached the Graph API");
    let doubled: Vec<_> = accepted.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "sent more than once: {doubled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_instances_recover_from_a_lost_database_connection_and_sockets_resync() {
    if !postgres_available() {
        return;
    }
    let (mut proxy, proxied) = proxied_postgres().await;
    let a = TestApp::start(Backend::Postgres, proxied.clone(), None, vec![]).await;
    let b = TestApp::start(Backend::Postgres, proxied, None, vec![]).await;
    let mut on_a = a.websocket("/").await;
    let mut on_b = b.websocket("/").await;

    // The database goes away (as in a restart): every connection drops.
    proxy.cut();
    for app in [&a, &b] {
        let mut state = Value::Null;
        for _ in 0..100 {
            let health: Value = app.get("/health").await.json().await.expect("json");
            state = health["events"].clone();
            if state == "reconnecting" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(state, "reconnecting", "/health reports the lost listener");
    }
    proxy.restore().await;
    // Each instance reconnects by itself and tells its sockets they may have missed events.
    for socket in [&mut on_a, &mut on_b] {
        let event = socket.next_event().await;
        assert_eq!(event["type"], "resync", "{event}");
    }
    for app in [&a, &b] {
        let health: Value = app.get("/health").await.json().await.expect("json");
        assert_eq!(
            (health["database"].as_str(), health["events"].as_str()),
            (Some("ok"), Some("listening"))
        );
    }
    // Events flow across instances again.
    assert_eq!(
        b.post_json(
            "/webhook/whatsapp",
            &text_delivery("wamid.after", "34600000002", "Ana", "¿sigue?")
        )
        .await
        .status(),
        200
    );
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(socket.next_event().await["type"], "new_conversation");
        assert_eq!(socket.next_event().await["data"]["content"], "¿sigue?");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_batches_of_two_instances_touching_the_same_conversations_take_turns() {
    if !postgres_available() {
        return;
    }
    let (a, b) = two_instances(&[]).await;
    let senders: Vec<String> = (0..12).map(|i| format!("3465500000{i:02}")).collect();
    for (i, sender) in senders.iter().enumerate() {
        assert_eq!(
            deliver(&a, &format!("wamid.open-{i}"), sender, "hi")
                .await
                .ok(),
            Some(200)
        );
    }
    // Both instances queue a batch over the same conversations, in opposite orders, while the
    // messages table is locked; released, the two batches run at the same time.
    let blocker = Blocker::hold(&a).await;
    let mut pending = Vec::new();
    for (i, sender) in senders.iter().enumerate() {
        pending.push(deliver(&a, &format!("wamid.a-{i}"), sender, "a"));
    }
    for (i, sender) in senders.iter().enumerate().rev() {
        pending.push(deliver(&b, &format!("wamid.b-{i}"), sender, "b"));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    blocker.release().await;
    for p in pending {
        assert_eq!(p.await.expect("task"), 200);
    }
    let (_, stored, _) = a.list("/api/v1/messages").await;
    assert_eq!(stored, Some(3 * senders.len() as i64));
    for app in [&a, &b] {
        assert_eq!(
            counter(app, "switchboard_webhook_batches_retried_total").await,
            0,
            "a batch failed (a deadlock) and was written again delivery by delivery"
        );
    }
}
