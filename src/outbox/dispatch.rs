//! The outbound seam: which provider client sends a message of each channel. A channel plugs
//! in here with its client, what it needs configured, and one arm in [`Dispatch::send`].

use crate::channels::whatsapp::outbound::WhatsAppSenders;
use crate::channels::SendOutcome;
use crate::config::Config;
use crate::domain::{Author, ChannelKind};
use crate::store::outbox::Due;

/// The configured provider clients.
#[derive(Clone)]
pub struct Dispatch {
    whatsapp: WhatsAppSenders,
}

impl Dispatch {
    pub fn from_config(config: &Config) -> Result<Dispatch, reqwest::Error> {
        Ok(Dispatch {
            whatsapp: WhatsAppSenders::from_config(&config.whatsapp)?,
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
        match due.channel {
            ChannelKind::Whatsapp => self.whatsapp.send(due).await,
            other => SendOutcome::Permanent(format!("sending on {other} is not supported")),
        }
    }
}
