//! `POST /api/v1/send` on `instagram`: the exact Send API request, each outcome (200; 202 then
//! retried; 502 with Meta's reason), the 1,000-character limit, and who may be addressed.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, ResponseTemplate};

use super::{
    accepted, app_with_graph, deliver, dm, graph_error, message, messages, send, send_path,
    sent_bodies, ANA, LEO, TOKEN,
};
use crate::helpers::Backend;
use crate::on_both_backends;

on_both_backends!(
    a_reply_is_sent_with_the_exact_request,
    transient_errors_and_timeouts_are_retried_until_sent,
    permanent_refusals_fail_with_metas_reason,
    a_thousand_characters_go_and_one_more_is_refused,
    only_an_igsid_or_the_conversations_participant_is_addressed,
);

async fn a_reply_is_sent_with_the_exact_request(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(
            json!({"recipient": {"id": ANA}, "message": {"text": "¡Hola! 👋 ¿En qué te ayudo?"}}),
        ))
        .respond_with(accepted(ANA, "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlE"))
        .expect(1)
        .mount(&graph)
        .await;
    let mut socket = app.websocket("/").await;
    let (status, body) = send(
        &app,
        json!({"to": format!(" {ANA} "), "message": "¡Hola! 👋 ¿En qué te ayudo?"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["message_id"], "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlE");
    let sent = &body["message"];
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["direction"], "outbound");
    assert_eq!(
        sent["external_message_id"],
        "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlE"
    );
    assert_eq!(sent["sender_name"], "agent");
    let created = socket.next_event().await;
    assert_eq!(created["type"], "new_conversation");
    assert_eq!(created["data"]["channel_id"], 2);
    assert_eq!(created["data"]["external_id"], ANA);
    assert_eq!(
        socket.next_event().await["data"]["status"],
        "pending",
        "stored before sending"
    );
    let moved = socket.next_event().await;
    assert_eq!(
        (moved["type"].as_str(), moved["data"]["status"].as_str()),
        (Some("message_status"), Some("sent"))
    );
}

async fn transient_errors_and_timeouts_are_retried_until_sent(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[("INSTAGRAM_TIMEOUT_MS", "400")]).await;
    let failures = [
        accepted(ANA, "mid.TOO-LATE").set_delay(Duration::from_secs(3)),
        graph_error(500, 2, None, "Service temporarily unavailable"),
        graph_error(429, 4, None, "Application request limit reached"),
        graph_error(
            400,
            613,
            None,
            "Calls to this api have exceeded the rate limit.",
        ),
        ResponseTemplate::new(502),
    ];
    for failure in failures {
        Mock::given(method("POST"))
            .and(path(send_path()))
            .respond_with(failure)
            .up_to_n_times(1)
            .expect(1)
            .mount(&graph)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(accepted(ANA, "mid.RETRIED"))
        .expect(1)
        .mount(&graph)
        .await;
    let (status, body) = send(&app, json!({"to": ANA, "message": "retry me"})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("timed out"),
        "{body}"
    );
    let id = body["message"]["id"].as_i64().expect("id");
    let mut last = Value::Null;
    for _ in 0..200 {
        last = message(&app, id).await;
        if last["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "sent", "{last}");
    assert_eq!(last["external_message_id"], "mid.RETRIED");
    let bodies = sent_bodies(&graph).await;
    assert_eq!(bodies.len(), 6);
    assert!(
        bodies.iter().all(|b| b["recipient"]["id"] == ANA),
        "every attempt to the same person"
    );
}

async fn permanent_refusals_fail_with_metas_reason(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let cases = [
        (
            graph_error(
                401,
                190,
                Some(460),
                "Error validating access token: The session has been invalidated",
            ),
            "190",
            "session has been invalidated",
        ),
        (
            graph_error(
                400,
                10,
                Some(2534022),
                "This message is sent outside of allowed window.",
            ),
            "2534022",
            "outside of allowed window",
        ),
        (
            graph_error(
                400,
                551,
                Some(1545041),
                "This person isn't available right now.",
            ),
            "551",
            "isn't available",
        ),
        (
            ResponseTemplate::new(403).set_body_string("<html>Forbidden</html>"),
            "403",
            "no reason given",
        ),
    ];
    for (response, code, reason) in cases {
        graph.reset().await;
        Mock::given(method("POST"))
            .and(path(send_path()))
            .respond_with(response)
            .expect(1)
            .mount(&graph)
            .await;
        let (status, body) = send(&app, json!({"to": ANA, "message": "hola"})).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["code"], "provider_error");
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(detail.contains(code) && detail.contains(reason), "{detail}");
        assert_eq!(body["message"]["status"], "failed");
        assert_eq!(body["message"]["error"], detail);
        // Not retried: time for the worker to (wrongly) try again before `expect(1)` is checked.
        tokio::time::sleep(Duration::from_millis(300)).await;
        graph.verify().await;
    }
    // Meta answering 200 without an id may have sent it: failed loudly, not retried.
    graph.reset().await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"recipient_id": ANA})))
        .expect(1)
        .mount(&graph)
        .await;
    let (status, body) = send(&app, json!({"to": ANA, "message": "hola"})).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("without a message id"));
}

