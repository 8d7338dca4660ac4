//! The `message_type` and readable `content` of an Instagram `message` object: the text, or a
//! short description of its attachments (`[image]`, `[story mention]`, `[reel]`) followed by the
//! text if any, so agents read it without knowing the payload format.

use serde_json::Value;

use super::Attachment;
use crate::channels::meta::json::{body, items, text};

/// A URL longer than this is not a CDN link we would fetch: it is kept out of the records.
const MAX_URL_CHARS: usize = 4096;

/// What a `message` object holds.
pub(super) struct Described {
    text: Option<String>,
    unsupported: bool,
    pub(super) attachments: Vec<Attachment>,
}

impl Described {
    pub(super) fn of(message: &Value) -> Described {
        Described {
            text: body(message, "text").map(str::to_owned),
            unsupported: message.get("is_unsupported").and_then(Value::as_bool) == Some(true),
            attachments: items(message.get("attachments"))
                .iter()
                .map(attachment)
                .collect(),
        }
    }
}

fn attachment(item: &Value) -> Attachment {
    let url = item
        .get("payload")
        .and_then(|p| text(p, "url"))
        .filter(|url| {
            let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
            (lower.starts_with("https://") || lower.starts_with("http://"))
                && url.chars().count() <= MAX_URL_CHARS
        })
        .map(str::to_owned);
    Attachment {
        kind: text(item, "type").unwrap_or("unknown").to_owned(),
        url,
    }
}

/// `text`, else the first attachment's type, else `unsupported` or `unknown`.
pub(super) fn message_type(described: &Described) -> String {
    match (described.attachments.first(), &described.text) {
        (Some(first), _) => first.kind.clone(),
        (None, Some(_)) => "text".into(),
        (None, None) if described.unsupported => "unsupported".into(),
        (None, None) => "unknown".into(),
    }
}

/// The attachments' labels, then the text; never empty.
pub(super) fn content(described: &Described) -> String {
    let mut parts: Vec<String> = described
        .attachments
        .iter()
        .map(|a| label(&a.kind))
        .collect();
    parts.extend(described.text.clone());
    if parts.is_empty() {
        return if described.unsupported {
            "[unsupported message]".into()
        } else {
            "[message]".into()
        };
    }
    parts.join(" ")
}

fn label(kind: &str) -> String {
    match kind {
        "share" => "[shared post]".into(),
        "story_mention" => "[story mention]".into(),
        "ig_reel" | "reel" => "[reel]".into(),
        "unsupported_type" => "[unsupported attachment]".into(),
        "file" => "[file]".into(),
        other => format!("[{}]", other.replace('_', " ")),
    }
}
