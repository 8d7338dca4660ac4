//! Meta's webhook in, `/api/v1/send` out, against a wiremock fake of the Graph API.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{text_delivery, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    every_fixture_is_accepted_and_stored_once,
    signatures_are_checked_on_the_raw_bytes,
    the_customer_name_names_the_conversation_and_follows_changes,
    statuses_move_a_reply_forward_only,
    fifty_concurrent_redeliveries_store_and_broadcast_one_message,
    fifty_concurrent_first_messages_create_one_conversation,
    a_reply_accepted_by_meta_is_sent_with_the_exact_request,
    a_bad_token_fails_the_reply_with_metas_reason,
    transient_errors_are_retried_until_sent,
    a_slow_graph_api_leaves_the_reply_pending_not_lost,
    a_pending_reply_is_sent_after_a_restart,
    a_reply_that_keeps_failing_is_failed_after_the_last_attempt,
    bad_send_requests_store_nothing,
);

pub(crate) const TOKEN: &str = "test-access-token";
pub(crate) const PHONE_NUMBER_ID: &str = "106540352242922";

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meta/whatsapp")
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::fs::read(&p).expect("read fixture"),
            )
        })
        .collect();
    files.sort();
    files
}

pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

pub(crate) fn status_delivery(wamid: &str, status: &str, error: Option<Value>) -> Value {
    let mut item = json!({"id": wamid, "status": status, "timestamp": "1736330500", "recipient_id": "34600123456"});
    if let Some(error) = error {
        item["errors"] = json!([error]);
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_NUMBER_ID},
        "statuses": [item]
    }}]}]})
}

pub(crate) async fn post_webhook(
    app: &TestApp,
    body: &[u8],
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/webhook/whatsapp"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.send().await.expect("POST webhook")
}

pub(crate) async fn all_messages(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let (status, _, page) = app
            .list(&format!(
                "/api/v1/messages?order=asc&limit=500&offset={offset}"
            ))
            .await;
        assert_eq!(status, 200);
        let page = page.as_array().cloned().unwrap_or_default();
        offset += page.len();
        let done = page.len() < 500;
        all.extend(page);
        if done {
            return all;
        }
    }
}

/// A Graph fake plus a server pointed at it.
pub(crate) async fn app_with_graph(
    backend: Backend,
    extra: &[(&str, &str)],
) -> (TestApp, MockServer) {
    let graph = MockServer::start().await;
    let uri = graph.uri();
    let mut vars = vec![
        ("WHATSAPP_API_BASE_URL", uri.as_str()),
        ("WHATSAPP_ACCESS_TOKEN", TOKEN),
        ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
        ("SEND_RETRY_BASE_MS", "50"),
        ("OUTBOX_POLL_MS", "50"),
    ];
    vars.extend_from_slice(extra);
    (TestApp::spawn_with(backend, &vars).await, graph)
}

pub(crate) fn graph_path() -> String {
    format!("/v26.0/{PHONE_NUMBER_ID}/messages")
}

pub(crate) fn accepted(wamid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "34600123456", "wa_id": "34600123456"}],
        "messages": [{"id": wamid}]
    }))
}

pub(crate) async fn send(app: &TestApp, to: &str, message: &str) -> (u16, Value) {
    let response = app
        .post_json(
            "/api/v1/send",
            &json!({"channel": "whatsapp", "to": to, "message": message}),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("send JSON"))
}

