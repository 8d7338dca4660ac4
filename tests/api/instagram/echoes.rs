//! The business's own messages coming back (`is_echo`), and read receipts: an echo of our own
//! send changes nothing, one sent from the Instagram app is stored as outbound `sent`, and a
//! `read` moves our messages up to the one named to `read`, forward only.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::Mock;

use super::{
    accepted, app_with_graph, conversations, deliver, dm, echo, message, messages, read, send,
    send_path, ANA, LEO,
};
use crate::helpers::Backend;
use crate::on_both_backends;

on_both_backends!(
    echoes_of_our_sends_change_nothing_and_app_sends_are_stored,
    an_echo_that_beats_the_send_answer_is_our_own_send,
    a_read_receipt_reads_our_messages_up_to_it_forward_only,
);

async fn echoes_of_our_sends_change_nothing_and_app_sends_are_stored(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(accepted(ANA, "mid.OURS"))
        .expect(1)
        .mount(&graph)
        .await;
    deliver(&app, &dm("m.in", ANA, "Hola")).await;
    let (status, sent) = send(&app, json!({"to": ANA, "message": "¡Hola Ana!"})).await;
    assert_eq!(status, 200, "{sent}");
    let conversation_id = sent["conversation_id"].as_i64().expect("conversation");
    let mut socket = app.websocket("/").await;

    // Our own send, echoed (twice, as Meta may): nothing changes.
    deliver(&app, &echo("mid.OURS", ANA, "¡Hola Ana!")).await;
    deliver(&app, &echo("mid.OURS", ANA, "¡Hola Ana!")).await;
    socket.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(messages(&app).await.len(), 2);

    // Written in the Instagram app: stored as sent, in the customer's conversation, and the
    // assistant steps back there as it does for an agent.
    assert_eq!(
        app.patch_json(
            &format!("/api/v1/conversations/{conversation_id}"),
            &json!({"assistant_enabled": true})
        )
        .await
        .status(),
        200
    );
    let _ = socket.next_event().await;
    deliver(&app, &echo("mid.APP", ANA, "Te escribo desde el móvil")).await;
    let stored = socket.next_event().await;
    assert_eq!(stored["type"], "new_message");
    let data = &stored["data"];
    assert_eq!(data["direction"], "outbound");
    assert_eq!(data["status"], "sent");
    assert_eq!(data["content"], "Te escribo desde el móvil");
    assert_eq!(data["external_message_id"], "mid.APP");
    assert_eq!(data["conversation_id"], conversation_id);
    assert_eq!(data["timestamp"], "2025-01-08T10:01:00Z");
    assert_eq!(data["channel"], "instagram");
    let silenced = socket.next_event().await;
    assert_eq!(silenced["type"], "conversation_updated");
    assert_eq!(silenced["data"]["assistant_enabled"], false);
    deliver(&app, &echo("mid.APP", ANA, "Te escribo desde el móvil")).await;
    socket.expect_silence(Duration::from_millis(300)).await;
    let all = conversations(&app).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0]["unread_count"], 1,
        "the business's own messages are not unread"
    );

    // An app message to someone without a conversation yet opens one.
    deliver(&app, &echo("mid.APP2", LEO, "¿Te llegó el pedido?")).await;
    assert_eq!(socket.next_event().await["type"], "new_conversation");
    let stored = socket.next_event().await;
    assert_eq!(stored["data"]["direction"], "outbound");
    assert_eq!(messages(&app).await.len(), 4);
}

/// Meta's echo may arrive before its answer to our own send: the message still in the outbox
/// with that text takes the id; the answer then finds it sent, and nothing shows twice.
async fn an_echo_that_beats_the_send_answer_is_our_own_send(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(accepted(ANA, "mid.RACE").set_delay(Duration::from_millis(1500)))
        .expect(1)
        .mount(&graph)
        .await;
    deliver(&app, &dm("m.in", ANA, "Hola")).await;
    let mut socket = app.websocket("/").await;
    let client = app.client.clone();
    let url = app.url("/api/v1/send");
    let sending = tokio::spawn(async move {
        let response = client
            .post(url)
            .json(&json!({"channel": "instagram", "to": ANA, "message": "Un momento"}))
            .send()
            .await
            .expect("POST /send");
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.expect("JSON"))
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
    let stored = loop {
        let event = socket.next_event().await;
        if event["type"] == "new_message" {
            break event;
        }
    };
    assert_eq!(stored["data"]["status"], "pending");
    deliver(&app, &echo("mid.RACE", ANA, "Un momento")).await;
    let moved = socket.next_event().await;
    assert_eq!(moved["type"], "message_status");
    assert_eq!(moved["data"]["status"], "sent");
    assert_eq!(moved["data"]["external_message_id"], "mid.RACE");
    let (status, answer) = sending.await.expect("the send task");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["message_id"], "mid.RACE");
    assert_eq!(answer["message"]["status"], "sent");
    socket.expect_silence(Duration::from_millis(300)).await;
    let outbound: Vec<Value> = messages(&app)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "outbound")
        .collect();
    assert_eq!(outbound.len(), 1, "{outbound:?}");
    assert_eq!(outbound[0]["sender_name"], "agent");
}

async fn a_read_receipt_reads_our_messages_up_to_it_forward_only(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    for n in 1..=3 {
        Mock::given(method("POST"))
            .and(path(send_path()))
            .respond_with(accepted(ANA, &format!("mid.R{n}")))
            .up_to_n_times(1)
            .mount(&graph)
            .await;
    }
    deliver(&app, &dm("m.in", ANA, "Hola")).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        let (status, body) = send(
            &app,
            json!({"to": ANA, "message": format!("respuesta {n}")}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message_id"], format!("mid.R{n}"));
        ids.push(body["message"]["id"].as_i64().expect("id"));
        // Distinct timestamps, as messages sent apart have.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut socket = app.websocket("/").await;
    deliver(&app, &read(ANA, "mid.R2")).await;
    for expected in &ids[..2] {
        let event = socket.next_event().await;
        assert_eq!(event["type"], "message_status");
        assert_eq!(event["data"]["id"], *expected);
        assert_eq!(event["data"]["status"], "read");
    }
    socket.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(message(&app, ids[2]).await["status"], "sent");

    // Again, or an earlier one: nothing moves back, nothing is announced.
    deliver(&app, &read(ANA, "mid.R2")).await;
    deliver(&app, &read(ANA, "mid.R1")).await;
    // Someone else's receipt naming Ana's message, a customer's own message, an unknown id.
    deliver(&app, &read(LEO, "mid.R3")).await;
    deliver(&app, &read(ANA, "m.in")).await;
    deliver(&app, &read(ANA, "mid.NOBODY")).await;
    socket.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(message(&app, ids[2]).await["status"], "sent");
    let inbound = messages(&app)
        .await
        .into_iter()
        .find(|m| m["external_message_id"] == "m.in")
        .expect("in");
    assert_eq!(inbound["status"], "received");

    deliver(&app, &read(ANA, "mid.R3")).await;
    let event = socket.next_event().await;
    assert_eq!(
        (
            event["data"]["id"].as_i64(),
            event["data"]["status"].as_str()
        ),
        (Some(ids[2]), Some("read"))
    );
    for id in &ids {
        assert_eq!(message(&app, *id).await["status"], "read");
    }
    socket.expect_silence(Duration::from_millis(200)).await;
}
