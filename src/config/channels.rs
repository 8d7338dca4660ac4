//! The channels' settings: WhatsApp's Cloud API, the webhook settings Meta's platforms share,
//! and how the outbox retries.

use std::time::Duration;

use super::vars::{err, Vars};
use super::{ConfigError, Secret};

/// What a Meta webhook endpoint checks: the handshake's token and the secrets that may sign a
/// delivery (several allow rotating the secret, or the Meta and Instagram app secrets side by
/// side). No secret: deliveries are accepted unsigned.
#[derive(Clone, Debug, Default)]
pub struct MetaWebhook {
    pub verify_token: Option<Secret>,
    pub app_secrets: Vec<Secret>,
}

/// WhatsApp settings: the Cloud API, and the WhatsApp Web gateway's send endpoint.
#[derive(Clone, Debug)]
pub struct WhatsApp {
    /// Token and phone number id, when both are set: sending is possible.
    pub credentials: Option<(Secret, String)>,
    /// Where agents' replies go for customers who write through the gateway.
    pub gateway: Option<GatewaySend>,
    pub webhook: MetaWebhook,
    pub api_base_url: String,
    pub api_version: String,
    pub timeout: Duration,
}

/// The gateway's send endpoint (`WHATSAPP_GATEWAY_SEND_URL`) and its key.
#[derive(Clone, Debug)]
pub struct GatewaySend {
    pub url: String,
    pub api_key: Option<Secret>,
}

/// Delivery of outbound messages.
#[derive(Clone, Debug)]
pub struct Outbox {
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub poll_interval: Duration,
}

impl Vars<'_> {
    pub(super) fn whatsapp(&self) -> Result<WhatsApp, ConfigError> {
        let token = self.secret("WHATSAPP_ACCESS_TOKEN");
        let phone_number_id = self.get("WHATSAPP_PHONE_NUMBER_ID");
        if let Some(id) = &phone_number_id {
            if !id.trim().chars().all(|c| c.is_ascii_digit()) {
                return Err(err(
                    "WHATSAPP_PHONE_NUMBER_ID",
                    "expected the numeric id Meta shows",
                ));
            }
        }
        // The primary name wins over the alias.
        let secrets_var = if self.get("WHATSAPP_APP_SECRET").is_some() {
            "WHATSAPP_APP_SECRET"
        } else {
            "WHATSAPP_WEBHOOK_SECRET"
        };
        let gateway = self
            .http_url(
                "WHATSAPP_GATEWAY_SEND_URL",
                None,
                "http://localhost:3001/send",
            )?
            .map(|url| GatewaySend {
                url,
                api_key: self.secret("WHATSAPP_GATEWAY_API_KEY"),
            });
        Ok(WhatsApp {
            credentials: token.zip(phone_number_id.map(|id| id.trim().to_string())),
            gateway,
            webhook: MetaWebhook {
                verify_token: self.get("WHATSAPP_WEBHOOK_VERIFY_TOKEN").map(Secret::new),
                app_secrets: self
                    .list(secrets_var)
                    .into_iter()
                    .map(Secret::new)
                    .collect(),
            },
            api_base_url: self
                .http_url(
                    "WHATSAPP_API_BASE_URL",
                    Some("https://graph.facebook.com"),
                    "https://graph.facebook.com",
                )?
                .unwrap_or_default(),
            api_version: self.graph_version("WHATSAPP_API_VERSION")?,
            timeout: Duration::from_millis(self.bounded(
                "WHATSAPP_TIMEOUT_MS",
                15_000,
                10,
                300_000,
            )?),
        })
    }

    pub(super) fn outbox(&self) -> Result<Outbox, ConfigError> {
        Ok(Outbox {
            max_attempts: self.bounded("SEND_MAX_ATTEMPTS", 8, 1, 100)?,
            retry_base: Duration::from_millis(self.bounded(
                "SEND_RETRY_BASE_MS",
                2000,
                1,
                600_000,
            )?),
            poll_interval: Duration::from_millis(self.bounded(
                "OUTBOX_POLL_MS",
                1000,
                10,
                60_000,
            )?),
        })
    }
}
