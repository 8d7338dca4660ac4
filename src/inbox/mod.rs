//! The inbound seam: what every provider turns its input into, and the one recorder that stores
//! it.
//!
//! A provider (a webhook parser, the gateway, a mail poller) produces a [`Delivery`] of
//! channel-neutral records; [`record`] stores it inside the caller's unit of work: each
//! conversation found or created race-free, each message stored at most once per provider id
//! (a redelivery is a no-op), names kept current, provider statuses applied forward only. The
//! changes are pushed to the unit of work, published once it commits. Independent of HTTP.

pub mod ingest;

use chrono::{DateTime, Utc};

use crate::assistant::AutoReplies;
use crate::domain::{
    now, Change, ChannelKind, Conversation, Direction, Message, Status, MAX_ID_CHARS,
};
use crate::publish::UnitOfWork;
pub use crate::store::attachments::{NewAttachment, Source};
use crate::store::jobs::{self, JobKind};
use crate::store::{attachments, conversations, early_statuses, messages, outbox};

/// What one provider delivery carried, in the inbox's terms.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub channel: ChannelKind,
    pub messages: Vec<Incoming>,
    pub statuses: Vec<StatusReport>,
    /// Whether its signature was checked (an app secret is set): only then may a URL it
    /// carries be fetched, so an unsigned request cannot make the server fetch an address of
    /// its choosing.
    pub signed: bool,
}

/// A message a customer sent.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The conversation key on the channel ([`crate::channels::ChannelRules::conversation_key`]).
    pub conversation_key: String,
    /// How the participant is shown (a phone number as sent, an address).
    pub participant_identifier: String,
    pub participant_name: Option<String>,
    /// Readable text, never empty.
    pub content: String,
    pub message_type: String,
    pub timestamp: DateTime<Utc>,
    /// The provider's id of the message: what makes a redelivery a no-op.
    pub external_message_id: Option<String>,
    /// A string holding JSON: the provider's raw item.
    pub metadata: Option<String>,
    /// Whether the assistant may answer it on its own (`ASSISTANT_AUTOREPLY`): a person's text,
    /// not a reaction or an automatic mail. The provider knows.
    pub answerable: bool,
    /// The files it carries.
    pub attachments: Vec<NewAttachment>,
}

/// A provider's news about a message we sent.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub external_message_id: String,
    pub status: Status,
    pub error: Option<String>,
}

/// What recording one inbound message did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub conversation: Conversation,
    /// The stored message; `None` when it was a redelivery.
    pub message: Option<Message>,
}

/// Stores everything `delivery` carried in the unit of work: new messages (a redelivered id is
/// skipped), the assistant's reply job for those `autoreplies` wants answered, and
/// forward-only status changes. One [`Recorded`] per message kept.
pub async fn record(
    uow: &mut UnitOfWork,
    delivery: &Delivery,
    autoreplies: &AutoReplies,
) -> sqlx::Result<Vec<Recorded>> {
    let wants_replies = autoreplies.wants(delivery.channel);
    let mut recorded = Vec::with_capacity(delivery.messages.len());
    for incoming in &delivery.messages {
        let too_long = |s: &str| s.chars().count() > MAX_ID_CHARS;
        if too_long(&incoming.conversation_key)
            || incoming
                .external_message_id
                .as_deref()
                .is_some_and(too_long)
        {
            tracing::warn!(
                channel = %delivery.channel,
                "skipping an inbound message with an implausibly long id"
            );
            continue;
        }
        let wants_reply = wants_replies && incoming.answerable;
        let recorded_one = record_message(
            uow,
            delivery.channel,
            incoming,
            wants_reply,
            delivery.signed,
        )
        .await?;
        recorded.push(recorded_one);
    }
    for report in &delivery.statuses {
        apply_status(uow, delivery.channel, report).await?;
    }
    Ok(recorded)
}

