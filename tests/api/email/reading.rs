//! Reading the mailbox: a mail becomes a message with every field of the contract, live on the
//! WebSocket; HTML, charsets and files; copies stored once; the first start's backfill window;
//! the mailbox left as it was.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    mail_messages, metric, reading_app, wait_for_health, wait_for_message, wait_for_messages,
};
use crate::helpers::mail::{fixture, mail_servers, unique};
use crate::helpers::Backend;
use crate::on_both_backends;

on_both_backends!(
    a_new_mail_becomes_a_message_with_every_field_of_the_contract,
    html_latin1_and_encoded_words_are_read_as_text,
    attachments_are_stored_under_media_dir_and_listed,
    a_mail_copied_twice_is_stored_once,
    the_first_start_reads_only_the_backfill_window,
    the_mailbox_is_left_as_it_was,
);

const WAIT: Duration = Duration::from_secs(20);

/// A small mail from `from` with Message-ID `<id>`.
pub(crate) fn simple_mail(from: &str, id: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Customer <{from}>\r\nTo: desk@example.org\r\nSubject: {subject}\r\n\
         Date: Mon, 06 Jan 2025 10:00:00 +0000\r\nMessage-ID: <{id}>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{subject}, body.\r\n"
    )
    .into_bytes()
}

/// An IMAP INTERNALDATE `hours` ago.
pub(crate) fn hours_ago(hours: i64) -> String {
    (Utc::now() - chrono::Duration::hours(hours))
        .format("%d-%b-%Y %H:%M:%S +0000")
        .to_string()
}

async fn a_new_mail_becomes_a_message_with_every_field_of_the_contract(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let (user, ana) = (unique("desk"), unique("ana"));
    // Written in mixed case: the conversation is keyed by the address in lower case.
    let written = ana
        .replacen("ana", "Ana", 1)
        .replace("example.com", "Example.COM");
    let app = reading_app(backend, &mail, &user, &[]).await;
    let mut socket = app.websocket("/ws").await;
    let raw = fixture(
        "plain-reply.eml",
        &[("<ana@example.com>", &format!("<{written}>"))],
    );
    mail.append(&user, &raw, None, None).await;

    let (mut conversation, mut event) = (Value::Null, Value::Null);
    while event.is_null() {
        let next = socket.next_event().await;
        match next["type"].as_str() {
            Some("new_conversation") => conversation = next["data"].clone(),
            Some("new_message") => event = next["data"].clone(),
            _ => {}
        }
    }
    assert_eq!(event["channel"], "gmail");
    assert_eq!(event["message_type"], "email");
    assert_eq!(event["direction"], "inbound");
    assert_eq!(event["status"], "received");
    assert_eq!(event["external_message_id"], "reply-1042.ana@example.com");
    assert_eq!(
        event["content"],
        "Hola, ¿cuándo llega el pedido? Gracias — Ana"
    );
    assert_eq!(event["sender_name"], "Ana Gomez");
    assert_eq!(event["attachments"], json!([]));
    let at: DateTime<Utc> = event["timestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a timestamp");
    assert_eq!(
        at.to_rfc3339(),
        "2025-01-07T09:15:00+00:00",
        "from Date, in UTC"
    );
    let metadata: Value =
        serde_json::from_str(event["message_metadata"].as_str().expect("metadata")).expect("JSON");
    assert_eq!(metadata["subject"], "Re: Your order 1042");
    assert_eq!(
        metadata["from"],
        json!({"name": "Ana Gomez", "address": written})
    );
    assert_eq!(
        metadata["to"],
        json!([{"name": "Support", "address": "support@example.org"}])
    );
    assert_eq!(
        metadata["cc"],
        json!([{"name": "Luis", "address": "luis@example.net"}, {"name": null, "address": "bea@example.net"}])
    );
    assert_eq!(metadata["message_id"], "reply-1042.ana@example.com");
    assert_eq!(metadata["in_reply_to"], "order-1042@example.org");
    assert_eq!(
        metadata["references"],
        json!(["thread-start@example.org", "order-1042@example.org"])
    );

    assert_eq!(
        conversation["external_id"], ana,
        "the sender's address in lower case"
    );
    assert_eq!(conversation["participant_name"], "Ana Gomez");
    assert_eq!(conversation["channel_id"], 3);
    let stored = app.get(&format!("/api/v1/messages/{}", event["id"])).await;
    let stored: Value = stored.json().await.expect("message");
    assert_eq!(stored["conversation_id"], conversation["id"]);
    assert_eq!(stored["content"], event["content"]);
    let health = wait_for_health(&app, "ok", WAIT).await;
    assert_eq!(health["email"], "ok", "{health}");
    assert_eq!(health["database"], "ok");
}

async fn html_latin1_and_encoded_words_are_read_as_text(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let user = unique("desk");
    let app = reading_app(backend, &mail, &user, &[]).await;
    for name in ["html-only.eml", "iso-8859-1.eml", "encoded-words.eml"] {
        mail.append(&user, &fixture(name, &[]), None, None).await;
    }
    let html = wait_for_message(&app, "html-only-1@shop.example", WAIT).await;
    assert_eq!(
        html["content"],
        "Hello there,\nYour code is 42.\nBye\u{a0}& thanks"
    );
    let latin = wait_for_message(&app, "latin1-1@example.es", WAIT).await;
    assert_eq!(
        latin["content"],
        "¿Podemos quedar mañana en el café? Un saludo, José"
    );
    assert_eq!(latin["sender_name"], "José Pérez");
    let words = wait_for_message(&app, "encoded-words-1@example.se", WAIT).await;
    assert_eq!(words["content"], "Grüße aus Stockholm");
    assert_eq!(words["sender_name"], "Björn Ångström");
    let metadata: Value =
        serde_json::from_str(words["message_metadata"].as_str().unwrap_or("{}")).expect("JSON");
    assert_eq!(metadata["subject"], "Rechnung für Jänner € 12");
}

