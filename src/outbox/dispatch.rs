//! The outbound seam: which provider client sends a message of each channel. A channel plugs
//! in here with its client, what it needs configured, and one arm in [`Dispatch::send`].

use crate::channels::whatsapp::cloud_api::CloudApi;
use crate::channels::SendOutcome;
use crate::config::Config;
use crate::domain::ChannelKind;
use crate::store::outbox::Due;

/// The configured provider clients.
#[derive(Clone)]
pub struct Dispatch {
    whatsapp: Option<CloudApi>,
}

impl Dispatch {
    pub fn from_config(config: &Config) -> Result<Dispatch, reqwest::Error> {
        Ok(Dispatch {
            whatsapp: CloudApi::from_config(&config.whatsapp)?,
        })
    }

    /// Why messages on `channel` cannot be sent, naming what to configure; `None` when they can.
    pub fn unavailable(&self, channel: ChannelKind) -> Option<String> {
        match channel {
            ChannelKind::Whatsapp if self.whatsapp.is_none() => Some(
                "WhatsApp sending is not configured: set WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID"
                    .into(),
            ),
            ChannelKind::Whatsapp => None,
            other => Some(format!("sending on {other} is not supported yet")),
        }
    }

    /// Hands `due` to its channel's provider.
    pub async fn send(&self, due: &Due) -> SendOutcome {
        match (due.channel, &self.whatsapp) {
            (ChannelKind::Whatsapp, Some(api)) => api.send_text(&due.recipient, &due.content).await,
            // Credentials removed since the message was stored: keep it until they are back.
            (ChannelKind::Whatsapp, None) => {
                SendOutcome::Transient("WhatsApp credentials are not configured".into())
            }
            (other, _) => SendOutcome::Permanent(format!("sending on {other} is not supported")),
        }
    }
}
