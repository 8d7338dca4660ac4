//! WhatsApp Cloud API webhook bodies (`POST /webhook/whatsapp`) turned into inbound messages and
//! delivery statuses. No HTTP and no database: bytes in, plain values out.
//!
//! It reads every `entry[] × changes[]` whose `field` is `messages` (or absent), and in each
//! `value` every `messages[]` and `statuses[]` item. Other fields are skipped even when they
//! reuse those key names (`calls` has call `statuses`).
//!
//! Parsing is lenient on purpose. Meta adds fields and types without notice, and a body we
//! refuse is retried for days, so every field is optional, a wrong type in one item costs only
//! what it spoils, and only an item without an id is dropped. The one error is a body that is
//! not a JSON object.
//!
//! Invariants of the output: `wamid`, `sender`, `message_type` and `content` are never empty, and
//! `content` reads without knowledge of the payload format (`[image]`, `[reaction removed]`, …).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain;

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the webhook body is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("the webhook body is JSON but not an object")]
    NotAnObject,
}

/// What one webhook POST carried that this crate acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Webhook {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
}

/// A message a customer sent to one of the business numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// Meta's id (`wamid.…`), the key for deduplicating redeliveries.
    pub wamid: String,
    /// The key of the customer's conversation: phone digits, else the business-scoped user id.
    pub sender: String,
    /// Digits only, no `+`; absent for users who hide their number behind a username.
    pub phone: Option<String>,
    pub contact_name: Option<String>,
    /// WhatsApp's `type` as sent (`text`, `image`, `interactive`, …; `unknown` when missing).
    pub message_type: String,
    /// A readable rendering of the message, never empty.
    pub content: String,
    pub timestamp: DateTime<Utc>,
    /// The `messages[]` item exactly as received.
    pub raw: Value,
    /// `metadata.phone_number_id`: which business number received it.
    pub business_phone_number_id: Option<String>,
}

/// A delivery receipt for a message the business sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The wamid of the outbound message.
    pub wamid: String,
    /// As sent (`sent`, `delivered`, `read`, `failed`, `played`, …; `unknown` when missing).
    pub status: String,
    pub timestamp: DateTime<Utc>,
    /// `recipient_id` (a phone, or a group id), else `recipient_user_id`.
    pub recipient: Option<String>,
    /// The first of `errors[]`, e.g. `131047: Re-engagement message (Message failed to send …)`.
    pub error: Option<String>,
}

pub fn parse(body: &[u8]) -> Result<Webhook, ParseError> {
    let root: Value = serde_json::from_slice(body)?;
    if !root.is_object() {
        return Err(ParseError::NotAnObject);
    }
    let mut webhook = Webhook::default();
    let changes = items(root.get("entry"))
        .iter()
        .flat_map(|entry| items(entry.get("changes")));
    for change in changes {
        let about_messages = match change.get("field") {
            None | Some(Value::Null) => true,
            Some(field) => field.as_str() == Some("messages"),
        };
        let Some(value) = change.get("value").filter(|_| about_messages) else {
            continue;
        };
        let business = id(value.get("metadata").and_then(|m| m.get("phone_number_id")));
        let contacts = items(value.get("contacts"));
        for item in items(value.get("messages")) {
            webhook
                .messages
                .extend(inbound(item, contacts, business.as_deref()));
        }
        webhook
            .statuses
            .extend(items(value.get("statuses")).iter().filter_map(status));
    }
    Ok(webhook)
}

fn inbound(item: &Value, contacts: &[Value], business: Option<&str>) -> Option<InboundMessage> {
    let wamid = id(item.get("id"))?;
    let contact = matching_contact(item, contacts);
    let (sender, phone) = sender(item, contact)?;
    let message_type = text(item, "type").unwrap_or("unknown").to_owned();
    Some(InboundMessage {
        wamid,
        sender,
        phone,
        contact_name: contact
            .and_then(|c| c.get("profile"))
            .and_then(|profile| text(profile, "name"))
            .map(str::to_owned),
        content: render(item, &message_type, false),
        message_type,
        timestamp: timestamp(item.get("timestamp")),
        raw: item.clone(),
        business_phone_number_id: business.map(str::to_owned),
    })
}

