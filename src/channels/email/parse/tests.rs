//! The sample mails of `tests/fixtures/mail`, read as the inbox stores them.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn arrival() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 2, 1, 12, 0, 0)
        .single()
        .expect("a date")
}

fn read(name: &str) -> Mail {
    parse(
        &fixture(name),
        arrival(),
        &["support@example.org".to_string()],
    )
}

#[test]
fn an_ordinary_reply_keeps_every_header_the_contract_names() {
    let mail = read("plain-reply.eml");
    assert_eq!(
        mail.sender,
        Some(Sender {
            address: "ana@example.com".into(),
            name: Some("Ana Gomez".into())
        })
    );
    assert_eq!(mail.external_id, "reply-1042.ana@example.com");
    assert_eq!(mail.timestamp.to_rfc3339(), "2025-01-07T09:15:00+00:00");
    assert_eq!(mail.content, "Hola, ¿cuándo llega el pedido? Gracias — Ana");
    assert!(mail.automatic.is_none());
    assert_eq!(
        mail.metadata,
        json!({
            "subject": "Re: Your order 1042",
            "from": {"name": "Ana Gomez", "address": "ana@example.com"},
            "to": [{"name": "Support", "address": "support@example.org"}],
            "cc": [{"name": "Luis", "address": "luis@example.net"}, {"name": null, "address": "bea@example.net"}],
            "message_id": "reply-1042.ana@example.com",
            "in_reply_to": "order-1042@example.org",
            "references": ["thread-start@example.org", "order-1042@example.org"],
            "date": "Tue, 07 Jan 2025 10:15:00 +0100",
            "automatic": null,
        })
    );
}

#[test]
fn html_charsets_and_encoded_words_become_text() {
    let html = read("html-only.eml");
    assert_eq!(
        html.content,
        "Hello there,\nYour code is 42.\nBye\u{a0}& thanks"
    );
    let latin = read("iso-8859-1.eml");
    assert_eq!(
        latin.sender.and_then(|s| s.name).as_deref(),
        Some("José Pérez")
    );
    assert_eq!(latin.metadata["subject"], "Café mañana");
    assert_eq!(
        latin.content,
        "¿Podemos quedar mañana en el café? Un saludo, José"
    );
    let words = read("encoded-words.eml");
    assert_eq!(words.metadata["subject"], "Rechnung für Jänner € 12");
    assert_eq!(words.metadata["to"][0]["name"], "André");
    assert_eq!(words.content, "Grüße aus Stockholm");
}

#[test]
fn attachments_are_decoded_with_their_names() {
    let mail = read("attachment.eml");
    assert_eq!(mail.files.len(), 1);
    let file = &mail.files[0];
    assert_eq!(file.file_name.as_deref(), Some("Factura año 2025.pdf"));
    assert_eq!(file.mime_type.as_deref(), Some("application/pdf"));
    assert_eq!(file.kind, AttachmentKind::Document);
    assert_eq!(file.bytes.len(), 58);
    assert!(file.bytes.starts_with(b"%PDF-1.4"));
    assert_eq!(mail.content, "Here is the invoice.");
}

#[test]
fn a_mail_without_message_id_gets_a_stable_id_from_its_headers() {
    let a = read("no-message-id.eml");
    let b = read("no-message-id.eml");
    assert_eq!(a.external_id, b.external_id);
    assert!(a.external_id.starts_with("generated-"), "{}", a.external_id);
    assert_eq!(a.metadata["message_id"], json!(null));
    // A transport header added on the way does not change it.
    let mut relayed = b"Received: from mx.example.com by imap.example.org\n".to_vec();
    relayed.extend(fixture("no-message-id.eml"));
    let c = parse(&relayed, arrival(), &[]);
    assert_eq!(c.external_id, a.external_id);
}

#[test]
fn automatic_mail_is_recognised_by_every_rule() {
    for (name, reason) in [
        ("auto-submitted.eml", "Auto-Submitted: auto-replied"),
        ("precedence-bulk.eml", "Precedence: bulk"),
        ("list-mail.eml", "Precedence: list"),
        ("bounce.eml", "Auto-Submitted: auto-replied"),
    ] {
        assert_eq!(read(name).automatic.as_deref(), Some(reason), "{name}");
    }
    let list = b"From: carla@example.net\nList-Id: <users.lists.example.net>\n\nhi\n";
    assert_eq!(
        parse(list, arrival(), &[]).automatic.as_deref(),
        Some("List-Id")
    );
    let daemon = b"From: MAILER-DAEMON@mx.example.org\nSubject: x\n\nfailed\n";
    assert_eq!(
        parse(daemon, arrival(), &[]).automatic.as_deref(),
        Some("from mailer-daemon")
    );
    let postmaster = b"From: Postmaster <postmaster@example.org>\n\nhi\n";
    assert_eq!(
        parse(postmaster, arrival(), &[]).automatic.as_deref(),
        Some("from postmaster")
    );
    let own = b"From: Support <Support@Example.org>\n\nnote to self\n";
    assert_eq!(
        parse(own, arrival(), &["support@example.org".into()])
            .automatic
            .as_deref(),
        Some("from the mailbox itself")
    );
    let person = b"From: ana@example.com\nAuto-Submitted: no\n\nhi\n";
    assert!(parse(person, arrival(), &[]).automatic.is_none());
}

#[test]
fn garbage_and_bad_dates_give_what_could_be_read() {
    let garbage = parse(b"\xff\xfe\0garbage", arrival(), &[]);
    assert!(garbage.sender.is_none());
    assert!(!garbage.content.is_empty());
    assert_eq!(garbage.timestamp, arrival());
    let empty = parse(b"", arrival(), &[]);
    assert!(empty.sender.is_none());
    assert_eq!(empty.content, "(empty mail)");
    for date in ["not a date", "Fri, 01 Jan 2100 10:00:00 +0000"] {
        let raw = format!("From: a@example.com\nDate: {date}\nMessage-ID: <x@y>\n\nhi\n");
        assert_eq!(
            parse(raw.as_bytes(), arrival(), &[]).timestamp,
            arrival(),
            "{date}"
        );
    }
    let no_from = parse(b"Subject: lost\n\nwho sent this?\n", arrival(), &[]);
    assert!(no_from.sender.is_none());
    assert_eq!(no_from.content, "who sent this?");
}