/// Waits until message `id` has `status`, or fails after 10 s.
pub(crate) async fn wait_for_status(app: &TestApp, id: i64, status: &str) -> Value {
    for _ in 0..200 {
        let message: Value = app
            .get(&format!("/api/v1/messages/{id}"))
            .await
            .json()
            .await
            .expect("json");
        if message["status"] == status {
            return message;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} never became {status}");
}

/// The message items a fixture carries, read straight from its JSON: (wamid, type).
fn carried_messages(bytes: &[u8]) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_slice(bytes).expect("fixture JSON");
    let mut found = Vec::new();
    for change in doc["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
    {
        if change.get("field").is_some_and(|f| f != "messages") {
            continue;
        }
        for message in change["value"]["messages"].as_array().into_iter().flatten() {
            if let Some(id) = message["id"].as_str() {
                found.push((
                    id.to_string(),
                    message["type"].as_str().unwrap_or("unknown").to_string(),
                ));
            }
        }
    }
    found
}

/// Every fixture file is accepted, and what each carries is stored once with its type, wamid,
/// readable content and raw item. Many files reuse one wamid (23 share `wamid.xyzxyz`), so the
/// files are posted in rounds, each on a fresh database, with no wamid twice in a round.
async fn every_fixture_is_accepted_and_stored_once(backend: Backend) {
    #[derive(Default)]
    struct Round {
        files: Vec<(String, Vec<u8>)>,
        wamids: HashSet<String>,
    }
    let mut rounds: Vec<Round> = Vec::new();
    for (name, bytes) in fixtures() {
        let ids: Vec<String> = carried_messages(&bytes)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let index = match rounds
            .iter()
            .position(|r| ids.iter().all(|id| !r.wamids.contains(id)))
        {
            Some(index) => index,
            None => {
                rounds.push(Round::default());
                rounds.len() - 1
            }
        };
        rounds[index].wamids.extend(ids);
        rounds[index].files.push((name, bytes));
    }
    let mut checked = 0;
    for Round { files, .. } in &rounds {
        let app = TestApp::spawn(backend).await;
        let mut expected = 0;
        for (name, bytes) in files {
            let response = post_webhook(&app, bytes, None).await;
            assert!(
                response.status().is_success(),
                "{name}: {}",
                response.status()
            );
            let carried = carried_messages(bytes);
            expected += carried.len();
            for (wamid, kind) in carried {
                let stored: Vec<Value> = all_messages(&app)
                    .await
                    .into_iter()
                    .filter(|m| m["external_message_id"] == wamid.as_str())
                    .collect();
                assert_eq!(stored.len(), 1, "{name}: {wamid} stored once");
                let message = &stored[0];
                assert_eq!(message["message_type"], kind.as_str(), "{name}");
                assert_eq!(message["direction"], "inbound", "{name}");
                assert_eq!(message["status"], "received", "{name}");
                assert!(
                    !message["content"].as_str().unwrap_or("").trim().is_empty(),
                    "{name}: content"
                );
                let raw: Value =
                    serde_json::from_str(message["message_metadata"].as_str().expect("metadata"))
                        .expect("metadata JSON");
                assert_eq!(raw["id"], wamid.as_str(), "{name}: the raw item is kept");
                checked += 1;
            }
        }
        assert_eq!(
            all_messages(&app).await.len(),
            expected,
            "nothing but the carried messages"
        );
        // Redelivery of the whole round stores nothing new.
        for (name, bytes) in files {
            assert!(
                post_webhook(&app, bytes, None).await.status().is_success(),
                "{name} again"
            );
        }
        assert_eq!(
            all_messages(&app).await.len(),
            expected,
            "redelivery changes nothing"
        );
    }
    let carried: usize = fixtures()
        .iter()
        .map(|(_, bytes)| carried_messages(bytes).len())
        .sum();
    assert_eq!(checked, carried, "every carried message was checked");
    assert!(
        carried >= 60,
        "the fixtures carry dozens of messages: {carried}"
    );

    let app = TestApp::spawn(backend).await;
    let bytes = std::fs::read(fixtures_dir().join("text_1.json")).expect("text_1");
    post_webhook(&app, &bytes, None).await;
    let text: Value = serde_json::from_slice(&bytes).expect("json");
    let stored = all_messages(&app).await;
    assert_eq!(
        stored[0]["content"],
        text["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"]
    );
}

async fn signatures_are_checked_on_the_raw_bytes(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, &[("WHATSAPP_APP_SECRET", "old-secret,new-secret")]).await;
    let (_, bytes) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "text_1.json")
        .expect("text_1.json");
    for (what, signature) in [
        ("missing", None),
        ("wrong secret", Some(sign("other", &bytes))),
        (
            "sha1",
            Some(sign("new-secret", &bytes).replace("sha256=", "sha1=")),
        ),
        ("garbage", Some("sha256=zz".to_string())),
    ] {
        let response = post_webhook(&app, &bytes, signature.as_deref()).await;
        assert_eq!(response.status(), 401, "{what}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "invalid_signature");
    }
    // The signature covers these exact bytes; a re-serialised body would not match.
    let mut altered = bytes.clone();
    altered.push(b' ');
    assert_eq!(
        post_webhook(&app, &altered, Some(&sign("new-secret", &bytes)))
            .await
            .status(),
        401
    );
    assert_eq!(
        all_messages(&app).await.len(),
        0,
        "nothing stored from refused deliveries"
    );
    assert_eq!(
        post_webhook(&app, &bytes, Some(&sign("new-secret", &bytes)))
            .await
            .status(),
        200
    );
    assert_eq!(
        post_webhook(&app, &bytes, Some(&sign("old-secret", &bytes)))
            .await
            .status(),
        200,
        "a rotated-out secret still works"
    );
    assert_eq!(all_messages(&app).await.len(), 1);

    // The verification handshake.
    let app = TestApp::spawn_with(backend, &[("WHATSAPP_WEBHOOK_VERIFY_TOKEN", "verify-me")]).await;
    let good = app.get("/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444").await;
    assert_eq!(good.status(), 200);
    assert!(good.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/plain"));
    assert_eq!(good.text().await.expect("text"), "1158201444");
    for query in [
        "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
        "hub.challenge=1",
    ] {
        assert_eq!(
            app.get(&format!("/webhook/whatsapp?{query}"))
                .await
                .status(),
            403,
            "{query}"
        );
    }
}

async fn the_customer_name_names_the_conversation_and_follows_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut socket = app.websocket("/").await;
    let first = text_delivery("wamid.name-1", "34600123456", "Ana", "Hola");
    assert_eq!(
        app.post_json("/webhook/whatsapp", &first).await.status(),
        200
    );
    let created = socket.next_event().await;
    assert_eq!(created["type"], "new_conversation");
    assert_eq!(created["data"]["participant_name"], "Ana");
    assert_eq!(created["data"]["external_id"], "34600123456");
    let message = socket.next_event().await;
    assert_eq!(message["type"], "new_message");
    assert_eq!(message["data"]["sender_name"], "Ana");
    assert_eq!(message["data"]["content"], "Hola");
    assert_eq!(
        message["data"]["timestamp"], "2025-01-08T10:00:00Z",
        "WhatsApp's own timestamp"
    );

    let renamed = text_delivery("wamid.name-2", "34600123456", "Ana María", "Soy yo");
    app.post_json("/webhook/whatsapp", &renamed).await;
    let updated = socket.next_event().await;
    assert_eq!(updated["type"], "conversation_updated");
    assert_eq!(updated["data"]["participant_name"], "Ana María");
    assert_eq!(socket.next_event().await["type"], "new_message");
    let (_, total, conversations) = app.list("/api/v1/conversations").await;
    assert_eq!(total, Some(1));
    assert_eq!(conversations[0]["unread_count"], 2);
}