fn status(item: &Value) -> Option<StatusUpdate> {
    Some(StatusUpdate {
        wamid: id(item.get("id"))?,
        status: text(item, "status").unwrap_or("unknown").to_owned(),
        timestamp: timestamp(item.get("timestamp")),
        recipient: text(item, "recipient_id")
            .or_else(|| text(item, "recipient_user_id"))
            .map(str::to_owned),
        error: items(item.get("errors")).first().and_then(describe_error),
    })
}

/// The `contacts[]` entry describing the message's author: the one whose `wa_id` or `user_id`
/// matches the message's `from` or `from_user_id`, else the only one. Meta sends the author's
/// contact next to the message, and a BSUID-only message may have nothing to match on.
fn matching_contact<'a>(item: &Value, contacts: &'a [Value]) -> Option<&'a Value> {
    let keys: Vec<String> = [text(item, "from"), text(item, "from_user_id")]
        .into_iter()
        .flatten()
        .map(normalise)
        .collect();
    let matches = |contact: &&Value| {
        [text(contact, "wa_id"), text(contact, "user_id")]
            .into_iter()
            .flatten()
            .any(|known| keys.contains(&normalise(known)))
    };
    contacts.iter().find(matches).or(match contacts {
        [only] => Some(only),
        _ => None,
    })
}

/// The conversation key and, when that key is a phone number, the phone.
fn sender(item: &Value, contact: Option<&Value>) -> Option<(String, Option<String>)> {
    let phone = text(item, "from").and_then(phone_digits).or_else(|| {
        contact
            .and_then(|c| text(c, "wa_id"))
            .and_then(phone_digits)
    });
    if let Some(phone) = phone {
        return Some((phone.clone(), Some(phone)));
    }
    // Users with a username may hide their number; Meta then sends a business-scoped id only.
    let other = text(item, "from_user_id")
        .or_else(|| contact.and_then(|c| text(c, "user_id")))
        .or_else(|| text(item, "from"));
    if let Some(other) = other {
        return Some((other.to_owned(), None));
    }
    // Some `system` notices name the user only inside `system` (`user_changed_user_id` has no
    // `from` and no contact, only the new id); that identity is the best key there is.
    let system = item.get("system")?;
    if let Some(phone) = text(system, "wa_id").and_then(phone_digits) {
        return Some((phone.clone(), Some(phone)));
    }
    text(system, "user_id").map(|user| (user.to_owned(), None))
}

/// The readable `content` of a message of type `kind`. `nested` stops an edit inside an edit.
fn render(item: &Value, kind: &str, nested: bool) -> String {
    let payload = item.get(kind);
    let caption = || payload.and_then(|p| body(p, "caption")).map(str::to_owned);
    let readable = match kind {
        "text" => payload.and_then(|p| body(p, "body")).map(str::to_owned),
        "image" | "video" | "audio" | "sticker" => caption(),
        "document" => caption().or_else(|| {
            let name = text(payload?, "filename")?;
            Some(format!("[document: {name}]"))
        }),
        "location" => payload.and_then(location),
        "contacts" => contact_cards(payload),
        "interactive" => payload.and_then(interactive),
        "button" => payload
            .and_then(|p| body(p, "text").or_else(|| body(p, "payload")))
            .map(str::to_owned),
        // A reaction with no emoji, or an empty one, is the removal of an earlier reaction.
        "reaction" => Some(
            payload
                .and_then(|p| body(p, "emoji"))
                .unwrap_or("[reaction removed]")
                .to_owned(),
        ),
        "order" => payload.map(order),
        "system" => payload.and_then(|p| body(p, "body")).map(str::to_owned),
        "edit" if !nested => Some(match payload.and_then(|p| p.get("message")) {
            Some(edited) => {
                let kind = text(edited, "type").unwrap_or("unknown");
                format!("[edited] {}", render(edited, kind, true))
            }
            None => "[edited message]".to_owned(),
        }),
        "revoke" => Some("[message deleted]".to_owned()),
        _ => None,
    };
    readable.unwrap_or_else(|| format!("[{kind}]"))
}

