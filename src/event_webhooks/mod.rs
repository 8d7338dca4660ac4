//! Event webhooks: every event the WebSocket carries (`new_message`, `message_status`,
//! `new_conversation`, `conversation_updated`) also POSTed to the operator's own receiver
//! (`EVENT_WEBHOOK_URL`), signed, retried, in order per conversation, none lost.
//!
//! - **Recorded with the change** (a transactional outbox): the unit of work hands its changes
//!   to the [`Recorder`], which writes one row per event in the same transaction, in one
//!   statement, before the commit. A rolled-back change has no event; a committed one always
//!   has its event, whatever happens next.
//! - **Delivered by a worker** ([`Worker`]), apart from every request: it claims due events with
//!   a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), at most one per conversation and only the
//!   earliest one still pending there, so a conversation's events reach the receiver in the
//!   order they were stored, from whichever instance; other conversations flow meanwhile, a
//!   bounded number at once. A 2xx is delivered; anything else, a timeout or a refused
//!   connection is retried with backoff until the event is older than the retry window, then
//!   given up, logged and counted.
//! - **At least once**: an attempt whose outcome was not recorded (a crash, a lost database)
//!   is made again when its lease expires, with the same `X-Switchboard-Delivery`.

mod envelope;
mod receiver;
mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

pub use self::worker::Worker;
use crate::config::EventWebhook;
use crate::domain::{now, Change};
use crate::metrics::Metrics;
use crate::store::{event_webhooks, Db, Tx};

/// Wakes this instance's worker after a commit recorded events. Cheap to clone.
#[derive(Clone, Default)]
struct Waker(Arc<Notify>);

/// Records the events of a unit of work; used by [`crate::publish`]. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    waker: Waker,
}

impl Recorder {
    /// Writes one event per change into `tx`, which the caller then commits.
    pub async fn record(&self, tx: &mut Tx, changes: &[Change]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let at = now();
        let events = changes
            .iter()
            .map(|change| envelope::new_event(change, at))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        event_webhooks::record(tx, &events, at).await
    }

    /// After the commit: this instance's worker looks at once.
    pub fn committed(&self) {
        self.waker.0.notify_one();
    }
}

/// The recorder and the worker, when `EVENT_WEBHOOK_URL` is set.
pub fn from_config(
    config: Option<&EventWebhook>,
    db: &Db,
    metrics: Arc<Metrics>,
) -> Result<Option<(Recorder, Worker)>, reqwest::Error> {
    let Some(config) = config else {
        return Ok(None);
    };
    warn_about(config);
    let waker = Waker::default();
    let receiver = receiver::Receiver::new(config)?;
    let worker = Worker::new(db.clone(), receiver, metrics, waker.clone(), config.clone());
    Ok(Some((Recorder { waker }, worker)))
}

/// Start-up warnings for a receiver that cannot trust what it gets, or that others can read.
fn warn_about(config: &EventWebhook) {
    if config.secret.is_none() {
        tracing::warn!("EVENT_WEBHOOK_SECRET is not set: event webhooks are sent unsigned");
    }
    let plain_remote = reqwest::Url::parse(config.url.expose()).is_ok_and(|url| {
        let host = url.host_str().unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        url.scheme() == "http" && !loopback
    });
    if plain_remote {
        tracing::warn!(
            "EVENT_WEBHOOK_URL is plain http to another host: events travel unencrypted"
        );
    }
}
