//! What Meta's platforms (WhatsApp Cloud API, Instagram) share: the webhook's GET handshake,
//! the `X-Hub-Signature-256` check over the raw bytes with a list of secrets (rotation, or the
//! Meta and Instagram app secrets side by side), Graph error classification, and the lenient
//! JSON accessors their parsers read with.

pub mod graph;
pub mod json;
pub mod signature;

use crate::config::Secret;

/// Why a webhook body could not be read at all. Anything else is read leniently.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the webhook body is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// Valid JSON with no use to us: acknowledged, or Meta retries it for days.
    #[error("the webhook body is JSON but not an object")]
    NotAnObject,
}

/// Meta's verification handshake: the challenge to echo when the mode is `subscribe` and the
/// token matches `expected` (compared in constant time), else `None` (answer 403).
pub fn handshake<'a>(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&'a str>,
    expected: Option<&Secret>,
) -> Option<&'a str> {
    match (mode, token, challenge, expected) {
        (Some("subscribe"), Some(token), Some(challenge), Some(expected))
            if expected.matches(token) =>
        {
            Some(challenge)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_echoed_only_for_a_subscribe_with_the_right_token() {
        let expected = Secret::new("verify-me");
        let ok = handshake(
            Some("subscribe"),
            Some("verify-me"),
            Some("42"),
            Some(&expected),
        );
        assert_eq!(ok, Some("42"));
        for (mode, token) in [
            (Some("subscribe"), Some("wrong")),
            (Some("unsubscribe"), Some("verify-me")),
            (None, Some("verify-me")),
            (Some("subscribe"), None),
        ] {
            assert_eq!(handshake(mode, token, Some("42"), Some(&expected)), None);
        }
        assert_eq!(
            handshake(Some("subscribe"), Some("x"), Some("42"), None),
            None
        );
    }
}
