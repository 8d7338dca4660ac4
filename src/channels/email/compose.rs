//! The headers of an outgoing mail, decided once, when the message is stored, and kept in its
//! metadata: every attempt (the first and each retry, on any instance) then sends the same mail
//! with the same `Message-ID`, and clients see the subject and threading it went out with.
//!
//! A reply threads under the conversation's latest inbound mail: `Subject` `Re: ` + its subject
//! (never `Re: Re:`), `In-Reply-To` its `Message-ID`, `References` its `References` plus that id.

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::parse::is_plausible_id;
use crate::domain::{Author, Message};

/// `References` ids kept: enough for any mail client to thread, bounded for the header's sake.
const MAX_REFERENCES: usize = 20;

/// A mailbox as the metadata shows it (the shape of an inbound mail's `from` and `to`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: Option<String>,
    pub address: String,
}

/// What an outgoing mail says about itself; stored in the message's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headers {
    pub subject: String,
    pub from: Party,
    pub to: Vec<Party>,
    pub cc: Vec<Party>,
    /// Without angle brackets; also the message's `external_message_id` once sent.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub date: DateTime<Utc>,
    /// `auto-replied` on the assistant's mail, so that the customer's own auto-responder stays
    /// quiet.
    pub auto_submitted: Option<String>,
}

/// What decides an outgoing mail's headers.
pub struct Draft<'a> {
    pub from: &'a Mailbox,
    pub recipient: &'a str,
    /// `POST /send`'s `subject`, already one line.
    pub subject: Option<&'a str>,
    pub author: Author,
    /// The conversation's latest inbound message, if any.
    pub answering: Option<&'a Message>,
    pub at: DateTime<Utc>,
}

impl Draft<'_> {
    pub fn headers(&self) -> Headers {
        let answered = self
            .answering
            .and_then(|m| m.message_metadata.as_deref())
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .unwrap_or(Value::Null);
        let text = |key: &str| answered.get(key).and_then(Value::as_str).map(one_line);
        let in_reply_to = text("message_id").filter(|id| is_plausible_id(id));
        let mut references: Vec<String> = answered
            .get("references")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        references.extend(in_reply_to.clone());
        references.retain(|id| is_plausible_id(id));
        dedup_keeping_last(&mut references);
        let skip = references.len().saturating_sub(MAX_REFERENCES);
        let references = references.split_off(skip);
        let subject = match (self.subject, text("subject").filter(|s| !s.is_empty())) {
            (Some(given), _) => given.to_string(),
            (None, Some(theirs)) if is_reply(&theirs) => theirs,
            (None, Some(theirs)) => format!("Re: {theirs}"),
            (None, None) => format!(
                "Message from {}",
                self.from
                    .name
                    .as_deref()
                    .filter(|n| !n.trim().is_empty())
                    .map_or_else(|| self.from.email.to_string(), str::to_string)
            ),
        };
        Headers {
            subject,
            from: Party {
                name: self.from.name.clone(),
                address: self.from.email.to_string(),
            },
            to: vec![Party {
                name: None,
                address: self.recipient.to_string(),
            }],
            cc: Vec::new(),
            message_id: format!(
                "{}@{}",
                uuid::Uuid::new_v4().simple(),
                self.from.email.domain()
            ),
            in_reply_to,
            references,
            date: self.at,
            auto_submitted: (self.author == Author::Assistant).then(|| "auto-replied".into()),
        }
    }
}

