//! Recording many deliveries in one unit of work with a few statements for the whole batch
//! instead of a few per message: what lets group commit pay off on the database's side too.
//!
//! The conversations of a batch's customer messages are looked up in one query per channel
//! ([`conversations::find_many`]); only a new or renamed one costs a statement of its own. The
//! messages that carry a provider id are then inserted together ([`messages::insert_many`]),
//! each matched back to its place by `(channel, external_message_id)`; a redelivery, or a
//! second copy within the batch, comes back empty as it would one at a time. Messages without
//! a provider id and the business's own messages (echoes) go through the one-at-a-time path,
//! after the messages queued before them are stored, so ids keep the arrival order.

use std::collections::HashMap;

use super::{
    announce, echoes, implausible, new_conversation, new_inbound, receipts, record_message,
    store_files, without_nul, Delivery, NewAttachment, Recorded,
};
use crate::assistant::AutoReplies;
use crate::domain::{now, Change, ChannelKind, Conversation, Direction};
use crate::publish::UnitOfWork;
use crate::store::jobs::{self, JobKind};
use crate::store::{conversations, messages};

/// Conversations looked up for the batch: `None` when not there at the time (it may have been
/// created since, which [`conversations::upsert_known`] finds out safely).
type Known = HashMap<(ChannelKind, String), Option<Conversation>>;

/// A customer message waiting for the batch's insert.
struct Queued {
    /// Where its [`Recorded`] is: the delivery, then the message.
    delivery: usize,
    slot: usize,
    /// Its channel and provider id, which match the stored row back to it.
    key: (ChannelKind, String),
    attachments: Vec<NewAttachment>,
    signed: bool,
    wants_reply: bool,
}

/// Stores everything `deliveries` carried in the unit of work, as [`super::record`] does for
/// each, and returns their [`Recorded`]s in the same order.
pub async fn record_all(
    uow: &mut UnitOfWork,
    deliveries: &[&Delivery],
    autoreplies: &AutoReplies,
) -> sqlx::Result<Vec<Vec<Recorded>>> {
    let mut known = look_up_conversations(uow, deliveries).await?;
    let mut recorded: Vec<Vec<Recorded>> = Vec::with_capacity(deliveries.len());
    // The rows to insert, in the order of `queued`.
    let mut queued: Vec<Queued> = Vec::new();
    let mut rows: Vec<messages::NewMessage> = Vec::new();
    for (d, delivery) in deliveries.iter().enumerate() {
        let wants_replies = autoreplies.wants(delivery.channel);
        recorded.push(Vec::with_capacity(delivery.messages.len()));
        for incoming in &delivery.messages {
            if implausible(incoming) {
                tracing::warn!(
                    channel = %delivery.channel,
                    "skipping an inbound message with an implausibly long id"
                );
                continue;
            }
            let wants_reply = wants_replies && incoming.answerable;
            let one = match incoming.direction {
                Direction::Inbound if incoming.external_message_id.is_some() => {
                    let incoming = without_nul(incoming);
                    let id = incoming.external_message_id.clone().unwrap_or_default();
                    let channel = delivery.channel;
                    let key = (channel, incoming.conversation_key.clone());
                    let found = known.get(&key).cloned().flatten();
                    let new = new_conversation(channel, &incoming);
                    let upserted =
                        conversations::upsert_known(&mut uow.exec(), &new, found, now()).await?;
                    announce(uow, &upserted);
                    known.insert(key, Some(upserted.conversation.clone()));
                    rows.push(new_inbound(channel, &incoming, &upserted.conversation));
                    queued.push(Queued {
                        delivery: d,
                        slot: recorded[d].len(),
                        key: (channel, id),
                        attachments: incoming.attachments,
                        signed: delivery.signed,
                        wants_reply: wants_reply && upserted.conversation.assistant_enabled,
                    });
                    Recorded {
                        conversation: upserted.conversation,
                        created_conversation: upserted.created,
                        message: None,
                    }
                }
                direction => {
                    let (q, r) = (std::mem::take(&mut queued), std::mem::take(&mut rows));
                    store_queued(uow, q, &r, &mut recorded).await?;
                    let (channel, signed) = (delivery.channel, delivery.signed);
                    let one = match direction {
                        Direction::Inbound => {
                            record_message(uow, channel, incoming, wants_reply, signed).await?
                        }
                        Direction::Outbound => {
                            echoes::record(uow, channel, incoming, signed).await?
                        }
                    };
                    // Its conversation may be new, or renamed, since the look-up.
                    let key = (channel, incoming.conversation_key.clone());
                    known.insert(key, Some(one.conversation.clone()));
                    one
                }
            };
            if delivery.look_up_names
                && one.created_conversation
                && one.conversation.participant_name.is_none()
            {
                let id = one.conversation.id;
                jobs::enqueue(&mut uow.exec(), JobKind::ParticipantName, id, now()).await?;
                uow.wake_jobs();
            }
            recorded[d].push(one);
        }
    }
    store_queued(uow, queued, &rows, &mut recorded).await?;
    for delivery in deliveries {
        for report in &delivery.statuses {
            receipts::apply_status(uow, delivery.channel, report).await?;
        }
        for receipt in &delivery.reads {
            receipts::apply_read(uow, delivery.channel, receipt).await?;
        }
    }
    Ok(recorded)
}

/// The conversations of the batch's customer messages that exist, in one query per channel.
async fn look_up_conversations(
    uow: &mut UnitOfWork,
    deliveries: &[&Delivery],
) -> sqlx::Result<Known> {
    let mut keys: HashMap<ChannelKind, Vec<&str>> = HashMap::new();
    for delivery in deliveries {
        for incoming in &delivery.messages {
            if incoming.direction == Direction::Inbound
                && incoming.external_message_id.is_some()
                && !implausible(incoming)
                && !incoming.conversation_key.contains('\0')
            {
                let channel_keys = keys.entry(delivery.channel).or_default();
                if !channel_keys.contains(&incoming.conversation_key.as_str()) {
                    channel_keys.push(&incoming.conversation_key);
                }
            }
        }
    }
    let mut known = Known::new();
    for (channel, keys) in keys {
        for key in &keys {
            known.insert((channel, (*key).to_owned()), None);
        }
        for found in conversations::find_many(&mut uow.exec(), channel, &keys).await? {
            known.insert((channel, found.external_id.clone()), Some(found));
        }
    }
    Ok(known)
}

/// Inserts the queued messages (`rows`, one per entry of `queued`) together, then gives each
/// stored one its files, its event and its reply job, and its place in `recorded`.
async fn store_queued(
    uow: &mut UnitOfWork,
    queued: Vec<Queued>,
    rows: &[messages::NewMessage],
    recorded: &mut [Vec<Recorded>],
) -> sqlx::Result<()> {
    if queued.is_empty() {
        return Ok(());
    }
    let at = now();
    let mut stored: HashMap<(ChannelKind, String), _> =
        messages::insert_many(&mut uow.exec(), rows, at)
            .await?
            .into_iter()
            .filter_map(|m| Some(((m.channel, m.external_message_id.clone()?), m)))
            .collect();
    for q in queued {
        // Absent: a redelivery, or an earlier copy in this batch took it.
        let Some(mut message) = stored.remove(&q.key) else {
            continue;
        };
        store_files(uow, &mut message, &q.attachments, q.signed).await?;
        uow.push(Change::NewMessage(message.clone()));
        if q.wants_reply {
            jobs::enqueue(&mut uow.exec(), JobKind::AssistantReply, message.id, at).await?;
            uow.wake_jobs();
        }
        recorded[q.delivery][q.slot].message = Some(message);
    }
    Ok(())
}
