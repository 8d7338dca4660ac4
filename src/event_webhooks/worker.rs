//! The delivery worker: claims due events (one per conversation, with a lease), POSTs a bounded
//! number at once, and records each outcome: delivered, retried later with backoff, or, once
//! the event is older than the retry window, given up (logged with its id and counted).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
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
/// What a lease adds to an attempt's time limit: time to record its outcome. Only a dead
/// instance's leases expire.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

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
        // The soonest retry this instance scheduled: looked for then rather than at the next poll.
        let mut next_retry: Option<Instant> = None;
        loop {
            let free = this.settings.concurrency.saturating_sub(running.len());
            if free > 0 {
                match this.claim(free).await {
                    Ok(claimed) => {
                        for event in claimed {
                            let this = this.clone();
                            running.spawn(async move { this.deliver(event).await });
                        }
                    }
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
                    // Every attempt that finished meanwhile, so one claim serves them all.
                    let mut retries = vec![done];
                    while let Some(more) = running.try_join_next() {
                        retries.push(more);
                    }
                    next_retry = retries
                        .into_iter()
                        .filter_map(|r| r.ok().flatten())
                        .chain(next_retry)
                        .min();
                }
            }
        }
        let finish = this.settings.timeout + Duration::from_secs(1);
        let finished = tokio::time::timeout(finish, async {
            while running.join_next().await.is_some() {}
        });
        if finished.await.is_err() {
            tracing::warn!(
                "event webhook deliveries still running at shutdown are left to their leases"
            );
        }
    }

    async fn claim(&self, limit: usize) -> sqlx::Result<Vec<Claimed>> {
        let at = now();
        let lease = chrono_duration(self.settings.timeout + LEASE_MARGIN);
        event_webhooks::claim(
            &mut self.db.exec(),
            self.db.backend(),
            at,
            at + lease,
            limit as i64,
        )
        .await
    }

    /// One attempt and its outcome; returns when a retry was scheduled for.
    async fn deliver(&self, event: Claimed) -> Option<Instant> {
        let result = self.receiver.post(&event).await;
        let at = now();
        let (recorded, retry) = match result {
            Ok(()) => {
                Metrics::add(&self.metrics.event_webhooks_delivered, 1);
                (
                    event_webhooks::delivered(&mut self.db.exec(), event.id, at).await,
                    None,
                )
            }
            Err(reason) if at < event.created_at + chrono_duration(self.settings.retry_for) => {
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
                let due: DateTime<Utc> = at + chrono_duration(wait);
                let recorded = event_webhooks::retry(
                    &mut self.db.exec(),
                    event.id,
                    event.conversation_id,
                    due,
                    &reason,
                )
                .await;
                (recorded, Some(Instant::now() + wait))
            }
            Err(reason) => {
                tracing::error!(
                    event_id = %event.event_id,
                    kind = %event.kind,
                    attempts = event.attempts,
                    created_at = %event.created_at,
                    %reason,
                    "event webhook given up: retried for the whole retry window"
                );
                Metrics::add(&self.metrics.event_webhooks_given_up, 1);
                let recorded =
                    event_webhooks::given_up(&mut self.db.exec(), event.id, &reason, at).await;
                (recorded, None)
            }
        };
        if let Err(e) = recorded {
            // The lease expires and the event is sent again: at least once, never lost.
            tracing::warn!(event_id = %event.event_id, error = %e, "cannot record an event webhook's outcome");
        }
        retry
    }

    /// Delay before attempt `attempts + 1`: the base doubled per attempt, capped, with "equal
    /// jitter" (half fixed, half random) so the retries of many conversations spread out.
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
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
