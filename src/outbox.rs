//! Delivery of outbound messages: stored `pending` first, then sent; a transient failure is
//! retried by a background worker with exponential backoff and jitter until sent or, after
//! `SEND_MAX_ATTEMPTS`, `failed`. The queue lives in the database, so a restart resumes it, and
//! each attempt holds a lease, so several instances never send one message twice.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::channels::whatsapp::cloud_api::{CloudApi, SendOutcome};
use crate::config;
use crate::domain::{now, Direction, Message, Status};
use crate::metrics::Metrics;
use crate::realtime::{Change, Relay};
use crate::store::{self, outbox, Db};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
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
    pub channel_id: i64,
    pub recipient: String,
    pub content: String,
    pub sender_name: Option<String>,
    pub metadata: Option<String>,
    /// For an assistant's auto-reply: the inbound message it answers.
    pub reply_to_message_id: Option<i64>,
}

#[derive(Clone)]
pub struct Outbox {
    db: Db,
    relay: Relay,
    metrics: Arc<Metrics>,
    whatsapp: Option<CloudApi>,
    settings: config::Outbox,
    lease: Duration,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(
        db: Db,
        relay: Relay,
        metrics: Arc<Metrics>,
        whatsapp: Option<CloudApi>,
        settings: config::Outbox,
        send_timeout: Duration,
    ) -> Outbox {
        // A lease outlives any single attempt, so only a dead instance's claims expire.
        let lease = send_timeout * 2 + Duration::from_secs(30);
        Outbox {
            db,
            relay,
            metrics,
            whatsapp,
            settings,
            lease,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Whether messages can be sent on the WhatsApp channel.
    pub fn can_send_whatsapp(&self) -> bool {
        self.whatsapp.is_some()
    }

    /// Stores `outgoing` as `pending`, broadcasts it, then sends it now. Changes made before the
    /// send (a new conversation) are passed in `changes` and published with the message. `None`
    /// when nothing was stored: the message it replies to already has its reply.
    pub async fn submit(
        &self,
        tx: store::Tx,
        outgoing: Outgoing,
        mut changes: Vec<Change>,
    ) -> Result<Option<Submitted>, sqlx::Error> {
        let mut tx = tx;
        let at = now();
        let new = store::messages::NewMessage {
            conversation_id: outgoing.conversation_id,
            channel_id: outgoing.channel_id,
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
        };
        let mut ex = tx.exec();
        let Some(message) = store::messages::insert(&mut ex, &new, at).await? else {
            return Ok(None);
        };
        // Claimed by this request until it records the outcome; a crash in between leaves it to
        // a worker once the lease expires.
        outbox::enqueue(
            &mut ex,
            message.id,
            at,
            Some(at + chrono_duration(self.lease)),
        )
        .await?;
        changes.push(Change::NewMessage(message.clone()));
        self.relay.notify_in(&mut tx, &changes).await?;
        tx.commit().await?;
        self.relay.committed(&changes);
        let due = outbox::Due {
            id: message.id,
            content: outgoing.content,
            channel: message.channel.clone(),
            recipient: outgoing.recipient,
            send_attempts: 0,
        };
        self.attempt(due).await.map(Some)
    }

    /// Sends one due message and records the outcome.
    async fn attempt(&self, due: outbox::Due) -> Result<Submitted, sqlx::Error> {
        let outcome = match (&self.whatsapp, due.channel.as_str()) {
            (Some(api), "whatsapp") => api.send_text(&due.recipient, &due.content).await,
            (None, "whatsapp") => {
                SendOutcome::Transient("WhatsApp credentials are not configured".into())
            }
            (_, other) => SendOutcome::Permanent(format!("sending on {other} is not supported")),
        };
        let attempts = due.send_attempts + 1;
        let mut ex = self.db.exec();
        let (message, result) = match outcome {
            SendOutcome::Accepted(wamid) => {
                match outbox::record_sent(&mut ex, due.id, attempts, &wamid).await {
                    Ok(m) => {
                        Metrics::add(&self.metrics.outbox_sent, 1);
                        (m.clone(), m.map(Submitted::Sent))
                    }
                    // The provider's ids are unique per channel; one already stored means its answer
                    // cannot be trusted, and retrying could send the text twice.
                    Err(e) if store::is_unique_violation(&e) => {
                        let reason = format!("the provider answered with an id another message already has ({wamid})");
                        tracing::error!(message_id = due.id, %reason, "send outcome cannot be recorded");
                        Metrics::add(&self.metrics.outbox_failed, 1);
                        let m = outbox::record_failed(&mut ex, due.id, attempts, &reason).await?;
                        (
                            m.clone(),
                            m.map(|message| Submitted::Failed { message, reason }),
                        )
                    }
                    Err(e) => return Err(e),
                }
            }
            SendOutcome::Transient(reason) if attempts < self.settings.max_attempts as i32 => {
                let next = now() + chrono_duration(self.backoff(attempts));
                tracing::warn!(message_id = due.id, attempts, %reason, "send failed, will retry");
                Metrics::add(&self.metrics.outbox_retried, 1);
                let m = outbox::record_retry(&mut ex, due.id, attempts, next, &reason).await?;
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
                let m = outbox::record_failed(&mut ex, due.id, attempts, &reason).await?;
                (
                    m.clone(),
                    m.map(|message| Submitted::Failed { message, reason }),
                )
            }
        };
        if let Some(message) = &message {
            self.relay
                .publish_all(&[Change::MessageStatus(message.clone())])
                .await;
        }
        result.ok_or(sqlx::Error::RowNotFound)
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

    /// Wakes the worker (a message became due).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The background worker: claims due messages and attempts them until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = self.wake.notified() => {}
            }
            loop {
                let claimed = self.claim().await;
                let due = match claimed {
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
        let mut tx = self.db.begin().await?;
        let due = outbox::claim_due(
            &mut tx.exec(),
            self.db.backend(),
            at,
            at + chrono_duration(self.lease),
            BATCH,
        )
        .await?;
        tx.commit().await?;
        Ok(due)
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
