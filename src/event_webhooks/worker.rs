//! The delivery worker: claims due events (one per conversation, with a lease), POSTs a bounded
//! number at once, and records each outcome: delivered, retried later with backoff, or, once
//! the event is older than the retry window, given up (logged with its id and counted).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::receiver::Receiver;
use super::Waker;
use crate::config::EventWebhook;
use crate::domain::now;
use crate::metrics::Metrics;
use crate::store::event_webhooks::{self, Claimed};
use crate::store::Db;

/// How often other instances' events (and retries scheduled elsewhere) are looked for.
const POLL: Duration = Duration::from_secs(1);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a finished delivery may wait for others to finish, so they are recorded together.
const LINGER: Duration = Duration::from_millis(10);
/// Longest wait at shutdown for attempts in flight (within the server's own drain).
const FINISH: Duration = Duration::from_secs(15);
/// What a lease adds to an attempt's time limit: time to record its outcome. Only a dead
/// instance's leases expire.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// What became of one attempt, for the loop.
enum Attempted {
    /// Taken by the receiver; recorded with the next claim.
    Delivered(i64),
    /// Failed and recorded; due again at this instant.
    Retry(Instant),
    /// Given up (recorded), nothing more to do.
    Settled,
}

pub struct Worker {
    db: Db,
    receiver: Receiver,
    metrics: Arc<Metrics>,
    waker: Waker,
    settings: EventWebhook,
}

impl Worker {
    pub(super) fn new(
        db: Db,
        receiver: Receiver,
        metrics: Arc<Metrics>,
        waker: Waker,
        settings: EventWebhook,
    ) -> Worker {
        Worker {
            db,
            receiver,
            metrics,
            waker,
            settings,
        }
    }

