//! The operator's receiver: one POST per attempt, through its own `reqwest::Client` with
//! timeouts, no redirects followed, and at most a little of the answer read (so the connection
//! can be reused, without letting a receiver make us read for ever).
//!
//! Plain `http://` to any host is allowed: the operator chose where its own events go (an n8n
//! on the internal network, say). The URL is never logged; it may hold credentials.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, USER_AGENT};

use super::envelope::Signer;
use crate::config::{EventWebhook, Secret};
use crate::store::event_webhooks::Claimed;

/// How much of an answer is read before the connection is dropped instead.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Connecting may take this long at most (less when the whole attempt's limit is shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Receiver {
    http: reqwest::Client,
    url: Secret,
    signer: Option<Signer>,
}

impl Receiver {
    pub fn new(config: &EventWebhook) -> Result<Receiver, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(config.timeout))
            .timeout(config.timeout)
            // A redirect is not an acceptance: it is retried like any other non-2xx answer.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Receiver {
            http,
            url: config.url.clone(),
            signer: config
                .secret
                .as_ref()
                .and_then(|secret| Signer::new(secret.expose())),
        })
    }

    /// POSTs `event`. `Ok` on a 2xx; otherwise why not, for the log and `last_error`.
    pub async fn post(&self, event: &Claimed) -> Result<(), String> {
        // The attempt's own time, signed with the body: receivers refuse stale timestamps to
        // stop replays, so a retry hours later must not carry the first attempt's.
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .http
            .post(self.url.expose())
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("switchboard/", env!("CARGO_PKG_VERSION")),
            )
            .header("X-Switchboard-Event", event.kind.as_str())
            .header("X-Switchboard-Delivery", event.event_id.as_str())
            .header("X-Switchboard-Timestamp", timestamp.to_string());
        if let Some(signer) = &self.signer {
            request = request.header(
                "X-Switchboard-Signature",
                signer.sign(timestamp, &event.body),
            );
        }
        let mut response = request
            .body(event.body.clone())
            .send()
            .await
            .map_err(describe)?;
        let status = response.status();
        let mut read = 0;
        while read <= MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                // The answer's body does not matter, only its status.
                Ok(None) | Err(_) => break,
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

/// Why a request failed, with its causes, never the URL.
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "the receiver did not answer in time".into();
    }
    let what = if e.is_connect() {
        "cannot connect to the receiver"
    } else {
        "the request to the receiver failed"
    };
    let e = e.without_url();
    let mut reason = what.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        reason.push_str(": ");
        reason.push_str(&c.to_string());
        cause = c.source();
    }
    reason
}
