//! Reading one mail (RFC 5322 and MIME, through mail-parser) into what the inbox stores: the
//! sender, the idempotency key, the time, a readable text, the files, the headers kept as
//! metadata, and whether it is automatic mail. Pure: no I/O, never panics, and any bytes give a
//! result (what could be read).

use chrono::{DateTime, Utc};
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::automatic;
use crate::domain::{AttachmentKind, MAX_ID_CHARS};

/// The longest text kept of one mail; a mail's quoted history can be endless.
const MAX_CONTENT_CHARS: usize = 100_000;
/// Entries kept of an address list (`To`, `Cc`) or of `References`.
const MAX_LIST: usize = 50;
/// The longest subject kept.
const MAX_SUBJECT_CHARS: usize = 1000;
/// Files kept of one mail.
const MAX_FILES: usize = 100;
/// A `Date` this far after the mail arrived is a wrong clock, not a date.
const FUTURE_SLACK: chrono::Duration = chrono::Duration::days(1);

/// Who sent a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// As written in `From`.
    pub address: String,
    pub name: Option<String>,
}

/// A file a mail carries, decoded.
#[derive(Debug, Clone)]
pub struct File {
    pub kind: AttachmentKind,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

/// One mail as the inbox needs it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `None` when `From` holds no address: nobody to keep a conversation with.
    pub sender: Option<Sender>,
    /// `Message-ID` without angle brackets, or an id made from the headers when it has none.
    pub external_id: String,
    /// `Date`, or the arrival time when it is missing or implausible.
    pub timestamp: DateTime<Utc>,
    /// The text body (the HTML rendered as text when there is no text part); never empty.
    pub content: String,
    pub files: Vec<File>,
    /// `subject`, `from`, `to`, `cc`, `message_id`, `in_reply_to`, `references`, `date`,
    /// `automatic`.
    pub metadata: Value,
    /// Why this is automatic mail (never answered on its own), if it is.
    pub automatic: Option<String>,
}

/// Reads `raw`, which arrived at `arrival`; mail from one of `own` (lower case) is the mailbox
/// writing to itself.
pub fn parse(raw: &[u8], arrival: DateTime<Utc>, own: &[String]) -> Mail {
    let parsed = MessageParser::default().parse(raw);
    let Some(m) = parsed.as_ref() else {
        // Only empty input gives nothing at all.
        return Mail {
            sender: None,
            external_id: synthetic_id(&[], raw),
            timestamp: arrival,
            content: "(empty mail)".into(),
            files: Vec::new(),
            metadata: json!({"subject": null, "from": null, "to": [], "cc": [], "message_id": null,
                             "in_reply_to": null, "references": [], "date": null, "automatic": null}),
            automatic: None,
        };
    };
    let sender = m.from().and_then(first_address);
    let message_id = m
        .message_id()
        .map(clean_id)
        .filter(|id| !id.is_empty() && id.chars().count() <= MAX_ID_CHARS);
    let external_id = message_id.clone().unwrap_or_else(|| header_id(m, raw));
    let files = files(m);
    let automatic = automatic::reason(m, sender.as_ref(), own);
    let subject = m.subject().map(|s| truncate(s.trim(), MAX_SUBJECT_CHARS));
    let metadata = json!({
        "subject": subject,
        "from": sender.as_ref().map(|s| json!({"name": s.name, "address": s.address})),
        "to": addresses(m.to()),
        "cc": addresses(m.cc()),
        "message_id": message_id,
        "in_reply_to": ids(m.in_reply_to()).into_iter().next(),
        "references": ids(m.references()),
        "date": m.header_raw("Date").map(str::trim),
        "automatic": automatic,
    });
    Mail {
        sender,
        external_id,
        timestamp: date(m, arrival).unwrap_or(arrival),
        content: content(m, &files),
        files,
        metadata,
        automatic,
    }
}

fn first_address(address: &Address) -> Option<Sender> {
    address.iter().find_map(|a| {
        let email = a.address()?.trim();
        (email.contains('@') && email.chars().count() <= 254).then(|| Sender {
            address: email.to_string(),
            name: a
                .name()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| truncate(n, 200)),
        })
    })
}

fn addresses(address: Option<&Address>) -> Vec<Value> {
    address
        .map(|list| {
            list.iter()
                .filter_map(|a| {
                    let email = a.address()?.trim();
                    Some(json!({"name": a.name().map(str::trim), "address": email}))
                })
                .take(MAX_LIST)
                .collect()
        })
        .unwrap_or_default()
}

/// Message ids of `In-Reply-To` or `References`, without brackets; the newest `MAX_LIST`.
fn ids(value: &HeaderValue) -> Vec<String> {
    let all: Vec<String> = match value {
        HeaderValue::Text(t) => vec![clean_id(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    };
    let all: Vec<String> = all.into_iter().filter(|id| is_plausible_id(id)).collect();
    let skip = all.len().saturating_sub(MAX_LIST);
    all.into_iter().skip(skip).collect()
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// A message id that can go back into a header: visible ASCII, no brackets or spaces.
pub fn is_plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// A stable id for a mail without `Message-ID`: the same mail copied twice has the same headers
/// and text, and so the same id.
fn header_id(m: &Message, raw: &[u8]) -> String {
    let headers: Vec<&str> = [
        "From",
        "To",
        "Cc",
        "Date",
        "Subject",
        "In-Reply-To",
        "References",
    ]
    .iter()
    .filter_map(|h| m.header_raw(*h).map(str::trim))
    .collect();
    if headers.is_empty() {
        return synthetic_id(&[], raw);
    }
    let text = m.body_text(0).unwrap_or_default();
    synthetic_id(&headers, text.as_bytes())
}

fn synthetic_id(parts: &[&str], body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    hash.update(body);
    let hex: String = hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("generated-{hex}@switchboard.invalid")
}

fn date(m: &Message, arrival: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let date = m.date().filter(|d| d.is_valid())?;
    let at = DateTime::from_timestamp(date.to_timestamp(), 0)?;
    (at > DateTime::UNIX_EPOCH && at <= arrival + FUTURE_SLACK).then_some(at)
}

/// The text body with line ends made `\n`, bounded; for a mail without text, what it carries.
fn content(m: &Message, files: &[File]) -> String {
    let text = m
        .body_text(0)
        .map(|t| t.replace("\r\n", "\n").trim().to_string())
        .unwrap_or_default();
    if !text.is_empty() {
        return truncate(&text, MAX_CONTENT_CHARS);
    }
    if files.is_empty() {
        return "(no text)".into();
    }
    files
        .iter()
        .map(|f| {
            format!(
                "[{}: {}]",
                f.kind.as_str(),
                f.file_name.as_deref().unwrap_or("unnamed")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn files(m: &Message) -> Vec<File> {
    m.attachments()
        .take(MAX_FILES)
        .map(|part| {
            let mime_type = part.content_type().map(|ct| {
                match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                }
                .to_ascii_lowercase()
            });
            File {
                kind: kind_of(mime_type.as_deref()),
                file_name: part
                    .attachment_name()
                    .map(|n| truncate(n.trim(), 255))
                    .filter(|n| !n.is_empty()),
                mime_type,
                bytes: part.contents().to_vec(),
            }
        })
        .collect()
}

fn kind_of(mime_type: Option<&str>) -> AttachmentKind {
    let Some(mime) = mime_type else {
        return AttachmentKind::File;
    };
    let (top, sub) = mime.split_once('/').unwrap_or((mime, ""));
    match top {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "text" => AttachmentKind::Document,
        "application" if sub != "octet-stream" => AttachmentKind::Document,
        _ => AttachmentKind::File,
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