fn location(location: &Value) -> Option<String> {
    match (text(location, "name"), text(location, "address")) {
        (Some(name), Some(address)) if name != address => Some(format!("{name}, {address}")),
        (Some(place), _) | (None, Some(place)) => Some(place.to_owned()),
        (None, None) => {
            let latitude = number(location.get("latitude"))?;
            let longitude = number(location.get("longitude"))?;
            Some(format!("[location: {latitude}, {longitude}]"))
        }
    }
}

fn contact_cards(cards: Option<&Value>) -> Option<String> {
    let names: Vec<String> = items(cards).iter().filter_map(card_name).collect();
    (!names.is_empty()).then(|| format!("[contact: {}]", names.join(", ")))
}

fn card_name(card: &Value) -> Option<String> {
    let name = card.get("name");
    if let Some(formatted) = name.and_then(|n| text(n, "formatted_name")) {
        return Some(formatted.to_owned());
    }
    let parts: Vec<&str> = ["first_name", "last_name"]
        .into_iter()
        .filter_map(|part| name.and_then(|n| text(n, part)))
        .collect();
    if !parts.is_empty() {
        return Some(parts.join(" "));
    }
    // Contact requests (2026) send a raw vCard instead of the structured name.
    let from_vcard = card
        .get("vcard")
        .and_then(Value::as_str)
        .and_then(vcard_full_name);
    from_vcard.or_else(|| {
        items(card.get("phones"))
            .iter()
            .find_map(|phone| text(phone, "phone"))
            .map(str::to_owned)
    })
}

/// The `FN` (full name) property of a vCard, with or without parameters (`FN;CHARSET=…:`).
fn vcard_full_name(vcard: &str) -> Option<String> {
    vcard.lines().find_map(|line| {
        let (property, value) = line.trim().split_once(':')?;
        let name = property.split(';').next()?;
        let value = value.trim();
        (name.eq_ignore_ascii_case("fn") && !value.is_empty()).then(|| value.to_owned())
    })
}

/// Reply kinds looked for when an `interactive` object omits its `type`.
const INTERACTIVE_REPLIES: [&str; 4] = [
    "button_reply",
    "list_reply",
    "nfm_reply",
    "call_permission_reply",
];

fn interactive(interactive: &Value) -> Option<String> {
    let kind = text(interactive, "type").or_else(|| {
        INTERACTIVE_REPLIES
            .into_iter()
            .find(|kind| interactive.get(*kind).is_some())
    })?;
    let reply = interactive.get(kind);
    let title = reply.and_then(|r| text(r, "title"));
    Some(match kind {
        "button_reply" => title.unwrap_or("[button reply]").to_owned(),
        "list_reply" => match (title, reply.and_then(|r| text(r, "description"))) {
            (Some(title), Some(description)) => format!("{title} — {description}"),
            (Some(title), None) => title.to_owned(),
            (None, _) => "[list reply]".to_owned(),
        },
        // A WhatsApp Flow completion: the answers are in `response_json` (kept in `raw`).
        "nfm_reply" => reply
            .and_then(|r| body(r, "body"))
            .unwrap_or("[form reply]")
            .to_owned(),
        "call_permission_reply" => match reply.and_then(|r| text(r, "response")) {
            Some(response) => format!("[call permission: {response}]"),
            None => "[call permission reply]".to_owned(),
        },
        other => format!("[interactive: {other}]"),
    })
}

fn order(order: &Value) -> String {
    let count = items(order.get("product_items")).len();
    let plural = if count == 1 { "" } else { "s" };
    match body(order, "text") {
        Some(note) => format!("[order: {count} item{plural}] {note}"),
        None => format!("[order: {count} item{plural}]"),
    }
}

/// A readable line from the first `errors[]` entry: `code: title (details)`, with `message`
/// added when it says more than `title`. `details` sits in `error_data` normally and at the top
/// level in older payloads; Graph errors may make `error_data` a plain string.
fn describe_error(error: &Value) -> Option<String> {
    let code = id(error.get("code"));
    let title = text(error, "title");
    let message = text(error, "message");
    let details = error
        .get("error_data")
        .and_then(|data| text(data, "details").or_else(|| trimmed(data)))
        .or_else(|| text(error, "details"));
    let headline = match (title, message) {
        (Some(title), Some(message)) if !title.eq_ignore_ascii_case(message) => {
            Some(format!("{title}: {message}"))
        }
        (Some(line), _) | (None, Some(line)) => Some(line.to_owned()),
        (None, None) => None,
    };
    let line = [code, headline]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    let details = details.filter(|d| Some(*d) != title && Some(*d) != message);
    let line = match (line.is_empty(), details) {
        (false, Some(details)) => format!("{line} ({details})"),
        (true, Some(details)) => details.to_owned(),
        (_, None) => line,
    };
    (!line.is_empty()).then_some(line)
}

