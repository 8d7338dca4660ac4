//! Sending a text through Instagram's Send API: `POST {base}/{version}/{account id}/messages`
//! with `{"recipient": {"id": IGSID}, "message": {"text": …}}`. The answer's `message_id` is the
//! message's provider id; errors are classified by [`graph::classify`] (transient: timeouts,
//! 5xx, 429, codes 1, 2, 4, 613…; permanent: 190, 10/2534022 outside the window, 551, other
//! 4xx). Agents' replies carry the `HUMAN_AGENT` tag when the operator enabled it; the
//! assistant's never do (Meta allows the tag for people only).

use serde_json::{json, Value};

use super::{InstagramApi, PROVIDER};
use crate::channels::meta::graph;
use crate::channels::SendOutcome;
use crate::domain::Author;

impl InstagramApi {
    /// Sends `text` to `recipient` (an IGSID), written by `author`.
    pub async fn send_text(&self, recipient: &str, text: &str, author: Author) -> SendOutcome {
        let endpoint = format!("{}/{}/messages", self.root, self.account_id);
        let payload = self.payload(recipient, text, author);
        let (status, body) = match self.call(self.http.post(endpoint).json(&payload)).await {
            Ok(answer) => answer,
            Err(reason) => return SendOutcome::Transient(reason),
        };
        if status.is_success() {
            return match body.get("message_id").and_then(Value::as_str) {
                Some(id) if !id.trim().is_empty() => SendOutcome::Accepted(Some(id.to_owned())),
                // Meta may have accepted it: retrying could send it twice, so fail loudly.
                _ => SendOutcome::Permanent(format!(
                    "{PROVIDER} answered {status} without a message id"
                )),
            };
        }
        graph::classify(PROVIDER, status.as_u16(), &body)
    }

    pub(super) fn payload(&self, recipient: &str, text: &str, author: Author) -> Value {
        let mut payload = json!({"recipient": {"id": recipient}, "message": {"text": text}});
        if self.human_agent_tag && author == Author::Agent {
            payload["messaging_type"] = json!("MESSAGE_TAG");
            payload["tag"] = json!("HUMAN_AGENT");
        }
        payload
    }
}
