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

impl<'a> Event<'a> {
    pub fn new_message(message: &'a Message) -> Event<'a> {
        Event::NewMessage(MessageWithChannel {
            message,
            channel: message.channel,
        })
    }

    pub fn message_status(message: &'a Message) -> Event<'a> {
        Event::MessageStatus(StatusChange {
            id: message.id,
            conversation_id: message.conversation_id,
            external_message_id: message.external_message_id.as_deref(),
            status: message.status,
            error: message.error.as_deref(),
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pong_has_an_empty_data_object() {
        assert_eq!(Event::Pong {}.to_json(), r#"{"type":"pong","data":{}}"#);
        assert_eq!(
            Event::Resync { missed: 3 }.to_json(),
            r#"{"type":"resync","data":{"missed":3}}"#
        );
    }
}
