//! `API_KEYS` and CORS.

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    api_keys_guard_the_api_and_the_websocket,
    without_api_keys_the_api_is_open
);

const KEYS: &str = "frontend:k-front-123,ops:k-ops-456";

async fn api_keys_guard_the_api_and_the_websocket(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("API_KEYS", KEYS)]).await;
    let get = |key: Option<(&'static str, &'static str)>| {
        let mut request = app.client.get(app.url("/api/v1/conversations"));
        if let Some((name, value)) = key {
            request = request.header(name, value);
        }
        request.send()
    };
    let missing = get(None).await.expect("GET");
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(
        get(Some(("x-api-key", "k-front-12")))
            .await
            .expect("GET")
            .status(),
        401
    );
    assert_eq!(
        get(Some(("x-api-key", "k-front-1234")))
            .await
            .expect("GET")
            .status(),
        401
    );
    assert_eq!(
        get(Some(("authorization", "Bearer nope")))
            .await
            .expect("GET")
            .status(),
        401
    );
    assert_eq!(
        get(Some(("x-api-key", "k-front-123")))
            .await
            .expect("GET")
            .status(),
        200
    );
    assert_eq!(
        get(Some(("x-api-key", "k-ops-456")))
            .await
            .expect("GET")
            .status(),
        200
    );
    assert_eq!(
        get(Some(("authorization", "Bearer k-ops-456")))
            .await
            .expect("GET")
            .status(),
        200
    );

    // Open routes stay open.
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/").await.status(), 200);

    // The WebSocket: refused without a key, accepted with ?api_key= or the header.
    let url = format!("ws://127.0.0.1:{}/", app.port);
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected a 401 refusal, got {:?}", other.map(|_| ())),
    }
    let wrong = tokio_tungstenite::connect_async(format!("{url}?api_key=wrong")).await;
    assert!(wrong.is_err());
    let mut socket = app.websocket("/?api_key=k-front-123").await;
    socket.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(socket.next_event().await["type"], "pong");
    let mut request = format!("ws://127.0.0.1:{}/ws", app.port)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("x-api-key", "k-ops-456".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

async fn without_api_keys_the_api_is_open(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/api/v1/messages").await.status(), 200);
    let response = app
        .client
        .get(app.url("/api/v1/messages"))
        .header("x-api-key", "anything")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn cors_allows_the_configured_origin_with_credentials_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/conversations"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "x-api-key")
            .send()
    };
    let allowed = preflight("http://localhost:3000").await.expect("OPTIONS");
    assert!(allowed.status().is_success());
    let headers = allowed.headers();
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://localhost:3000")
    );
    assert_eq!(
        headers
            .get("access-control-allow-credentials")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let allowed_headers = headers
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(allowed_headers.contains("x-api-key"), "{allowed_headers}");

    let refused = preflight("http://evil.example").await.expect("OPTIONS");
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let simple = app
        .client
        .get(app.url("/api/v1/conversations"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .expect("GET");
    let exposed = simple
        .headers()
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        exposed.contains("x-total-count") && exposed.contains("x-request-id"),
        "{exposed}"
    );
}