impl Headers {
    /// `metadata` (a JSON object, or nothing) with these headers added.
    pub fn merged_into(&self, metadata: Option<&str>) -> String {
        let mut object = metadata
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .and_then(|v| match v {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .unwrap_or_default();
        if let Ok(Value::Object(headers)) = serde_json::to_value(self) {
            object.extend(headers);
        }
        Value::Object(object).to_string()
    }

    /// The headers a stored message's metadata holds.
    pub fn from_metadata(metadata: Option<&str>) -> Option<Headers> {
        serde_json::from_str(metadata?).ok()
    }
}

/// One line: control characters (line breaks would start headers of their own) and runs of
/// white space become one space.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a subject already says it is a reply (`Re:`, `RE :`).
fn is_reply(subject: &str) -> bool {
    let lower = subject.trim_start().to_lowercase();
    lower.starts_with("re:") || lower.starts_with("re :")
}

fn dedup_keeping_last(ids: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<String> = ids
        .drain(..)
        .rev()
        .filter(|id| seen.insert(id.clone()))
        .collect();
    kept.reverse();
    *ids = kept;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{ChannelKind, Direction, Status};

    fn inbound(metadata: Value) -> Message {
        Message {
            id: 1,
            content: "hi".into(),
            message_type: "email".into(),
            direction: Direction::Inbound,
            sender_name: None,
            sender_identifier: None,
            timestamp: DateTime::UNIX_EPOCH,
            message_metadata: Some(metadata.to_string()),
            conversation_id: 1,
            external_message_id: None,
            is_read: false,
            created_at: DateTime::UNIX_EPOCH,
            status: Status::Received,
            error: None,
            attachments: Vec::new(),
            attachment_count: 0,
            channel: ChannelKind::Gmail,
        }
    }

    fn draft<'a>(
        from: &'a Mailbox,
        answering: Option<&'a Message>,
        subject: Option<&'a str>,
    ) -> Draft<'a> {
        Draft {
            from,
            recipient: "ana@example.com",
            subject,
            author: Author::Agent,
            answering,
            at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_reply_threads_under_the_latest_mail() {
        let from: Mailbox = "Support Desk <support@example.org>"
            .parse()
            .expect("mailbox");
        let latest = inbound(
            json!({"subject": "Your order", "message_id": "m2@example.com",
                                    "references": ["m0@example.org", "m1@example.org"]}),
        );
        let headers = draft(&from, Some(&latest), None).headers();
        assert_eq!(headers.subject, "Re: Your order");
        assert_eq!(headers.in_reply_to.as_deref(), Some("m2@example.com"));
        assert_eq!(
            headers.references,
            ["m0@example.org", "m1@example.org", "m2@example.com"]
        );
        assert!(headers.message_id.ends_with("@example.org"));
        assert_eq!(headers.auto_submitted, None);
        let again = inbound(json!({"subject": "RE: Your order", "message_id": "m3@x"}));
        assert_eq!(
            draft(&from, Some(&again), None).headers().subject,
            "RE: Your order"
        );
        let given = draft(&from, Some(&again), Some("New topic")).headers();
        assert_eq!(given.subject, "New topic");
        assert_eq!(given.in_reply_to.as_deref(), Some("m3@x"));
    }

    #[test]
    fn a_first_mail_is_a_message_from_the_sender() {
        let from: Mailbox = "Support Desk <support@example.org>"
            .parse()
            .expect("mailbox");
        let headers = draft(&from, None, None).headers();
        assert_eq!(headers.subject, "Message from Support Desk");
        assert!(headers.in_reply_to.is_none() && headers.references.is_empty());
        let bare: Mailbox = "support@example.org".parse().expect("mailbox");
        assert_eq!(
            draft(&bare, None, None).headers().subject,
            "Message from support@example.org"
        );
    }

    #[test]
    fn headers_survive_the_metadata_and_keep_what_was_there() {
        let from: Mailbox = "support@example.org".parse().expect("mailbox");
        let mut d = draft(&from, None, None);
        d.author = Author::Assistant;
        let headers = d.headers();
        assert_eq!(headers.auto_submitted.as_deref(), Some("auto-replied"));
        let stored = headers.merged_into(Some(r#"{"source": "assistant"}"#));
        let value: Value = serde_json::from_str(&stored).expect("JSON");
        assert_eq!(value["source"], "assistant");
        assert_eq!(value["to"][0]["address"], "ana@example.com");
        assert_eq!(Headers::from_metadata(Some(&stored)), Some(headers));
        assert_eq!(Headers::from_metadata(Some("{}")), None);
        assert_eq!(one_line(" a\r\nBcc: x\t b "), "a Bcc: x b");
    }
}
