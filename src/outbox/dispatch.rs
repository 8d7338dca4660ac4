//! The outbound seam: which provider client serves each channel, for sending a message and for
//! looking up a participant's name. A channel plugs in here with its client, what it needs
//! configured, what it decides once when a message is stored ([`Dispatch::route`],
//! [`Dispatch::prepare`]), and one arm in [`Dispatch::send`] (and
//! [`Dispatch::participant_name`] when its webhooks carry no names).

use chrono::{DateTime, Utc};

use super::Outgoing;
use crate::channels::email::{compose, Mailer};
use crate::channels::instagram::InstagramApi;
use crate::channels::whatsapp::outbound::WhatsAppSenders;
use crate::channels::{NameOutcome, SendOutcome};
use crate::config::Config;
use crate::domain::{Author, ChannelKind};
use crate::publish::UnitOfWork;
use crate::store::messages;
use crate::store::outbox::Due;

/// Why the provider clients cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Email(String),
}

/// The configured provider clients.
#[derive(Clone)]
pub struct Dispatch {
    whatsapp: WhatsAppSenders,
    instagram: Option<InstagramApi>,
    email: Option<Mailer>,
}

impl Dispatch {
    pub fn from_config(config: &Config) -> Result<Dispatch, DispatchError> {
        Ok(Dispatch {
            whatsapp: WhatsAppSenders::from_config(&config.whatsapp)?,
            instagram: InstagramApi::from_config(&config.instagram)?,
            email: Mailer::from_config(&config.email).map_err(DispatchError::Email)?,
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
            ChannelKind::Gmail if self.email.is_none() => Some(
                "Email sending is not configured: set EMAIL_SMTP_URL (and EMAIL_FROM unless EMAIL_IMAP_URL's user is the address)"
                    .into(),
            ),
            ChannelKind::Gmail => None,
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

    /// The metadata `outgoing` is stored with: what its channel decides once, in the unit of
    /// work that stores it, for every attempt to use (a mail's headers and Message-ID).
    pub async fn prepare(
        &self,
        uow: &mut UnitOfWork,
        outgoing: &Outgoing,
        at: DateTime<Utc>,
    ) -> sqlx::Result<Option<String>> {
        match (outgoing.channel, &self.email) {
            (ChannelKind::Gmail, Some(mailer)) => {
                let answering =
                    messages::latest_inbound(&mut uow.exec(), outgoing.conversation_id).await?;
                let headers = compose::Draft {
                    from: mailer.from(),
                    recipient: &outgoing.recipient,
                    subject: outgoing.subject.as_deref(),
                    author: outgoing.author,
                    answering: answering.as_ref(),
                    at,
                }
                .headers();
                Ok(Some(headers.merged_into(outgoing.metadata.as_deref())))
            }
            _ => Ok(outgoing.metadata.clone()),
        }
    }

    /// Hands `due` to its channel's provider.
    pub async fn send(&self, due: &Due) -> SendOutcome {
        match due.channel {
            ChannelKind::Whatsapp => self.whatsapp.send(due).await,
            ChannelKind::Instagram => match &self.instagram {
                Some(api) => {
                    api.send_text(&due.recipient, &due.content, due.author())
                        .await
                }
                // Credentials removed since the message was stored: keep it until they are back.
                None => SendOutcome::Transient("Instagram credentials are not configured".into()),
            },
            ChannelKind::Gmail => match &self.email {
                Some(mailer) => mailer.send(due).await,
                // Unset since the message was stored: keep it until the setting is back.
                None => SendOutcome::Transient("EMAIL_SMTP_URL is not configured".into()),
            },
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
