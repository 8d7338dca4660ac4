//! A customer's name, which Instagram's webhooks never carry: `GET {base}/{version}/{IGSID}
//! ?fields=name,username` with the account's token. The name shown is `name`, else
//! `@username`.

use serde_json::Value;

use super::{InstagramApi, PROVIDER};
use crate::channels::meta::graph;
use crate::channels::{NameOutcome, SendOutcome};

/// Longest name kept; a profile's name is far shorter.
const MAX_NAME_CHARS: usize = 200;

impl InstagramApi {
    /// Looks up the customer `igsid`.
    pub async fn participant_name(&self, igsid: &str) -> NameOutcome {
        // The id goes into the path: only digits (an IGSID) may, so nothing else is addressed.
        if igsid.is_empty() || !igsid.bytes().all(|b| b.is_ascii_digit()) {
            return NameOutcome::Permanent(format!("{igsid:?} is not an IGSID"));
        }
        let endpoint = format!("{}/{igsid}", self.root);
        let request = self
            .http
            .get(endpoint)
            .query(&[("fields", "name,username")]);
        let (status, body) = match self.call(request).await {
            Ok(answer) => answer,
            Err(reason) => return NameOutcome::Transient(reason),
        };
        if status.is_success() {
            return match shown_name(&body) {
                Some(name) => NameOutcome::Found(name),
                None => NameOutcome::Permanent(format!("{PROVIDER} has no name for {igsid}")),
            };
        }
        match graph::classify(PROVIDER, status.as_u16(), &body) {
            SendOutcome::Transient(reason) => NameOutcome::Transient(reason),
            SendOutcome::Permanent(reason) => NameOutcome::Permanent(reason),
            // `classify` never accepts; an error answer is not a name either way.
            SendOutcome::Accepted(_) => {
                NameOutcome::Permanent(format!("{PROVIDER} answered {status}"))
            }
        }
    }
}

/// `name`, else `@username`: trimmed, without control characters, bounded.
fn shown_name(profile: &Value) -> Option<String> {
    let field = |key: &str| {
        let clean: String = profile
            .get(key)?
            .as_str()?
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME_CHARS)
            .collect();
        let clean = clean.trim().to_owned();
        (!clean.is_empty()).then_some(clean)
    };
    field("name").or_else(|| {
        field("username").map(|username| format!("@{}", username.trim_start_matches('@')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_name_else_the_username() {
        assert_eq!(
            shown_name(&json!({"name": " Ana Pérez ", "username": "ana"})),
            Some("Ana Pérez".into())
        );
        assert_eq!(
            shown_name(&json!({"name": "", "username": "ana.p"})),
            Some("@ana.p".into())
        );
        assert_eq!(
            shown_name(&json!({"username": "@ana"})),
            Some("@ana".into())
        );
        assert_eq!(shown_name(&json!({"name": "\u{0}\n"})), None);
        assert_eq!(shown_name(&json!({"id": "1"})), None);
        assert_eq!(
            shown_name(&json!({"name": "x".repeat(1000)})).map(|n| n.len()),
            Some(MAX_NAME_CHARS)
        );
    }
}
