//! WhatsApp: the Cloud API (its webhook in, its send client out) and the addressing rules of
//! the channel. Parsing is pure (no HTTP, no database): the webhook route checks the signature
//! on the raw bytes ([`crate::channels::meta::signature`]), then [`webhook::parse`] reads the
//! body and [`webhook::Webhook::into_delivery`] turns it into the inbox's channel-neutral
//! records.

pub mod cloud_api;
pub mod gateway_send;
pub mod outbound;
pub mod webhook;

use super::ChannelRules;
use crate::domain::{ChannelKind, Direction, PhoneNumber, Status};
use crate::inbox::{Delivery, Incoming, NewAttachment, Source, StatusReport};

/// WhatsApp's addressing and limits.
pub struct Rules;

/// Meta's limit on a text message body.
const MAX_TEXT_CHARS: usize = 4096;

impl ChannelRules for Rules {
    /// A number's digits; a Baileys JID (`34600123456@s.whatsapp.net`) keys as its number; a
    /// business-scoped user id (a user who hides the number) is kept as it is.
    fn conversation_key(&self, identifier: &str) -> String {
        let identifier = identifier.trim();
        let user = identifier.split('@').next().unwrap_or(identifier);
        match PhoneNumber::parse(user) {
            Ok(phone) => phone.digits().to_owned(),
            Err(_) => user.to_owned(),
        }
    }

    fn recipient(&self, to: &str) -> Result<String, String> {
        PhoneNumber::parse(to)
            .map(|phone| phone.digits().to_owned())
            .map_err(str::to_owned)
    }

    fn max_text_chars(&self) -> usize {
        MAX_TEXT_CHARS
    }
}

impl webhook::Webhook {
    /// The channel-neutral records of this delivery. Statuses the inbox does not show
    /// (`played`, unknown values) are left out.
    pub fn into_delivery(self) -> Delivery {
        let messages = self
            .messages
            .into_iter()
            .map(|m| Incoming {
                direction: Direction::Inbound,
                // The assistant answers what people write, not reactions, media or notices.
                answerable: m.message_type == "text",
                participant_identifier: m.phone.clone().unwrap_or_else(|| m.sender.clone()),
                conversation_key: m.sender,
                participant_name: m.contact_name,
                content: m.content,
                message_type: m.message_type,
                timestamp: m.timestamp,
                external_message_id: Some(m.wamid),
                metadata: Some(m.raw.to_string()),
                attachments: m
                    .media
                    .into_iter()
                    .map(|media| NewAttachment {
                        kind: media.kind,
                        mime_type: media.mime_type,
                        file_name: media.file_name,
                        source: Source::WhatsappMedia {
                            media_id: media.media_id,
                        },
                    })
                    .collect(),
            })
            .collect();
        let statuses = self
            .statuses
            .into_iter()
            .filter_map(|s| {
                let status = Status::parse(&s.status)
                    .filter(|status| !matches!(status, Status::Received | Status::Pending))?;
                Some(StatusReport {
                    external_message_id: s.wamid,
                    status,
                    error: s.error,
                })
            })
            .collect();
        // `signed` is set by the webhook route, which alone knows whether it checked the
        // signature.
        Delivery {
            messages,
            statuses,
            ..Delivery::new(ChannelKind::Whatsapp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_key_by_digits_and_other_ids_as_they_are() {
        assert_eq!(Rules.conversation_key("+34 600 123 456"), "34600123456");
        assert_eq!(
            Rules.conversation_key("34600123456@s.whatsapp.net"),
            "34600123456"
        );
        assert_eq!(
            Rules.conversation_key("US.13491208655302741918"),
            "US.13491208655302741918"
        );
        assert_eq!(Rules.recipient("+34 600 123 456"), Ok("34600123456".into()));
        assert!(Rules.recipient("US.13491208655302741918").is_err());
        assert!(Rules.recipient("12345").is_err());
    }
}
