//! The Instagram parser against every recorded fixture, then one case per event kind the
//! fixtures lack (postbacks, reactions, the dashboard's test shape, several attachments).

use serde_json::json;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/meta/instagram");

fn fixture(name: &str) -> Webhook {
    let bytes = std::fs::read(format!("{FIXTURES}/{name}")).expect("a readable fixture");
    parse(&bytes).expect("the fixture parses")
}

fn only_message(name: &str) -> DirectMessage {
    let webhook = fixture(name);
    assert_eq!(webhook.messages.len(), 1, "{name}");
    assert!(webhook.reads.is_empty(), "{name}");
    webhook.messages.into_iter().next().expect("one")
}

fn of(value: Value) -> Webhook {
    parse(value.to_string().as_bytes()).expect("parses")
}

fn item(messaging: Value) -> Webhook {
    of(
        json!({"object": "instagram", "entry": [{"id": "17841400000000000", "time": 1668022334834_i64, "messaging": [messaging]}]}),
    )
}

#[test]
fn every_fixture_parses_into_what_it_carries() {
    let mut names: Vec<String> = std::fs::read_dir(FIXTURES)
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 15);
    for name in names {
        let webhook = fixture(&name);
        let (messages, reads) = match name.as_str() {
            n if n.starts_with("field_") => (0, 0),
            "message_deleted_1.json" => (0, 0),
            n if n.starts_with("read_") => (0, 1),
            _ => (1, 0),
        };
        assert_eq!(webhook.messages.len(), messages, "{name}");
        assert_eq!(webhook.reads.len(), reads, "{name}");
        for m in &webhook.messages {
            assert!(!m.content.trim().is_empty(), "{name}");
            assert!(!m.mid.is_empty() && !m.customer.is_empty(), "{name}");
        }
    }
}

#[test]
fn a_text_keeps_its_words_and_millisecond_time() {
    let m = only_message("text_1.json");
    assert_eq!(m.mid, "message-id-1");
    assert_eq!(m.customer, "Sender-id-1");
    assert!(!m.from_business);
    assert_eq!(m.message_type, "text");
    assert_eq!(m.content, "This is the first message from the customer");
    assert_eq!(m.timestamp.to_rfc3339(), "2021-09-08T06:34:04+00:00");
    assert_eq!(m.raw["message"]["mid"], "message-id-1");
    assert!(m.attachments.is_empty());
}

#[test]
fn standby_items_and_story_replies_are_messages() {
    let standby = only_message("standby_text_1.json");
    assert_eq!(standby.message_type, "text");
    assert!(standby
        .content
        .starts_with("This is the first standby message"));
    let story = only_message("story_reply_1.json");
    assert_eq!(story.message_type, "text");
    assert_eq!(story.content, "This is the story reply");
    assert!(story.raw["message"]["reply_to"]["story"].is_object());
}

#[test]
fn attachments_are_described_and_keep_their_url() {
    for (name, kind, content) in [
        ("attachment_share_1.json", "share", "[shared post]"),
        (
            "attachment_story_mention_1.json",
            "story_mention",
            "[story mention]",
        ),
        (
            "attachment_unsupported_type_1.json",
            "unsupported_type",
            "[unsupported attachment]",
        ),
    ] {
        let m = only_message(name);
        assert_eq!(m.message_type, kind, "{name}");
        assert_eq!(m.content, content, "{name}");
        assert_eq!(m.attachments.len(), 1, "{name}");
        assert!(
            m.attachments[0]
                .url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://")),
            "{name}"
        );
    }
    assert_eq!(
        only_message("attachment_unsupported_type_1.json").customer,
        "5614879045272581"
    );
}

#[test]
fn an_echo_belongs_to_the_recipients_conversation() {
    let m = only_message("echo_attachment_story_mention_1.json");
    assert!(m.from_business);
    assert_eq!(m.customer, "chatwoot-app-user-id-1");
    assert_eq!(m.message_type, "story_mention");
}

#[test]
fn read_receipts_name_the_customer_and_the_last_message_seen() {
    let webhook = fixture("read_1.json");
    assert_eq!(
        webhook.reads,
        vec![Read {
            customer: "5614879045272581".into(),
            mid: "MESSAGE-ID".into()
        }]
    );
}

#[test]
fn a_postback_is_its_title() {
    let webhook = item(
        json!({"sender": {"id": "111"}, "recipient": {"id": "222"}, "timestamp": 1668022333735_i64,
        "postback": {"mid": "pb-1", "title": "What are your opening hours?", "payload": "HOURS"}}),
    );
    let m = &webhook.messages[0];
    assert_eq!(
        (
            m.message_type.as_str(),
            m.content.as_str(),
            m.customer.as_str()
        ),
        ("postback", "What are your opening hours?", "111")
    );
    let untitled =
        item(json!({"sender": {"id": "111"}, "postback": {"mid": "pb-2", "payload": "START"}}));
    assert_eq!(untitled.messages[0].content, "START");
}

