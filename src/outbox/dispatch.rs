//! The outbound seam: which provider client serves each channel, for sending a message and for
//! looking up a participant's name. A channel plugs in here with its client, what it needs
//! configured, and one arm in [`Dispatch::send`] (and [`Dispatch::participant_name`] when its
//! webhooks carry no names).

use crate::channels::instagram::InstagramApi;
use crate::channels::whatsapp::outbound::WhatsAppSenders;
use crate::channels::{NameOutcome, SendOutcome};
use crate::config::Config;
use crate::domain::{Author, ChannelKind};
use crate::store::outbox::Due;

/// The configured provider clients.
#[derive(Clone)]
pub struct Dispatch {
    whatsapp: WhatsAppSenders,
    instagram: Option<InstagramApi>,
}

impl Dispatch {
    pub fn from_config(config: &Config) -> Result<Dispatch, reqwest::Error> {
        Ok(Dispatch {
            whatsapp: WhatsAppSenders::from_config(&config.whatsapp)?,
            instagram: InstagramApi::from_config(&config.instagram)?,
        })
    }

    /// Why agents' messages on `channel` cannot be sent, naming what to configure; `None` when
    /// they can.
    pub fn unavailable(&self, channel: ChannelKind) -> Option<String> {
        self.unavailable_to(channel, Author::Agent)
    }

    /// Why `author`'s messages on `channel` cannot be sent; `None` when they can.
    pub fn unavailable_to(&self, channel: ChannelKind, author: Author) -> Option<String> {
        match channel {
            ChannelKind::Whatsapp => self.whatsapp.unavailable(author),
            ChannelKind::Instagram if self.instagram.is_none() => Some(
                "Instagram sending is not configured: set INSTAGRAM_ACCESS_TOKEN and INSTAGRAM_ACCOUNT_ID"
                    .into(),
            ),
            ChannelKind::Instagram => None,
            other => Some(format!("sending on {other} is not supported yet")),
        }
    }

    /// Whether choosing a message's route needs to know how the customer last wrote.
    pub fn needs_last_route(&self, channel: ChannelKind) -> bool {
        channel == ChannelKind::Whatsapp && self.whatsapp.needs_last_route()
    }

    /// The way out of a new message on `channel` (stored with it, so every retry takes it);
    /// `last_via_gateway` is how the conversation's customer last wrote.
    pub fn route(
        &self,
        channel: ChannelKind,
        author: Author,
        last_via_gateway: bool,
    ) -> Option<&'static str> {
        match channel {
            ChannelKind::Whatsapp => Some(self.whatsapp.route(author, last_via_gateway)),
            _ => None,
        }
    }

    /// Hands `due` to its channel's provider.
    pub async fn send(&self, due: &Due) -> SendOutcome {
        match (due.channel, &self.instagram) {
            (ChannelKind::Whatsapp, _) => self.whatsapp.send(due).await,
            (ChannelKind::Instagram, Some(api)) => {
                api.send_text(&due.recipient, &due.content, due.author())
                    .await
            }
            // Credentials removed since the message was stored: keep it until they are back.
            (ChannelKind::Instagram, None) => {
                SendOutcome::Transient("Instagram credentials are not configured".into())
            }
            (other, _) => SendOutcome::Permanent(format!("sending on {other} is not supported")),
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
