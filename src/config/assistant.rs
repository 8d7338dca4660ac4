//! The assistant's settings: the LLM server, its instructions and limits, and which channels it
//! answers on its own (`ASSISTANT_AUTOREPLY`).

use std::time::Duration;

use super::vars::{err, parse_flag, Vars};
use super::{ConfigError, Secret};
use crate::domain::ChannelKind;

pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are the friendly assistant of a small business on WhatsApp. \
Answer briefly and politely, in the customer's language. If you cannot help, say that a person \
from the team will answer soon. Never invent prices, opening hours or availability.";

pub const DEFAULT_FALLBACK_REPLY: &str =
    "¡Gracias por tu mensaje! En breve te responderá una persona de nuestro equipo.";

/// The LLM assistant.
#[derive(Clone, Debug)]
pub struct Assistant {
    pub llm: Option<Llm>,
    pub system_prompt: String,
    pub history_limit: i64,
    pub fallback_reply: String,
    pub autoreply: AutoReply,
}

/// An OpenAI-compatible chat-completions server.
#[derive(Clone, Debug)]
pub struct Llm {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    pub timeout: Duration,
}

/// Which channels' inbound messages get the assistant's answer through the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoReply {
    Off,
    /// Every channel that can send.
    Everywhere,
    Only(Vec<ChannelKind>),
}

impl AutoReply {
    pub fn covers(&self, channel: ChannelKind) -> bool {
        match self {
            AutoReply::Off => false,
            AutoReply::Everywhere => true,
            AutoReply::Only(channels) => channels.contains(&channel),
        }
    }

    pub fn is_on(&self) -> bool {
        *self != AutoReply::Off
    }
}

impl Vars<'_> {
    pub(super) fn assistant(&self) -> Result<Assistant, ConfigError> {
        let llm = match self.http_url("LLM_BASE_URL", None, "http://localhost:11434/v1")? {
            None => None,
            Some(base_url) => {
                let model = self
                    .get("LLM_MODEL")
                    .ok_or_else(|| err("LLM_MODEL", "is required when LLM_BASE_URL is set"))?;
                let seconds: f64 = self.parsed("LLM_TIMEOUT_SECS", Some(20.0))?;
                if !(seconds > 0.0 && seconds <= 600.0) {
                    return Err(err("LLM_TIMEOUT_SECS", "must be above 0 and at most 600"));
                }
                Some(Llm {
                    base_url,
                    api_key: self.secret("LLM_API_KEY"),
                    model: model.trim().to_string(),
                    timeout: Duration::from_secs_f64(seconds),
                })
            }
        };
        Ok(Assistant {
            llm,
            system_prompt: self
                .get("ASSISTANT_SYSTEM_PROMPT")
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.into()),
            history_limit: self.bounded("ASSISTANT_HISTORY_LIMIT", 20, 0, 200)?,
            fallback_reply: self
                .get("ASSISTANT_FALLBACK_REPLY")
                .unwrap_or_else(|| DEFAULT_FALLBACK_REPLY.into()),
            autoreply: self.autoreply()?,
        })
    }

    /// `true`/`false`, or a comma list of channel names.
    fn autoreply(&self) -> Result<AutoReply, ConfigError> {
        const NAME: &str = "ASSISTANT_AUTOREPLY";
        let Some(raw) = self.get(NAME) else {
            return Ok(AutoReply::Off);
        };
        let raw = raw.trim().to_ascii_lowercase();
        match parse_flag(&raw) {
            Some(true) => return Ok(AutoReply::Everywhere),
            Some(false) => return Ok(AutoReply::Off),
            None => {}
        }
        let channels = self
            .list(NAME)
            .iter()
            .map(|name| {
                ChannelKind::parse(&name.to_ascii_lowercase()).ok_or_else(|| {
                    err(
                        NAME,
                        format!("expected true, false or channel names (whatsapp,instagram,gmail), got {name:?}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AutoReply::Only(channels))
    }
}
