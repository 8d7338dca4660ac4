//! Instagram webhook bodies (`POST /webhook/instagram`) turned into messages and read receipts.
//! No HTTP and no database: bytes in, plain values out.
//!
//! It reads every `entry[]`'s `messaging[]` and `standby[]` items (`standby` when another app
//! owns the thread) and the dashboard's test shape, `changes[]` whose `field` is one of the
//! messaging fields and whose `value` is one messaging item. Other fields (`comments`,
//! `mentions`, `story_insights`, …) are not direct messages and are skipped. In each item:
//! - `message`: a customer's message (keyed by `sender.id`), or with `is_echo` one the business
//!   sent (keyed by `recipient.id`); `is_deleted` (the customer unsent it) is skipped;
//! - `postback`: a customer's tap on a button or ice breaker, read as its title;
//! - `read`: the customer has seen the business's messages up to `read.mid`;
//! - anything else (`reaction`, `referral`, `optin`, edits) is skipped.
//!
//! Parsing is lenient as WhatsApp's is: every field optional, a wrong type costs only its item,
//! an item without its id is dropped. The one error is a body that is not a JSON object.
//! Timestamps are epoch milliseconds; a value too small to be milliseconds after 1973 is read
//! as seconds (the dashboard's test payloads send seconds, as a string).

mod render;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde_json::Value;

use self::render::{content, message_type, Described};
use crate::channels::meta::json::{body, id, items, text};
pub use crate::channels::meta::ParseError;
use crate::domain;

/// The `changes[].field` values whose `value` is one messaging item.
const MESSAGING_FIELDS: [&str; 6] = [
    "messages",
    "messaging_postbacks",
    "messaging_seen",
    "message_reactions",
    "messaging_referral",
    "standby",
];

/// Below this, a timestamp is read as seconds: 10^11 ms is March 1973, 10^11 s the year 5138.
const SECONDS_BELOW: i64 = 100_000_000_000;

/// What one webhook POST carried that this crate acts on, in the order received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Webhook {
    pub messages: Vec<DirectMessage>,
    pub reads: Vec<Read>,
}

/// A message of a conversation: a customer's, or (an echo) one the business sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectMessage {
    /// Meta's `mid`, the key for deduplicating redeliveries.
    pub mid: String,
    /// The customer's IGSID: `sender.id`, or `recipient.id` for an echo.
    pub customer: String,
    /// An echo: the business sent it (from this server or from the Instagram app).
    pub from_business: bool,
    /// `text`, the first attachment's type, `postback`, `unsupported`, or `unknown`.
    pub message_type: String,
    /// Readable, never empty: the text, or `[image]`, `[story mention] …`, a postback's title.
    pub content: String,
    pub attachments: Vec<Attachment>,
    pub timestamp: DateTime<Utc>,
    /// The `messaging[]` item exactly as received.
    pub raw: Value,
}

/// A file a message carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// Instagram's `type` as sent (`image`, `share`, `story_mention`, …).
    pub kind: String,
    /// `payload.url`, when it is an http(s) URL of sane length.
    pub url: Option<String>,
}

/// The customer has seen the business's messages up to `mid`.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub customer: String,
    pub mid: String,
}

pub fn parse(body: &[u8]) -> Result<Webhook, ParseError> {
    let root: Value = serde_json::from_slice(body)?;
    if !root.is_object() {
        return Err(ParseError::NotAnObject);
    }
    let mut webhook = Webhook::default();
    for entry in items(root.get("entry")) {
        let entry_time = entry.get("time");
        let direct = items(entry.get("messaging"))
            .iter()
            .chain(items(entry.get("standby")));
        let tested = items(entry.get("changes"))
            .iter()
            .filter(|change| {
                text(change, "field").is_some_and(|field| MESSAGING_FIELDS.contains(&field))
            })
            .filter_map(|change| change.get("value"));
        for item in direct.chain(tested) {
            webhook.read(item, entry_time);
        }
    }
    Ok(webhook)
}

impl Webhook {
    /// Adds what one messaging item carries.
    fn read(&mut self, item: &Value, entry_time: Option<&Value>) {
        let person = |key: &str| id(item.get(key).and_then(|p| p.get("id")));
        let timestamp = timestamp(item.get("timestamp"))
            .or_else(|| timestamp(entry_time))
            .unwrap_or_else(domain::now);
        if let Some(message) = item.get("message").filter(|m| m.is_object()) {
            let flag = |key: &str| message.get(key).and_then(Value::as_bool) == Some(true);
            if flag("is_deleted") {
                return;
            }
            let from_business = flag("is_echo");
            let customer = if from_business {
                person("recipient")
            } else {
                person("sender")
            };
            let (Some(mid), Some(customer)) = (id(message.get("mid")), customer) else {
                return;
            };
            let described = Described::of(message);
            self.messages.push(DirectMessage {
                mid,
                customer,
                from_business,
                message_type: message_type(&described),
                content: content(&described),
                attachments: described.attachments,
                timestamp,
                raw: item.clone(),
            });
        } else if let Some(postback) = item.get("postback").filter(|p| p.is_object()) {
            let (Some(mid), Some(customer)) = (id(postback.get("mid")), person("sender")) else {
                return;
            };
            let title = body(postback, "title")
                .or_else(|| body(postback, "payload"))
                .unwrap_or("[postback]");
            self.messages.push(DirectMessage {
                mid,
                customer,
                from_business: false,
                message_type: "postback".into(),
                content: title.to_owned(),
                attachments: Vec::new(),
                timestamp,
                raw: item.clone(),
            });
        } else if let Some(read) = item.get("read") {
            if let (Some(mid), Some(customer)) = (id(read.get("mid")), person("sender")) {
                self.reads.push(Read { customer, mid });
            }
        }
    }
}

/// Epoch milliseconds (a number or a string of digits); small values are seconds. `None` when
/// missing, unreadable or out of range.
fn timestamp(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let raw = match value? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }?;
    if raw <= 0 {
        return None;
    }
    if raw < SECONDS_BELOW {
        DateTime::from_timestamp(raw, 0)
    } else {
        DateTime::from_timestamp_millis(raw)
    }
}
