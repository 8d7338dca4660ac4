//! The inbound seam: what every provider turns its input into, and the one recorder that stores
//! it.
//!
//! A provider (a webhook parser, the gateway, a mail poller) produces a [`Delivery`] of
//! channel-neutral records; [`record`] stores it inside the caller's unit of work: each
//! conversation found or created race-free, each message stored at most once per provider id
//! (a redelivery is a no-op), names kept current, provider statuses and read receipts applied
//! forward only. Messages the business wrote elsewhere (the provider's own app) are stored as
//! outbound `sent` ([`echoes`]). The changes are pushed to the unit of work, published once it
//! commits. Independent of HTTP.

pub mod batch;
mod echoes;
pub mod ingest;
pub mod names;
mod receipts;

use chrono::{DateTime, Utc};

use crate::assistant::AutoReplies;
use crate::domain::{
    now, Change, ChannelKind, Conversation, Direction, Message, Status, MAX_ID_CHARS,
};
use crate::publish::UnitOfWork;
pub use crate::store::attachments::{NewAttachment, Source};
use crate::store::jobs::{self, JobKind};
use crate::store::{attachments, conversations, messages};

/// What one provider delivery carried, in the inbox's terms.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub channel: ChannelKind,
    pub messages: Vec<Incoming>,
    pub statuses: Vec<StatusReport>,
    /// "The customer has seen everything up to this message."
    pub reads: Vec<ReadReceipt>,
    /// Whether its signature was checked (an app secret is set): only then may a URL it
    /// carries be fetched, so an unsigned request cannot make the server fetch an address of
    /// its choosing.
    pub signed: bool,
    /// The provider sends no participant names: a conversation this delivery creates gets a
    /// `participant_name` job, which looks the name up after the commit (once per
    /// conversation, never per message).
    pub look_up_names: bool,
}

impl Delivery {
    /// A delivery on `channel` carrying nothing yet (unsigned, names in the payload).
    pub fn new(channel: ChannelKind) -> Delivery {
        Delivery {
            channel,
            messages: Vec::new(),
            statuses: Vec::new(),
            reads: Vec::new(),
            signed: false,
            look_up_names: false,
        }
    }

    /// Whether it carries anything to store.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.statuses.is_empty() && self.reads.is_empty()
    }
}

/// A message of a conversation: one a customer sent, or one the business sent from elsewhere.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// `Inbound`: the customer wrote it. `Outbound`: the business wrote it outside this server
    /// (the provider's own app); stored as `sent`, unless it is one of our own sends.
    pub direction: Direction,
    /// The conversation key on the channel ([`crate::channels::ChannelRules::conversation_key`]):
    /// the customer's, whichever way the message went.
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

/// The customer of conversation `conversation_key` has seen the business's messages up to the
/// one with this provider id: they all become `read`.
#[derive(Debug, Clone)]
pub struct ReadReceipt {
    pub conversation_key: String,
    pub external_message_id: String,
}

/// What recording one message did.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub conversation: Conversation,
    /// Whether recording it created the conversation.
    pub created_conversation: bool,
    /// The stored message; `None` when it was a redelivery (or one of our own sends).
    pub message: Option<Message>,
}

/// Stores everything `delivery` carried in the unit of work: new messages (a redelivered id is
/// skipped), the assistant's reply job for those `autoreplies` wants answered, the name
/// look-up of new conversations when the provider sends no names, and forward-only status
/// changes and read receipts. One [`Recorded`] per message kept. Many deliveries at once:
/// [`batch::record_all`].
pub async fn record(
    uow: &mut UnitOfWork,
    delivery: &Delivery,
    autoreplies: &AutoReplies,
) -> sqlx::Result<Vec<Recorded>> {
    let mut recorded = batch::record_all(uow, &[delivery], autoreplies).await?;
    Ok(recorded.pop().unwrap_or_default())
}

/// An id no provider would send: such a message is skipped rather than stored.
fn implausible(incoming: &Incoming) -> bool {
    let too_long = |s: &str| s.chars().count() > MAX_ID_CHARS;
    too_long(&incoming.conversation_key)
        || incoming
            .external_message_id
            .as_deref()
            .is_some_and(too_long)
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
    let upserted = conversation_of(uow, channel, incoming).await?;
    let message = new_inbound(channel, incoming, &upserted.conversation);
    let mut stored = messages::insert(&mut uow.exec(), &message, at).await?;
    if let Some(stored) = &mut stored {
        store_files(uow, stored, &incoming.attachments, signed).await?;
        uow.push(Change::NewMessage(stored.clone()));
        if wants_reply && upserted.conversation.assistant_enabled {
            jobs::enqueue(&mut uow.exec(), JobKind::AssistantReply, stored.id, at).await?;
            uow.wake_jobs();
        }
    }
    Ok(Recorded {
        conversation: upserted.conversation,
        created_conversation: upserted.created,
        message: stored,
    })
}

/// The row of an inbound message in its conversation.
fn new_inbound(
    channel: ChannelKind,
    incoming: &Incoming,
    conversation: &Conversation,
) -> messages::NewMessage {
    messages::NewMessage {
        conversation_id: conversation.id,
        channel,
        content: incoming.content.clone(),
        message_type: incoming.message_type.clone(),
        direction: Direction::Inbound,
        status: Status::Received,
        sender_name: incoming
            .participant_name
            .clone()
            .or_else(|| conversation.participant_name.clone()),
        sender_identifier: Some(incoming.participant_identifier.clone()),
        timestamp: incoming.timestamp,
        message_metadata: incoming.metadata.clone(),
        external_message_id: incoming.external_message_id.clone(),
        is_read: false,
        error: None,
        reply_to_message_id: None,
        recipient: None,
    }
}

/// The conversation of `incoming`, found or created (race-free) and announced when new or
/// renamed.
async fn conversation_of(
    uow: &mut UnitOfWork,
    channel: ChannelKind,
    incoming: &Incoming,
) -> sqlx::Result<conversations::Upserted> {
    let new = new_conversation(channel, incoming);
    let upserted = conversations::upsert(&mut uow.exec(), &new, now()).await?;
    announce(uow, &upserted);
    Ok(upserted)
}

/// The conversation of `incoming` as a [`conversations::NewConversation`].
fn new_conversation(channel: ChannelKind, incoming: &Incoming) -> conversations::NewConversation {
    conversations::NewConversation {
        channel,
        external_id: incoming.conversation_key.clone(),
        participant_identifier: incoming.participant_identifier.clone(),
        participant_name: incoming.participant_name.clone(),
    }
}

/// A conversation created or renamed is news for the clients.
fn announce(uow: &mut UnitOfWork, upserted: &conversations::Upserted) {
    if upserted.created {
        uow.push(Change::NewConversation(upserted.conversation.clone()));
    } else if upserted.renamed {
        uow.push(Change::ConversationUpdated(upserted.conversation.clone()));
    }
}

/// Records the files of a message just stored. URLs are fetchable only from a `signed`
/// delivery.
async fn store_files(
    uow: &mut UnitOfWork,
    stored: &mut Message,
    files: &[NewAttachment],
    signed: bool,
) -> sqlx::Result<()> {
    let at = now();
    for file in files {
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
    Ok(())
}

/// PostgreSQL text cannot hold NUL; a provider's payload may (JSON's `\u0000`). Dropping it
/// keeps the message instead of failing the delivery, which the provider would retry forever.
fn without_nul(incoming: &Incoming) -> Incoming {
    let clean = |s: &str| s.replace('\0', "");
    Incoming {
        direction: incoming.direction,
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
