//! `GET /metrics` in Prometheus text format.

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(metrics_count_requests_sockets_webhooks_outbox_and_llm_calls);

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("text")
}

async fn metrics_count_requests_sockets_webhooks_outbox_and_llm_calls(backend: Backend) {
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"choices": [{"message": {"content": "¡Hola!"}}]})),
        )
        .mount(&llm)
        .await;
    let base = format!("{}/v1", llm.uri());
    let app = TestApp::spawn_with(
        backend,
        &[("LLM_BASE_URL", base.as_str()), ("LLM_MODEL", "m")],
    )
    .await;
    let _socket = app.websocket("/").await;
    for _ in 0..3 {
        app.get("/api/v1/messages?limit=5").await;
    }
    app.get("/api/v1/messages/424242").await;
    let delivery = json!({"entry": [{"changes": [{"field": "messages", "value": {
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600123456"}],
        "messages": [{"from": "34600123456", "id": "wamid.M1", "timestamp": "1764000000", "type": "text", "text": {"body": "hola"}}]}}]}]});
    app.post_json("/webhook/whatsapp", &delivery).await;
    app.post_json("/webhook/whatsapp", &delivery).await;
    app.post_json(
        "/v1/channels/whatsapp/gateway/inbound",
        &json!({"message_id": "g1", "from_number": "34611111111", "text": "hola"}),
    )
    .await;

    let text = scrape(&app).await;
    let route = |r: &str, status: u16| {
        format!(
            r#"switchboard_http_request_duration_seconds_count{{method="GET",route="{r}",status="{status}"}}"#
        )
    };
    assert_eq!(
        value(&text, &route("/api/v1/messages", 200)),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(&text, &route("/api/v1/messages/{id}", 404)),
        Some(1.0),
        "by route pattern, not raw path"
    );
    assert!(
        !text.contains("route=\"/api/v1/messages/424242\""),
        "raw paths never become labels"
    );
    assert_eq!(value(&text, "switchboard_websocket_open "), Some(1.0));
    assert_eq!(
        value(&text, "switchboard_webhook_messages_stored_total "),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "switchboard_webhook_duplicates_ignored_total "),
        Some(1.0)
    );
    assert_eq!(value(&text, "switchboard_outbox_pending "), Some(0.0));
    assert_eq!(
        value(
            &text,
            r#"switchboard_llm_call_duration_seconds_count{outcome="ok"}"#
        ),
        Some(1.0)
    );
    assert!(
        value(&text, "switchboard_events_published_total ").is_some_and(|n| n >= 4.0),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_are_guarded_by_api_keys_or_served_on_their_own_address() {
    let guarded = TestApp::spawn_with(Backend::Sqlite, &[("API_KEYS", "ops:k1")]).await;
    assert_eq!(guarded.get("/metrics").await.status(), 401);
    let with_key = guarded
        .client
        .get(guarded.url("/metrics"))
        .header("x-api-key", "k1")
        .send()
        .await
        .expect("GET");
    assert_eq!(with_key.status(), 200);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let address = format!("127.0.0.1:{port}");
    let separate = TestApp::spawn_with(
        Backend::Sqlite,
        &[("METRICS_ADDR", address.as_str()), ("API_KEYS", "ops:k1")],
    )
    .await;
    assert_eq!(
        separate.get("/metrics").await.status(),
        404,
        "not on the main port"
    );
    let scraped = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("GET");
    assert_eq!(scraped.status(), 200);
    assert!(scraped
        .text()
        .await
        .expect("text")
        .contains("switchboard_websocket_open"));
}
