//! WhatsApp's two ways out, and which one a message takes: the Cloud API when only it is
//! configured; the WhatsApp Web gateway when only it is; with both, the way the conversation's
//! customer last wrote through. Assistant auto-replies never take the gateway (the gateway gets
//! those in its response to the inbound message).

use super::cloud_api::CloudApi;
use super::gateway_send::GatewaySender;
use crate::channels::SendOutcome;
use crate::config::WhatsApp;
use crate::domain::Author;
use crate::store::outbox::Due;

/// The `send_route` of a message that goes through the gateway.
pub const GATEWAY: &str = "gateway";
/// The `send_route` of a message that goes through the Cloud API.
pub const CLOUD_API: &str = "cloud_api";

#[derive(Clone)]
pub struct WhatsAppSenders {
    cloud: Option<CloudApi>,
    gateway: Option<GatewaySender>,
}

impl WhatsAppSenders {
    pub fn from_config(config: &WhatsApp) -> Result<WhatsAppSenders, reqwest::Error> {
        let gateway = config
            .gateway
            .as_ref()
            .map(|g| GatewaySender::new(g, config.timeout))
            .transpose()?;
        Ok(WhatsAppSenders {
            cloud: CloudApi::from_config(config)?,
            gateway,
        })
    }

    /// Why `author`'s messages cannot be sent, naming what to configure.
    pub fn unavailable(&self, author: Author) -> Option<String> {
        match (author, &self.cloud, &self.gateway) {
            (_, Some(_), _) | (Author::Agent, None, Some(_)) => None,
            (Author::Agent, None, None) => Some(
                "WhatsApp sending is not configured: set WHATSAPP_ACCESS_TOKEN and \
                 WHATSAPP_PHONE_NUMBER_ID (Cloud API), or WHATSAPP_GATEWAY_SEND_URL (WhatsApp Web gateway)"
                    .into(),
            ),
            (Author::Assistant, None, _) => Some(
                "the assistant answers WhatsApp through the Cloud API: set WHATSAPP_ACCESS_TOKEN \
                 and WHATSAPP_PHONE_NUMBER_ID"
                    .into(),
            ),
        }
    }

    /// Whether the route depends on how the customer last wrote (both ways are configured).
    pub fn needs_last_route(&self) -> bool {
        self.cloud.is_some() && self.gateway.is_some()
    }

    /// The route of `author`'s new message; `last_via_gateway` is how the customer last wrote.
    pub fn route(&self, author: Author, last_via_gateway: bool) -> &'static str {
        match (author, &self.cloud, &self.gateway) {
            (Author::Agent, None, Some(_)) => GATEWAY,
            (Author::Agent, Some(_), Some(_)) if last_via_gateway => GATEWAY,
            _ => CLOUD_API,
        }
    }

    pub async fn send(&self, due: &Due) -> SendOutcome {
        let via_gateway = due.send_route.as_deref() == Some(GATEWAY);
        match (via_gateway, &self.cloud, &self.gateway) {
            (true, _, Some(gateway)) => gateway.send(due.id, &due.recipient, &due.content).await,
            (false, Some(cloud), _) => cloud.send_text(&due.recipient, &due.content).await,
            // Configuration changed since the message was stored: keep it until it is back.
            (true, _, None) => {
                SendOutcome::Transient("WHATSAPP_GATEWAY_SEND_URL is not configured".into())
            }
            (false, None, _) => {
                SendOutcome::Transient("WhatsApp credentials are not configured".into())
            }
        }
    }
}
