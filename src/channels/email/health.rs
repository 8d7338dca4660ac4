//! How the reading of the mailbox goes, for `/health`: `ok`, or `failing: <why>` while the IMAP
//! server is unreachable or refuses (the reader keeps retrying with backoff meanwhile).

use std::sync::{Arc, Mutex};

/// Shared between the reader, which reports, and `/health`, which shows. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<Mutex<Option<String>>>);

impl Health {
    pub fn ok(&self) {
        self.set(None);
    }

    pub fn failing(&self, reason: impl Into<String>) {
        self.set(Some(reason.into()));
    }

    /// `ok`, or `failing: <why>`.
    pub fn report(&self) -> String {
        match self.0.lock().ok().and_then(|state| state.clone()) {
            None => "ok".into(),
            Some(reason) => format!("failing: {reason}"),
        }
    }

    fn set(&self, state: Option<String>) {
        if let Ok(mut current) = self.0.lock() {
            *current = state;
        }
    }
}
