//! A client for any OpenAI-compatible chat-completions server (OpenAI, Ollama, vLLM,
//! llama.cpp's server): `POST {base}/chat/completions` with `model` and `messages`.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Llm, Secret};

/// One chat turn.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Turn {
    pub role: &'static str,
    pub content: String,
}

/// Why no reply came back; each maps to a fallback reason kept in the reply's metadata.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("llm_timeout")]
    Timeout,
    #[error("llm_unreachable")]
    Unreachable,
    #[error("llm_status_{0}")]
    Status(u16),
    #[error("llm_malformed_response")]
    Malformed,
    #[error("llm_empty_reply")]
    Empty,
}

#[derive(Clone, Debug)]
pub struct LlmClient {
    http: reqwest::Client,
    url: String,
    pub model: String,
    api_key: Option<Secret>,
}

impl LlmClient {
    pub fn new(config: &Llm) -> Result<LlmClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(config.timeout))
            .timeout(config.timeout)
            .build()?;
        Ok(LlmClient {
            http,
            url: format!("{}/chat/completions", config.base_url),
            model: config.model.clone(),
            api_key: config.api_key.clone(),
        })
    }

    /// The assistant's reply to `turns`, trimmed and never empty.
    pub async fn complete(&self, turns: &[Turn]) -> Result<String, LlmError> {
        let mut request = self
            .http
            .post(&self.url)
            .json(&json!({"model": self.model, "messages": turns}));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose());
        }
        let response = request.send().await.map_err(classify)?;
        if !response.status().is_success() {
            return Err(LlmError::Status(response.status().as_u16()));
        }
        let bytes = response.bytes().await.map_err(classify)?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| LlmError::Malformed)?;
        let content = body
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or(LlmError::Malformed)?
            .trim();
        if content.is_empty() {
            return Err(LlmError::Empty);
        }
        Ok(content.to_string())
    }
}

fn classify(e: reqwest::Error) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout
    } else {
        LlmError::Unreachable
    }
}
