//! Agents' replies through the WhatsApp Web gateway's send endpoint, for businesses that run the
//! gateway (alone, or beside the Cloud API), against a local fake of that endpoint.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{text_delivery, Backend, TestApp};
use crate::on_both_backends;
use crate::whatsapp::{accepted, graph_path, wait_for_status, PHONE_NUMBER_ID, TOKEN};

on_both_backends!(
    a_reply_goes_to_the_gateway_with_its_key_and_our_message_id,
    transient_gateway_failures_are_retried_with_the_same_message_id,
    a_gateway_refusal_fails_the_reply_with_its_reason,
    a_pending_reply_is_delivered_once_after_a_restart,
    the_assistant_never_answers_through_the_gateway,
    with_both_ways_each_customer_is_answered_the_way_they_wrote,
    with_neither_way_sending_is_503_naming_both,
);

const KEY: &str = "gateway-send-key";

async fn app_with_gateway(
    backend: Backend,
    gateway: &MockServer,
    extra: &[(&str, &str)],
) -> TestApp {
    let url = format!("{}/send", gateway.uri());
    let mut vars = vec![
        ("WHATSAPP_GATEWAY_SEND_URL", url.as_str()),
        ("WHATSAPP_GATEWAY_API_KEY", KEY),
        ("SEND_RETRY_BASE_MS", "50"),
        ("OUTBOX_POLL_MS", "50"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

/// A customer writes through the gateway; returns their conversation's id.
async fn customer_writes(app: &TestApp, id: &str, number: &str) -> i64 {
    let body = json!({"message_id": id, "from_number": number, "text": "Hola"});
    let response = app
        .post_json("/v1/channels/whatsapp/gateway/inbound", &body)
        .await;
    assert_eq!(response.status(), 200);
    let (_, _, conversations) = app.list("/api/v1/conversations").await;
    conversations
        .as_array()
        .and_then(|all| all.iter().find(|c| c["external_id"] == number))
        .and_then(|c| c["id"].as_i64())
        .expect("the customer's conversation")
}

async fn reply(app: &TestApp, conversation_id: i64, text: &str) -> (u16, Value) {
    let response = app
        .post_json(
            "/api/v1/send",
            &json!({"channel": "whatsapp", "conversation_id": conversation_id, "message": text}),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

fn bodies(requests: &[wiremock::Request]) -> Vec<Value> {
    requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON"))
        .collect()
}

async fn a_reply_goes_to_the_gateway_with_its_key_and_our_message_id(backend: Backend) {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/send"))
        .and(header("x-api-key", KEY))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"message_id": "3EB0GATEWAY"})),
        )
        .expect(1)
        .mount(&gateway)
        .await;
    let app = app_with_gateway(backend, &gateway, &[]).await;
    let conversation = customer_writes(&app, "in-1", "34600123456").await;
    let (status, body) = reply(&app, conversation, "Soy Laura, te atiendo yo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message_id"], "3EB0GATEWAY");
    assert_eq!(body["message"]["status"], "sent");
    let sent = bodies(&gateway.received_requests().await.expect("recorded"));
    assert_eq!(
        sent,
        vec![
            json!({"message_id": body["message"]["id"], "to": "34600123456", "text": "Soy Laura, te atiendo yo"})
        ]
    );
    let (_, _, channels) = app.list("/api/v1/channels").await;
    assert_eq!(
        channels[0]["configured"], true,
        "the gateway alone makes WhatsApp configured"
    );
}

async fn transient_gateway_failures_are_retried_with_the_same_message_id(backend: Backend) {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&gateway)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .mount(&gateway)
        .await;
    let app = app_with_gateway(backend, &gateway, &[]).await;
    let conversation = customer_writes(&app, "in-1", "34600123456").await;
    let (status, body) = reply(&app, conversation, "¿Sigues ahí?").await;
    assert_eq!(status, 202, "{body}");
    let id = body["message"]["id"].as_i64().expect("id");
    let sent = wait_for_status(&app, id, "sent").await;
    assert_eq!(
        sent["external_message_id"],
        Value::Null,
        "the gateway gave no id"
    );
    let ids: Vec<Value> = bodies(&gateway.received_requests().await.expect("recorded"))
        .into_iter()
        .map(|b| b["message_id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(id); 3]);
}

async fn a_gateway_refusal_fails_the_reply_with_its_reason(backend: Backend) {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"detail": "number not on WhatsApp"})),
        )
        .expect(1)
        .mount(&gateway)
        .await;
    let app = app_with_gateway(backend, &gateway, &[]).await;
    let conversation = customer_writes(&app, "in-1", "34600123456").await;
    let (status, body) = reply(&app, conversation, "Hola").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "provider_error");
    assert!(body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("number not on WhatsApp"));
    assert_eq!(body["message"]["status"], "failed");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn a_pending_reply_is_delivered_once_after_a_restart(backend: Backend) {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&gateway)
        .await;
    // Retries far apart: the reply waits in the outbox across the restart.
    let app = app_with_gateway(backend, &gateway, &[("SEND_RETRY_BASE_MS", "600000")]).await;
    let conversation = customer_writes(&app, "in-1", "34600123456").await;
    let (status, body) = reply(&app, conversation, "Te llamo mañana").await;
    assert_eq!(status, 202, "{body}");
    let id = body["message"]["id"].as_i64().expect("id");
    gateway.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "3EB0LATER"})))
        .mount(&gateway)
        .await;
    let mut app = app.restart().await;
    // Due again only after its backoff: make it due now, as time passing would.
    force_due(&app, id).await;
    let sent = wait_for_status(&app, id, "sent").await;
    assert_eq!(sent["external_message_id"], "3EB0LATER");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gateway.received_requests().await.expect("recorded").len(),
        1
    );
    app.stop().await;
}

