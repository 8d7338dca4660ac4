//! The gateway endpoint and the assistant, against a wiremock fake of an OpenAI-compatible LLM.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{text_delivery, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    the_llm_gets_the_prompt_and_bounded_history_and_its_reply_is_stored,
    every_llm_failure_gives_the_fallback_with_its_reason,
    gateway_keys_are_checked,
    bad_gateway_bodies_are_422,
    a_repeated_message_id_returns_the_stored_reply_without_asking_again,
    concurrent_duplicates_ask_the_llm_once_and_store_once,
    an_agent_taking_over_silences_the_assistant_until_handed_back,
    cloud_api_messages_get_an_auto_reply_after_the_acknowledgement,
    the_history_follows_the_conversation_as_recorded_not_the_gateways_clock,
);

const PROMPT: &str = "Eres el asistente del restaurante La Tasca.";
const FALLBACK: &str = "Gracias, te respondemos enseguida.";
const LLM_KEY: &str = "sk-test-llm";

/// Answers `reply to: <last user message>`.
struct Echo;

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .map(|m| m["content"].clone())
            .unwrap_or(Value::Null);
        let text = format!("  reply to: {}  ", last.as_str().unwrap_or(""));
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
        }))
    }
}

/// An OpenAI-style answer with `text`, sent after `delay`.
fn llm_reply(text: &str, delay: Duration) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"choices": [{"message": {"role": "assistant", "content": text}}]}))
        .set_delay(delay)
}

async fn app_with_llm(backend: Backend, extra: &[(&str, &str)]) -> (TestApp, MockServer) {
    let llm = MockServer::start().await;
    let base = format!("{}/v1", llm.uri());
    let mut vars = vec![
        ("LLM_BASE_URL", base.as_str()),
        ("LLM_MODEL", "test-model"),
        ("LLM_API_KEY", LLM_KEY),
        ("LLM_TIMEOUT_SECS", "1"),
        ("ASSISTANT_SYSTEM_PROMPT", PROMPT),
        ("ASSISTANT_FALLBACK_REPLY", FALLBACK),
    ];
    vars.extend_from_slice(extra);
    (TestApp::spawn_with(backend, &vars).await, llm)
}

/// An app with an LLM fake whose WhatsApp sends go to `graph` (phone number id `123`).
async fn app_with_llm_and_graph(
    backend: Backend,
    graph: &MockServer,
    extra: &[(&str, &str)],
) -> (TestApp, MockServer) {
    let uri = graph.uri();
    let mut vars = vec![
        ("WHATSAPP_API_BASE_URL", uri.as_str()),
        ("WHATSAPP_ACCESS_TOKEN", "t"),
        ("WHATSAPP_PHONE_NUMBER_ID", "123"),
    ];
    vars.extend_from_slice(extra);
    app_with_llm(backend, &vars).await
}

