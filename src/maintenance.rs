//! Housekeeping on a timer: tables that would otherwise only grow are pruned. Every instance
//! runs it; the deletes are idempotent, so several instances only repeat each other.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::now;
use crate::store::{early_statuses, Db};

/// How often the pruning runs.
const EVERY: Duration = Duration::from_secs(600);
/// Statuses for ids no send has recorded within this long were never ours.
const EARLY_STATUS_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// Prunes until `shutdown`.
pub async fn run(db: Db, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match early_statuses::prune(&mut db.exec(), now() - EARLY_STATUS_RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "dropped statuses of messages never sent here"),
            Err(e) => tracing::warn!(error = %e, "cannot prune early statuses"),
        }
    }
}
