//! From an inbound message to the assistant's reply. Independent of HTTP: the gateway route and
//! the Cloud API auto-reply both call it.
//!
//! Invariants: the inbound message is committed before the LLM is asked; at most one reply is
//! stored per inbound message (a unique key, so retries and concurrent duplicates cannot add a
//! second); the LLM is asked once per message in the normal case (a duplicate waits for the
//! first request's reply instead of asking again); a conversation whose assistant is off gets
//! no reply at all; any LLM failure becomes the fallback reply, never an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::llm::{LlmClient, Turn};
use crate::channels::rules;
use crate::config;
use crate::domain::{now, Change, ChannelKind, Conversation, Direction, Message, Status};
use crate::inbox::{self, Incoming};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Outgoing};
use crate::publish::Publisher;
use crate::store::{conversations, messages, Db};

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

#[derive(Clone)]
pub struct Assistant {
    db: Db,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    outbox: Outbox,
    llm: Option<LlmClient>,
    settings: config::Assistant,
    llm_timeout: Duration,
}

impl Assistant {
    pub fn new(
        publisher: Publisher,
        metrics: Arc<Metrics>,
        outbox: Outbox,
        settings: config::Assistant,
    ) -> Result<Assistant, reqwest::Error> {
        let llm = settings.llm.as_ref().map(LlmClient::new).transpose()?;
        let llm_timeout = settings.llm.as_ref().map(|l| l.timeout).unwrap_or_default();
        Ok(Assistant {
            db: publisher.db().clone(),
            publisher,
            metrics,
            outbox,
            llm,
            settings,
            llm_timeout,
        })
    }

    /// Whether inbound messages on `channel` get an answer through the outbox: the operator
    /// asked for it and the channel can send.
    pub fn autoreply_enabled(&self, channel: ChannelKind) -> bool {
        self.settings.autoreply.covers(channel)
            && self.outbox.dispatch().unavailable(channel).is_none()
    }

    /// Stores the gateway's message and returns the reply to deliver.
    pub async fn handle_gateway(&self, inbound: GatewayInbound) -> sqlx::Result<GatewayReply> {
        let channel = ChannelKind::Whatsapp;
        let from = inbound.from_number.trim();
        let metadata = json!({
            "source": "gateway",
            "project": inbound.project,
            "gateway_message_id": inbound.message_id,
        });
        let record = Incoming {
            // A Baileys JID keys as its number, shared with Cloud API webhooks for the customer.
            conversation_key: rules(channel).conversation_key(from),
            participant_identifier: from.to_string(),
            participant_name: None,
            content: inbound.text.clone(),
            message_type: "text".into(),
            timestamp: inbound.timestamp.unwrap_or_else(now),
            external_message_id: Some(inbound.message_id.clone()),
            metadata: Some(metadata.to_string()),
        };
        let mut uow = self.publisher.begin().await?;
        let recorded = inbox::record_message(&mut uow, channel, &record).await?;
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
            sender_name: Some("assistant".into()),
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

    /// Answers a Cloud API text message through the outbox (ASSISTANT_AUTOREPLY). Runs after
    /// the webhook was acknowledged.
    pub async fn autoreply(
        &self,
        conversation: Conversation,
        message: Message,
    ) -> sqlx::Result<()> {
        if !conversation.assistant_enabled || message.message_type != "text" {
            return Ok(());
        }
        if messages::reply_to(&mut self.db.exec(), message.id)
            .await?
            .is_some()
        {
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
            sender_name: Some("assistant".into()),
            metadata: Some(metadata.to_string()),
            reply_to_message_id: Some(message.id),
        };
        self.outbox.submit(uow, outgoing).await.map(|_| ())
    }

    /// The reply text and its metadata: the LLM's answer, or the fallback with its reason.
    async fn compose(
        &self,
        conversation: &Conversation,
        message: &Message,
    ) -> sqlx::Result<(String, serde_json::Value)> {
        let Some(llm) = &self.llm else {
            return Ok(self.fallback("llm_not_configured", None));
        };
        let history = messages::history(
            &mut self.db.exec(),
            conversation.id,
            message.id,
            self.settings.history_limit,
        )
        .await?;
        let mut turns = Vec::with_capacity(history.len() + 2);
        turns.push(Turn {
            role: "system",
            content: self.settings.system_prompt.clone(),
        });
        turns.extend(history.into_iter().map(|m| Turn {
            role: if m.direction == Direction::Inbound {
                "user"
            } else {
                "assistant"
            },
            content: m.content,
        }));
        turns.push(Turn {
            role: "user",
            content: message.content.clone(),
        });
        let started = Instant::now();
        let result = llm.complete(&turns).await;
        let elapsed = started.elapsed();
        let latency_ms = elapsed.as_millis() as u64;
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        self.metrics.llm_call(&outcome, elapsed);
        Ok(match result {
            Ok(text) => (
                text,
                json!({"source": "assistant", "model": llm.model, "latency_ms": latency_ms}),
            ),
            Err(e) => {
                tracing::warn!(reason = %e, latency_ms, "LLM gave no reply; using the fallback");
                self.fallback(&e.to_string(), Some(latency_ms))
            }
        })
    }

    fn fallback(&self, reason: &str, latency_ms: Option<u64>) -> (String, serde_json::Value) {
        (
            self.settings.fallback_reply.clone(),
            json!({"source": "assistant", "fallback": true, "reason": reason, "latency_ms": latency_ms}),
        )
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