async fn attachments_are_stored_under_media_dir_and_listed(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let user = unique("desk");
    let media = std::env::temp_dir()
        .join("switchboard-tests")
        .join(format!("media-{}", uuid::Uuid::new_v4().simple()));
    let media_dir = media.display().to_string();
    let app = reading_app(backend, &mail, &user, &[("MEDIA_DIR", &media_dir)]).await;
    mail.append(&user, &fixture("attachment.eml", &[]), None, None)
        .await;
    let message = wait_for_message(&app, "attachment-1@example.com", WAIT).await;
    assert_eq!(message["content"], "Here is the invoice.");
    let files = message["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(files.len(), 1, "{message}");
    let file = &files[0];
    assert_eq!(file["kind"], "document");
    assert_eq!(file["mime_type"], "application/pdf");
    assert_eq!(file["file_name"], "Factura año 2025.pdf");
    assert_eq!(file["size"], 58);
    assert_eq!(file["message_id"], message["id"]);
    assert_eq!(file["url"], format!("/api/v1/attachments/{}", file["id"]));
    let stored: Vec<_> = std::fs::read_dir(&media)
        .expect("MEDIA_DIR")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(stored.len(), 1, "one file, no temporaries");
    let bytes = std::fs::read(stored[0].path()).expect("the file");
    assert_eq!(bytes.len(), 58);
    assert!(bytes.starts_with(b"%PDF-1.4"));
    let hash: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        stored[0].file_name().to_string_lossy(),
        hash,
        "named by its content"
    );
    let served = app.get(file["url"].as_str().unwrap_or("")).await;
    assert_eq!(served.status(), 200);
    assert_eq!(
        served
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/pdf")
    );
    assert_eq!(
        served.bytes().await.expect("the file").as_ref(),
        bytes.as_slice()
    );
    let _ = std::fs::remove_dir_all(media);
}

async fn a_mail_copied_twice_is_stored_once(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let (user, ana) = (unique("desk"), unique("ana"));
    let app = reading_app(backend, &mail, &user, &[]).await;
    let with_id = fixture(
        "plain-reply.eml",
        &[("<ana@example.com>", &format!("<{ana}>"))],
    );
    let without_id = fixture("no-message-id.eml", &[]);
    for raw in [&with_id, &without_id, &with_id, &without_id] {
        mail.append(&user, raw, None, None).await;
    }
    let started = std::time::Instant::now();
    while metric(&app, "switchboard_email_mails_fetched_total").await < 4
        && started.elapsed() < WAIT
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&app, "switchboard_email_mails_fetched_total").await,
        4,
        "all four copies read"
    );
    // Fetched is counted before the chunk is recorded.
    let messages = wait_for_messages(&app, 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(mail_messages(&app).await.len(), 2);
    let generated = messages[1]["external_message_id"].as_str().unwrap_or("");
    assert!(
        generated.starts_with("generated-"),
        "a stable id made from the headers: {generated}"
    );
    assert_eq!(
        metric(&app, "switchboard_email_mails_imported_total").await,
        2
    );
}

async fn the_first_start_reads_only_the_backfill_window(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let (user, ana) = (unique("desk"), unique("ana"));
    let old = simple_mail(&ana, "old@example.com", "Three days ago");
    let recent = simple_mail(&ana, "recent@example.com", "Two hours ago");
    mail.append(&user, &old, None, Some(&hours_ago(72))).await;
    mail.append(&user, &recent, None, Some(&hours_ago(2))).await;
    let app = reading_app(backend, &mail, &user, &[("EMAIL_BACKFILL_HOURS", "24")]).await;
    wait_for_message(&app, "recent@example.com", WAIT).await;
    // A mail that arrives now is read whatever its INTERNALDATE: it is new to the mailbox.
    let moved_in = simple_mail(&ana, "moved-in@example.com", "Filed back into the inbox");
    mail.append(&user, &moved_in, None, Some(&hours_ago(96)))
        .await;
    wait_for_message(&app, "moved-in@example.com", WAIT).await;
    let ids: Vec<Value> = mail_messages(&app)
        .await
        .iter()
        .map(|m| m["external_message_id"].clone())
        .collect();
    assert_eq!(
        ids,
        [json!("recent@example.com"), json!("moved-in@example.com")],
        "the mail of three days ago was never read"
    );
}

async fn the_mailbox_is_left_as_it_was(backend: Backend) {
    let Some(mail) = mail_servers() else { return };
    let (user, ana) = (unique("desk"), unique("ana"));
    mail.append(
        &user,
        &simple_mail(&ana, "flagged@x", "Flagged"),
        Some("(\\Flagged)"),
        None,
    )
    .await;
    mail.append(&user, &simple_mail(&ana, "unseen@x", "Unseen"), None, None)
        .await;
    mail.append(
        &user,
        &simple_mail(&ana, "seen@x", "Seen"),
        Some("(\\Seen)"),
        None,
    )
    .await;
    let before = mail.flags(&user).await;
    assert_eq!(before.len(), 3);
    let app = reading_app(backend, &mail, &user, &[]).await;
    let messages = wait_for_messages(&app, 3, WAIT).await;
    assert_eq!(messages.len(), 3);
    assert_eq!(
        mail.flags(&user).await,
        before,
        "no flag set or cleared, nothing moved or deleted"
    );
}
