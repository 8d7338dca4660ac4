//! Sending through SMTP: a reply threads under the customer's mail (and an explicit subject
//! wins), a 4xx is retried with the very same mail until accepted, a 5xx fails with the
//! server's words.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{header, reading_app, wait_for_message};
use crate::helpers::mail::{fixture, mail_servers, unique, MailServers};
use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    a_reply_threads_under_the_customers_mail,
    a_4xx_is_retried_with_the_same_mail_until_accepted,
    a_5xx_fails_with_the_servers_reply,
);

const WAIT: Duration = Duration::from_secs(20);
pub(crate) const FROM: &str = "Support Desk <support@example.org>";

/// A server that reads `user`'s mailbox and sends through the plain SMTP listener.
pub(crate) async fn sending_app(
    backend: Backend,
    mail: &MailServers,
    user: &str,
    extra: &[(&str, &str)],
) -> TestApp {
    let smtp = mail.smtp_url();
    let mut vars = vec![
        ("EMAIL_SMTP_URL", smtp.as_str()),
        ("EMAIL_FROM", FROM),
        ("SEND_RETRY_BASE_MS", "100"),
        ("OUTBOX_POLL_MS", "100"),
    ];
    vars.extend_from_slice(extra);
    reading_app(backend, mail, user, &vars).await
}

pub(crate) async fn send(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.post_json("/api/v1/send", &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Polls message `id` until its status is `want`.
async fn wait_for_status(app: &TestApp, id: &Value, want: &str) -> Value {
    let started = Instant::now();
    loop {
        let message: Value = app
            .get(&format!("/api/v1/messages/{id}"))
            .await
            .json()
            .await
            .expect("message");
        if message["status"] == want || started.elapsed() > WAIT {
            return message;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_reply_threads_under_the_customers_mail(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let (user, ana) = (unique("desk"), unique("ana"));
    let app = sending_app(backend, &mail, &user, &[]).await;
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
    let inbound = wait_for_message(&app, "reply-1042.ana@example.com", WAIT).await;

    let text = "Sale hoy por la mañana. ¡Gracias!";
    let (status, body) = send(
        &app,
        json!({"channel": "gmail", "conversation_id": inbound["conversation_id"], "message": text}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let message_id = body["message_id"]
        .as_str()
        .expect("the Message-ID")
        .to_string();
    assert_eq!(body["message"]["external_message_id"], message_id.as_str());
    assert_eq!(body["message"]["status"], "sent");
    assert!(
        message_id.ends_with("@example.org") && !message_id.contains('<'),
        "{message_id}"
    );

    let received = mail.wait_received(&ana, 1, WAIT).await;
    assert_eq!(received.len(), 1);
    let (meta, raw) = &received[0];
    assert_eq!(meta["mail_from"], "support@example.org");
    assert_eq!(meta["auth_login"], "desk@example.org");
    let h = |name| header(raw, name);
    assert_eq!(
        h("From").as_deref(),
        Some("\"Support Desk\" <support@example.org>")
    );
    assert_eq!(h("To").as_deref(), Some(ana.as_str()));
    assert_eq!(
        h("Subject").as_deref(),
        Some("Re: Your order 1042"),
        "never Re: Re:"
    );
    assert_eq!(h("Message-ID"), Some(format!("<{message_id}>")));
    assert_eq!(
        h("In-Reply-To").as_deref(),
        Some("<reply-1042.ana@example.com>")
    );
    assert_eq!(
        h("References").as_deref(),
        Some("<thread-start@example.org> <order-1042@example.org> <reply-1042.ana@example.com>")
    );
    assert!(h("Date").is_some());
    assert_eq!(
        h("Content-Type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        h("Auto-Submitted"),
        None,
        "an agent's reply is not automatic"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a mail");
    assert_eq!(
        parsed.body_text(0).as_deref().map(str::trim_end),
        Some(text)
    );
    let metadata: Value =
        serde_json::from_str(body["message"]["message_metadata"].as_str().unwrap_or("{}"))
            .expect("JSON");
    assert_eq!(metadata["message_id"], message_id.as_str());
    assert_eq!(metadata["subject"], "Re: Your order 1042");
    assert_eq!(metadata["in_reply_to"], "reply-1042.ana@example.com");

    // An explicit subject wins, on one line: a line break cannot add a header.
    let (status, body) = send(
        &app,
        json!({"channel": "gmail", "to": ana, "conversation_id": inbound["conversation_id"],
               "message": "Adjunto la factura.", "subject": "Factura de enero\r\nBcc: someone@example.net"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let received = mail.wait_received(&ana, 2, WAIT).await;
    let raw = &received[1].1;
    assert_eq!(
        header(raw, "Subject").as_deref(),
        Some("Factura de enero Bcc: someone@example.net")
    );
    assert_eq!(header(raw, "Bcc"), None);
    assert_eq!(received[1].0["rcpt_to"], json!([ana]));
    assert_eq!(
        header(raw, "In-Reply-To").as_deref(),
        Some("<reply-1042.ana@example.com>")
    );
}

async fn a_4xx_is_retried_with_the_same_mail_until_accepted(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let user = unique("desk");
    let to = unique("tempfail2");
    let app = sending_app(backend, &mail, &user, &[]).await;
    let (status, body) = send(
        &app,
        json!({"channel": "gmail", "to": to, "message": "Hola"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("451"),
        "{body}"
    );
    let decided: Value =
        serde_json::from_str(body["message"]["message_metadata"].as_str().unwrap_or("{}"))
            .expect("JSON");
    let message_id = decided["message_id"]
        .as_str()
        .expect("decided when stored")
        .to_string();
    assert_eq!(decided["subject"], "Message from Support Desk");

    let sent = wait_for_status(&app, &body["message"]["id"], "sent").await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["external_message_id"], message_id.as_str());
    let received = mail.wait_received(&to, 1, WAIT).await;
    assert_eq!(received.len(), 1, "accepted once");
    assert_eq!(
        header(&received[0].1, "Message-ID"),
        Some(format!("<{message_id}>")),
        "the same mail"
    );
    let replies: Vec<String> = mail
        .attempts(&to)
        .iter()
        .filter(|a| a["stage"] == "rcpt")
        .map(|a| a["reply"].as_str().unwrap_or("")[..3].to_string())
        .collect();
    assert_eq!(replies, ["451", "451", "250"]);
}

async fn a_5xx_fails_with_the_servers_reply(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let user = unique("desk");
    let app = sending_app(backend, &mail, &user, &[]).await;
    for (local, reply) in [
        (
            "reject",
            "550 5.1.1 Recipient rejected as requested by the test (reject)",
        ),
        (
            "datareject",
            "554 5.6.0 Message rejected as requested by the test (datareject)",
        ),
    ] {
        let to = unique(local);
        let (status, body) = send(
            &app,
            json!({"channel": "gmail", "to": to, "message": "Hola"}),
        )
        .await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["code"], "provider_error");
        assert_eq!(body["detail"], reply);
        assert_eq!(body["message"]["status"], "failed");
        assert_eq!(body["message"]["error"], reply);
        assert_eq!(
            mail.attempts(&to)
                .iter()
                .filter(|a| a["stage"] == "rcpt")
                .count(),
            1,
            "never retried"
        );
    }
}