async fn statuses_move_a_reply_forward_only(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.OUT1"))
        .mount(&graph)
        .await;
    let (status, sent) = send(&app, "+34 600 123 456", "Hola Ana").await;
    assert_eq!(status, 200, "{sent}");
    let id = sent["message"]["id"].as_i64().expect("id");
    let mut socket = app.websocket("/").await;
    for (delivered, expect_event) in [
        ("delivered", true),
        ("sent", false),
        ("read", true),
        ("delivered", false),
        ("read", false),
    ] {
        let response = app
            .post_json(
                "/webhook/whatsapp",
                &status_delivery("wamid.OUT1", delivered, None),
            )
            .await;
        assert_eq!(response.status(), 200);
        if expect_event {
            let event = socket.next_event().await;
            assert_eq!(event["type"], "message_status");
            assert_eq!(
                event["data"],
                json!({"id": id, "conversation_id": sent["conversation_id"], "external_message_id": "wamid.OUT1", "status": delivered, "error": null})
            );
        }
    }
    socket.expect_silence(Duration::from_millis(300)).await;
    let failed_late = status_delivery(
        "wamid.OUT1",
        "failed",
        Some(json!({"code": 131026, "title": "Message undeliverable"})),
    );
    app.post_json("/webhook/whatsapp", &failed_late).await;
    let message: Value = app
        .get(&format!("/api/v1/messages/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        message["status"], "read",
        "never backwards, and nothing follows read"
    );

    // A failure after `sent` keeps Meta's error.
    graph.reset().await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.OUT2"))
        .mount(&graph)
        .await;
    let (_, second) = send(&app, "34600123456", "¿Sigues ahí?").await;
    let failure = json!({"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message", "error_data": {"details": "Message failed to send because more than 24 hours have passed"}});
    app.post_json(
        "/webhook/whatsapp",
        &status_delivery("wamid.OUT2", "failed", Some(failure)),
    )
    .await;
    let failed: Value = app
        .get(&format!("/api/v1/messages/{}", second["message"]["id"]))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"].as_str().unwrap_or("").contains("131047"),
        "{failed}"
    );
    // Statuses of messages we never sent are ignored.
    assert_eq!(
        app.post_json(
            "/webhook/whatsapp",
            &status_delivery("wamid.UNKNOWN", "read", None)
        )
        .await
        .status(),
        200
    );
}