async fn gateway(app: &TestApp, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/v1/channels/whatsapp/gateway/inbound"))
        .json(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.expect("POST gateway");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

fn inbound(id: &str, text: &str) -> Value {
    json!({"message_id": id, "from_number": "34600123456", "text": text})
}

async fn messages_of(app: &TestApp) -> Vec<Value> {
    let (_, _, body) = app.list("/api/v1/messages?order=asc&limit=500").await;
    body.as_array().cloned().unwrap_or_default()
}

fn metadata(message: &Value) -> Value {
    serde_json::from_str(message["message_metadata"].as_str().unwrap_or("null"))
        .unwrap_or(Value::Null)
}

async fn the_llm_gets_the_prompt_and_bounded_history_and_its_reply_is_stored(backend: Backend) {
    let (app, llm) = app_with_llm(backend, &[("ASSISTANT_HISTORY_LIMIT", "3")]).await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Echo)
        .expect(5)
        .mount(&llm)
        .await;
    let mut socket = app.websocket("/").await;
    for n in 1..=4 {
        let (status, body) =
            gateway(&app, &inbound(&format!("m{n}"), &format!("Hola {n}")), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"conversation_id": "whatsapp:34600123456", "message_id": format!("m{n}"), "response_text": format!("reply to: Hola {n}"), "assistant": true})
        );
    }
    let requests = llm.received_requests().await.expect("recorded");
    let last: Value = serde_json::from_slice(&requests[3].body).expect("JSON");
    assert_eq!(last["model"], "test-model");
    assert_eq!(
        last["messages"],
        json!([
            {"role": "system", "content": PROMPT},
            {"role": "assistant", "content": "reply to: Hola 2"},
            {"role": "user", "content": "Hola 3"},
            {"role": "assistant", "content": "reply to: Hola 3"},
            {"role": "user", "content": "Hola 4"},
        ]),
        "system prompt first, the last 3 earlier messages in order, the new message last"
    );
    let auth = requests[3]
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    assert_eq!(auth, Some(format!("Bearer {LLM_KEY}").as_str()));
    let first: Value = serde_json::from_slice(&requests[0].body).expect("JSON");
    assert_eq!(
        first["messages"].as_array().map(Vec::len),
        Some(2),
        "no history before the first message"
    );

    let stored = messages_of(&app).await;
    assert_eq!(stored.len(), 8);
    let reply = &stored[1];
    assert_eq!(
        (reply["direction"].as_str(), reply["sender_name"].as_str()),
        (Some("outbound"), Some("assistant"))
    );
    let meta = metadata(reply);
    assert_eq!(meta["model"], "test-model");
    assert!(meta["latency_ms"].is_u64());
    assert_eq!(metadata(&stored[0])["source"], "gateway");
    // The gateway's own time is kept when sent.
    let mut dated = inbound("dated", "Hola otra vez");
    dated["timestamp_iso"] = json!("2026-01-08T10:00:00+01:00");
    gateway(&app, &dated, None).await;
    let (_, _, found) = app.list("/api/v1/messages?order=asc&limit=1").await;
    assert_eq!(found[0]["timestamp"], "2026-01-08T09:00:00Z");
    // Agents watch the exchange live.
    assert_eq!(socket.next_event().await["type"], "new_conversation");
    let inbound_event = socket.next_event().await;
    assert_eq!(
        (
            inbound_event["type"].as_str(),
            inbound_event["data"]["content"].as_str()
        ),
        (Some("new_message"), Some("Hola 1"))
    );
    let reply_event = socket.next_event().await;
    assert_eq!(reply_event["data"]["content"], "reply to: Hola 1");
}

