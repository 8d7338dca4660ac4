//! The background worker: claims due messages with a lease and attempts them, until shutdown.

use tokio_util::sync::CancellationToken;

use super::{chrono_duration, Outbox, BATCH};
use crate::domain::now;
use crate::store::outbox;

impl Outbox {
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