async fn fifty_concurrent_redeliveries_store_and_broadcast_one_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut socket = app.websocket("/").await;
    let body = serde_json::to_vec(&text_delivery("wamid.dup", "34611111111", "Leo", "once"))
        .expect("json");
    let requests = (0..50).map(|_| post_webhook(&app, &body, None));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(all_messages(&app).await.len(), 1);
    assert_eq!(socket.next_event().await["type"], "new_conversation");
    assert_eq!(socket.next_event().await["type"], "new_message");
    socket.expect_silence(Duration::from_millis(500)).await;
}

async fn fifty_concurrent_first_messages_create_one_conversation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bodies: Vec<Vec<u8>> = (0..50)
        .map(|i| {
            serde_json::to_vec(&text_delivery(
                &format!("wamid.first-{i}"),
                "34622222222",
                "Mia",
                &format!("m{i}"),
            ))
            .expect("json")
        })
        .collect();
    let requests = bodies.iter().map(|b| post_webhook(&app, b, None));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    let (_, total, conversations) = app.list("/api/v1/conversations").await;
    assert_eq!(total, Some(1));
    assert_eq!(conversations[0]["unread_count"], 50);
    assert_eq!(all_messages(&app).await.len(), 50);
}

async fn a_reply_accepted_by_meta_is_sent_with_the_exact_request(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "34600123456",
            "type": "text",
            "text": {"body": "Hola 👋, ¿en qué te ayudo?", "preview_url": false}
        })))
        .respond_with(accepted("wamid.HBgLMzQ2MDAxMjM0NTY"))
        .expect(2)
        .mount(&graph)
        .await;
    let mut socket = app.websocket("/").await;
    let (status, body) = send(&app, "+34 (600) 123-456", "Hola 👋, ¿en qué te ayudo?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["message_id"], "wamid.HBgLMzQ2MDAxMjM0NTY");
    assert_eq!(body["message"]["status"], "sent");
    assert_eq!(body["message"]["direction"], "outbound");
    let conversation_id = body["conversation_id"].as_i64().expect("conversation id");
    assert_eq!(body["message"]["conversation_id"], conversation_id);
    assert_eq!(socket.next_event().await["type"], "new_conversation");
    let stored = socket.next_event().await;
    assert_eq!(
        (stored["type"].as_str(), stored["data"]["status"].as_str()),
        (Some("new_message"), Some("pending")),
        "stored before sending"
    );
    let moved = socket.next_event().await;
    assert_eq!(
        (moved["type"].as_str(), moved["data"]["status"].as_str()),
        (Some("message_status"), Some("sent"))
    );
    let conversation: Value = app
        .get(&format!("/api/v1/conversations/{conversation_id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(conversation["external_id"], "34600123456");
    // A provider answering with an id it already gave is refused, not a 500.
    let (status, reused) = send(&app, "34600123456", "Hola 👋, ¿en qué te ayudo?").await;
    assert_eq!(status, 502, "{reused}");
    assert!(reused["detail"]
        .as_str()
        .unwrap_or("")
        .contains("wamid.HBgLMzQ2MDAxMjM0NTY"));
    assert_eq!(reused["message"]["status"], "failed");
    // The same number again reuses the conversation.
    graph.reset().await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.SECOND"))
        .mount(&graph)
        .await;
    let (_, again) = send(&app, "34600123456", "¿Algo más?").await;
    assert_eq!(again["conversation_id"], conversation_id);
}

async fn a_bad_token_fails_the_reply_with_metas_reason(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": "Error validating access token: Session has expired", "type": "OAuthException",
            "code": 190, "error_subcode": 463, "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}})))
        .expect(1)
        .mount(&graph)
        .await;
    let (status, body) = send(&app, "34600123456", "hola").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "provider_error");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("190"),
        "{body}"
    );
    assert_eq!(body["message"]["status"], "failed");
    assert!(body["message"]["error"]
        .as_str()
        .unwrap_or("")
        .contains("Session has expired"));
    // Not retried: give the worker time to (wrongly) try again before `expect(1)` is checked.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn transient_errors_are_retried_until_sent(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {"message": "An unknown error occurred", "code": 1, "fbtrace_id": "x"}})))
        .up_to_n_times(2)
        .expect(2)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.RETRIED"))
        .expect(1)
        .mount(&graph)
        .await;
    let mut socket = app.websocket("/").await;
    let (status, body) = send(&app, "34600123456", "retry me").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["status"], "pending");
    assert_eq!(body["message"]["status"], "pending");
    let id = body["message"]["id"].as_i64().expect("id");
    let sent = wait_for_status(&app, id, "sent").await;
    assert_eq!(sent["external_message_id"], "wamid.RETRIED");
    let mut saw_sent = false;
    for _ in 0..4 {
        let event = socket.next_event().await;
        if event["type"] == "message_status" {
            assert_eq!(event["data"]["status"], "sent");
            saw_sent = true;
            break;
        }
    }
    assert!(saw_sent, "the retry's success is broadcast");
}

