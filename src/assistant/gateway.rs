//! The WhatsApp Web gateway's exchange: its message is stored, the assistant's reply composed
//! and stored, and returned for the gateway to deliver. The same `message_id` again returns the
//! stored reply without asking the LLM again; a duplicate that arrives while the first is still
//! waiting on the LLM waits for that reply instead of asking again.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Assistant;
use crate::channels::rules;
use crate::domain::{now, Author, Change, ChannelKind, Direction, Message, Status};
use crate::inbox::{self, Incoming};
use crate::store::messages;

/// The `source` the gateway's messages carry in their metadata.
const SOURCE: &str = "gateway";

/// Whether `message` came in through the gateway (rather than a Cloud API webhook).
pub fn came_through_gateway(message: &Message) -> bool {
    message
        .message_metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
        .is_some_and(|m| m["source"] == SOURCE)
}

/// How often a duplicate request looks for the first request's reply.
const REPLY_POLL: Duration = Duration::from_millis(100);

/// A message relayed by the WhatsApp Web gateway.
#[derive(Debug, Clone)]
pub struct GatewayInbound {
    pub message_id: String,
    pub from_number: String,
    pub text: String,
    pub timestamp: Option<DateTime<Utc>>,
    /// The project whose key the gateway used (none in dev mode).
    pub project: Option<String>,
}

/// What the gateway should send back to the customer.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayReply {
    pub response_text: String,
    /// False when an agent has taken over the conversation (and nothing is to be sent).
    pub assistant: bool,
}

impl Assistant {
    /// Stores the gateway's message and returns the reply to deliver.
    pub async fn handle_gateway(&self, inbound: GatewayInbound) -> sqlx::Result<GatewayReply> {
        let channel = ChannelKind::Whatsapp;
        let from = inbound.from_number.trim();
        let metadata = json!({
            "source": SOURCE,
            "project": inbound.project,
            "gateway_message_id": inbound.message_id,
        });
        let record = Incoming {
            direction: Direction::Inbound,
            // A Baileys JID keys as its number, shared with Cloud API webhooks for the customer.
            conversation_key: rules(channel).conversation_key(from),
            participant_identifier: from.to_string(),
            participant_name: None,
            content: inbound.text.clone(),
            message_type: "text".into(),
            timestamp: inbound.timestamp.unwrap_or_else(now),
            external_message_id: Some(inbound.message_id.clone()),
            metadata: Some(metadata.to_string()),
            // Answered right here, in the gateway's response.
            answerable: false,
            attachments: Vec::new(),
        };
        let mut uow = self.publisher.begin().await?;
        let recorded = inbox::record_message(&mut uow, channel, &record, false, false).await?;
        uow.commit().await?;

        let (message, first_delivery) = match recorded.message {
            Some(message) => (message, true),
            None => {
                let existing =
                    messages::by_external_id(&mut self.db.exec(), channel, &inbound.message_id)
                        .await?;
                (existing.ok_or(sqlx::Error::RowNotFound)?, false)
            }
        };
        if let Some(reply) = messages::reply_to(&mut self.db.exec(), message.id).await? {
            return Ok(GatewayReply {
                response_text: reply.content,
                assistant: true,
            });
        }
        let conversation = recorded.conversation;
        if !conversation.assistant_enabled {
            return Ok(GatewayReply {
                response_text: String::new(),
                assistant: false,
            });
        }
        if !first_delivery {
            // The gateway retried while the first request waits on the LLM: share its answer.
            if let Some(reply) = self.wait_for_reply(message.id).await? {
                return Ok(GatewayReply {
                    response_text: reply.content,
                    assistant: true,
                });
            }
        }
        let (text, metadata) = self.compose(&conversation, &message).await?;
        let reply = messages::NewMessage {
            conversation_id: conversation.id,
            channel,
            content: text,
            message_type: "text".into(),
            direction: Direction::Outbound,
            // Handed to the gateway, which delivers it.
            status: Status::Sent,
            sender_name: Some(Author::Assistant.sender_name().into()),
            sender_identifier: None,
            timestamp: now(),
            message_metadata: Some(metadata.to_string()),
            external_message_id: None,
            is_read: true,
            error: None,
            reply_to_message_id: Some(message.id),
            recipient: None,
        };
        let mut uow = self.publisher.begin().await?;
        let stored = messages::insert(&mut uow.exec(), &reply, now()).await?;
        if let Some(stored) = &stored {
            uow.push(Change::NewMessage(stored.clone()));
        }
        uow.commit().await?;
        let stored = match stored {
            Some(stored) => stored,
            // Another request stored its reply first: everyone answers with that one.
            None => messages::reply_to(&mut self.db.exec(), message.id)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?,
        };
        Ok(GatewayReply {
            response_text: stored.content,
            assistant: true,
        })
    }

    /// Waits (bounded by the LLM timeout) for another request to store the reply to `id`.
    async fn wait_for_reply(&self, id: i64) -> sqlx::Result<Option<Message>> {
        let deadline = Instant::now() + self.llm_timeout + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(reply) = messages::reply_to(&mut self.db.exec(), id).await? {
                return Ok(Some(reply));
            }
            tokio::time::sleep(REPLY_POLL).await;
        }
        Ok(None)
    }
}