    /// Delivers until `shutdown`, then lets the attempts in flight finish (each is bounded by
    /// the timeout); one cut short is sent again once its lease expires.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut running = JoinSet::new();
        // Taken by the receiver, to record with the next claim.
        let mut delivered: Vec<i64> = Vec::new();
        // The soonest retry this instance scheduled: looked for then rather than at the next poll.
        let mut next_retry: Option<Instant> = None;
        loop {
            let free = this.settings.concurrency.saturating_sub(running.len());
            if free > 0 || !delivered.is_empty() {
                match this.settle_and_claim(&delivered, free).await {
                    Ok(claimed) => {
                        delivered.clear();
                        for event in claimed {
                            let this = this.clone();
                            running.spawn(async move { this.attempt(event).await });
                        }
                    }
                    // Kept for the next pass; meanwhile their leases hold them.
                    Err(e) => tracing::warn!(error = %e, "event webhooks: cannot claim due events"),
                }
            }
            let now = Instant::now();
            // Once its time has come, the claim above (or the poll) takes it.
            next_retry = next_retry.filter(|at| *at > now);
            let wake_at = next_retry.map_or(now + POLL, |at| at.min(now + POLL));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = this.waker.0.notified() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                Some(done) = running.join_next(), if !running.is_empty() => {
                    note(done, &mut delivered, &mut next_retry);
                    // Others finishing about now are recorded in the same pass: one commit
                    // for many deliveries rather than one each.
                    let linger_until = Instant::now() + LINGER;
                    while !running.is_empty() && delivered.len() * 2 < this.settings.concurrency {
                        match tokio::time::timeout_at(linger_until, running.join_next()).await {
                            Ok(Some(done)) => note(done, &mut delivered, &mut next_retry),
                            _ => break,
                        }
                    }
                }
            }
        }
        let finish = (this.settings.timeout + Duration::from_secs(1)).min(FINISH);
        let finished = tokio::time::timeout(finish, async {
            while let Some(attempted) = running.join_next().await {
                if let Ok(Attempted::Delivered(id)) = attempted {
                    delivered.push(id);
                }
            }
        });
        if finished.await.is_err() {
            tracing::warn!(
                "event webhook deliveries still running at shutdown are left to their leases"
            );
        }
        if delivered.is_empty() {
            return;
        }
        if let Err(e) = this.settle_and_claim(&delivered, 0).await {
            tracing::warn!(error = %e, "event webhooks: delivered events not recorded at shutdown will be sent again");
        }
    }

    /// Records `delivered` and leases up to `limit` due events, in one transaction: one commit
    /// (one flush to disk) for every event finished meanwhile.
    async fn settle_and_claim(
        &self,
        delivered: &[i64],
        limit: usize,
    ) -> sqlx::Result<Vec<Claimed>> {
        let backend = self.db.backend();
        let at = now();
        let lease_until = at + chrono_duration(self.settings.timeout + LEASE_MARGIN);
        if delivered.is_empty() {
            return event_webhooks::claim(
                &mut self.db.exec(),
                backend,
                at,
                lease_until,
                limit as i64,
            )
            .await;
        }
        let mut tx = self.db.begin().await?;
        event_webhooks::delivered(&mut tx.exec(), backend, delivered, at).await?;
        let claimed = if limit > 0 {
            event_webhooks::claim(&mut tx.exec(), backend, at, lease_until, limit as i64).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        Ok(claimed)
    }

    /// One attempt. A delivery is recorded by the loop, with the next claim; a failure here.
    async fn attempt(&self, event: Claimed) -> Attempted {
        let reason = match self.receiver.post(&event).await {
            Ok(()) => {
                Metrics::add(&self.metrics.event_webhooks_delivered, 1);
                return Attempted::Delivered(event.id);
            }
            Err(reason) => reason,
        };
        let at = now();
        if at < event.created_at + chrono_duration(self.settings.retry_for) {
            let wait = self.backoff(event.attempts);
            tracing::warn!(
                event_id = %event.event_id,
                kind = %event.kind,
                attempts = event.attempts,
                retry_in_ms = wait.as_millis() as u64,
                %reason,
                "event webhook delivery failed, will retry"
            );
            Metrics::add(&self.metrics.event_webhooks_retried, 1);
            let due = at + chrono_duration(wait);
            let recorded = event_webhooks::retry(
                &mut self.db.exec(),
                event.id,
                event.conversation_id,
                due,
                &reason,
            )
            .await;
            self.recorded(&event, recorded);
            return Attempted::Retry(Instant::now() + wait);
        }
        tracing::error!(
            event_id = %event.event_id,
            kind = %event.kind,
            attempts = event.attempts,
            created_at = %event.created_at,
            %reason,
            "event webhook given up: retried for the whole retry window"
        );
        Metrics::add(&self.metrics.event_webhooks_given_up, 1);
        let recorded = event_webhooks::given_up(&mut self.db.exec(), event.id, &reason, at).await;
        self.recorded(&event, recorded);
        Attempted::Settled
    }

    fn recorded(&self, event: &Claimed, result: sqlx::Result<()>) {
        if let Err(e) = result {
            // The lease expires and the event is tried again: at least once, never lost.
            tracing::warn!(event_id = %event.event_id, error = %e, "cannot record an event webhook's outcome");
        }
    }

    /// Delay before attempt `attempts + 1` ([`crate::retry::backoff`]).
    fn backoff(&self, attempts: i32) -> Duration {
        let attempt = u32::try_from(attempts).unwrap_or(0);
        crate::retry::backoff(self.settings.retry_base, attempt, MAX_BACKOFF)
    }
}

/// Notes what became of an attempt: a delivery to record, or a retry to wake up for.
fn note(
    attempt: Result<Attempted, tokio::task::JoinError>,
    delivered: &mut Vec<i64>,
    next_retry: &mut Option<Instant>,
) {
    match attempt {
        Ok(Attempted::Delivered(id)) => delivered.push(id),
        Ok(Attempted::Retry(at)) => *next_retry = Some(next_retry.map_or(at, |t| t.min(at))),
        // A panicked attempt's lease expires and the event is tried again.
        Ok(Attempted::Settled) | Err(_) => {}
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