/// Stores one inbound message and its files in the unit of work; with `wants_reply`, a new
/// message in a conversation whose assistant is on also gets its reply job, in the same
/// transaction. URLs are fetchable only from a `signed` delivery.
pub async fn record_message(
    uow: &mut UnitOfWork,
    channel: ChannelKind,
    incoming: &Incoming,
    wants_reply: bool,
    signed: bool,
) -> sqlx::Result<Recorded> {
    let incoming = &without_nul(incoming);
    let at = now();
    let new = conversations::NewConversation {
        channel,
        external_id: incoming.conversation_key.clone(),
        participant_identifier: incoming.participant_identifier.clone(),
        participant_name: incoming.participant_name.clone(),
    };
    let upserted = conversations::upsert(&mut uow.exec(), &new, at).await?;
    if upserted.created {
        uow.push(Change::NewConversation(upserted.conversation.clone()));
    } else if upserted.renamed {
        uow.push(Change::ConversationUpdated(upserted.conversation.clone()));
    }
    let message = messages::NewMessage {
        conversation_id: upserted.conversation.id,
        channel,
        content: incoming.content.clone(),
        message_type: incoming.message_type.clone(),
        direction: Direction::Inbound,
        status: Status::Received,
        sender_name: incoming
            .participant_name
            .clone()
            .or_else(|| upserted.conversation.participant_name.clone()),
        sender_identifier: Some(incoming.participant_identifier.clone()),
        timestamp: incoming.timestamp,
        message_metadata: incoming.metadata.clone(),
        external_message_id: incoming.external_message_id.clone(),
        is_read: false,
        error: None,
        reply_to_message_id: None,
        recipient: None,
    };
    let mut stored = messages::insert(&mut uow.exec(), &message, at).await?;
    if let Some(stored) = &mut stored {
        for file in &incoming.attachments {
            let fetchable = match file.source {
                Source::WhatsappMedia { .. } => true,
                Source::Url { .. } => signed,
                Source::Stored { .. } => false,
            };
            // A file to fetch gets its job in this transaction (`attachments::insert`).
            let attachment =
                attachments::insert(&mut uow.exec(), stored.id, file, fetchable, at).await?;
            if fetchable {
                uow.wake_jobs();
            }
            stored.attachments.push(attachment);
        }
        stored.attachment_count = stored.attachments.len() as i64;
        uow.push(Change::NewMessage(stored.clone()));
        if wants_reply && upserted.conversation.assistant_enabled {
            jobs::enqueue(&mut uow.exec(), JobKind::AssistantReply, stored.id, at).await?;
            uow.wake_jobs();
        }
    }
    Ok(Recorded {
        conversation: upserted.conversation,
        message: stored,
    })
}

async fn apply_status(
    uow: &mut UnitOfWork,
    channel: ChannelKind,
    report: &StatusReport,
) -> sqlx::Result<()> {
    let changed = outbox::apply_status(
        &mut uow.exec(),
        channel,
        &report.external_message_id,
        report.status,
        report.error.as_deref(),
    )
    .await?;
    match changed {
        Some(message) => uow.push(Change::MessageStatus(message)),
        // A status for an id no message has yet may have beaten our own send's answer: kept
        // until the send records the id (see the outbox).
        None if messages::by_external_id(&mut uow.exec(), channel, &report.external_message_id)
            .await?
            .is_none() =>
        {
            early_statuses::keep(
                &mut uow.exec(),
                channel,
                &report.external_message_id,
                report.status,
                report.error.as_deref(),
                now(),
            )
            .await?
        }
        None => {}
    }
    Ok(())
}

/// PostgreSQL text cannot hold NUL; a provider's payload may (JSON's `\u0000`). Dropping it
/// keeps the message instead of failing the delivery, which the provider would retry forever.
fn without_nul(incoming: &Incoming) -> Incoming {
    let clean = |s: &str| s.replace('\0', "");
    Incoming {
        conversation_key: clean(&incoming.conversation_key),
        participant_identifier: clean(&incoming.participant_identifier),
        participant_name: incoming.participant_name.as_deref().map(clean),
        content: clean(&incoming.content),
        message_type: clean(&incoming.message_type),
        external_message_id: incoming.external_message_id.as_deref().map(clean),
        metadata: incoming.metadata.as_deref().map(clean),
        timestamp: incoming.timestamp,
        answerable: incoming.answerable,
        attachments: incoming.attachments.clone(),
    }
}
