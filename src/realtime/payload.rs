//! How a change travels between instances in a `NOTIFY` payload: the event itself (`E{…}`), or,
//! past PostgreSQL's 8,000-byte limit, a reference to its row (`R{"type":…,"id":…}`) that each
//! listener reads back.

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

/// The notification payload of a change.
pub fn encode(change: &Change) -> String {
    let json = change.event().to_json();
    if json.len() <= INLINE_LIMIT {
        return format!("E{json}");
    }
    let reference = Reference {
        kind: change.kind().into(),
        id: change.row_id(),
    };
    format!("R{}", serde_json::to_string(&reference).unwrap_or_default())
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

pub fn decode(payload: &str) -> Decoded<'_> {
    if let Some(inline) = payload.strip_prefix('E') {
        return Decoded::Inline(inline);
    }
    match payload
        .strip_prefix('R')
        .map(serde_json::from_str::<Reference>)
    {
        Some(Ok(Reference { kind, id })) => Decoded::Reference { kind, id },
        _ => Decoded::Unreadable,
    }
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
            channel: ChannelKind::Whatsapp,
        }
    }

    #[test]
    fn small_events_travel_inline_and_large_ones_by_reference() {
        let hola = Change::NewMessage(message("hola"));
        let small = encode(&hola);
        assert!(small.starts_with('E'));
        assert_eq!(&small[1..], hola.event().to_json());
        let large = encode(&Change::NewMessage(message(&"x".repeat(10_000))));
        assert_eq!(large, r#"R{"type":"new_message","id":7}"#);
        assert!(large.len() < 8000);
        assert!(matches!(decode(&large), Decoded::Reference { id: 7, .. }));
    }
}
