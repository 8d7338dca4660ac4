//! Messages the business wrote outside this server (in the provider's own app), which the
//! provider echoes back: stored as outbound `sent` in the customer's conversation, so the inbox
//! shows the whole thread. An echo of our own send changes nothing: its id is already stored,
//! or, when the provider's echo beat its answer, the send still waiting in the outbox with the
//! same text takes the id. A person answering from the app has stepped in, so the assistant is
//! turned off there, as when an agent replies here.

use super::{conversation_of, store_files, without_nul, Incoming, Recorded};
use crate::domain::{now, Change, ChannelKind, Direction, Status};
use crate::publish::UnitOfWork;
use crate::store::{conversations, messages, outbox};

/// Records `echo` (an `Outbound` [`Incoming`]) in the unit of work.
pub(super) async fn record(
    uow: &mut UnitOfWork,
    channel: ChannelKind,
    echo: &Incoming,
    signed: bool,
) -> sqlx::Result<Recorded> {
    let echo = &without_nul(echo);
    if let Some(id) = &echo.external_message_id {
        if let Some(known) = messages::by_external_id(&mut uow.exec(), channel, id).await? {
            if let Some(conversation) =
                conversations::get(&mut uow.exec(), known.conversation_id).await?
            {
                return Ok(Recorded {
                    conversation,
                    created_conversation: false,
                    message: None,
                });
            }
        }
    }
    let upserted = conversation_of(uow, channel, echo).await?;
    let conversation = upserted.conversation;
    if let Some(id) = &echo.external_message_id {
        let ours = outbox::adopt(&mut uow.exec(), conversation.id, &echo.content, id).await?;
        if let Some(ours) = ours {
            uow.push(Change::MessageStatus(ours));
            return Ok(Recorded {
                conversation,
                created_conversation: upserted.created,
                message: None,
            });
        }
    }
    let at = now();
    let message = messages::NewMessage {
        conversation_id: conversation.id,
        channel,
        content: echo.content.clone(),
        message_type: echo.message_type.clone(),
        direction: Direction::Outbound,
        status: Status::Sent,
        sender_name: None,
        // Written by the business in the provider's app: neither an agent here nor the
        // assistant (the raw item in the metadata names the account).
        sender_identifier: None,
        timestamp: echo.timestamp,
        message_metadata: echo.metadata.clone(),
        external_message_id: echo.external_message_id.clone(),
        is_read: true,
        error: None,
        reply_to_message_id: None,
        recipient: None,
    };
    let mut stored = messages::insert(&mut uow.exec(), &message, at).await?;
    let mut conversation = conversation;
    if let Some(stored) = &mut stored {
        store_files(uow, stored, &echo.attachments, signed).await?;
        uow.push(Change::NewMessage(stored.clone()));
        if let Some(silenced) =
            conversations::set_assistant(&mut uow.exec(), conversation.id, false, at).await?
        {
            uow.conversation_changed(silenced.clone());
            conversation = silenced;
        }
    }
    Ok(Recorded {
        conversation,
        created_conversation: upserted.created,
        message: stored,
    })
}
