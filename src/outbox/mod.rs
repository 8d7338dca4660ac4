//! Delivery of outbound messages: stored `pending` first, then sent; a transient failure is
//! retried by a background worker with exponential backoff and jitter until sent or, after
//! `SEND_MAX_ATTEMPTS`, `failed`. The queue lives in the database, so a restart resumes it, and
//! each attempt holds a lease, so several instances never send one message twice. Which
//! provider sends a message is decided in [`dispatch`].

pub mod dispatch;
mod record;
mod worker;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::task::TaskTracker;

pub use self::dispatch::Dispatch;
use self::record::RecordError;
use crate::channels::SendOutcome;
use crate::config;
use crate::domain::{now, Author, Change, ChannelKind, Direction, Message, Status};
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
    /// Who wrote it: stored as `sender_name`, and seen by the provider at every attempt.
    pub author: Author,
    /// The subject of a mail (email only; otherwise the channel decides).
    pub subject: Option<String>,
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
        // What the channel decides once for every attempt (a mail's headers and Message-ID).
        let metadata = self.dispatch.prepare(&mut uow, &outgoing, at).await?;
        let new = store::messages::NewMessage {
            conversation_id: outgoing.conversation_id,
            channel: outgoing.channel,
            content: outgoing.content.clone(),
            message_type: "text".into(),
            direction: Direction::Outbound,
            status: Status::Pending,
            sender_name: Some(outgoing.author.sender_name().to_owned()),
            sender_identifier: None,
            timestamp: at,
            message_metadata: metadata.clone(),
            external_message_id: None,
            is_read: true,
            error: None,
            reply_to_message_id: outgoing.reply_to_message_id,
            recipient: Some(outgoing.recipient.clone()),
        };
        // The way out is decided now, so every retry takes the same one.
        let last_via_gateway = self.dispatch.needs_last_route(outgoing.channel)
            && store::messages::latest_inbound(&mut uow.exec(), outgoing.conversation_id)
                .await?
                .is_some_and(|last| crate::assistant::gateway::came_through_gateway(&last));
        let route = self
            .dispatch
            .route(outgoing.channel, outgoing.author, last_via_gateway);
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
            route,
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
            sender_name: Some(outgoing.author.sender_name().to_owned()),
            send_route: route.map(str::to_owned),
            metadata,
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

    fn hold(&self, id: i64, held: bool) {
        if let Ok(mut holding) = self.holding.lock() {
            if held {
                holding.insert(id);
            } else {
                holding.remove(&id);
            }
        }
    }

    pub(super) fn is_held(&self, id: i64) -> bool {
        self.holding
            .lock()
            .is_ok_and(|holding| holding.contains(&id))
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
