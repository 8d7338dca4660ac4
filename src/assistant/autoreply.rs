//! Durable auto-replies (`ASSISTANT_AUTOREPLY`): an inbound message that wants the assistant's
//! answer gets an `assistant_reply` job in the transaction that stores it (see
//! [`crate::inbox::record`]); a worker composes the answer and queues it in the outbox. A crash
//! between Meta's 200 and the answer loses nothing (the job waits), and two instances never
//! answer twice (the job's lease, and the reply's unique link to the message it answers).

use crate::config::AutoReply;
use crate::domain::{Author, ChannelKind};
use crate::jobs::Outcome;
use crate::outbox::{Dispatch, Outgoing};
use crate::store::{conversations, messages};

use super::Assistant;

/// Which channels' inbound messages get an answer: the operator asked for it, and the channel
/// can send.
#[derive(Debug, Clone, Copy, Default)]
pub struct AutoReplies {
    channels: [bool; ChannelKind::ALL.len()],
}

impl AutoReplies {
    pub fn new(setting: &AutoReply, dispatch: &Dispatch) -> AutoReplies {
        let mut channels = [false; ChannelKind::ALL.len()];
        for (on, kind) in channels.iter_mut().zip(ChannelKind::ALL) {
            *on =
                setting.covers(kind) && dispatch.unavailable_to(kind, Author::Assistant).is_none();
        }
        AutoReplies { channels }
    }

    /// None at all (the gateway answers in its response instead).
    pub fn none() -> AutoReplies {
        AutoReplies::default()
    }

    pub fn wants(&self, channel: ChannelKind) -> bool {
        ChannelKind::ALL
            .iter()
            .position(|k| *k == channel)
            .is_some_and(|i| self.channels[i])
    }
}

impl Assistant {
    /// The `assistant_reply` job of inbound message `message_id`: composes the answer and queues
    /// it. Idempotent: an answered message, a vanished one or a conversation an agent took over
    /// is simply done.
    pub async fn reply_job(&self, message_id: i64) -> Outcome {
        match self.reply_to_message(message_id).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    async fn reply_to_message(&self, message_id: i64) -> sqlx::Result<()> {
        let mut ex = self.db.exec();
        let Some(message) = messages::get(&mut ex, message_id).await? else {
            return Ok(());
        };
        if messages::reply_to(&mut ex, message.id).await?.is_some() {
            return Ok(());
        }
        let Some(conversation) = conversations::get(&mut ex, message.conversation_id).await? else {
            return Ok(());
        };
        if !conversation.assistant_enabled {
            return Ok(());
        }
        let (text, metadata) = self.compose(&conversation, &message).await?;
        let mut uow = self.publisher.begin().await?;
        // An agent may have stepped in while the LLM was thinking.
        let current = conversations::get(&mut uow.exec(), conversation.id).await?;
        if !current.is_some_and(|c| c.assistant_enabled) {
            return Ok(());
        }
        let outgoing = Outgoing {
            conversation_id: conversation.id,
            channel: message.channel,
            recipient: conversation.external_id.clone(),
            content: text,
            author: Author::Assistant,
            subject: None,
            metadata: Some(metadata.to_string()),
            reply_to_message_id: Some(message.id),
        };
        // `None`: another run stored the reply first.
        self.outbox.submit(uow, outgoing).await.map(|_| ())
    }
}
