//! Graph API errors (`{"error": {"code", "error_subcode", "message", …}}`), classified as
//! transient (retry later) or permanent (fail the message). Shared by every Meta provider:
//! meta-facts says to branch on the code, not the HTTP status.

use serde_json::Value;

use crate::channels::SendOutcome;

/// Classifies a Graph error by `error.code` (meta-facts: branch on the code, not the HTTP
/// status); `is_transient` from Meta overrides; without a code, 5xx and 429 are transient.
pub fn classify(provider: &str, http_status: u16, body: &Value) -> SendOutcome {
    let error = body.get("error");
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let reason = describe(provider, http_status, error, code);
    if let Some(transient) = error
        .and_then(|e| e.get("is_transient"))
        .and_then(Value::as_bool)
    {
        return if transient {
            SendOutcome::Transient(reason)
        } else {
            SendOutcome::Permanent(reason)
        };
    }
    let transient = match code {
        Some(code) => is_transient_code(code),
        None => http_status >= 500 || http_status == 429,
    };
    if transient {
        SendOutcome::Transient(reason)
    } else {
        SendOutcome::Permanent(reason)
    }
}

/// Codes Meta documents as temporary: unknown error, service unavailable, call and
/// throughput limits, pair rate limit, maintenance.
fn is_transient_code(code: i64) -> bool {
    matches!(
        code,
        1 | 2 | 4 | 17 | 32 | 613 | 80007 | 130429 | 131000 | 131016 | 131056 | 131057 | 133004
    )
}

fn describe(provider: &str, http_status: u16, error: Option<&Value>, code: Option<i64>) -> String {
    let text = |key: &str| {
        error
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let details = error.and_then(|e| e.get("error_data")).and_then(|d| {
        d.get("details")
            .and_then(Value::as_str)
            .or_else(|| d.as_str())
    });
    let message = text("error_user_msg")
        .or(details)
        .or(text("message"))
        .unwrap_or("no reason given");
    // The subcode tells apart causes that share a code (Instagram's 10/2534022: the messaging
    // window is closed).
    let subcode = error
        .and_then(|e| e.get("error_subcode"))
        .and_then(Value::as_i64);
    match (code, subcode) {
        (Some(code), Some(subcode)) => {
            format!("{provider} error {code} (subcode {subcode}): {message}")
        }
        (Some(code), None) => format!("{provider} error {code}: {message}"),
        (None, _) => format!("{provider} answered HTTP {http_status}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/meta/whatsapp_api/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).expect("fixture JSON")
    }

    #[test]
    fn codes_decide_not_http_statuses() {
        let token = json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190, "fbtrace_id": "x"}});
        assert!(
            matches!(classify("WhatsApp", 401, &token), SendOutcome::Permanent(r) if r.contains("190"))
        );
        let throttled = json!({"error": {"message": "(#130429) Rate limit hit", "code": 130429, "fbtrace_id": "x"}});
        assert!(matches!(
            classify("WhatsApp", 400, &throttled),
            SendOutcome::Transient(_)
        ));
        let window = json!({"error": {"message": "(#131047) Re-engagement message", "code": 131047, "fbtrace_id": "x"}});
        assert!(matches!(
            classify("WhatsApp", 400, &window),
            SendOutcome::Permanent(_)
        ));
        let marked = json!({"error": {"message": "x", "code": 100, "is_transient": true, "fbtrace_id": "x"}});
        assert!(
            matches!(
                classify("WhatsApp", 400, &marked),
                SendOutcome::Transient(_)
            ),
            "is_transient overrides"
        );
        assert!(matches!(
            classify("WhatsApp", 502, &Value::Null),
            SendOutcome::Transient(_)
        ));
        assert!(matches!(
            classify("WhatsApp", 429, &json!("busy")),
            SendOutcome::Transient(_)
        ));
        assert!(matches!(
            classify("WhatsApp", 404, &Value::Null),
            SendOutcome::Permanent(_)
        ));
    }

    #[test]
    fn instagrams_table() {
        let error = |code: i64, subcode: Option<i64>| json!({"error": {"message": "m", "type": "OAuthException", "code": code, "error_subcode": subcode, "fbtrace_id": "x"}});
        for code in [2, 4, 613] {
            assert!(
                matches!(
                    classify("Instagram", 400, &error(code, None)),
                    SendOutcome::Transient(_)
                ),
                "{code}"
            );
        }
        for (status, code, subcode) in [
            (401, 190, Some(460)),
            (400, 10, Some(2534022)),
            (400, 551, Some(1545041)),
        ] {
            let outcome = classify("Instagram", status, &error(code, subcode));
            let SendOutcome::Permanent(reason) = outcome else {
                panic!("{code} is permanent");
            };
            assert!(
                reason.starts_with(&format!("Instagram error {code} (subcode ")),
                "{reason}"
            );
        }
        assert!(matches!(
            classify("Instagram", 401, &Value::Null),
            SendOutcome::Permanent(_)
        ));
        assert!(matches!(
            classify("Instagram", 400, &json!({})),
            SendOutcome::Permanent(_)
        ));
    }

    #[test]
    fn the_recorded_error_responses_classify_with_their_reason() {
        for n in 1..=4 {
            let body = fixture(&format!("error_response_{n}.json"));
            let code = body
                .pointer("/error/code")
                .and_then(Value::as_i64)
                .expect("code");
            let outcome = classify("WhatsApp", 400, &body);
            let reason = match &outcome {
                SendOutcome::Transient(r) | SendOutcome::Permanent(r) => r.clone(),
                SendOutcome::Accepted(_) => panic!("an error cannot be accepted"),
            };
            assert!(reason.contains(&code.to_string()), "{reason}");
            assert_eq!(
                matches!(outcome, SendOutcome::Transient(_)),
                is_transient_code(code)
                    || body.pointer("/error/is_transient") == Some(&json!(true))
            );
        }
    }
}
