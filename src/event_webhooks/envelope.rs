//! What a receiver gets: the body `{"id", "type", "created_at", "data"}`, built once when the
//! event is recorded (so every attempt sends the same bytes), and the signature over
//! `TIMESTAMP.BODY`, made at each attempt with that attempt's time.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::domain::Change;
use crate::realtime::events::ChangeData;
use crate::store::event_webhooks::NewEvent;

type HmacSha256 = Hmac<Sha256>;

#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    created_at: DateTime<Utc>,
    /// Exactly what the WebSocket's event carries.
    data: ChangeData<'a>,
}

/// The event to record for `change`, with a fresh id: a UUID, so ids never repeat, not even
/// for a new database (a receiver de-duplicating by id would drop a repeated one).
pub fn new_event(change: &Change, at: DateTime<Utc>) -> serde_json::Result<NewEvent> {
    let event_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_string(&Envelope {
        id: &event_id,
        kind: change.kind(),
        created_at: at,
        data: change.data(),
    })?;
    Ok(NewEvent {
        event_id,
        conversation_id: change.conversation_id(),
        kind: change.kind(),
        body,
    })
}

/// Signs deliveries with `EVENT_WEBHOOK_SECRET`. Keyed once; each signature starts from a copy.
#[derive(Clone)]
pub struct Signer(HmacSha256);

impl Signer {
    /// `None` for a key HMAC cannot take (it takes any; the configuration never passes an empty
    /// one).
    pub fn new(secret: &str) -> Option<Signer> {
        HmacSha256::new_from_slice(secret.as_bytes())
            .ok()
            .map(Signer)
    }

    /// `sha256=` + the lowercase hex HMAC-SHA256 of `TIMESTAMP.BODY`.
    pub fn sign(&self, timestamp: i64, body: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut header = String::with_capacity(7 + tag.len() * 2);
        header.push_str("sha256=");
        for byte in tag {
            header.push(HEX[usize::from(byte >> 4)] as char);
            header.push(HEX[usize::from(byte & 0xf)] as char);
        }
        header
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_of_timestamp_dot_body() {
        // Computed independently: Python's hmac.new(key, b'1733300000.{"id":"x"}', sha256).
        let signer = Signer::new("whsec_test").expect("a key");
        assert_eq!(
            signer.sign(1_733_300_000, r#"{"id":"x"}"#),
            "sha256=e45fed0db66c0b1abf31a4455e924c8b19bbeabba7613e1604d473524bbbb6f0"
        );
    }
}
