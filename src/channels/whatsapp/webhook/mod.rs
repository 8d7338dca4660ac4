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

mod media;
mod render;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde_json::Value;

use self::render::{describe_error, render};
use crate::channels::meta::json::{id, items, text};
pub use crate::channels::meta::ParseError;
use crate::domain::{self, AttachmentKind};

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
    /// The file of a media message (image, video, audio, document, sticker).
    pub media: Option<Media>,
}

/// A file a message carries, known by its media id until it is fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub kind: AttachmentKind,
    /// Resolved by `GET {base}/{version}/{media-id}` with the access token.
    pub media_id: String,
    /// As Meta sent it, when it is a valid media type.
    pub mime_type: Option<String>,
    /// A document's file name.
    pub file_name: Option<String>,
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
        media: media::media(item, &message_type),
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
