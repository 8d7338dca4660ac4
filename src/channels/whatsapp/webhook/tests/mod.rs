//! Tests of the WhatsApp webhook parser against every recorded fixture: helpers and the
//! sweeps over all files here, one case per message kind in `cases.rs`, and robustness against
//! damaged input in `robustness.rs`.

mod cases;
mod robustness;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/meta/whatsapp");

/// Every fixture as (file name, bytes), sorted by name.
pub(super) fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(FIXTURES)
        .expect("the fixture directory is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a UTF-8 file name")
                .to_owned();
            (name, std::fs::read(&path).expect("a readable fixture"))
        })
        .collect();
    all.sort();
    assert!(
        all.len() > 100,
        "expected the full fixture set, found {}",
        all.len()
    );
    all
}

pub(super) fn fixture(name: &str) -> Webhook {
    let bytes = std::fs::read(format!("{FIXTURES}/{name}")).expect("a readable fixture");
    parse(&bytes).expect("the fixture parses")
}

pub(super) fn only_message(name: &str) -> InboundMessage {
    let webhook = fixture(name);
    assert_eq!(webhook.messages.len(), 1, "{name}");
    webhook.messages.into_iter().next().expect("one message")
}

pub(super) fn only_status(name: &str) -> StatusUpdate {
    let webhook = fixture(name);
    assert_eq!(webhook.statuses.len(), 1, "{name}");
    webhook.statuses.into_iter().next().expect("one status")
}

pub(super) fn content(name: &str) -> String {
    only_message(name).content
}

pub(super) fn assert_complete(webhook: &Webhook, context: &str) {
    for m in &webhook.messages {
        assert!(!m.wamid.trim().is_empty(), "{context}: wamid of {m:?}");
        assert!(!m.sender.trim().is_empty(), "{context}: sender of {m:?}");
        assert!(
            !m.message_type.trim().is_empty(),
            "{context}: type of {m:?}"
        );
        assert!(!m.content.trim().is_empty(), "{context}: content of {m:?}");
        assert_eq!(m.timestamp.timestamp_subsec_nanos() % 1_000, 0, "{context}");
    }
    for s in &webhook.statuses {
        assert!(!s.wamid.trim().is_empty(), "{context}: wamid of {s:?}");
        assert!(!s.status.trim().is_empty(), "{context}: status of {s:?}");
    }
}

/// `image_3.json` → `image`; `interactive_list_reply_2.json` → `interactive`.
pub(super) fn message_type_of(name: &str) -> String {
    let stem = name.trim_end_matches(".json");
    let stem = stem.trim_end_matches(|c: char| c.is_ascii_digit());
    let stem = stem.trim_end_matches('_');
    if stem.starts_with("interactive") {
        "interactive".to_owned()
    } else {
        stem.to_owned()
    }
}

pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).expect("a valid time")
}

#[test]
fn every_fixture_parses_and_every_item_is_complete() {
    for (name, bytes) in fixtures() {
        let webhook = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_complete(&webhook, &name);
    }
}

#[test]
fn files_named_after_a_message_type_yield_a_message_of_that_type() {
    let mut checked = 0;
    for (name, bytes) in fixtures() {
        if name.starts_with("field_") || name.starts_with("status_") {
            continue;
        }
        if name.starts_with("errors_") {
            continue;
        }
        let webhook = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = message_type_of(&name);
        assert!(
            webhook.messages.iter().any(|m| m.message_type == expected),
            "{name}: no `{expected}` message in {:?}",
            webhook.messages
        );
        checked += 1;
    }
    assert!(checked > 60, "only {checked} message fixtures");
}

#[test]
fn status_files_yield_a_status_with_the_named_value() {
    for (name, bytes) in fixtures() {
        let Some(rest) = name.strip_prefix("status_") else {
            continue;
        };
        let expected = rest.split('_').next().expect("a status name");
        let webhook = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            webhook.statuses.iter().any(|s| s.status == expected),
            "{name}: {:?}",
            webhook.statuses
        );
        assert!(webhook.messages.is_empty(), "{name}");
    }
}

#[test]
fn other_webhook_fields_parse_to_nothing() {
    // `calls` carries call `statuses` and `smb_message_echoes` the business's own messages:
    // neither may pass for a delivery receipt or a customer message.
    for (name, bytes) in fixtures() {
        if !name.starts_with("field_") && !name.starts_with("errors_") {
            continue;
        }
        let webhook = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(webhook, Webhook::default(), "{name}");
    }
}