/// WhatsApp sends unix seconds as a string; a number is accepted too. Anything else, or a time
/// out of range (placeholders such as `"TIMESTAMP"` occur), means "now": the message did arrive.
fn timestamp(value: Option<&Value>) -> DateTime<Utc> {
    let seconds = match value {
        Some(Value::String(s)) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        _ => None,
    };
    seconds
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or_else(domain::now)
}

fn items(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// A string that holds more than whitespace, trimmed: for ids, names and type tags.
fn trimmed(value: &Value) -> Option<&str> {
    value.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn text<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    trimmed(object.get(key)?)
}

/// A string that holds more than whitespace, as sent: for what a person wrote.
fn body<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get(key)?.as_str().filter(|s| !s.trim().is_empty())
}

/// An identifier: a non-blank string, or a number written out (ids are strings on the wire, but
/// a number should not cost the item).
fn id(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        other => trimmed(other).map(str::to_owned),
    }
}

fn number(value: Option<&Value>) -> Option<f64> {
    let number = match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    number.filter(|f| f.is_finite())
}

/// The digits of a phone number written as digits with an optional leading `+`, else nothing.
fn phone_digits(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.to_owned())
}

/// The form two sender ids are compared in: phone digits when it is a phone, else as sent.
fn normalise(id: &str) -> String {
    phone_digits(id).unwrap_or_else(|| id.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/meta/whatsapp"
    );

    /// Every fixture as (file name, bytes), sorted by name.
    fn fixtures() -> Vec<(String, Vec<u8>)> {
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

    fn fixture(name: &str) -> Webhook {
        let bytes = std::fs::read(format!("{FIXTURES}/{name}")).expect("a readable fixture");
        parse(&bytes).expect("the fixture parses")
    }

    fn only_message(name: &str) -> InboundMessage {
        let webhook = fixture(name);
        assert_eq!(webhook.messages.len(), 1, "{name}");
        webhook.messages.into_iter().next().expect("one message")
    }

    fn only_status(name: &str) -> StatusUpdate {
        let webhook = fixture(name);
        assert_eq!(webhook.statuses.len(), 1, "{name}");
        webhook.statuses.into_iter().next().expect("one status")
    }

    fn content(name: &str) -> String {
        only_message(name).content
    }

    fn assert_complete(webhook: &Webhook, context: &str) {
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
    fn message_type_of(name: &str) -> String {
        let stem = name.trim_end_matches(".json");
        let stem = stem.trim_end_matches(|c: char| c.is_ascii_digit());
        let stem = stem.trim_end_matches('_');
        if stem.starts_with("interactive") {
            "interactive".to_owned()
        } else {
            stem.to_owned()
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
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

    #[test]
    fn a_text_message_is_read_in_full() {
        let m = only_message("text_1.json");
        assert_eq!(m.wamid, "wamid.xyzxyz");
        assert_eq!(m.sender, "972987654321");
        assert_eq!(m.phone.as_deref(), Some("972987654321"));
        assert_eq!(m.contact_name.as_deref(), Some("Test Name"));
        assert_eq!(m.message_type, "text");
        assert_eq!(m.content, "Body Text");
        assert_eq!(m.timestamp, at(1_697_043_223));
        assert_eq!(m.business_phone_number_id.as_deref(), Some("1122334455667"));
        assert_eq!(m.raw["text"]["body"], "Body Text");
        assert_eq!(content("text_9.json"), "hi everyone!");
    }

    #[test]
    fn a_user_without_a_phone_is_keyed_by_the_business_scoped_id() {
        let m = only_message("text_7.json");
        assert_eq!(m.sender, "US.13491208655302741918");
        assert_eq!(m.phone, None);
        assert_eq!(m.contact_name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(m.content, "Does it come in another color?");
    }

    #[test]
    fn a_message_without_from_takes_its_sender_from_the_contact() {
        let m = only_message("contacts_2.json");
        assert_eq!(m.sender, "US.13491208655302741918");
        assert_eq!(m.phone, None);
        assert_eq!(m.content, "[contact: Sheena Nelson]");
    }

    #[test]
    fn a_system_notice_without_from_is_keyed_by_its_user_id() {
        let m = only_message("system_3.json");
        assert_eq!(m.sender, "US.13491208655302741918");
        assert!(
            m.content.starts_with("User Sheena Nelson changed"),
            "{}",
            m.content
        );
        assert_eq!(
            content("system_1.json"),
            "User A changed from 972987654321 to 972912345678"
        );
    }

    #[test]
    fn placeholder_values_do_not_break_parsing() {
        // `from` is `<WHATSAPP_USER_PHONE_NUMBER>`; the one contact gives the real key.
        let m = only_message("revoke_1.json");
        assert_eq!(m.sender, "972987654321");
        assert_eq!(m.content, "[message deleted]");
        assert_eq!(
            m.business_phone_number_id.as_deref(),
            Some("<BUSINESS_PHONE_NUMBER_ID>")
        );
        let m = only_message("contacts_4.json");
        assert_eq!(m.sender, "REDACTED");
        assert_eq!(m.phone, None);
        let before = domain::now();
        let s = only_status("status_sent_3.json");
        assert!(s.timestamp >= before, "TIMESTAMP placeholder means now");
        assert_eq!(s.recipient.as_deref(), Some("PHONE_NUMBER"));
    }

    #[test]
    fn media_show_their_caption_or_a_label() {
        assert_eq!(content("image_3.json"), "Some awesome image");
        assert_eq!(content("image_1.json"), "[image]");
        assert_eq!(content("video_3.json"), "hello world");
        assert_eq!(content("audio_2.json"), "[audio]");
        assert_eq!(content("sticker_1.json"), "[sticker]");
        assert_eq!(content("document_1.json"), "caption");
        assert_eq!(content("document_3.json"), "[document: 4_641947.pdf]");
    }

    #[test]
    fn locations_show_a_place_or_coordinates() {
        assert_eq!(
            content("location_2.json"),
            "Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025"
        );
        assert_eq!(content("location_1.json"), "[location: 12.25089, 43.90539]");
    }

    #[test]
    fn interactive_replies_show_what_was_chosen() {
        assert_eq!(content("interactive_button_reply_2.json"), "button-text");
        assert_eq!(
            content("interactive_list_reply_3.json"),
            "list_reply_title — list_reply_description"
        );
        assert_eq!(content("interactive_list_reply_1.json"), "title");
        assert_eq!(content("interactive_nfm_reply_1.json"), "Sent");
        assert_eq!(
            content("interactive_call_permission_reply_2.json"),
            "[call permission: reject]"
        );
        assert_eq!(
            content("interactive_empty_with_value_errors_1.json"),
            "[interactive]"
        );
    }

    #[test]
    fn reactions_show_the_emoji_or_its_removal() {
        assert_eq!(content("reaction_1.json"), "\u{1f62e}");
        assert_eq!(content("reaction_4.json"), "\u{1f44d}\u{1f3fb}");
        assert_eq!(content("reaction_2.json"), "[reaction removed]");
        assert_eq!(content("reaction_3.json"), "[reaction removed]");
    }

    #[test]
    fn other_types_have_readable_content() {
        assert_eq!(content("button_3.json"), "No");
        assert_eq!(
            content("contacts_1.json"),
            "[contact: Chandler Bing, Monica, Rachel Green]"
        );
        assert_eq!(content("order_1.json"), "[order: 3 items]");
        assert_eq!(content("edit_1.json"), "[edited] Updated image caption");
        assert_eq!(content("unsupported_2.json"), "[unsupported]");
        assert_eq!(content("unknown_1.json"), "[unknown]");
    }

    #[test]
    fn a_failed_status_carries_a_readable_error() {
        let s = only_status("status_failed_4.json");
        assert_eq!(s.status, "failed");
        assert_eq!(s.recipient.as_deref(), Some("5511111111111"));
        assert_eq!(s.timestamp, at(1_682_651_887));
        assert_eq!(
            s.error.as_deref(),
            Some(
                "131047: Re-engagement message (Message failed to send because more than \
                 24 hours have passed since the customer last replied to this number.)"
            )
        );
        let error = only_status("status_failed_2.json")
            .error
            .unwrap_or_default();
        assert!(error.starts_with("131026: "), "{error}");
        assert_eq!(only_status("status_read_1.json").error, None);
    }

    #[test]
    fn a_status_to_a_hidden_number_names_the_business_scoped_id() {
        let s = only_status("status_delivered_2.json");
        assert_eq!(s.recipient.as_deref(), Some("US.13491208655302741918"));
        assert_eq!(only_status("status_played_1.json").status, "played");
    }

    #[test]
    fn every_entry_change_and_item_of_a_batch_is_read() {
        let body = br#"{"entry": [
            {"changes": [
                {"field": "messages", "value": {"metadata": {"phone_number_id": "1"},
                    "messages": [
                        {"id": "a", "from": "+34 600", "type": "text", "text": {"body": "one"}},
                        {"id": "b", "from": "+34600", "type": "text", "text": {"body": "two"}}],
                    "statuses": [{"id": "s1", "status": "read", "timestamp": 1700000000}]}},
                {"value": {"messages": [{"id": "c", "from": "35", "timestamp": "17"}]}}]},
            {"changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": 2},
                "statuses": [{"id": "s2", "status": "delivered"}]}}]}]}"#;
        let webhook = parse(body).expect("parses");
        let ids: Vec<&str> = webhook.messages.iter().map(|m| m.wamid.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        // "+34 600" is not only digits: kept as the raw key rather than guessed at.
        assert_eq!(webhook.messages[0].sender, "+34 600");
        assert_eq!(webhook.messages[0].phone, None);
        assert_eq!(webhook.messages[1].sender, "34600");
        assert_eq!(webhook.messages[2].message_type, "unknown");
        assert_eq!(webhook.messages[2].content, "[unknown]");
        assert_eq!(webhook.messages[2].timestamp, at(17));
        assert_eq!(webhook.messages[2].business_phone_number_id, None);
        let statuses: Vec<(&str, &str)> = webhook
            .statuses
            .iter()
            .map(|s| (s.wamid.as_str(), s.status.as_str()))
            .collect();
        assert_eq!(statuses, [("s1", "read"), ("s2", "delivered")]);
        assert_eq!(webhook.statuses[0].timestamp, at(1_700_000_000));
    }

    #[test]
    fn a_bad_item_costs_only_itself() {
        let body = br#"{"entry": [{"changes": [{"value": {
            "contacts": "not a list",
            "messages": [
                {"from": "1", "type": "text", "text": {"body": "no id"}},
                {"id": "", "from": "1"},
                {"id": "no-sender", "type": "text", "text": {"body": "x"}},
                "not an object",
                {"id": "typed-wrong", "from": "1", "type": 7, "text": "body", "timestamp": [1]},
                {"id": "media", "from": "2", "type": "image", "image": {"caption": 5}},
                {"id": "place", "from": "3", "type": "location",
                    "location": {"latitude": "1.5", "longitude": "2"}},
                {"id": 42, "from": "4", "type": "text", "text": {"body": "numeric id"}}],
            "statuses": [{"status": "read"}, {"id": "ok", "errors": "nope"}, 3]}}]}]}"#;
        let webhook = parse(body).expect("parses");
        assert_complete(&webhook, "inline");
        let got: Vec<(&str, &str)> = webhook
            .messages
            .iter()
            .map(|m| (m.wamid.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("typed-wrong", "[unknown]"),
                ("media", "[image]"),
                ("place", "[location: 1.5, 2]"),
                ("42", "numeric id"),
            ]
        );
        assert_eq!(webhook.statuses.len(), 1);
        assert_eq!(webhook.statuses[0].status, "unknown");
        assert_eq!(webhook.statuses[0].error, None);
    }

    #[test]
    fn the_contact_that_matches_names_the_sender() {
        let body = br#"{"entry": [{"changes": [{"value": {
            "contacts": [{"wa_id": "111", "profile": {"name": "One"}},
                         {"wa_id": "222", "profile": {"name": "Two"}}],
            "messages": [{"id": "m", "from": "+222", "type": "text", "text": {"body": "hi"}},
                         {"id": "n", "from": "333", "type": "text", "text": {"body": "hi"}}]
            }}]}]}"#;
        let webhook = parse(body).expect("parses");
        assert_eq!(webhook.messages[0].sender, "222");
        assert_eq!(webhook.messages[0].contact_name.as_deref(), Some("Two"));
        assert_eq!(webhook.messages[1].contact_name, None);
    }

    #[test]
    fn only_non_objects_are_errors() {
        assert!(matches!(parse(b""), Err(ParseError::NotJson(_))));
        assert!(matches!(
            parse(b"{\"entry\": ["),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(parse(b"\xff\xfe"), Err(ParseError::NotJson(_))));
        for body in [&b"[]"[..], b"\"entry\"", b"3", b"null"] {
            assert!(matches!(parse(body), Err(ParseError::NotAnObject)));
        }
        for body in [
            &b"{}"[..],
            br#"{"entry": {}}"#,
            br#"{"entry": [null, 1, {"changes": "x"}, {"changes": [null, {"value": 3}]}]}"#,
            br#"{"entry": [{"changes": [{"field": 5, "value": {"messages": [{"id": "x", "from": "1"}]}}]}]}"#,
        ] {
            assert_eq!(parse(body).expect("parses"), Webhook::default());
        }
    }

    /// A small deterministic generator, so failures reproduce without a new dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn truncated_fixtures_never_panic() {
        for (name, bytes) in fixtures() {
            for end in 0..bytes.len() {
                if let Ok(webhook) = parse(&bytes[..end]) {
                    assert_complete(&webhook, &format!("{name}[..{end}]"));
                }
            }
        }
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2_000 {
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert!(parse(&bytes).is_err() || bytes.first() == Some(&b'{'));
        }
        // Random bytes are almost never JSON, so also mutate real payloads with JSON syntax.
        const ALPHABET: &[u8] = b"{}[]\",:0123456789 -.eE+tfnul\\x\xc3\xa9";
        for (name, original) in fixtures() {
            for round in 0..40 {
                let mut bytes = original.clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(bytes.len());
                    bytes[at] = ALPHABET[rng.below(ALPHABET.len())];
                }
                if let Ok(webhook) = parse(&bytes) {
                    assert_complete(&webhook, &format!("{name} mutation {round}"));
                }
            }
        }
    }

    /// Every place a node sits in a JSON tree, as a path of object keys and array indices.
    fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(prefix.clone());
        let children: Vec<(String, &Value)> = match value {
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
            _ => Vec::new(),
        };
        for (key, child) in children {
            prefix.push(key);
            paths(child, prefix, out);
            prefix.pop();
        }
    }

    fn node_mut<'a>(mut value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
        for key in path {
            value = match value {
                Value::Object(map) => map.get_mut(key)?,
                Value::Array(list) => list.get_mut(key.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(value)
    }

    #[test]
    fn any_node_of_another_type_never_panics_or_breaks_invariants() {
        let replacements = [
            Value::Null,
            Value::from(0),
            Value::from(-1.5),
            Value::from(""),
            Value::from("x"),
            Value::Array(Vec::new()),
            Value::Object(serde_json::Map::new()),
        ];
        for (name, bytes) in fixtures() {
            if name.starts_with("field_") {
                continue;
            }
            let original: Value = serde_json::from_slice(&bytes).expect("fixtures are JSON");
            let mut all = Vec::new();
            paths(&original, &mut Vec::new(), &mut all);
            for path in all.iter().filter(|p| !p.is_empty()) {
                for replacement in &replacements {
                    let mut changed = original.clone();
                    if let Some(node) = node_mut(&mut changed, path) {
                        *node = replacement.clone();
                    }
                    let body = serde_json::to_vec(&changed).expect("serialises");
                    let webhook = parse(&body).expect("still an object");
                    assert_complete(&webhook, &format!("{name} {path:?} = {replacement}"));
                }
            }
        }
    }
}
