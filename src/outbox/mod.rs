//! Delivery of outbound messages: stored `pending` first, then sent; a transient failure is
//! retried by a background worker with exponential backoff and jitter until sent or, after
//! `SEND_MAX_ATTEMPTS`, `failed`. The queue lives in the database, so a restart resumes it, and
//! each attempt holds a lease, so several instances never send one message twice. Which
//! provider sends a message is decided in [`dispatch`].

pub mod dispatch;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::dispatch::Dispatch;
use crate::channels::SendOutcome;
use crate::config;
use crate::domain::{now, Change, ChannelKind, Direction, Message, Status};
use crate::metrics::Metrics;
use crate::publish::{Publisher, UnitOfWork};
use crate::store::{self, outbox};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// What a lease adds to the longest provider call: time to record the outcome.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Longest wait between two tries to record an outcome the provider accepted (short: until it
/// is recorded, another instance may take the message once its lease expires).
const MAX_RECORD_BACKOFF: Duration = Duration::from_millis(500);
/// Messages one worker pass claims at most.
const BATCH: i64 = 16;

/// What became of a submitted message, for the caller to report.
pub enum Submitted {
    Sent(Message),
    Pending { message: Message, reason: String },
    Failed { message: Message, reason: String },
}

/// A message to send in an existing conversation.
pub struct Outgoing {
    pub conversation_id: i64,
    pub channel: ChannelKind,
    /// Validated by the channel's rules; every attempt goes here.
    pub recipient: String,
    pub content: String,
    pub sender_name: Option<String>,
    pub metadata: Option<String>,
    /// For an assistant's auto-reply: the inbound message it answers.
    pub reply_to_message_id: Option<i64>,
}

#[derive(Clone)]
pub struct Outbox {
    publisher: Publisher,
    metrics: Arc<Metrics>,
    dispatch: Dispatch,
    settings: config::Outbox,
    lease: Duration,
    /// Attempts run as tracked tasks: a client that hangs up does not cancel one halfway.
    tasks: TaskTracker,
    /// Messages the provider accepted whose outcome waits for the database: this instance's
    /// worker must not take them when their lease expires meanwhile.
    holding: Arc<Mutex<HashSet<i64>>>,
}

impl Outbox {
    pub fn new(
        publisher: Publisher,
        metrics: Arc<Metrics>,
        dispatch: Dispatch,
        settings: config::Outbox,
        send_timeout: Duration,
        tasks: TaskTracker,
    ) -> Outbox {
        // A lease outlives any single attempt (the call, then recording its outcome), so only a
        // dead instance's claims expire.
        let lease = send_timeout * 2 + LEASE_MARGIN;
        Outbox {
            publisher,
            metrics,
            dispatch,
            settings,
            lease,
            tasks,
            holding: Arc::default(),
        }
    }

    /// The provider clients: which channels can send.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Stores `outgoing` as `pending` in `uow`, commits (publishing it with whatever else the
    /// unit changed), then sends it now. `None` when nothing was stored: the message it replies
    /// to already has its reply.
    pub async fn submit(
        &self,
        mut uow: UnitOfWork,
        outgoing: Outgoing,
    ) -> Result<Option<Submitted>, sqlx::Error> {
        let at = now();
        let new = store::messages::NewMessage {
            conversation_id: outgoing.conversation_id,
            channel: outgoing.channel,
            content: outgoing.content.clone(),
            message_type: "text".into(),
            direction: Direction::Outbound,
            status: Status::Pending,
            sender_name: outgoing.sender_name,
            sender_identifier: None,
            timestamp: at,
            message_metadata: outgoing.metadata,
            external_message_id: None,
            is_read: true,
            error: None,
            reply_to_message_id: outgoing.reply_to_message_id,
            recipient: Some(outgoing.recipient.clone()),
        };
        let Some(message) = store::messages::insert(&mut uow.exec(), &new, at).await? else {
            return Ok(None);
        };
        // Claimed by this request until it records the outcome; a crash in between leaves it to
        // a worker once the lease expires.
        outbox::enqueue(
            &mut uow.exec(),
            message.id,
            at,
            Some(at + chrono_duration(self.lease)),
        )
        .await?;
        uow.push(Change::NewMessage(message.clone()));
        uow.commit().await?;
        let due = outbox::Due {
            id: message.id,
            conversation_id: message.conversation_id,
            content: outgoing.content,
            channel: message.channel,
            recipient: outgoing.recipient,
            send_attempts: 0,
        };
        let this = self.clone();
        let attempt = self.tasks.spawn(async move { this.attempt(due).await });
        match attempt.await {
            Ok(submitted) => submitted.map(Some),
            Err(e) => Err(sqlx::Error::Protocol(format!(
                "the send attempt stopped: {e}"
            ))),
        }
    }

