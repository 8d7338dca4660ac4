//! Recording what became of an attempt: `sent` (with the statuses that beat the provider's
//! answer), a retry later with backoff, or `failed`, each in one unit of work that publishes the
//! status change.

use std::time::Duration;

use super::{chrono_duration, Outbox, Submitted, MAX_BACKOFF};
use crate::channels::SendOutcome;
use crate::domain::{now, Change, ChannelKind, Message, Status};
use crate::metrics::Metrics;
use crate::publish::UnitOfWork;
use crate::store::{self, outbox};

impl Outbox {
    /// Records what became of an attempt in one unit of work, publishing the status changes.
    pub(super) async fn record(
        &self,
        due: &outbox::Due,
        outcome: SendOutcome,
    ) -> Result<Submitted, RecordError> {
        let attempts = due.send_attempts + 1;
        let mut uow = self.publisher.begin().await?;
        let (changed, result) = match outcome {
            SendOutcome::Accepted(provider_id) => {
                let recorded =
                    outbox::record_sent(&mut uow.exec(), due.id, attempts, provider_id.as_deref())
                        .await;
                let sent = match (recorded, provider_id) {
                    (Err(e), Some(id)) if store::is_unique_violation(&e) => {
                        return Err(RecordError::DuplicateId(id))
                    }
                    (Err(e), _) => return Err(RecordError::Database(e)),
                    (Ok(Some(sent)), Some(id)) => {
                        Some(apply_early_statuses(&mut uow, sent, due.channel, &id).await?)
                    }
                    (Ok(sent), _) => sent,
                };
                Metrics::add(&self.metrics.outbox_sent, 1);
                (sent.clone(), sent.map(Submitted::Sent))
            }
            SendOutcome::Transient(reason) if attempts < self.settings.max_attempts as i32 => {
                let next = now() + chrono_duration(self.backoff(attempts));
                tracing::warn!(message_id = due.id, attempts, %reason, "send failed, will retry");
                Metrics::add(&self.metrics.outbox_retried, 1);
                let m =
                    outbox::record_retry(&mut uow.exec(), due.id, attempts, next, &reason).await?;
                // Still pending: nothing changed that clients see, bar the error text.
                (
                    None,
                    m.map(|message| Submitted::Pending { message, reason }),
                )
            }
            SendOutcome::Transient(reason) | SendOutcome::Permanent(reason) => {
                let reason =
                    if attempts >= self.settings.max_attempts as i32 && due.send_attempts > 0 {
                        format!("{reason} (gave up after {attempts} attempts)")
                    } else {
                        reason
                    };
                tracing::warn!(message_id = due.id, attempts, %reason, "send failed for good");
                Metrics::add(&self.metrics.outbox_failed, 1);
                let m = outbox::record_failed(&mut uow.exec(), due.id, attempts, &reason).await?;
                (
                    m.clone(),
                    m.map(|message| Submitted::Failed { message, reason }),
                )
            }
        };
        if let Some(message) = changed {
            uow.push(Change::MessageStatus(message));
        }
        uow.commit().await?;
        match result {
            Some(submitted) => Ok(submitted),
            None => self.already_recorded(due.id).await,
        }
    }

    /// An attempt whose outcome found the message no longer `pending`: recorded already (the
    /// provider's echo of it arrived before its answer and adopted it). Nothing is announced
    /// again; the caller is told what the message now is.
    async fn already_recorded(&self, id: i64) -> Result<Submitted, RecordError> {
        let message = store::messages::get(&mut self.publisher.db().exec(), id)
            .await?
            .ok_or(RecordError::Database(sqlx::Error::RowNotFound))?;
        let reason = message.error.clone().unwrap_or_default();
        Ok(match message.status {
            Status::Pending => Submitted::Pending { message, reason },
            Status::Failed => Submitted::Failed { message, reason },
            _ => Submitted::Sent(message),
        })
    }

    /// Delay before attempt `attempts + 1` ([`crate::retry::backoff`]).
    fn backoff(&self, attempts: i32) -> Duration {
        let attempt = u32::try_from(attempts).unwrap_or(0);
        crate::retry::backoff(self.settings.retry_base, attempt, MAX_BACKOFF)
    }
}

/// Applies the statuses that arrived for `provider_id` before the provider's answer did,
/// forward only: `sent` is announced, then each status that moved the message on. Returns the
/// message as it now is.
async fn apply_early_statuses(
    uow: &mut UnitOfWork,
    sent: Message,
    channel: ChannelKind,
    provider_id: &str,
) -> sqlx::Result<Message> {
    let early = store::early_statuses::take(&mut uow.exec(), channel, provider_id).await?;
    let mut current = sent;
    for status in early {
        let moved = outbox::apply_status(
            &mut uow.exec(),
            channel,
            provider_id,
            status.status,
            status.error.as_deref(),
        )
        .await?;
        if let Some(moved) = moved {
            uow.push(Change::MessageStatus(current));
            current = moved;
        }
    }
    Ok(current)
}

/// Why an attempt's outcome was not recorded.
pub(super) enum RecordError {
    /// The provider answered with an id another message already has.
    DuplicateId(String),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for RecordError {
    fn from(e: sqlx::Error) -> Self {
        RecordError::Database(e)
    }
}

impl RecordError {
    pub(super) fn into_sqlx(self) -> sqlx::Error {
        match self {
            RecordError::Database(e) => e,
            RecordError::DuplicateId(id) => {
                sqlx::Error::Protocol(format!("duplicate provider id {id}"))
            }
        }
    }
}
