//! Once the provider has accepted a message, the server holds on to that answer: while the
//! database is unreachable the outcome is recorded again and again, never abandoned, so the
//! message is not sent a second time when its lease expires.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::helpers::{postgres_available, proxied_postgres, Backend, TestApp};
use crate::whatsapp::{accepted, graph_path, PHONE_NUMBER_ID, TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_accepted_while_the_database_is_away_is_recorded_once_it_is_back() {
    if !postgres_available() {
        return;
    }
    let (mut proxy, proxied) = proxied_postgres().await;
    let graph = MockServer::start().await;
    // Meta answers after a while; the database goes away meanwhile.
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.ONCE").set_delay(Duration::from_millis(800)))
        .mount(&graph)
        .await;
    let uri = graph.uri();
    let app = TestApp::start(
        Backend::Postgres,
        proxied,
        None,
        [
            ("WHATSAPP_API_BASE_URL", uri.as_str()),
            ("WHATSAPP_ACCESS_TOKEN", TOKEN),
            ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
            // A short lease, so a given-up attempt would be sent again within the test.
            ("WHATSAPP_TIMEOUT_MS", "1000"),
            ("OUTBOX_POLL_MS", "50"),
            ("SEND_RETRY_BASE_MS", "50"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
    .await;
    let client = app.client.clone();
    let url = app.url("/api/v1/send");
    let sending = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({"channel": "whatsapp", "to": "34600123456", "message": "Una vez"}))
            .send()
            .await
    });
    for _ in 0..100 {
        if !graph
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.cut();
    // Away for longer than the lease (2 × 1 s + 5 s).
    tokio::time::sleep(Duration::from_secs(9)).await;
    proxy.restore().await;
    let answer = sending.await.expect("the send task").expect("an answer");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["message"]["status"], "sent", "{body}");
    assert_eq!(body["message_id"], "wamid.ONCE");
    // Well past the lease: nobody sends it again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sends = graph.received_requests().await.expect("recorded").len();
    assert_eq!(sends, 1, "the provider got the message exactly once");
}
