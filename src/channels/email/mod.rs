//! Email (the `gmail` channel: any IMAP/SMTP mailbox): people are addressed by their address,
//! which keys their conversation in lower case.
//!
//! - **in**: [`Reader`], a background task, reads the mailbox over IMAP ([`imap`]) without
//!   changing it, parses each new mail ([`parse`]), writes its files to the media store and
//!   records the mails with the mailbox's reading position in one unit of work ([`import`]);
//!   its state shows in `/health` ([`Health`]).
//! - **out**: [`Mailer`] sends through SMTP ([`smtp`]) with the headers decided when the
//!   message was stored ([`compose`]), so that a reply threads under the customer's mail.

mod automatic;
pub mod compose;
mod health;
pub mod imap;
mod import;
pub mod parse;
mod reader;
mod smtp;
mod tls;

pub use self::health::Health;
pub use self::reader::Reader;
pub use self::smtp::Mailer;

use super::ChannelRules;

/// Email's addressing and limits.
pub struct Rules;

/// A text body this long is already a document; the bound only stops absurd input.
const MAX_TEXT_CHARS: usize = 100_000;
/// RFC 5321's limit on a forward path.
const MAX_ADDRESS_LEN: usize = 254;

impl ChannelRules for Rules {
    fn conversation_key(&self, identifier: &str) -> String {
        identifier.trim().to_lowercase()
    }

    fn recipient(&self, to: &str) -> Result<String, String> {
        let to = to.trim();
        let valid = to.len() <= MAX_ADDRESS_LEN
            && to.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            })
            && !to
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c));
        if !valid {
            return Err("an email recipient is one address such as ana@example.com".into());
        }
        Ok(to.to_owned())
    }

    fn max_text_chars(&self) -> usize {
        MAX_TEXT_CHARS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_validated_and_keys_lowercased() {
        assert_eq!(
            Rules.recipient(" Ana@Example.com "),
            Ok("Ana@Example.com".into())
        );
        assert_eq!(Rules.conversation_key("Ana@Example.COM"), "ana@example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "ana@ex@ample.com",
            "Ana <ana@example.com>",
            "ana@.com",
        ] {
            assert!(Rules.recipient(bad).is_err(), "{bad}");
        }
    }
}
