//! Participant names a provider's webhooks do not carry (Instagram's carry none). A
//! conversation such a delivery creates gets a `participant_name` job in the same transaction
//! (see [`super::record`]); after the commit, the job asks the provider and names the
//! conversation, announced with `conversation_updated`. Once per conversation: later messages
//! never ask again, and a conversation with a name is never renamed by it. A failed look-up
//! delays nothing and fails nothing: a timeout or a provider error worth retrying is retried by
//! the job runner with backoff (bounded), anything else leaves the conversation unnamed.

use crate::channels::NameOutcome;
use crate::domain::now;
use crate::jobs::Outcome;
use crate::outbox::Dispatch;
use crate::publish::Publisher;
use crate::store::conversations;

/// Runs `participant_name` jobs. Cheap to clone.
#[derive(Clone)]
pub struct NameLookups {
    publisher: Publisher,
    dispatch: Dispatch,
}

impl NameLookups {
    pub fn new(publisher: Publisher, dispatch: Dispatch) -> NameLookups {
        NameLookups {
            publisher,
            dispatch,
        }
    }

    /// The job of conversation `conversation_id`.
    pub async fn job(&self, conversation_id: i64) -> Outcome {
        match self.look_up(conversation_id).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    async fn look_up(&self, conversation_id: i64) -> sqlx::Result<Outcome> {
        let found = conversations::get(&mut self.publisher.db().exec(), conversation_id).await?;
        let Some(conversation) = found.filter(|c| c.participant_name.is_none()) else {
            return Ok(Outcome::Done);
        };
        let Some(channel) = crate::domain::ChannelKind::from_id(conversation.channel_id) else {
            return Ok(Outcome::Done);
        };
        let name = match self
            .dispatch
            .participant_name(channel, &conversation.external_id)
            .await
        {
            NameOutcome::Found(name) => name,
            NameOutcome::Transient(reason) => return Ok(Outcome::Retry(reason)),
            NameOutcome::Permanent(reason) => return Ok(Outcome::GiveUp(reason)),
        };
        let mut uow = self.publisher.begin().await?;
        if let Some(named) =
            conversations::name_if_unnamed(&mut uow.exec(), conversation.id, &name, now()).await?
        {
            uow.conversation_changed(named);
        }
        uow.commit().await?;
        Ok(Outcome::Done)
    }
}
