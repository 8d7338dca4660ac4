//! The outbound seam: which provider client serves each channel, for sending a message and for
//! looking up a participant's name. A channel plugs in here with its client, what it needs
//! configured, and one arm in [`Dispatch::send`] (and [`Dispatch::participant_name`] when its
//! webhooks carry no names).

use crate::channels::instagram::InstagramApi;
use crate::channels::whatsapp::cloud_api::CloudApi;
use crate::channels::{NameOutcome, SendOutcome};
use crate::config::Config;
use crate::domain::ChannelKind;
use crate::store::outbox::Due;

/// The configured provider clients.
#[derive(Clone)]
pub struct Dispatch {
    whatsapp: Option<CloudApi>,
    instagram: Option<InstagramApi>,
}

impl Dispatch {
    pub fn from_config(config: &Config) -> Result<Dispatch, reqwest::Error> {
        Ok(Dispatch {
            whatsapp: CloudApi::from_config(&config.whatsapp)?,
            instagram: InstagramApi::from_config(&config.instagram)?,
        })
    }

    /// Why messages on `channel` cannot be sent, naming what to configure; `None` when they can.
    pub fn unavailable(&self, channel: ChannelKind) -> Option<String> {
        match channel {
            ChannelKind::Whatsapp if self.whatsapp.is_none() => Some(
                "WhatsApp sending is not configured: set WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID"
                    .into(),
            ),
            ChannelKind::Instagram if self.instagram.is_none() => Some(
                "Instagram sending is not configured: set INSTAGRAM_ACCESS_TOKEN and INSTAGRAM_ACCOUNT_ID"
                    .into(),
            ),
            ChannelKind::Whatsapp | ChannelKind::Instagram => None,
            other => Some(format!("sending on {other} is not supported yet")),
        }
    }

    /// Hands `due` to its channel's provider.
    pub async fn send(&self, due: &Due) -> SendOutcome {
        match (due.channel, &self.whatsapp, &self.instagram) {
            (ChannelKind::Whatsapp, Some(api), _) => {
                api.send_text(&due.recipient, &due.content).await
            }
            (ChannelKind::Instagram, _, Some(api)) => {
                api.send_text(&due.recipient, &due.content, due.author)
                    .await
            }
            // Credentials removed since the message was stored: keep it until they are back.
            (ChannelKind::Whatsapp, None, _) => {
                SendOutcome::Transient("WhatsApp credentials are not configured".into())
            }
            (ChannelKind::Instagram, _, None) => {
                SendOutcome::Transient("Instagram credentials are not configured".into())
            }
            (other, _, _) => SendOutcome::Permanent(format!("sending on {other} is not supported")),
        }
    }

    /// Whether participants of `channel` can be looked up by [`Dispatch::participant_name`].
    pub fn looks_up_names(&self, channel: ChannelKind) -> bool {
        channel == ChannelKind::Instagram && self.instagram.is_some()
    }

    /// Asks `channel`'s provider for the name of the participant keyed `key`.
    pub async fn participant_name(&self, channel: ChannelKind, key: &str) -> NameOutcome {
        match (channel, &self.instagram) {
            (ChannelKind::Instagram, Some(api)) => api.participant_name(key).await,
            (ChannelKind::Instagram, None) => {
                NameOutcome::Permanent("Instagram credentials are not configured".into())
            }
            (other, _) => NameOutcome::Permanent(format!("{other} has no name look-up")),
        }
    }
}