async fn a_thousand_characters_go_and_one_more_is_refused(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    // Characters, not bytes: "ñ" is two bytes.
    let longest = "ñ".repeat(1000);
    Mock::given(method("POST"))
        .and(path(send_path()))
        .and(body_json(
            json!({"recipient": {"id": ANA}, "message": {"text": longest}}),
        ))
        .respond_with(accepted(ANA, "mid.LONG"))
        .expect(1)
        .mount(&graph)
        .await;
    let (status, body) = send(&app, json!({"to": ANA, "message": longest})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(&app, json!({"to": ANA, "message": "ñ".repeat(1001)})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "message"]));
    assert_eq!(body["detail"][0]["type"], "string_too_long");
    assert!(body["detail"][0]["msg"]
        .as_str()
        .unwrap_or("")
        .contains("1000"));
    // WhatsApp's limit is not Instagram's.
    assert_eq!(messages(&app).await.len(), 1);
}

async fn only_an_igsid_or_the_conversations_participant_is_addressed(backend: Backend) {
    let (app, graph) = app_with_graph(
        backend,
        &[
            ("WHATSAPP_ACCESS_TOKEN", "wa"),
            ("WHATSAPP_PHONE_NUMBER_ID", "123"),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(accepted(ANA, "mid.CONV"))
        .expect(1)
        .mount(&graph)
        .await;
    for (to, why) in [
        (json!("abc"), "letters"),
        (json!("+34 600 123 456"), "a phone number"),
        (json!("5614 8790"), "spaces inside"),
        (json!(""), "empty"),
        (json!("1".repeat(33)), "too long"),
        (json!(5614879045272581_i64), "a number, not a string"),
        (json!("@ana.perez"), "a username"),
    ] {
        let (status, body) = send(&app, json!({"to": to, "message": "hola"})).await;
        assert_eq!(status, 422, "{why}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["body", "to"]), "{why}");
    }
    let (status, body) = send(&app, json!({"message": "hola"})).await;
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (422, json!(["body", "to"]))
    );
    assert!(messages(&app).await.is_empty(), "nothing stored");

    // `conversation_id` alone answers its participant; `to` naming someone else is refused.
    deliver(&app, &dm("m.in", ANA, "Hola")).await;
    let conversation = messages(&app).await[0]["conversation_id"]
        .as_i64()
        .expect("id");
    let (status, body) = send(
        &app,
        json!({"conversation_id": conversation, "to": LEO, "message": "hola"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "to"]));
    let (status, body) = send(
        &app,
        json!({"conversation_id": conversation, "message": "¿Qué tal?"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversation_id"], conversation);
    assert_eq!(
        sent_bodies(&graph).await,
        vec![json!({"recipient": {"id": ANA}, "message": {"text": "¿Qué tal?"}})]
    );

    // A WhatsApp conversation is not an Instagram one.
    let whatsapp = app.create_conversation(1, "+34 600 111 222", "Ana").await;
    let (status, body) = send(
        &app,
        json!({"conversation_id": whatsapp["id"], "message": "hola"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "conversation_id"]));
    let (status, _) = send(&app, json!({"conversation_id": 99999, "message": "hola"})).await;
    assert_eq!(status, 422);
}
