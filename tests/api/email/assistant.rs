//! The assistant answers a person's mail on its own (`ASSISTANT_AUTOREPLY=gmail`, an LLM fake),
//! threaded and marked `Auto-Submitted: auto-replied`, and never answers automatic mail:
//! auto-replies, bulk and list mail, bounces, postmaster, or the mailbox writing to itself.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{header, mail_messages, reading_app, wait_for_messages};
use crate::helpers::mail::{fixture, mail_servers, unique};
use crate::helpers::Backend;
use crate::on_both_backends;

on_both_backends!(the_assistant_answers_a_person_and_never_automatic_mail);

const WAIT: Duration = Duration::from_secs(20);
const ANSWER: &str = "Gracias, Ana: el pedido sale hoy.";

async fn the_assistant_answers_a_person_and_never_automatic_mail(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"choices": [{"message": {"role": "assistant", "content": ANSWER}}]}),
        ))
        .expect(1)
        .mount(&llm)
        .await;
    let user = unique("desk");
    let base = format!("{}/v1", llm.uri());
    let smtp = mail.smtp_url();
    let app = reading_app(
        backend,
        &mail,
        &user,
        &[
            ("EMAIL_SMTP_URL", &smtp),
            ("LLM_BASE_URL", &base),
            ("LLM_MODEL", "test-model"),
            ("ASSISTANT_AUTOREPLY", "gmail"),
        ],
    )
    .await;

    let senders: Vec<(String, Vec<u8>)> = {
        let (ooo, deals, carla) = (unique("ooo"), unique("deals"), unique("carla"));
        let daemon = format!(
            "MAILER-DAEMON@mx-{}.example.org",
            uuid::Uuid::new_v4().simple()
        );
        let postmaster = format!("postmaster@{}.example.org", uuid::Uuid::new_v4().simple());
        vec![
            (
                ooo.clone(),
                fixture(
                    "auto-submitted.eml",
                    &[("<ana@example.com>", &format!("<{ooo}>"))],
                ),
            ),
            (
                deals.clone(),
                fixture("precedence-bulk.eml", &[("deals@shop.example", &deals)]),
            ),
            (
                carla.clone(),
                fixture("list-mail.eml", &[("carla@example.net", &carla)]),
            ),
            (
                daemon.clone(),
                fixture("bounce.eml", &[("MAILER-DAEMON@mx.example.org", &daemon)]),
            ),
            (
                postmaster.clone(),
                format!("From: {postmaster}\r\nMessage-ID: <pm@x>\r\n\r\nQuota warning\r\n")
                    .into_bytes(),
            ),
            // The mailbox itself (its IMAP user is EMAIL_FROM's default).
            (
                user.clone(),
                format!("From: Desk <{user}>\r\nMessage-ID: <self@x>\r\n\r\nNote to self\r\n")
                    .into_bytes(),
            ),
        ]
    };
    for (_, raw) in &senders {
        mail.append(&user, raw, None, None).await;
    }
    let ana = unique("ana");
    mail.append(
        &user,
        &fixture(
            "plain-reply.eml",
            &[("<ana@example.com>", &format!("<{ana}>"))],
        ),
        None,
        None,
    )
    .await;

    let received = mail.wait_received(&ana, 1, WAIT).await;
    assert_eq!(received.len(), 1, "the person got the assistant's answer");
    let raw = &received[0].1;
    assert_eq!(
        header(raw, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        header(raw, "In-Reply-To").as_deref(),
        Some("<reply-1042.ana@example.com>")
    );
    assert_eq!(
        header(raw, "Subject").as_deref(),
        Some("Re: Your order 1042")
    );
    assert_eq!(header(raw, "From").as_deref(), Some(user.as_str()));
    let messages = wait_for_messages(&app, senders.len() + 2, WAIT).await;
    let reply: Vec<&Value> = messages
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .collect();
    assert_eq!(reply.len(), 1, "{messages:#?}");
    assert_eq!(reply[0]["content"], ANSWER);
    assert_eq!(reply[0]["sender_name"], "assistant");
    // The server's acceptance is recorded just after the mail reached it.
    let started = std::time::Instant::now();
    let mut status = reply[0]["status"].clone();
    while status != "sent" && started.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now: Value = app
            .get(&format!("/api/v1/messages/{}", reply[0]["id"]))
            .await
            .json()
            .await
            .expect("message");
        status = now["status"].clone();
    }
    assert_eq!(status, "sent");

    // Automatic mail is stored, and nothing was sent to any of its senders.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored = mail_messages(&app).await;
    assert_eq!(
        stored
            .iter()
            .filter(|m| m["direction"] == "inbound")
            .count(),
        senders.len() + 1
    );
    for (sender, _) in &senders {
        assert!(mail.received(sender).is_empty(), "{sender} was answered");
    }
    // Dropping the fake checks the LLM was asked exactly once.
    drop(llm);
}
