//! What providers report about the business's messages: statuses (`delivered`, `read`,
//! `failed`) of one message, and read receipts ("seen up to this one"). Both move messages
//! forward only, each change published as a `message_status` event; news about an id no
//! message has yet is kept until our own send records it (see [`early_statuses`]).

use super::{ReadReceipt, StatusReport};
use crate::domain::{now, Change, ChannelKind, Direction, Status, MAX_ID_CHARS};
use crate::publish::UnitOfWork;
use crate::store::{conversations, early_statuses, messages, outbox};

/// Applies one status report, forward only; an unknown id is kept for a while.
pub(super) async fn apply_status(
    uow: &mut UnitOfWork,
    channel: ChannelKind,
    report: &StatusReport,
) -> sqlx::Result<()> {
    let Some(external_id) = usable_id(&report.external_message_id) else {
        return Ok(());
    };
    let error = report.error.as_deref().map(|e| e.replace('\0', ""));
    let changed = outbox::apply_status(
        &mut uow.exec(),
        channel,
        &external_id,
        report.status,
        error.as_deref(),
    )
    .await?;
    match changed {
        Some(message) => uow.push(Change::MessageStatus(message)),
        None => {
            keep_if_unknown(uow, channel, &external_id, report.status, error.as_deref()).await?
        }
    }
    Ok(())
}

/// Applies a read receipt: the business's messages of the conversation up to the one named
/// become `read`. A receipt naming an id no message has yet (our send's answer may still be on
/// its way) is kept as that message's `read`; one naming another conversation's message, or a
/// customer's, changes nothing.
pub(super) async fn apply_read(
    uow: &mut UnitOfWork,
    channel: ChannelKind,
    receipt: &ReadReceipt,
) -> sqlx::Result<()> {
    let Some(external_id) = usable_id(&receipt.external_message_id) else {
        return Ok(());
    };
    let Some(last) = messages::by_external_id(&mut uow.exec(), channel, &external_id).await? else {
        let at = now();
        return early_statuses::keep(
            &mut uow.exec(),
            channel,
            &external_id,
            Status::Read,
            None,
            at,
        )
        .await;
    };
    if last.direction != Direction::Outbound {
        return Ok(());
    }
    let conversation = conversations::get(&mut uow.exec(), last.conversation_id).await?;
    if !conversation.is_some_and(|c| c.external_id == receipt.conversation_key) {
        return Ok(());
    }
    for message in outbox::read_up_to(&mut uow.exec(), last.conversation_id, &last).await? {
        uow.push(Change::MessageStatus(message));
    }
    Ok(())
}

/// A status for an id no message has yet may have beaten our own send's answer: kept until
/// the send records the id (see the outbox).
async fn keep_if_unknown(
    uow: &mut UnitOfWork,
    channel: ChannelKind,
    external_id: &str,
    status: Status,
    error: Option<&str>,
) -> sqlx::Result<()> {
    if messages::by_external_id(&mut uow.exec(), channel, external_id)
        .await?
        .is_none()
    {
        early_statuses::keep(&mut uow.exec(), channel, external_id, status, error, now()).await?;
    }
    Ok(())
}

/// The id as stored ids are written (PostgreSQL text holds no NUL), or `None` when it cannot be
/// one of ours (implausibly long: it would not fit a unique index entry either).
fn usable_id(id: &str) -> Option<String> {
    let id = id.replace('\0', "");
    (!id.is_empty() && id.chars().count() <= MAX_ID_CHARS).then_some(id)
}
