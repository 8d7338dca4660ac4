//! Instagram Direct through the Instagram API with Instagram Login: its rules ([`rules`]), its
//! webhook in ([`webhook::parse`], then [`webhook::Webhook::into_delivery`] into the inbox's
//! channel-neutral records), and its Graph API client out: sending ([`send`]) and looking up a
//! customer's name ([`profile`]), which the webhooks never carry.
//!
//! Attachments become `NewAttachment`s with Instagram's `payload.url` as their source (fetched
//! later, and only from a signed delivery). Kinds: `image`, `video` and `audio` as they are;
//! `file` is a `document`; a reel (`ig_reel`, `reel`) is a `video`; `sticker` and
//! `animated_image` are a `sticker` and an `image`; everything else (`share`, `story_mention`,
//! `unsupported_type`, new types) is a `file`, since its media type is unknown until fetched.

pub mod profile;
pub mod rules;
pub mod send;
pub mod webhook;

use std::time::Duration;

pub use self::rules::Rules;
use crate::channels::ChannelRules;
use crate::config::{self, Secret};
use crate::domain::{AttachmentKind, ChannelKind, Direction};
use crate::inbox::{Delivery, Incoming, NewAttachment, ReadReceipt, Source};

/// How Graph errors name this provider.
const PROVIDER: &str = "Instagram";

/// The Graph API client of the professional account: one shared `reqwest::Client` with
/// timeouts, the configured base URL and version, and the token (sent only as a header).
#[derive(Clone, Debug)]
pub struct InstagramApi {
    http: reqwest::Client,
    /// `{base}/{version}`.
    root: String,
    account_id: String,
    token: Secret,
    human_agent_tag: bool,
}

impl InstagramApi {
    /// A client when credentials are configured, `None` otherwise.
    pub fn from_config(config: &config::Instagram) -> Result<Option<InstagramApi>, reqwest::Error> {
        let Some((token, account_id)) = &config.credentials else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(config.timeout))
            .timeout(config.timeout)
            .build()?;
        Ok(Some(InstagramApi {
            http,
            root: format!("{}/{}", config.api_base_url, config.api_version),
            account_id: account_id.clone(),
            token: token.clone(),
            human_agent_tag: config.human_agent_tag,
        }))
    }

    /// Sends `request` with the token and reads the answer: its HTTP status and JSON body (null
    /// when not JSON), or, when no answer came, why (a timeout or an unreachable server, both
    /// worth retrying). Errors never carry the URL, which may name a customer.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, serde_json::Value), String> {
        let response = match request.bearer_auth(self.token.expose()).send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Err(format!("timed out waiting for the {PROVIDER} Graph API"))
            }
            Err(e) => {
                return Err(format!(
                    "cannot reach the {PROVIDER} Graph API: {}",
                    e.without_url()
                ))
            }
        };
        let status = response.status();
        match response.bytes().await {
            Ok(bytes) => Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            )),
            Err(e) if e.is_timeout() => Err(format!(
                "timed out reading the {PROVIDER} Graph API's answer"
            )),
            Err(_) => Ok((status, serde_json::Value::Null)),
        }
    }
}

impl webhook::Webhook {
    /// The channel-neutral records of this delivery: customers' messages, the business's echoes
    /// (outbound), read receipts. Instagram sends no names, so new conversations are looked up.
    pub fn into_delivery(self) -> Delivery {
        let mut delivery = Delivery::new(ChannelKind::Instagram);
        delivery.look_up_names = true;
        delivery.messages = self
            .messages
            .into_iter()
            .map(|m| Incoming {
                direction: if m.from_business {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                },
                // The assistant answers what people write or tap, not files, shares or echoes.
                answerable: !m.from_business
                    && matches!(m.message_type.as_str(), "text" | "postback"),
                conversation_key: Rules.conversation_key(&m.customer),
                participant_identifier: m.customer,
                participant_name: None,
                content: m.content,
                message_type: m.message_type,
                timestamp: m.timestamp,
                external_message_id: Some(m.mid),
                metadata: Some(m.raw.to_string()),
                attachments: m.attachments.into_iter().filter_map(attachment).collect(),
            })
            .collect();
        delivery.reads = self
            .reads
            .into_iter()
            .map(|r| ReadReceipt {
                conversation_key: Rules.conversation_key(&r.customer),
                external_message_id: r.mid,
            })
            .collect();
        delivery
    }
}

/// The record of a file with a URL; one without is not recorded (nothing could fetch it).
fn attachment(file: webhook::Attachment) -> Option<NewAttachment> {
    let url = file.url?;
    Some(NewAttachment {
        kind: attachment_kind(&file.kind),
        mime_type: None,
        file_name: None,
        source: Source::Url { url },
    })
}

/// Instagram's attachment type → the inbox's kind (see the module doc).
pub fn attachment_kind(instagram_type: &str) -> AttachmentKind {
    match instagram_type {
        "image" | "animated_image" => AttachmentKind::Image,
        "video" | "ig_reel" | "reel" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "file" => AttachmentKind::Document,
        "sticker" => AttachmentKind::Sticker,
        _ => AttachmentKind::File,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Author;

    fn api(tag: bool) -> InstagramApi {
        let config = config::Config::with(&[
            ("INSTAGRAM_ACCESS_TOKEN", "t"),
            ("INSTAGRAM_ACCOUNT_ID", "1784"),
            (
                "INSTAGRAM_HUMAN_AGENT_TAG",
                if tag { "true" } else { "false" },
            ),
        ])
        .expect("config");
        InstagramApi::from_config(&config.instagram)
            .expect("client")
            .expect("configured")
    }

    #[test]
    fn only_agents_replies_carry_the_human_agent_tag_and_only_when_enabled() {
        let tagged = api(true).payload("123", "hola", Author::Agent);
        assert_eq!(tagged["messaging_type"], "MESSAGE_TAG");
        assert_eq!(tagged["tag"], "HUMAN_AGENT");
        for (tag, author) in [
            (true, Author::Assistant),
            (false, Author::Agent),
            (false, Author::Assistant),
        ] {
            let plain = api(tag).payload("123", "hola", author);
            assert_eq!(
                plain,
                serde_json::json!({"recipient": {"id": "123"}, "message": {"text": "hola"}}),
                "{tag} {author:?}"
            );
        }
    }

    #[test]
    fn a_delivery_keys_echoes_by_recipient_and_asks_for_names() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/meta/instagram/echo_attachment_story_mention_1.json"
        ))
        .expect("fixture");
        let delivery = webhook::parse(&body).expect("parses").into_delivery();
        assert!(delivery.look_up_names);
        let echo = &delivery.messages[0];
        assert_eq!(echo.direction, Direction::Outbound);
        assert_eq!(echo.conversation_key, "chatwoot-app-user-id-1");
        assert!(!echo.answerable);
        assert_eq!(echo.attachments.len(), 1);
        assert_eq!(echo.attachments[0].kind, AttachmentKind::File);
    }

    #[test]
    fn kinds_map_to_the_closest() {
        for (instagram, kind) in [
            ("image", AttachmentKind::Image),
            ("video", AttachmentKind::Video),
            ("ig_reel", AttachmentKind::Video),
            ("audio", AttachmentKind::Audio),
            ("file", AttachmentKind::Document),
            ("share", AttachmentKind::File),
            ("story_mention", AttachmentKind::File),
            ("something_new", AttachmentKind::File),
        ] {
            assert_eq!(attachment_kind(instagram), kind, "{instagram}");
        }
    }
}
