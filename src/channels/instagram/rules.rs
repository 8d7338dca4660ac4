//! Instagram's rules: people are addressed by their Instagram-scoped id (IGSID), and a text
//! carries at most 1,000 characters.

use crate::channels::ChannelRules;

/// Instagram's addressing and limits.
pub struct Rules;

/// Meta's limit on an Instagram text message.
const MAX_TEXT_CHARS: usize = 1000;
/// IGSIDs are numeric strings of about 16 digits; the bound only stops absurd input.
const MAX_IGSID_DIGITS: usize = 32;

impl ChannelRules for Rules {
    fn conversation_key(&self, identifier: &str) -> String {
        identifier.trim().to_owned()
    }

    fn recipient(&self, to: &str) -> Result<String, String> {
        let to = to.trim();
        if to.is_empty() || to.len() > MAX_IGSID_DIGITS || !to.bytes().all(|b| b.is_ascii_digit()) {
            return Err(
                "an Instagram recipient is the customer's Instagram-scoped id (digits)".into(),
            );
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
    fn recipients_are_igsids() {
        assert_eq!(
            Rules.recipient(" 1234567890123456 "),
            Ok("1234567890123456".into())
        );
        for bad in ["", "abc", "+34600123456", "12 34", &"1".repeat(33)] {
            assert!(Rules.recipient(bad).is_err(), "{bad}");
        }
    }
}
