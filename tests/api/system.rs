//! `GET /`, `/health`, a database outage, and graceful shutdown.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{postgres_available, proxied_postgres, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    root_describes_the_service_and_health_checks_the_database,
    every_response_has_a_request_id,
    stored_data_survives_a_restart,
);

async fn stored_data_survives_a_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.backend, backend);
    let conversation = app.create_conversation(1, "5550300", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let message = app
        .message(
            conversation,
            serde_json::json!({"external_message_id": "persist-1"}),
        )
        .await;
    let app = app.restart().await;
    let fetched: Value = app
        .get(&format!("/api/v1/messages/{}", message["id"]))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(fetched, message);
    let again = app
        .post_message(
            conversation,
            serde_json::json!({"external_message_id": "persist-1"}),
        )
        .await;
    assert_eq!(again.status(), 409, "uniqueness holds across restarts");
}

async fn root_describes_the_service_and_health_checks_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root: Value = app.get("/").await.json().await.expect("json");
    assert_eq!(root["name"], "switchboard");
    assert_eq!(root["docs"], "/docs");
    assert!(root["version"].is_string());
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.expect("json");
    let events = match backend {
        Backend::Sqlite => "local",
        Backend::Postgres => "listening",
    };
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "database": "ok", "events": events})
    );
}

async fn every_response_has_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in [
        "/",
        "/health",
        "/api/v1/channels",
        "/nowhere",
        "/api/v1/messages?limit=0",
    ] {
        let response = app.get(path).await;
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(!id.is_empty(), "{path}");
    }
    let echoed = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        echoed
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-42")
    );
}

/// The database goes away behind a running server and comes back: `/health` and API routes
/// answer 503 quickly meanwhile, and recover without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_and_recovers_without_restart() {
    if !postgres_available() {
        return;
    }
    let (mut proxy, proxied) = proxied_postgres().await;
    let app = TestApp::start(Backend::Postgres, proxied, None, vec![]).await;
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/api/v1/messages").await.status(), 200);

    proxy.cut();
    let started = Instant::now();
    let health = app.get("/health").await;
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await.expect("json");
    assert_eq!(body["database"], "unreachable");
    let listing = app.get("/api/v1/messages").await;
    assert_eq!(listing.status(), 503);
    let body: Value = listing.json().await.expect("json");
    assert_eq!(body["code"], "database_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answers instead of hanging"
    );

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if app.get("/health").await.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "health did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.get("/api/v1/messages").await.status(), 200);
}
