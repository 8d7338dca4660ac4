//! A committed change that clients must hear about. Writes collect these inside their
//! transaction and publish them only after it commits, so nobody hears of a rolled-back row.

use super::{Conversation, Message};

#[derive(Debug, Clone)]
pub enum Change {
    NewConversation(Conversation),
    ConversationUpdated(Conversation),
    NewMessage(Message),
    MessageStatus(Message),
}

impl Change {
    /// The event type clients see (`new_message`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Change::NewConversation(_) => "new_conversation",
            Change::ConversationUpdated(_) => "conversation_updated",
            Change::NewMessage(_) => "new_message",
            Change::MessageStatus(_) => "message_status",
        }
    }

    /// The id of the row the change is about (a conversation's or a message's).
    pub fn row_id(&self) -> i64 {
        match self {
            Change::NewConversation(c) | Change::ConversationUpdated(c) => c.id,
            Change::NewMessage(m) | Change::MessageStatus(m) => m.id,
        }
    }

    /// The conversation the change belongs to.
    pub fn conversation_id(&self) -> i64 {
        match self {
            Change::NewConversation(c) | Change::ConversationUpdated(c) => c.id,
            Change::NewMessage(m) | Change::MessageStatus(m) => m.conversation_id,
        }
    }
}