async fn every_llm_failure_gives_the_fallback_with_its_reason(backend: Backend) {
    let ok_but =
        |body: &str| ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/json");
    let cases: Vec<(&str, ResponseTemplate)> = vec![
        (
            "llm_status_500",
            ResponseTemplate::new(500).set_body_string("boom"),
        ),
        (
            "llm_timeout",
            ResponseTemplate::new(200)
                .set_body_json(json!({"choices": [{"message": {"content": "late"}}]}))
                .set_delay(Duration::from_secs(3)),
        ),
        ("llm_malformed_response", ok_but("{not json")),
        ("llm_malformed_response", ok_but(r#"{"choices": []}"#)),
        (
            "llm_empty_reply",
            ok_but(r#"{"choices": [{"message": {"role": "assistant", "content": "   "}}]}"#),
        ),
    ];
    for (n, (reason, response)) in cases.into_iter().enumerate() {
        let (app, llm) = app_with_llm(backend, &[]).await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(response)
            .mount(&llm)
            .await;
        let started = Instant::now();
        let (status, body) = gateway(&app, &inbound(&format!("f{n}"), "¿Abrís hoy?"), None).await;
        assert_eq!(status, 200, "{reason}: {body}");
        assert_eq!(body["response_text"], FALLBACK, "{reason}");
        assert!(
            started.elapsed() < Duration::from_millis(2900),
            "{reason}: bounded by LLM_TIMEOUT_SECS"
        );
        let stored = messages_of(&app).await;
        let meta = metadata(&stored[1]);
        assert_eq!(
            (meta["fallback"].as_bool(), meta["reason"].as_str()),
            (Some(true), Some(reason)),
            "{reason}"
        );
    }
    // No LLM configured at all.
    let app = TestApp::spawn(backend).await;
    let (status, body) = gateway(&app, &inbound("none", "Hola"), None).await;
    assert_eq!(status, 200);
    assert!(
        !body["response_text"].as_str().unwrap_or("").is_empty(),
        "the default fallback is not empty"
    );
    assert_eq!(
        metadata(&messages_of(&app).await[1])["reason"],
        "llm_not_configured"
    );
}

async fn gateway_keys_are_checked(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[(
            "AI_ASSISTANTS_API_KEYS",
            "tasca:key-tasca,pizzeria:key-pizza",
        )],
    )
    .await;
    for (key, status) in [
        (None, 401),
        (Some("wrong"), 401),
        (Some("key-tasc"), 401),
        (Some(""), 401),
    ] {
        let (got, body) = gateway(&app, &inbound("k0", "hola"), key).await;
        assert_eq!(got, status, "{key:?}");
        assert_eq!(body["code"], "unauthorized");
    }
    assert!(
        messages_of(&app).await.is_empty(),
        "refused requests store nothing"
    );
    let (status, _) = gateway(&app, &inbound("k1", "hola"), Some("key-pizza")).await;
    assert_eq!(status, 200);
    assert_eq!(
        metadata(&messages_of(&app).await[0])["project"],
        "pizzeria",
        "the project is kept"
    );
    // The API's own keys are separate; the gateway never needs them.
    let dev = TestApp::spawn_with(backend, &[("API_KEYS", "web:api-key")]).await;
    assert_eq!(
        gateway(&dev, &inbound("k2", "hola"), None).await.0,
        200,
        "dev mode accepts no key"
    );
    assert_eq!(
        gateway(&dev, &inbound("k3", "hola"), Some("anything"))
            .await
            .0,
        200
    );
}

async fn bad_gateway_bodies_are_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (body, field) in [
        (
            json!({"from_number": "34600123456", "text": "x"}),
            "message_id",
        ),
        (
            json!({"message_id": "  ", "from_number": "34600123456", "text": "x"}),
            "message_id",
        ),
        (
            json!({"message_id": "a", "from_number": "", "text": "x"}),
            "from_number",
        ),
        (
            json!({"message_id": "a", "from_number": 34600123456_i64, "text": "x"}),
            "from_number",
        ),
        (
            json!({"message_id": "a", "from_number": "34600123456", "text": 5}),
            "text",
        ),
        (
            json!({"message_id": "a", "from_number": "34600123456"}),
            "text",
        ),
        (
            json!({"message_id": "a", "from_number": "34600123456", "text": "x", "timestamp_iso": "ayer"}),
            "timestamp_iso",
        ),
    ] {
        let (status, error) = gateway(&app, &body, None).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(error["detail"][0]["loc"], json!(["body", field]), "{body}");
    }
    assert!(messages_of(&app).await.is_empty());
}

async fn a_repeated_message_id_returns_the_stored_reply_without_asking_again(backend: Backend) {
    let (app, llm) = app_with_llm(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Echo)
        .expect(1)
        .mount(&llm)
        .await;
    let (_, first) = gateway(&app, &inbound("same", "Quiero reservar"), None).await;
    for _ in 0..3 {
        let (status, again) = gateway(&app, &inbound("same", "Quiero reservar"), None).await;
        assert_eq!(status, 200);
        assert_eq!(again, first);
    }
    assert_eq!(messages_of(&app).await.len(), 2, "one inbound, one reply");
}

async fn concurrent_duplicates_ask_the_llm_once_and_store_once(backend: Backend) {
    let (app, llm) = app_with_llm(backend, &[("LLM_TIMEOUT_SECS", "5")]).await;
    let slow = llm_reply("¡Claro! ¿Para cuántos?", Duration::from_millis(800));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(slow)
        .expect(1)
        .mount(&llm)
        .await;
    let body = inbound("dup", "Hola, quiero hacer una reserva");
    let (a, b, c) = tokio::join!(
        gateway(&app, &body, None),
        gateway(&app, &body, None),
        gateway(&app, &body, None)
    );
    for (status, reply) in [&a, &b, &c] {
        assert_eq!(*status, 200);
        assert_eq!(reply["response_text"], "¡Claro! ¿Para cuántos?");
    }
    assert_eq!(messages_of(&app).await.len(), 2);
}

async fn an_agent_taking_over_silences_the_assistant_until_handed_back(backend: Backend) {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.AGENT"}]})),
        )
        .mount(&graph)
        .await;
    let (app, llm) = app_with_llm_and_graph(backend, &graph, &[]).await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Echo)
        .expect(2)
        .mount(&llm)
        .await;
    let (_, first) = gateway(&app, &inbound("h1", "Hola"), None).await;
    assert_eq!(first["assistant"], true);
    let conversation = app.list("/api/v1/conversations").await.2[0].clone();
    assert_eq!(conversation["assistant_enabled"], true);
    let id = conversation["id"].as_i64().expect("id");

    // An agent answers: the assistant steps back, and everyone sees it.
    let mut socket = app.websocket("/").await;
    let sent = app
        .post_json("/api/v1/send", &json!({"channel": "whatsapp", "to": "34600123456", "message": "Soy Laura, te atiendo yo"}))
        .await;
    assert_eq!(sent.status(), 200);
    let update = socket.next_event().await;
    assert_eq!(
        (
            update["type"].as_str(),
            update["data"]["assistant_enabled"].as_bool()
        ),
        (Some("conversation_updated"), Some(false))
    );

    let (status, silent) = gateway(&app, &inbound("h2", "¿Y para mañana?"), None).await;
    assert_eq!(status, 200);
    assert_eq!(silent["response_text"], "");
    assert_eq!(silent["assistant"], false);
    let stored = messages_of(&app).await;
    assert_eq!(
        stored.last().map(|m| m["content"].clone()),
        Some(json!("¿Y para mañana?")),
        "the inbound message is still stored"
    );

    // Handed back by PATCH.
    let patched = app
        .patch_json(
            &format!("/api/v1/conversations/{id}"),
            &json!({"assistant_enabled": true}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let (_, back) = gateway(&app, &inbound("h3", "¿Sigue ahí?"), None).await;
    assert_eq!(back["response_text"], "reply to: ¿Sigue ahí?");
}

async fn cloud_api_messages_get_an_auto_reply_after_the_acknowledgement(backend: Backend) {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v26.0/123/messages"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.AUTO"}]})),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let (app, llm) = app_with_llm_and_graph(
        backend,
        &graph,
        &[("ASSISTANT_AUTOREPLY", "true"), ("LLM_TIMEOUT_SECS", "5")],
    )
    .await;
    let slow_echo = llm_reply("Abrimos a las 13:00", Duration::from_millis(700));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(slow_echo)
        .expect(1)
        .mount(&llm)
        .await;
    let delivery = text_delivery("wamid.IN", "34600123456", "Ana", "¿A qué hora abrís?");
    let started = Instant::now();
    assert_eq!(
        app.post_json("/webhook/whatsapp", &delivery).await.status(),
        200
    );
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "Meta's 200 does not wait for the LLM"
    );
    // Redelivered while the reply is being composed: still one reply.
    assert_eq!(
        app.post_json("/webhook/whatsapp", &delivery).await.status(),
        200
    );
    let mut reply = None;
    for _ in 0..100 {
        reply = messages_of(&app)
            .await
            .into_iter()
            .find(|m| m["direction"] == "outbound" && m["status"] == "sent");
        if reply.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = reply.expect("the auto-reply was sent");
    assert_eq!(reply["content"], "Abrimos a las 13:00");
    assert_eq!(reply["external_message_id"], "wamid.AUTO");
    let sends = graph.received_requests().await.expect("recorded");
    let body: Value = serde_json::from_slice(&sends[0].body).expect("JSON");
    assert_eq!(
        (body["to"].as_str(), body["text"]["body"].as_str()),
        (Some("34600123456"), Some("Abrimos a las 13:00"))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages_of(&app).await.len(), 2);
}