    /// Sends one due message and records the outcome.
    async fn attempt(&self, due: outbox::Due) -> Result<Submitted, sqlx::Error> {
        let outcome = self.dispatch.send(&due).await;
        let accepted = matches!(outcome, SendOutcome::Accepted(_));
        let mut recorded = self.record(&due, outcome.clone()).await;
        // Once the provider has accepted, its answer is held on to: recording is retried while
        // the database is away, because giving up would let the lease expire and the message
        // be sent a second time.
        let mut wait = Duration::from_millis(100);
        loop {
            match &recorded {
                Err(RecordError::Database(e)) if accepted && store::is_unavailable(e) => {
                    tracing::warn!(message_id = due.id, error = %e, "the provider accepted a message; recording it waits for the database");
                    self.hold(due.id, true);
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_RECORD_BACKOFF);
                    recorded = self.record(&due, outcome.clone()).await;
                }
                _ => break,
            }
        }
        self.hold(due.id, false);
        match recorded {
            // The provider's ids are unique per channel; one already stored means its answer
            // cannot be trusted, and retrying could send the text twice.
            Err(RecordError::DuplicateId(id)) => {
                let reason =
                    format!("the provider answered with an id another message already has ({id})");
                tracing::error!(message_id = due.id, %reason, "send outcome cannot be recorded");
                self.record(&due, SendOutcome::Permanent(reason))
                    .await
                    .map_err(RecordError::into_sqlx)
            }
            other => other.map_err(RecordError::into_sqlx),
        }
    }

    /// Records what became of an attempt in one unit of work, publishing the status changes.
    async fn record(
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
        result.ok_or(RecordError::Database(sqlx::Error::RowNotFound))
    }

    fn hold(&self, id: i64, held: bool) {
        if let Ok(mut holding) = self.holding.lock() {
            if held {
                holding.insert(id);
            } else {
                holding.remove(&id);
            }
        }
    }

    fn is_held(&self, id: i64) -> bool {
        self.holding
            .lock()
            .is_ok_and(|holding| holding.contains(&id))
    }

    /// Delay before attempt `attempts + 1`: the base doubled per attempt, capped, with "equal
    /// jitter" (half fixed, half random) so retries from many messages spread out.
    fn backoff(&self, attempts: i32) -> Duration {
        let exponent = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        let full = self
            .settings
            .retry_base
            .saturating_mul(1 << exponent)
            .min(MAX_BACKOFF);
        full / 2 + full.mul_f64(fastrand::f64() / 2.0)
    }

    /// The background worker: claims due messages and attempts them until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
            }
            loop {
                let due = match self.claim().await {
                    Ok(due) => due,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox: cannot claim due messages");
                        break;
                    }
                };
                let full = due.len() as i64 == BATCH;
                for item in due {
                    if shutdown.is_cancelled() {
                        // Unclaimed messages wait for the next start; their leases expire.
                        return;
                    }
                    let id = item.id;
                    if self.is_held(id) {
                        // Accepted already; its outcome is being recorded by the attempt that
                        // sent it.
                        continue;
                    }
                    if let Err(e) = self.attempt(item).await {
                        tracing::warn!(message_id = id, error = %e, "outbox: cannot record an attempt");
                    }
                }
                if !full {
                    break;
                }
            }
        }
    }

    async fn claim(&self) -> sqlx::Result<Vec<outbox::Due>> {
        let at = now();
        let db = self.publisher.db();
        outbox::claim_due(
            &mut db.exec(),
            db.backend(),
            at,
            at + chrono_duration(self.lease),
            BATCH,
        )
        .await
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
enum RecordError {
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
    fn into_sqlx(self) -> sqlx::Error {
        match self {
            RecordError::Database(e) => e,
            RecordError::DuplicateId(id) => {
                sqlx::Error::Protocol(format!("duplicate provider id {id}"))
            }
        }
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
