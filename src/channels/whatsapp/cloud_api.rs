//! The WhatsApp Cloud API client: one shared `reqwest::Client` with timeouts, a configurable
//! base URL and Graph version; Meta's errors are classified by [`graph::classify`].

use std::time::Duration;

use serde_json::{json, Value};

use crate::channels::meta::graph;
use crate::channels::SendOutcome;
use crate::config::{Secret, WhatsApp};

/// How Graph errors name this provider.
const PROVIDER: &str = "WhatsApp";

#[derive(Clone, Debug)]
pub struct CloudApi {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
}

impl CloudApi {
    /// A client when credentials are configured, `None` otherwise.
    pub fn from_config(config: &WhatsApp) -> Result<Option<CloudApi>, reqwest::Error> {
        let Some((token, phone_number_id)) = &config.credentials else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(config.timeout))
            .timeout(config.timeout)
            .build()?;
        Ok(Some(CloudApi {
            http,
            endpoint: format!(
                "{}/{}/{}/messages",
                config.api_base_url, config.api_version, phone_number_id
            ),
            token: token.clone(),
        }))
    }

    /// Sends a text message to `to` (digits).
    pub async fn send_text(&self, to: &str, body: &str) -> SendOutcome {
        let payload = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"body": body, "preview_url": false},
        });
        let response = match self
            .http
            .post(&self.endpoint)
            .bearer_auth(self.token.expose())
            .json(&payload)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return SendOutcome::Transient(
                    "timed out waiting for the WhatsApp Cloud API".into(),
                )
            }
            Err(e) => {
                return SendOutcome::Transient(format!(
                    "cannot reach the WhatsApp Cloud API: {}",
                    e.without_url()
                ))
            }
        };
        let status = response.status();
        let body: Value = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(e) if e.is_timeout() => {
                return SendOutcome::Transient(
                    "timed out reading the WhatsApp Cloud API's answer".into(),
                )
            }
            Err(_) => Value::Null,
        };
        if status.is_success() {
            return match body.pointer("/messages/0/id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => SendOutcome::Accepted(Some(id.to_string())),
                // Meta may have accepted it: retrying could send it twice, so fail loudly.
                _ => SendOutcome::Permanent(format!(
                    "WhatsApp answered {status} without a message id"
                )),
            };
        }
        graph::classify(PROVIDER, status.as_u16(), &body)
    }
}