/// SIGTERM-style shutdown while a request waits on the LLM: the request still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests() {
    let (mut app, llm) = app_with_llm(Backend::Sqlite, &[("LLM_TIMEOUT_SECS", "5")]).await;
    let slow = llm_reply("Terminado", Duration::from_millis(1500));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(slow)
        .mount(&llm)
        .await;
    let request = app
        .client
        .post(app.url("/v1/channels/whatsapp/gateway/inbound"))
        .json(&inbound("inflight", "¿Me esperas?"))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;
    let response = in_flight
        .await
        .expect("task")
        .expect("the in-flight request was answered");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["response_text"], "Terminado");
}

/// The gateway stamps messages at one-second resolution while replies carry the server's clock:
/// three messages in one second must still reach the LLM as the exchange happened.
async fn the_history_follows_the_conversation_as_recorded_not_the_gateways_clock(backend: Backend) {
    let (app, llm) = app_with_llm(backend, &[("ASSISTANT_HISTORY_LIMIT", "4")]).await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Echo)
        .expect(3)
        .mount(&llm)
        .await;
    // A second in the past, so every reply's server time is later than every message's.
    let second = (chrono::Utc::now() - chrono::Duration::seconds(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for n in 1..=3 {
        let mut body = inbound(&format!("same-second-{n}"), &format!("Mensaje {n}"));
        body["timestamp_iso"] = json!(second);
        let (status, reply) = gateway(&app, &body, None).await;
        assert_eq!(status, 200, "{reply}");
    }
    let requests = llm.received_requests().await.expect("recorded");
    let third: Value = serde_json::from_slice(&requests[2].body).expect("JSON");
    assert_eq!(
        third["messages"],
        json!([
            {"role": "system", "content": PROMPT},
            {"role": "user", "content": "Mensaje 1"},
            {"role": "assistant", "content": "reply to: Mensaje 1"},
            {"role": "user", "content": "Mensaje 2"},
            {"role": "assistant", "content": "reply to: Mensaje 2"},
            {"role": "user", "content": "Mensaje 3"},
        ])
    );
}
