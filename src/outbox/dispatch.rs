//! The outbound seam: which provider client sends a message of each channel. A channel plugs
//! in here with its client, what it needs configured, what it decides once when a message is
//! stored ([`Dispatch::prepare`]), and one arm in [`Dispatch::send`].

use chrono::{DateTime, Utc};

use super::Outgoing;
use crate::channels::email::{compose, Mailer};
use crate::channels::whatsapp::cloud_api::CloudApi;
use crate::channels::SendOutcome;
use crate::config::Config;
use crate::domain::ChannelKind;
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
    whatsapp: Option<CloudApi>,
    email: Option<Mailer>,
}

impl Dispatch {
    pub fn from_config(config: &Config) -> Result<Dispatch, DispatchError> {
        Ok(Dispatch {
            whatsapp: CloudApi::from_config(&config.whatsapp)?,
            email: Mailer::from_config(&config.email).map_err(DispatchError::Email)?,
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
            ChannelKind::Gmail if self.email.is_none() => Some(
                "Email sending is not configured: set EMAIL_SMTP_URL (and EMAIL_FROM unless EMAIL_IMAP_URL's user is the address)"
                    .into(),
            ),
            ChannelKind::Gmail => None,
            other => Some(format!("sending on {other} is not supported yet")),
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
            ChannelKind::Whatsapp => match &self.whatsapp {
                Some(api) => api.send_text(&due.recipient, &due.content).await,
                // Credentials removed since the message was stored: keep it until they are back.
                None => SendOutcome::Transient("WhatsApp credentials are not configured".into()),
            },
            ChannelKind::Gmail => match &self.email {
                Some(mailer) => mailer.send(due).await,
                None => SendOutcome::Transient("EMAIL_SMTP_URL is not configured".into()),
            },
            other => SendOutcome::Permanent(format!("sending on {other} is not supported")),
        }
    }
}
