//! A status Meta delivers before our own send call has returned the wamid is kept and applied
//! once the wamid is recorded: forward only, one `message_status` event each.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use crate::whatsapp::{accepted, app_with_graph, graph_path, post_webhook, status_delivery};

on_both_backends!(
    a_delivered_status_that_beats_the_send_answer_is_applied,
    a_failed_status_that_beats_the_send_answer_fails_the_message,
);

/// Sends a reply whose Graph answer is held back while `statuses` arrive by webhook for the
/// wamid it will carry; returns the /send answer.
async fn race(
    app: &TestApp,
    graph: &MockServer,
    wamid: &str,
    statuses: &[(&str, Option<Value>)],
) -> Value {
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted(wamid).set_delay(Duration::from_millis(1500)))
        .expect(1)
        .mount(graph)
        .await;
    let client = app.client.clone();
    let url = app.url("/api/v1/send");
    let sending = tokio::spawn(async move {
        let response = client
            .post(url)
            .json(&json!({"channel": "whatsapp", "to": "34600123456", "message": "Hola"}))
            .send()
            .await
            .expect("POST /send");
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.expect("JSON")
    });
    // Once Meta has the message, its webhook may come before its answer does.
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
    for (status, error) in statuses {
        let body = status_delivery(wamid, status, error.clone()).to_string();
        let response = post_webhook(app, body.as_bytes(), None).await;
        assert_eq!(response.status(), 200);
    }
    sending.await.expect("the send task")
}

async fn a_delivered_status_that_beats_the_send_answer_is_applied(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let mut socket = app.websocket("/").await;
    let answer = race(
        &app,
        &graph,
        "wamid.EARLY",
        &[("delivered", None), ("sent", None)],
    )
    .await;
    let id = answer["message"]["id"].as_i64().expect("id");
    let message: Value = app
        .get(&format!("/api/v1/messages/{id}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(message["status"], "delivered");
    assert_eq!(message["external_message_id"], "wamid.EARLY");
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        let event = socket.next_event().await;
        if event["type"] == "message_status" {
            statuses.push(event["data"]["status"].clone());
        }
    }
    assert_eq!(statuses, vec![json!("sent"), json!("delivered")]);
    socket.expect_silence(Duration::from_millis(300)).await;
    // Applied once: a redelivery of the same statuses changes nothing.
    let again = status_delivery("wamid.EARLY", "delivered", None).to_string();
    post_webhook(&app, again.as_bytes(), None).await;
    socket.expect_silence(Duration::from_millis(300)).await;
}

async fn a_failed_status_that_beats_the_send_answer_fails_the_message(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let error = json!({"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"});
    let answer = race(&app, &graph, "wamid.LATEFAIL", &[("failed", Some(error))]).await;
    let id = answer["message"]["id"].as_i64().expect("id");
    let message: Value = app
        .get(&format!("/api/v1/messages/{id}"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(message["status"], "failed", "{message}");
    assert!(
        message["error"].as_str().unwrap_or("").contains("131047"),
        "{message}"
    );
}
