//! The `X-Hub-Signature-256` check on Meta's webhook POSTs (WhatsApp and Instagram alike): `sha256=<hex>`, the HMAC-SHA256 of the
//! raw body bytes keyed with an app secret.
//!
//! It owns only the comparison. The caller passes the bytes exactly as received, before any JSON
//! parsing: Meta signs its own escaped-unicode serialisation, so a re-serialised body would not
//! verify.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// True when `header` carries the HMAC-SHA256 of `body` under any one of `secrets`.
///
/// A list because Meta signs with different secrets depending on how the app was set up (Meta
/// app secret, Instagram app secret), and because a rotation needs old and new at once. A missing
/// header, another algorithm, bad hex or a wrong length are all simply `false`.
pub fn verify(secrets: &[Secret], body: &[u8], header: Option<&str>) -> bool {
    let Some(expected) = header.and_then(parse_header) else {
        return false;
    };
    // Every secret is tried, so the time taken does not say which one matched.
    secrets.iter().fold(false, |matched, secret| {
        matches(secret, body, &expected) | matched
    })
}

fn matches(secret: &Secret, body: &[u8], expected: &[u8; TAG_LEN]) -> bool {
    let key = secret.expose().as_bytes();
    // An empty key is a configuration slip, not a secret: anyone could sign with it.
    if key.is_empty() {
        return false;
    }
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(expected).is_ok()
}

/// `sha256=<64 hex digits>` → the 32 tag bytes.
fn parse_header(header: &str) -> Option<[u8; TAG_LEN]> {
    let hex = header.trim().strip_prefix("sha256=")?.as_bytes();
    if hex.len() != TAG_LEN * 2 {
        return None;
    }
    let mut tag = [0u8; TAG_LEN];
    for (byte, pair) in tag.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(tag)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/meta/whatsapp/text_1.json"
    );

    fn body() -> Vec<u8> {
        std::fs::read(FIXTURE).expect("fixture text_1.json is readable")
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length works");
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|v| Secret::new(*v)).collect()
    }

    #[test]
    fn a_signature_over_the_raw_fixture_bytes_is_accepted() {
        let body = body();
        let header = sign("app-secret", &body);
        assert!(verify(&secrets(&["app-secret"]), &body, Some(&header)));
    }

    #[test]
    fn the_matching_secret_may_be_the_second_of_two() {
        let body = body();
        let header = sign("instagram-secret", &body);
        assert!(verify(
            &secrets(&["meta-secret", "instagram-secret"]),
            &body,
            Some(&header)
        ));
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let body = body();
        let header = sign("app-secret", &body);
        let upper = format!("sha256={}", header["sha256=".len()..].to_uppercase());
        assert!(verify(&secrets(&["app-secret"]), &body, Some(&upper)));
    }

    #[test]
    fn a_wrong_secret_is_rejected() {
        let body = body();
        let header = sign("someone-else", &body);
        assert!(!verify(&secrets(&["app-secret"]), &body, Some(&header)));
    }

    #[test]
    fn a_flipped_body_byte_is_rejected() {
        let mut body = body();
        let header = sign("app-secret", &body);
        let middle = body.len() / 2;
        body[middle] ^= 0x01;
        assert!(!verify(&secrets(&["app-secret"]), &body, Some(&header)));
    }

    #[test]
    fn no_secrets_or_an_empty_secret_accept_nothing() {
        let body = body();
        assert!(!verify(&[], &body, Some(&sign("", &body))));
        assert!(!verify(&secrets(&[""]), &body, Some(&sign("", &body))));
    }

    #[test]
    fn malformed_headers_are_rejected() {
        let body = body();
        let good = sign("app-secret", &body);
        let hex = &good["sha256=".len()..];
        let cases = [
            None,
            Some(String::new()),
            Some(hex.to_string()),
            Some(format!("sha1={hex}")),
            Some(format!("sha256={}", &hex[..62])),
            Some(format!("sha256={hex}00")),
            Some(format!("sha256={}zz", &hex[..62])),
            Some(format!("sha256={}é", &hex[..62])),
            Some("sha256=".to_string()),
        ];
        for case in cases {
            assert!(
                !verify(&secrets(&["app-secret"]), &body, case.as_deref()),
                "{case:?}"
            );
        }
    }
}
