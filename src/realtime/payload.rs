//! How a change travels between instances in a `NOTIFY` payload: a kind letter, the sending
//! instance's tag and the payload's sequence number there (so the sender can tell when its own
//! notification came back), then the event itself (`E…{…}`), or, past PostgreSQL's 8,000-byte
//! limit, a reference to its row (`R…{"type":…,"id":…}`) that each listener reads back.

use serde::{Deserialize, Serialize};

use crate::domain::Change;
use crate::store::{self, Exec};

/// Payloads up to this size travel inline (PostgreSQL's limit is 8,000 bytes).
const INLINE_LIMIT: usize = 7_900;

/// A change too large for a payload, named by its row.
#[derive(Serialize, Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: String,
    id: i64,
}

/// Hex digits of the origin tag and of the sequence number.
const TAG_DIGITS: usize = 16;

/// Who sent a payload: an instance's random tag and the payload's number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub instance: u64,
    pub seq: u64,
}

/// The notification payload of a change sent by `origin`.
pub fn encode(change: &Change, origin: Origin) -> String {
    let json = change.event().to_json();
    let (kind, body) = if json.len() <= INLINE_LIMIT {
        ('E', json)
    } else {
        let reference = Reference {
            kind: change.kind().into(),
            id: change.row_id(),
        };
        ('R', serde_json::to_string(&reference).unwrap_or_default())
    };
    format!("{kind}{:016x}{:016x}{body}", origin.instance, origin.seq)
}

/// What a received payload carries, and who sent it.
pub fn decode(payload: &str) -> (Option<Origin>, Decoded<'_>) {
    let header = 1 + 2 * TAG_DIGITS;
    let (Some(kind), Some(tags), Some(body)) = (
        payload.get(..1),
        payload.get(1..header),
        payload.get(header..),
    ) else {
        return (None, Decoded::Unreadable);
    };
    let origin = u64::from_str_radix(&tags[..TAG_DIGITS], 16)
        .ok()
        .zip(u64::from_str_radix(&tags[TAG_DIGITS..], 16).ok())
        .map(|(instance, seq)| Origin { instance, seq });
    let decoded = match kind {
        "E" => Decoded::Inline(body),
        "R" => match serde_json::from_str::<Reference>(body) {
            Ok(Reference { kind, id }) => Decoded::Reference { kind, id },
            Err(_) => Decoded::Unreadable,
        },
        _ => Decoded::Unreadable,
    };
    (origin, decoded)
}

/// What a received payload carries.
pub enum Decoded<'a> {
    /// The event's JSON, ready for sockets.
    Inline(&'a str),
    /// A change to read back from the database.
    Reference {
        kind: String,
        id: i64,
    },
    Unreadable,
}

/// Reads a referenced change back; `None` when its row is gone or the kind is unknown.
pub async fn resolve(ex: &mut Exec<'_>, kind: &str, id: i64) -> sqlx::Result<Option<Change>> {
    Ok(match kind {
        "new_conversation" => store::conversations::get(ex, id)
            .await?
            .map(Change::NewConversation),
        "conversation_updated" => store::conversations::get(ex, id)
            .await?
            .map(Change::ConversationUpdated),
        "new_message" => store::messages::get(ex, id).await?.map(Change::NewMessage),
        "message_status" => store::messages::get(ex, id)
            .await?
            .map(Change::MessageStatus),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChannelKind, Direction, Message, Status};

    fn message(content: &str) -> Message {
        Message {
            id: 7,
            content: content.into(),
            message_type: "text".into(),
            direction: Direction::Inbound,
            sender_name: None,
            sender_identifier: None,
            timestamp: crate::domain::now(),
            message_metadata: None,
            conversation_id: 3,
            external_message_id: None,
            is_read: false,
            created_at: crate::domain::now(),
            status: Status::Received,
            error: None,
            attachments: Vec::new(),
            attachment_count: 0,
            channel: ChannelKind::Whatsapp,
        }
    }

    #[test]
    fn small_events_travel_inline_and_large_ones_by_reference() {
        let origin = Origin {
            instance: 0xabc,
            seq: 42,
        };
        let hola = Change::NewMessage(message("hola"));
        let small = encode(&hola, origin);
        assert!(small.starts_with('E'));
        let (from, decoded) = decode(&small);
        assert_eq!(from, Some(origin));
        assert!(matches!(decoded, Decoded::Inline(json) if json == hola.event().to_json()));
        let large = encode(&Change::NewMessage(message(&"x".repeat(10_000))), origin);
        assert_eq!(
            large,
            r#"R0000000000000abc000000000000002a{"type":"new_message","id":7}"#
        );
        assert!(large.len() < 8000);
        assert!(matches!(decode(&large).1, Decoded::Reference { id: 7, .. }));
        assert!(matches!(decode("E{}").1, Decoded::Unreadable));
    }
}
