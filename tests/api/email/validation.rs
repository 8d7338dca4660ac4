//! Bad email sends: a `to` that is not one address, someone else's conversation, a subject
//! that is empty, too long or on another channel, and a server that cannot send mail. None
//! stores anything.

use serde_json::json;

use super::reading_app;
use super::sending::{send, sending_app};
use crate::helpers::mail::{mail_servers, unique};
use crate::helpers::Backend;
use crate::on_both_backends;

on_both_backends!(bad_email_sends_are_422_and_store_nothing);

async fn bad_email_sends_are_422_and_store_nothing(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let user = unique("desk");
    let app = sending_app(backend, &mail, &user, &[]).await;
    let ana = unique("ana");
    let conversation = app.create_conversation(3, &ana, "Ana").await;
    let long = "x".repeat(501);
    for (body, field) in [
        (
            json!({"channel": "gmail", "to": "ana", "message": "Hola"}),
            "to",
        ),
        (
            json!({"channel": "gmail", "to": "Ana <ana@example.com>", "message": "Hola"}),
            "to",
        ),
        (
            json!({"channel": "gmail", "to": "ana@example", "message": "Hola"}),
            "to",
        ),
        (
            json!({"channel": "gmail", "to": "a b@example.com", "message": "Hola"}),
            "to",
        ),
        (json!({"channel": "gmail", "message": "Hola"}), "to"),
        (
            json!({"channel": "gmail", "to": "bob@example.com", "conversation_id": conversation["id"], "message": "Hola"}),
            "to",
        ),
        (
            json!({"channel": "gmail", "to": ana, "message": "Hola", "subject": " \r\n "}),
            "subject",
        ),
        (
            json!({"channel": "gmail", "to": ana, "message": "Hola", "subject": long}),
            "subject",
        ),
        (
            json!({"channel": "whatsapp", "to": "+34600123456", "message": "Hola", "subject": "Hi"}),
            "subject",
        ),
    ] {
        let (status, answer) = send(&app, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(
            answer["detail"][0]["loc"],
            json!(["body", field]),
            "{body} -> {answer}"
        );
    }
    let (_, total, _) = app.list("/api/v1/messages").await;
    assert_eq!(total, Some(0), "nothing stored");
    // A server without EMAIL_SMTP_URL says what to set.
    let reading_only = reading_app(backend, &mail, &user, &[]).await;
    let (status, answer) = send(
        &reading_only,
        json!({"channel": "gmail", "to": ana, "message": "Hola"}),
    )
    .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "channel_not_configured");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap_or("")
            .contains("EMAIL_SMTP_URL"),
        "{answer}"
    );
}