async fn a_slow_graph_api_leaves_the_reply_pending_not_lost(backend: Backend) {
    let (app, graph) = app_with_graph(
        backend,
        &[
            ("WHATSAPP_TIMEOUT_MS", "300"),
            ("SEND_RETRY_BASE_MS", "60000"),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.SLOW").set_delay(Duration::from_secs(3)))
        .mount(&graph)
        .await;
    let started = std::time::Instant::now();
    let (status, body) = send(&app, "34600123456", "slow").await;
    assert_eq!(status, 202, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("timed out"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout cut the wait short"
    );
    let stored: Value = app
        .get(&format!("/api/v1/messages/{}", body["message"]["id"]))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(stored["status"], "pending");
}

async fn a_pending_reply_is_sent_after_a_restart(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&graph)
        .await;
    let (status, body) = send(&app, "34600123456", "survive a restart").await;
    assert_eq!(status, 202, "{body}");
    let id = body["message"]["id"].as_i64().expect("id");
    // Stop before the retry can happen; Meta recovers while we are down.
    let mut app = app;
    app.stop().await;
    graph.reset().await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.AFTER"))
        .expect(1)
        .mount(&graph)
        .await;
    let app = app.restart().await;
    let sent = wait_for_status(&app, id, "sent").await;
    assert_eq!(sent["external_message_id"], "wamid.AFTER");
}

async fn a_reply_that_keeps_failing_is_failed_after_the_last_attempt(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[("SEND_MAX_ATTEMPTS", "3")]).await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {"message": "(#130429) Rate limit hit", "code": 130429, "fbtrace_id": "x"}})))
        .expect(3)
        .mount(&graph)
        .await;
    let (status, body) = send(&app, "34600123456", "doomed").await;
    assert_eq!(status, 202);
    let failed = wait_for_status(&app, body["message"]["id"].as_i64().expect("id"), "failed").await;
    let error = failed["error"].as_str().unwrap_or("");
    assert!(
        error.contains("130429") && error.contains("3 attempts"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn bad_send_requests_store_nothing(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .respond_with(accepted("never"))
        .expect(0)
        .mount(&graph)
        .await;
    for (body, status, loc) in [
        (
            json!({"channel": "whatsapp", "to": "abc", "message": "x"}),
            422,
            Some("to"),
        ),
        (
            json!({"channel": "whatsapp", "to": "12", "message": "x"}),
            422,
            Some("to"),
        ),
        (
            json!({"channel": "whatsapp", "to": "+34 600 12x 456", "message": "x"}),
            422,
            Some("to"),
        ),
        (
            json!({"channel": "whatsapp", "to": "34600123456", "message": "   "}),
            422,
            Some("message"),
        ),
        (
            json!({"channel": "whatsapp", "to": "34600123456", "message": "x".repeat(4097)}),
            422,
            Some("message"),
        ),
        (
            json!({"channel": "telegram", "to": "34600123456", "message": "x"}),
            422,
            Some("channel"),
        ),
        (
            json!({"channel": "whatsapp", "to": 34600123456_i64, "message": "x"}),
            422,
            Some("to"),
        ),
        (
            json!({"channel": "whatsapp", "message": "x"}),
            422,
            Some("to"),
        ),
        (
            json!({"channel": "whatsapp", "to": "34600123456", "message": "x", "conversation_id": 999}),
            422,
            Some("conversation_id"),
        ),
        (
            json!({"channel": "instagram", "to": "34600123456", "message": "x"}),
            503,
            None,
        ),
    ] {
        let response = app.post_json("/api/v1/send", &body).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error: Value = response.json().await.expect("json");
        match loc {
            Some(field) => assert_eq!(error["detail"][0]["loc"], json!(["body", field]), "{body}"),
            None => assert_eq!(error["code"], "channel_not_configured"),
        }
    }
    let unconfigured = TestApp::spawn(backend).await;
    let response = unconfigured
        .post_json(
            "/api/v1/send",
            &json!({"channel": "whatsapp", "to": "34600123456", "message": "x"}),
        )
        .await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["code"], "channel_not_configured");
    let detail = error["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("WHATSAPP_ACCESS_TOKEN") && detail.contains("WHATSAPP_PHONE_NUMBER_ID"),
        "{detail}"
    );
    assert_eq!(all_messages(&app).await.len(), 0);
    assert_eq!(all_messages(&unconfigured).await.len(), 0);
    assert_eq!(app.list("/api/v1/conversations").await.1, Some(0));
}
