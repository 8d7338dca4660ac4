//! Recording what customers send: the conversation is found or created (race-free), the message
//! stored at most once per provider id, the name kept current, and every change returned for
//! broadcasting after the caller commits. Independent of HTTP.

use crate::channels::whatsapp::webhook::{InboundMessage, StatusUpdate, Webhook};
use crate::domain::{now, Direction, Status, MAX_ID_CHARS};
use crate::realtime::Change;
use crate::store::{self, conversations, messages, Exec};

/// An inbound message from any source (webhook, gateway).
#[derive(Debug, Clone)]
pub struct Inbound {
    pub channel_id: i64,
    /// The conversation key on this channel (WhatsApp: the number's digits, or a user id).
    pub external_id: String,
    pub participant_identifier: String,
    pub participant_name: Option<String>,
    pub content: String,
    pub message_type: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub external_message_id: Option<String>,
    pub metadata: Option<String>,
}

/// What recording one inbound message did.
pub struct Recorded {
    pub conversation: crate::domain::Conversation,
    /// The stored message; `None` when it was a redelivery.
    pub message: Option<crate::domain::Message>,
}

/// Stores `inbound` inside the caller's transaction; pushes the resulting changes.
pub async fn record(
    ex: &mut Exec<'_>,
    inbound: &Inbound,
    changes: &mut Vec<Change>,
) -> sqlx::Result<Recorded> {
    let inbound = &without_nul(inbound);
    let at = now();
    let new = conversations::NewConversation {
        channel_id: inbound.channel_id,
        external_id: inbound.external_id.clone(),
        participant_identifier: inbound.participant_identifier.clone(),
        participant_name: inbound.participant_name.clone(),
    };
    let upserted = conversations::upsert(ex, &new, at).await?;
    if upserted.created {
        changes.push(Change::NewConversation(upserted.conversation.clone()));
    } else if upserted.renamed {
        changes.push(Change::ConversationUpdated(upserted.conversation.clone()));
    }
    let message = messages::NewMessage {
        conversation_id: upserted.conversation.id,
        channel_id: inbound.channel_id,
        content: inbound.content.clone(),
        message_type: inbound.message_type.clone(),
        direction: Direction::Inbound,
        status: Status::Received,
        sender_name: inbound
            .participant_name
            .clone()
            .or_else(|| upserted.conversation.participant_name.clone()),
        sender_identifier: Some(inbound.participant_identifier.clone()),
        timestamp: inbound.timestamp,
        message_metadata: inbound.metadata.clone(),
        external_message_id: inbound.external_message_id.clone(),
        is_read: false,
        error: None,
        reply_to_message_id: None,
    };
    let stored = messages::insert(ex, &message, at).await?;
    if let Some(stored) = &stored {
        changes.push(Change::NewMessage(stored.clone()));
    }
    Ok(Recorded {
        conversation: upserted.conversation,
        message: stored,
    })
}

/// Stores everything a WhatsApp webhook carried, in the caller's transaction, on the channel
/// `channel_id`: new messages (a redelivered wamid is skipped) and forward-only status changes.
pub async fn record_whatsapp(
    ex: &mut Exec<'_>,
    channel_id: i64,
    webhook: &Webhook,
    changes: &mut Vec<Change>,
) -> sqlx::Result<Vec<Recorded>> {
    let mut recorded = Vec::with_capacity(webhook.messages.len());
    for message in &webhook.messages {
        if message.wamid.chars().count() > MAX_ID_CHARS
            || message.sender.chars().count() > MAX_ID_CHARS
        {
            tracing::warn!(
                wamid_len = message.wamid.len(),
                "skipping a webhook message with an implausibly long id"
            );
            continue;
        }
        recorded.push(record(ex, &from_whatsapp(channel_id, message), changes).await?);
    }
    for status in &webhook.statuses {
        apply_whatsapp_status(ex, channel_id, status, changes).await?;
    }
    Ok(recorded)
}

/// PostgreSQL text cannot hold NUL; a provider's payload may (JSON's `\u0000`). Dropping it
/// keeps the message instead of failing the delivery, which the provider would retry forever.
fn without_nul(inbound: &Inbound) -> Inbound {
    let clean = |s: &str| s.replace('\0', "");
    Inbound {
        external_id: clean(&inbound.external_id),
        participant_identifier: clean(&inbound.participant_identifier),
        participant_name: inbound.participant_name.as_deref().map(clean),
        content: clean(&inbound.content),
        message_type: clean(&inbound.message_type),
        external_message_id: inbound.external_message_id.as_deref().map(clean),
        metadata: inbound.metadata.as_deref().map(clean),
        ..inbound.clone()
    }
}

fn from_whatsapp(channel_id: i64, m: &InboundMessage) -> Inbound {
    Inbound {
        channel_id,
        external_id: m.sender.clone(),
        participant_identifier: m.phone.clone().unwrap_or_else(|| m.sender.clone()),
        participant_name: m.contact_name.clone(),
        content: m.content.clone(),
        message_type: m.message_type.clone(),
        timestamp: m.timestamp,
        external_message_id: Some(m.wamid.clone()),
        metadata: Some(m.raw.to_string()),
    }
}

async fn apply_whatsapp_status(
    ex: &mut Exec<'_>,
    channel_id: i64,
    update: &StatusUpdate,
    changes: &mut Vec<Change>,
) -> sqlx::Result<()> {
    // `played` (a voice note was played) and unknown values carry nothing the inbox shows.
    let Some(status) =
        Status::parse(&update.status).filter(|s| !matches!(s, Status::Received | Status::Pending))
    else {
        return Ok(());
    };
    if let Some(message) = store::outbox::apply_status(
        ex,
        channel_id,
        &update.wamid,
        status,
        update.error.as_deref(),
    )
    .await?
    {
        changes.push(Change::MessageStatus(message));
    }
    Ok(())
}
