//! Agents' replies through the WhatsApp Web gateway (a Baileys service the business runs):
//! `POST WHATSAPP_GATEWAY_SEND_URL` with `{"message_id", "to", "text"}` and, when configured,
//! `X-API-Key`. The same `message_id` may arrive twice after a crash: the gateway de-duplicates
//! by it. A 2xx is accepted (its JSON `message_id`, if any, is the provider's id); a timeout, a
//! refused connection, 429 or 5xx is transient; another 4xx is permanent, with the body's
//! `detail` or `error` as the reason.

use std::time::Duration;

use serde_json::{json, Value};

use crate::channels::SendOutcome;
use crate::config::{GatewaySend, Secret};

/// Most of an answer read: a gateway has no reason to say more.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct GatewaySender {
    http: reqwest::Client,
    url: String,
    api_key: Option<Secret>,
}

impl GatewaySender {
    pub fn new(config: &GatewaySend, timeout: Duration) -> Result<GatewaySender, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .build()?;
        Ok(GatewaySender {
            http,
            url: config.url.clone(),
            api_key: config.api_key.clone(),
        })
    }

    /// Hands our message `message_id` for `to` (digits) to the gateway.
    pub async fn send(&self, message_id: i64, to: &str, text: &str) -> SendOutcome {
        let mut request = self
            .http
            .post(&self.url)
            .json(&json!({"message_id": message_id, "to": to, "text": text}));
        if let Some(key) = &self.api_key {
            request = request.header("x-api-key", key.expose());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return SendOutcome::Transient("timed out waiting for the WhatsApp gateway".into())
            }
            Err(e) => {
                return SendOutcome::Transient(format!(
                    "cannot reach the WhatsApp gateway: {}",
                    e.without_url()
                ))
            }
        };
        let status = response.status();
        let body = read_bounded(response).await;
        if status.is_success() {
            let id = body.get("message_id").and_then(|id| match id {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            return SendOutcome::Accepted(id);
        }
        let reason = ["detail", "error"]
            .iter()
            .find_map(|key| body.get(*key).and_then(Value::as_str))
            .map(|why| format!("the WhatsApp gateway refused the message: {why}"))
            .unwrap_or_else(|| format!("the WhatsApp gateway answered HTTP {}", status.as_u16()));
        if status.as_u16() == 429 || status.is_server_error() {
            SendOutcome::Transient(reason)
        } else {
            SendOutcome::Permanent(reason)
        }
    }
}

/// The answer's JSON, read up to a bound; anything else is `Null`.
async fn read_bounded(mut response: reqwest::Response) -> Value {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_ANSWER_BYTES {
            return Value::Null;
        }
    }
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}