/// Makes a waiting message due at once (the backoff would otherwise take minutes).
async fn force_due(app: &TestApp, id: i64) {
    let sql = "UPDATE messages SET next_attempt_at = created_at WHERE id = $1";
    match app.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query(sql)
                .bind(id)
                .execute(&pool)
                .await
                .expect("update");
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query(sql)
                .bind(id)
                .execute(&pool)
                .await
                .expect("update");
        }
    }
}

async fn the_assistant_never_answers_through_the_gateway(backend: Backend) {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&gateway)
        .await;
    let app = app_with_gateway(backend, &gateway, &[("ASSISTANT_AUTOREPLY", "true")]).await;
    let delivery = text_delivery("wamid.AUTO", "34600123456", "Ana", "¿Abrís hoy?");
    assert_eq!(
        app.post_json("/webhook/whatsapp", &delivery).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, _, messages) = app.list("/api/v1/messages").await;
    assert_eq!(
        messages.as_array().map(Vec::len),
        Some(1),
        "no reply stored"
    );
}

async fn with_both_ways_each_customer_is_answered_the_way_they_wrote(backend: Backend) {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "3EB0G"})))
        .expect(1)
        .mount(&gateway)
        .await;
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.CLOUD"))
        .expect(1)
        .mount(&graph)
        .await;
    let base = graph.uri();
    let app = app_with_gateway(
        backend,
        &gateway,
        &[
            ("WHATSAPP_API_BASE_URL", base.as_str()),
            ("WHATSAPP_ACCESS_TOKEN", TOKEN),
            ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
        ],
    )
    .await;
    let through_gateway = customer_writes(&app, "in-g", "34600111111").await;
    let delivery = text_delivery("wamid.IN", "34600222222", "Bea", "Hola");
    assert_eq!(
        app.post_json("/webhook/whatsapp", &delivery).await.status(),
        200
    );
    let (_, _, conversations) = app.list("/api/v1/conversations").await;
    let through_cloud = conversations
        .as_array()
        .and_then(|all| all.iter().find(|c| c["external_id"] == "34600222222"))
        .and_then(|c| c["id"].as_i64())
        .expect("Bea's conversation");
    let (status, first) = reply(&app, through_gateway, "Por el gateway").await;
    assert_eq!(
        (status, first["message_id"].as_str()),
        (200, Some("3EB0G")),
        "{first}"
    );
    let (status, second) = reply(&app, through_cloud, "Por la API").await;
    assert_eq!(
        (status, second["message_id"].as_str()),
        (200, Some("wamid.CLOUD")),
        "{second}"
    );
    let to_gateway = bodies(&gateway.received_requests().await.expect("recorded"));
    assert_eq!(to_gateway[0]["to"], "34600111111");
    let to_cloud = bodies(&graph.received_requests().await.expect("recorded"));
    assert_eq!(to_cloud[0]["to"], "34600222222");
}

async fn with_neither_way_sending_is_503_naming_both(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .post_json(
            "/api/v1/send",
            &json!({"channel": "whatsapp", "to": "34600123456", "message": "Hola"}),
        )
        .await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.expect("JSON");
    assert_eq!(error["code"], "channel_not_configured");
    let detail = error["detail"].as_str().unwrap_or("");
    for variable in [
        "WHATSAPP_ACCESS_TOKEN",
        "WHATSAPP_PHONE_NUMBER_ID",
        "WHATSAPP_GATEWAY_SEND_URL",
    ] {
        assert!(detail.contains(variable), "{detail}");
    }
}
