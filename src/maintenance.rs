//! Housekeeping on a timer: tables that would otherwise only grow are pruned, once soon after
//! start-up (a server restarted more often than the period would otherwise never prune) and then
//! periodically. Every instance runs it; the deletes are idempotent, so several instances only
//! repeat each other.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::domain::now;
use crate::store::{early_statuses, event_webhooks, Db};

/// How often the pruning runs.
const EVERY: Duration = Duration::from_secs(600);
/// How long after start-up the first pass runs (out of the way of start-up itself).
const FIRST: Duration = Duration::from_secs(1);
/// Statuses for ids no send has recorded within this long were never ours.
const EARLY_STATUS_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// How long finished rows are kept, per table that has a setting.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Delivered and given-up events (`EVENT_WEBHOOK_RETENTION_HOURS`); `None` without an event
    /// webhook (rows left from when one was configured are kept for its default, a day).
    pub event_webhooks: Option<Duration>,
}

impl Retention {
    pub fn from_config(config: &Config) -> Retention {
        Retention {
            event_webhooks: config.event_webhook.as_ref().map(|e| e.retention),
        }
    }
}

/// Prunes until `shutdown`.
pub async fn run(db: Db, retention: Retention, shutdown: CancellationToken) {
    let mut wait = FIRST;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        match early_statuses::prune(&mut db.exec(), now() - EARLY_STATUS_RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "dropped statuses of messages never sent here"),
            Err(e) => tracing::warn!(error = %e, "cannot prune early statuses"),
        }
        let events = retention
            .event_webhooks
            .unwrap_or(Duration::from_secs(24 * 3600));
        let before = chrono::Duration::from_std(events)
            .ok()
            .and_then(|keep| now().checked_sub_signed(keep))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        prune_event_webhooks(&db, before).await;
    }
}

/// Deletes finished event webhook deliveries in bounded batches.
async fn prune_event_webhooks(db: &Db, before: chrono::DateTime<chrono::Utc>) {
    const BATCH: i64 = 5_000;
    let mut pruned = 0;
    loop {
        match event_webhooks::prune(&mut db.exec(), before, BATCH).await {
            Ok(n) => {
                pruned += n;
                if n < BATCH as u64 {
                    break;
                }
                // Other writers get their turn between batches.
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune event webhook deliveries");
                break;
            }
        }
    }
    if pruned > 0 {
        tracing::info!(pruned, "dropped finished event webhook deliveries");
    }
}
