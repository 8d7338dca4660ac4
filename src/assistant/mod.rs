//! The LLM assistant: an OpenAI-compatible client ([`llm`]), the composer of replies (here),
//! the gateway's synchronous exchange ([`gateway`]) and durable auto-replies through the outbox
//! ([`autoreply`]).
//!
//! Invariants: the inbound message is committed before the LLM is asked; at most one reply is
//! stored per inbound message (a unique key, so retries and concurrent duplicates cannot add a
//! second); a conversation whose assistant is off gets no reply at all; any LLM failure becomes
//! the fallback reply, never an error.

pub mod autoreply;
pub mod gateway;
pub mod llm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

pub use self::autoreply::AutoReplies;
pub use self::gateway::{GatewayInbound, GatewayReply};
use self::llm::{LlmClient, Turn};
use crate::config;
use crate::domain::{Conversation, Direction, Message};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::publish::Publisher;
use crate::store::{messages, Db};

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

    /// The channels whose inbound messages get an answer through the outbox.
    pub fn autoreplies(&self) -> AutoReplies {
        AutoReplies::new(&self.settings.autoreply, self.outbox.dispatch())
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
}
