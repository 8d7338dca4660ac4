//! Entity tags of list responses, and `If-None-Match` against them.
//!
//! A kept page's tag names its key and the stamp that validates it, so any instance computes
//! the same tag for the same committed state from the stamp alone, and answers a client's
//! revalidation without building the page. Every other list response is tagged by a hash of
//! its body. Tags are weak (`W/`): they promise the same JSON, not the same bytes across
//! versions, and carry the server's version so that an upgrade never answers 304 for a body
//! shaped by the previous one.

use http::HeaderValue;
use sha2::{Digest, Sha256};

use super::Key;

/// The tag of `key`'s page labelled with `stamp`.
pub fn stamped(key: &Key, stamp: i64) -> HeaderValue {
    let key = match key {
        Key::Messages {
            conversation_id,
            limit,
        } => format!("m{conversation_id}-{limit}"),
        Key::Conversations {
            channel_id,
            is_active,
            limit,
        } => format!(
            "c{}-{}-{limit}",
            channel_id.map_or("any".into(), |c| c.to_string()),
            is_active.map_or("any", |a| if a { "1" } else { "0" })
        ),
    };
    tag(&format!("{key}.{stamp}"))
}

/// The tag of a page that is not kept: a hash of its bytes and its total (a page past the end
/// is `[]` whatever the total).
pub fn of_body(body: &[u8], total: i64) -> HeaderValue {
    let digest = Sha256::new()
        .chain_update(total.to_le_bytes())
        .chain_update(body)
        .finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    tag(&format!("h{hex}"))
}

fn tag(opaque: &str) -> HeaderValue {
    let value = format!("W/\"{opaque}.v{}\"", crate::VERSION);
    // Digits, letters, '-', '.' and quotes only: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("W/\"-\""))
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, as RFC 9110 asks for it), or
/// is `*`.
pub fn matches(if_none_match: &str, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    let opaque = |t: &str| {
        let t = t.trim();
        t.strip_prefix("W/").unwrap_or(t).to_owned()
    };
    let wanted = opaque(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || opaque(t) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_the_page_and_its_stamp() {
        let page = Key::Messages {
            conversation_id: 12,
            limit: 50,
        };
        let tag = stamped(&page, 345);
        assert_eq!(
            tag.to_str().ok(),
            Some(format!("W/\"m12-50.345.v{}\"", crate::VERSION).as_str())
        );
        assert_ne!(stamped(&page, 346), tag);
        let other_limit = Key::Messages {
            conversation_id: 12,
            limit: 20,
        };
        assert_ne!(stamped(&other_limit, 345), tag);
        let list = |channel_id, is_active| Key::Conversations {
            channel_id,
            is_active,
            limit: 50,
        };
        let tags = [
            stamped(&list(None, None), 9),
            stamped(&list(Some(1), None), 9),
            stamped(&list(None, Some(true)), 9),
            stamped(&list(None, Some(false)), 9),
        ];
        for (i, a) in tags.iter().enumerate() {
            for b in &tags[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(of_body(b"[]", 0), of_body(b"[]", 0));
        assert_ne!(of_body(b"[]", 0), of_body(b"[1]", 0));
        assert_ne!(of_body(b"[]", 0), of_body(b"[]", 1));
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_a_star() {
        let tag = HeaderValue::from_static("W/\"m1-50.7.v1\"");
        for header in [
            "W/\"m1-50.7.v1\"",
            "\"m1-50.7.v1\"",
            "\"other\", W/\"m1-50.7.v1\"",
            " W/\"x\" ,W/\"m1-50.7.v1\" ",
            "*",
        ] {
            assert!(matches(header, &tag), "{header}");
        }
        for header in ["", "W/\"m1-50.8.v1\"", "m1-50.7.v1", "\"m1-50.7.v1"] {
            assert!(!matches(header, &tag), "{header}");
        }
    }
}
