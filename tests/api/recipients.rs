//! One recipient per send: with `conversation_id`, `to` may be left out and may not name
//! anyone else, and every attempt (the first and each retry) goes to the person fixed when the
//! message was stored.

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use crate::whatsapp::{accepted, all_messages, app_with_graph, graph_path, wait_for_status};

on_both_backends!(
    a_to_naming_someone_else_than_the_conversation_is_422,
    conversation_id_alone_answers_the_participant_on_every_attempt,
);

async fn send_in(app: &TestApp, conversation_id: i64, to: Option<&str>) -> (u16, Value) {
    let mut body =
        json!({"channel": "whatsapp", "message": "Hola", "conversation_id": conversation_id});
    if let Some(to) = to {
        body["to"] = json!(to);
    }
    let response = app.post_json("/api/v1/send", &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

async fn a_to_naming_someone_else_than_the_conversation_is_422(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .respond_with(accepted("wamid.NEVER"))
        .expect(0)
        .mount(&graph)
        .await;
    let ana = app.create_conversation(1, "+34 600 111 222", "Ana").await;
    let id = ana["id"].as_i64().expect("id");
    let (status, error) = send_in(&app, id, Some("+34 600 999 888")).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["detail"][0]["loc"], json!(["body", "to"]));
    assert!(all_messages(&app).await.is_empty(), "nothing stored");
}

async fn conversation_id_alone_answers_the_participant_on_every_attempt(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.ANA"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(accepted("wamid.ANA2"))
        .expect(1)
        .mount(&graph)
        .await;
    let ana = app.create_conversation(1, "+34 600 111 222", "Ana").await;
    let id = ana["id"].as_i64().expect("id");
    let (status, body) = send_in(&app, id, None).await;
    assert_eq!(status, 202, "{body}");
    let message = body["message"]["id"].as_i64().expect("message id");
    wait_for_status(&app, message, "sent").await;
    // The same person written another way is still the participant.
    let (status, body) = send_in(&app, id, Some("34-600-111-222")).await;
    assert_eq!(
        (status, body["conversation_id"].as_i64()),
        (200, Some(id)),
        "{body}"
    );
    let requests = graph.received_requests().await.expect("recorded");
    let recipients: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).expect("JSON")["to"].clone())
        .collect();
    assert_eq!(recipients, vec![json!("34600111222"); 4]);
}
