//! Instagram Direct: `/webhook/instagram` in, `POST /api/v1/send` out, against a wiremock fake
//! of Instagram's Graph API (sends and profile look-ups), on both databases.
//!
//! `inbound.rs`: fixtures, signatures, every event kind, redelivery. `names.rs`: the customer's
//! name looked up after the commit. `echoes.rs`: the business's own messages and read receipts.
//! `sending.rs`: the Send API's outcomes and the request's validation. `channels.rs`:
//! configuration, the assistant, and Instagram kept apart from WhatsApp. `properties.rs`:
//! mutated fixtures never produce a 5xx.

mod channels;
mod echoes;
mod inbound;
mod names;
mod properties;
mod sending;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, TestApp};

pub(crate) const TOKEN: &str = "IGAA-test-token";
pub(crate) const ACCOUNT_ID: &str = "17841400000000001";
/// A customer's Instagram-scoped id.
pub(crate) const ANA: &str = "5614879045272581";
pub(crate) const LEO: &str = "6625980156383692";

pub(crate) fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meta/instagram")
}

/// Every fixture as (file name, bytes), sorted by name.
pub(crate) fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read(&p).expect("read fixture"))
        })
        .collect();
    files.sort();
    files
}

/// A webhook body carrying `items` in `messaging[]`.
pub(crate) fn envelope(items: Vec<Value>) -> Value {
    json!({"object": "instagram", "entry": [{"id": ACCOUNT_ID, "time": 1736330400000_i64, "messaging": items}]})
}

/// A customer's text, as Meta sends it.
pub(crate) fn dm(mid: &str, from: &str, text: &str) -> Value {
    envelope(vec![json!({
        "sender": {"id": from}, "recipient": {"id": ACCOUNT_ID}, "timestamp": 1736330400000_i64,
        "message": {"mid": mid, "text": text}
    })])
}

/// The echo of a message the business sent to `to`.
pub(crate) fn echo(mid: &str, to: &str, text: &str) -> Value {
    envelope(vec![json!({
        "sender": {"id": ACCOUNT_ID}, "recipient": {"id": to}, "timestamp": 1736330460000_i64,
        "message": {"mid": mid, "text": text, "is_echo": true}
    })])
}

/// `from` has seen the business's messages up to `mid`.
pub(crate) fn read(from: &str, mid: &str) -> Value {
    envelope(vec![json!({
        "sender": {"id": from}, "recipient": {"id": ACCOUNT_ID}, "timestamp": 1736330520000_i64,
        "read": {"mid": mid}
    })])
}

pub(crate) async fn post_raw(
    app: &TestApp,
    body: &[u8],
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/webhook/instagram"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    request.send().await.expect("POST /webhook/instagram")
}

/// Posts `body` unsigned and asserts the 200.
pub(crate) async fn deliver(app: &TestApp, body: &Value) {
    let response = post_raw(app, body.to_string().as_bytes(), None).await;
    assert_eq!(response.status(), 200, "{body}");
}

/// A server whose Instagram Graph API is a fresh fake.
pub(crate) async fn app_with_graph(
    backend: Backend,
    extra: &[(&str, &str)],
) -> (TestApp, MockServer) {
    let graph = MockServer::start().await;
    let uri = graph.uri();
    let mut vars = vec![
        ("INSTAGRAM_API_BASE_URL", uri.as_str()),
        ("INSTAGRAM_ACCESS_TOKEN", TOKEN),
        ("INSTAGRAM_ACCOUNT_ID", ACCOUNT_ID),
        ("SEND_RETRY_BASE_MS", "50"),
        ("OUTBOX_POLL_MS", "50"),
    ];
    vars.extend_from_slice(extra);
    (TestApp::spawn_with(backend, &vars).await, graph)
}

pub(crate) fn send_path() -> String {
    format!("/v26.0/{ACCOUNT_ID}/messages")
}

/// The Send API's success answer.
pub(crate) fn accepted(to: &str, mid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"recipient_id": to, "message_id": mid}))
}

/// A Graph error answer.
pub(crate) fn graph_error(
    status: u16,
    code: i64,
    subcode: Option<i64>,
    message: &str,
) -> ResponseTemplate {
    let mut error =
        json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"});
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    ResponseTemplate::new(status).set_body_json(json!({"error": error}))
}

/// Mounts the profile of `igsid` answering `response`, expected `times` times.
pub(crate) async fn profile(
    graph: &MockServer,
    igsid: &str,
    response: ResponseTemplate,
    times: impl Into<wiremock::Times>,
) {
    Mock::given(method("GET"))
        .and(path(format!("/v26.0/{igsid}")))
        .and(query_param("fields", "name,username"))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {TOKEN}").as_str(),
        ))
        .respond_with(response)
        .expect(times)
        .mount(graph)
        .await;
}

/// How many profile look-ups the fake has seen for `igsid`.
pub(crate) async fn lookups(graph: &MockServer, igsid: &str) -> usize {
    let wanted = format!("/v26.0/{igsid}");
    graph
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == "GET" && r.url.path() == wanted)
        .count()
}

/// The bodies the fake's Send API received, in order.
pub(crate) async fn sent_bodies(graph: &MockServer) -> Vec<Value> {
    let wanted = send_path();
    graph
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == wanted)
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON send body"))
        .collect()
}

/// `POST /api/v1/send` on `instagram` with `fields`; (status, JSON).
pub(crate) async fn send(app: &TestApp, fields: Value) -> (u16, Value) {
    let mut body = json!({"channel": "instagram"});
    if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), fields) {
        target.extend(extra);
    }
    let response = app.post_json("/api/v1/send", &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("send JSON"))
}

/// Every message, oldest first.
pub(crate) async fn messages(app: &TestApp) -> Vec<Value> {
    crate::whatsapp::all_messages(app).await
}

/// The conversations, newest activity first.
pub(crate) async fn conversations(app: &TestApp) -> Vec<Value> {
    let (status, _, body) = app.list("/api/v1/conversations?limit=500").await;
    assert_eq!(status, 200);
    body.as_array().cloned().unwrap_or_default()
}

pub(crate) async fn conversation(app: &TestApp, id: i64) -> Value {
    app.get(&format!("/api/v1/conversations/{id}"))
        .await
        .json()
        .await
        .expect("conversation JSON")
}

pub(crate) async fn message(app: &TestApp, id: i64) -> Value {
    app.get(&format!("/api/v1/messages/{id}"))
        .await
        .json()
        .await
        .expect("message JSON")
}

/// Polls `check` every 50 ms until it holds, or fails after 10 s.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}
