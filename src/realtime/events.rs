//! The events sent to WebSocket clients: `{"type": T, "data": {…}}`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Change, ChannelKind, Conversation, Message, Status};

/// A `new_message` payload: the Message as REST returns it, plus its channel's name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageWithChannel<'a> {
    #[serde(flatten)]
    pub message: &'a Message,
    pub channel: ChannelKind,
}

/// A `message_status` payload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusChange<'a> {
    pub id: i64,
    pub conversation_id: i64,
    pub external_message_id: Option<&'a str>,
    pub status: Status,
    pub error: Option<&'a str>,
}

/// One WebSocket text frame: `{"type": T, "data": {…}}`. Clients send `{"type": "ping"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[schema(as = WsEvent)]
pub enum Event<'a> {
    Connected {
        server_time: DateTime<Utc>,
        version: &'static str,
    },
    NewMessage(MessageWithChannel<'a>),
    MessageStatus(StatusChange<'a>),
    NewConversation(&'a Conversation),
    ConversationUpdated(&'a Conversation),
    Resync {
        missed: u64,
    },
    Pong {},
    Error {
        detail: &'a str,
    },
}

impl<'a> MessageWithChannel<'a> {
    fn of(message: &'a Message) -> Self {
        MessageWithChannel {
            message,
            channel: message.channel,
        }
    }
}

impl<'a> StatusChange<'a> {
    fn of(message: &'a Message) -> Self {
        StatusChange {
            id: message.id,
            conversation_id: message.conversation_id,
            external_message_id: message.external_message_id.as_deref(),
            status: message.status,
            error: message.error.as_deref(),
        }
    }
}

impl<'a> Event<'a> {
    pub fn new_message(message: &'a Message) -> Event<'a> {
        Event::NewMessage(MessageWithChannel::of(message))
    }

    pub fn message_status(message: &'a Message) -> Event<'a> {
        Event::MessageStatus(StatusChange::of(message))
    }

    /// The event as one JSON text.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys, no foreign
        // `Serialize` impls that return errors.
        serde_json::to_string(self)
            .unwrap_or_else(|_| String::from(r#"{"type":"error","data":{}}"#))
    }
}

impl Change {
    pub fn event(&self) -> Event<'_> {
        match self {
            Change::NewConversation(c) => Event::NewConversation(c),
            Change::ConversationUpdated(c) => Event::ConversationUpdated(c),
            Change::NewMessage(m) => Event::new_message(m),
            Change::MessageStatus(m) => Event::message_status(m),
        }
    }

    /// The event's `data` alone (what the event webhook sends under `data`).
    pub fn data(&self) -> ChangeData<'_> {
        ChangeData(self)
    }
}

/// A change's event `data`: the same value [`Change::event`] puts under `data`, since a
/// newtype variant of an adjacently tagged enum serialises its content as it is.
pub struct ChangeData<'a>(&'a Change);

impl Serialize for ChangeData<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Change::NewConversation(c) | Change::ConversationUpdated(c) => c.serialize(serializer),
            Change::NewMessage(m) => MessageWithChannel::of(m).serialize(serializer),
            Change::MessageStatus(m) => StatusChange::of(m).serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Direction;

    #[test]
    fn a_changes_data_is_what_its_event_carries() {
        let at = crate::domain::now();
        let conversation = Conversation {
            id: 3,
            participant_name: Some("Ana".into()),
            participant_identifier: "+34 600".into(),
            is_active: true,
            channel_id: 1,
            external_id: "34600".into(),
            created_at: at,
            updated_at: at,
            last_message_at: None,
            unread_count: 1,
            assistant_enabled: true,
        };
        let message = Message {
            id: 7,
            content: "hola \"ñ\"".into(),
            message_type: "text".into(),
            direction: Direction::Outbound,
            sender_name: None,
            sender_identifier: None,
            timestamp: at,
            message_metadata: Some("{\"a\":1}".into()),
            conversation_id: 3,
            external_message_id: Some("wamid.1".into()),
            is_read: true,
            created_at: at,
            status: Status::Failed,
            error: Some("no".into()),
            attachments: Vec::new(),
            attachment_count: 0,
            channel: ChannelKind::Whatsapp,
        };
        for change in [
            Change::NewConversation(conversation.clone()),
            Change::ConversationUpdated(conversation),
            Change::NewMessage(message.clone()),
            Change::MessageStatus(message),
        ] {
            let framed = format!(
                r#"{{"type":"{}","data":{}}}"#,
                change.kind(),
                serde_json::to_string(&change.data()).expect("serialises")
            );
            assert_eq!(framed, change.event().to_json());
        }
    }

    #[test]
    fn pong_has_an_empty_data_object() {
        assert_eq!(Event::Pong {}.to_json(), r#"{"type":"pong","data":{}}"#);
        assert_eq!(
            Event::Resync { missed: 3 }.to_json(),
            r#"{"type":"resync","data":{"missed":3}}"#
        );
    }
}