#[test]
fn reactions_referrals_and_unknown_events_are_skipped() {
    for event in [
        json!({"reaction": {"mid": "m1", "action": "react", "reaction": "love", "emoji": "❤️"}}),
        json!({"reaction": {"mid": "m1", "action": "unreact"}}),
        json!({"referral": {"ref": "ad", "source": "ADS"}}),
        json!({"optin": {"ref": "x"}}),
        json!({"message_edit": {"mid": "m1", "text": "edited", "num_edit": 1}}),
        json!({"message": {"mid": "m1", "is_deleted": true}}),
        json!({"message": "not an object"}),
        json!({"message": {"text": "no mid"}}),
    ] {
        let mut messaging =
            json!({"sender": {"id": "111"}, "recipient": {"id": "222"}, "timestamp": 1});
        if let (Some(target), Value::Object(extra)) = (messaging.as_object_mut(), event.clone()) {
            target.extend(extra);
        }
        let webhook = item(messaging);
        assert_eq!(webhook, Webhook::default(), "{event}");
    }
    // No sender: whose conversation it is cannot be known.
    let webhook = item(json!({"message": {"mid": "m2", "text": "hi"}}));
    assert!(webhook.messages.is_empty());
}

#[test]
fn the_dashboards_test_shape_is_read_with_seconds() {
    let webhook = of(
        json!({"object": "instagram", "entry": [{"id": "0", "time": 1527459824, "changes": [
            {"field": "messages", "value": {"sender": {"id": "12334"}, "recipient": {"id": "23245"}, "timestamp": "1527459824",
                "message": {"mid": "random_mid", "text": "random_text"}}},
            {"field": "comments", "value": {"id": "1", "text": "not a DM", "from": {"id": "9"}}},
            {"field": "messaging_seen", "value": {"sender": {"id": "12334"}, "recipient": {"id": "23245"}, "read": {"mid": "random_mid"}}}
        ]}]}),
    );
    assert_eq!(webhook.messages.len(), 1);
    let m = &webhook.messages[0];
    assert_eq!(
        (m.customer.as_str(), m.content.as_str()),
        ("12334", "random_text")
    );
    assert_eq!(m.timestamp.to_rfc3339(), "2018-05-27T22:23:44+00:00");
    assert_eq!(webhook.reads.len(), 1);
}

#[test]
fn several_attachments_then_the_text() {
    let webhook = item(
        json!({"sender": {"id": "111"}, "recipient": {"id": "222"}, "timestamp": 1668022333735_i64,
        "message": {"mid": "m3", "text": "look", "attachments": [
            {"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/a"}},
            {"type": "ig_reel", "payload": {"url": "https://lookaside.fbsbx.com/b", "title": "a reel"}},
            {"type": "audio", "payload": {"url": "javascript:alert(1)"}},
            {"type": "new_kind"}
        ]}}),
    );
    let m = &webhook.messages[0];
    assert_eq!(m.message_type, "image");
    assert_eq!(m.content, "[image] [reel] [audio] [new kind] look");
    let urls: Vec<Option<&str>> = m.attachments.iter().map(|a| a.url.as_deref()).collect();
    assert_eq!(
        urls,
        vec![
            Some("https://lookaside.fbsbx.com/a"),
            Some("https://lookaside.fbsbx.com/b"),
            None,
            None
        ]
    );
}

#[test]
fn unsupported_and_empty_messages_still_read() {
    let unsupported =
        item(json!({"sender": {"id": "1"}, "message": {"mid": "u1", "is_unsupported": true}}));
    assert_eq!(
        (
            unsupported.messages[0].message_type.as_str(),
            unsupported.messages[0].content.as_str()
        ),
        ("unsupported", "[unsupported message]")
    );
    let empty = item(json!({"sender": {"id": "1"}, "message": {"mid": "u2", "text": "   "}}));
    assert_eq!(empty.messages[0].content, "[message]");
}

#[test]
fn timestamps_fall_back_to_the_entry_then_now() {
    let at_entry = item(
        json!({"sender": {"id": "1"}, "timestamp": "soon", "message": {"mid": "t1", "text": "x"}}),
    );
    assert_eq!(
        at_entry.messages[0].timestamp.timestamp_millis(),
        1668022334834
    );
    let none = of(
        json!({"entry": [{"messaging": [{"sender": {"id": "1"}, "timestamp": -5, "message": {"mid": "t2", "text": "x"}}]}]}),
    );
    let age = domain::now() - none.messages[0].timestamp;
    assert!(age.num_seconds().abs() < 60);
    let huge = item(
        json!({"sender": {"id": "1"}, "timestamp": 9.9e300, "message": {"mid": "t3", "text": "x"}}),
    );
    assert_eq!(huge.messages[0].timestamp.timestamp_millis(), 1668022334834);
}

#[test]
fn only_a_json_object_is_a_webhook() {
    assert!(matches!(parse(b"not json"), Err(ParseError::NotJson(_))));
    assert!(matches!(parse(b"[1]"), Err(ParseError::NotAnObject)));
    assert_eq!(parse(b"{}").expect("empty"), Webhook::default());
    assert_eq!(
        parse(br#"{"entry": {"messaging": 3}}"#).expect("odd"),
        Webhook::default()
    );
}
