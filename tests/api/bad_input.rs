//! Bad input gets a clear 4xx with a JSON body, and changes nothing.

use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    bad_requests_get_4xx_json_and_change_nothing,
    nul_bytes_are_refused_everywhere,
    overlong_identifiers_are_422_and_odd_provider_payloads_are_survived,
);

/// Letters that do not compress (PostgreSQL compresses index entries, so a run of one letter
/// would slip under its size limit where a real long id would not).
fn incompressible(len: usize) -> String {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

async fn overlong_identifiers_are_422_and_odd_provider_payloads_are_survived(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let long = incompressible(5000);
    let conversation = app.create_conversation(2, "ig-ok", "A").await["id"]
        .as_i64()
        .expect("id");
    for (path, body, field) in [
        (
            "/api/v1/conversations",
            json!({"channel_id": 2, "participant_identifier": long}),
            "participant_identifier",
        ),
        (
            "/api/v1/conversations",
            json!({"channel_id": 2, "participant_identifier": "x", "external_id": long}),
            "external_id",
        ),
        (
            "/api/v1/messages",
            json!({"conversation_id": conversation, "content": "x", "direction": "inbound", "external_message_id": long}),
            "external_message_id",
        ),
        (
            "/v1/channels/whatsapp/gateway/inbound",
            json!({"message_id": long, "from_number": "34600123456", "text": "x"}),
            "message_id",
        ),
    ] {
        let response = app.post_json(path, &body).await;
        assert_eq!(response.status(), 422, "{path} {field}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["detail"][0]["loc"], json!(["body", field]));
    }
    // 512 characters is still fine.
    app.message(
        conversation,
        json!({"external_message_id": incompressible(512)}),
    )
    .await;

    // A provider payload with a NUL in its text, and one with an absurd id: acknowledged (Meta
    // would otherwise retry for days), the first stored without the NUL, the second skipped.
    let delivery = |wamid: &str, body: &str| {
        json!({"entry": [{"changes": [{"field": "messages", "value": {
        "contacts": [{"profile": {"name": "Ana\u{0}"}, "wa_id": "34600123456"}],
        "messages": [{"from": "34600123456", "id": wamid, "timestamp": "1764000000", "type": "text", "text": {"body": body}}]}}]}]})
    };
    assert_eq!(
        app.post_json("/webhook/whatsapp", &delivery("wamid.nul", "a\u{0}b"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_json("/webhook/whatsapp", &delivery(&long, "long id"))
            .await
            .status(),
        200
    );
    let (_, _, stored) = app.list("/api/v1/messages?channel=whatsapp").await;
    assert_eq!(stored.as_array().map(Vec::len), Some(1));
    assert_eq!(stored[0]["content"], "ab");
    assert_eq!(stored[0]["sender_name"], "Ana");
}

struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    loc: Option<Value>,
}

fn case(what: &'static str, method: &'static str, path: &str, body: &str, status: u16) -> Case {
    Case {
        what,
        method,
        path: path.to_string(),
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status,
        loc: None,
    }
}

impl Case {
    fn at(mut self, loc: Value) -> Case {
        self.loc = Some(loc);
        self
    }
}

async fn counts(app: &TestApp) -> (Option<i64>, Option<i64>) {
    (
        app.list("/api/v1/messages").await.1,
        app.list("/api/v1/conversations").await.1,
    )
}

async fn bad_requests_get_4xx_json_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let conversation = app.create_conversation(1, "5550100", "A").await["id"]
        .as_i64()
        .expect("id");
    app.message(conversation, json!({"external_message_id": "kept"}))
        .await;
    let before = counts(&app).await;
    let good =
        format!(r#"{{"conversation_id": {conversation}, "content": "x", "direction": "inbound"}}"#);
    let five_mib = format!(
        r#"{{"conversation_id": {conversation}, "content": "{}", "direction": "inbound"}}"#,
        "a".repeat(5 * 1024 * 1024)
    );

    let cases = vec![
        case(
            "malformed JSON",
            "POST",
            "/api/v1/messages",
            "{\"content\": ",
            400,
        ),
        case("not JSON at all", "POST", "/api/v1/messages", "hello", 400),
        case("a JSON array", "POST", "/api/v1/messages", "[1, 2]", 422).at(json!(["body"])),
        case(
            "content as a number",
            "POST",
            "/api/v1/messages",
            &good.replace("\"x\"", "5"),
            422,
        )
        .at(json!(["body", "content"])),
        case(
            "conversation_id as text",
            "POST",
            "/api/v1/messages",
            &good.replace(&format!("{conversation}"), "\"abc\""),
            422,
        )
        .at(json!(["body", "conversation_id"])),
        case(
            "missing direction",
            "POST",
            "/api/v1/messages",
            &format!(r#"{{"conversation_id": {conversation}, "content": "x"}}"#),
            422,
        )
        .at(json!(["body", "direction"])),
        case(
            "unknown direction",
            "POST",
            "/api/v1/messages",
            &good.replace("inbound", "sideways"),
            422,
        )
        .at(json!(["body", "direction"])),
        case(
            "bad timestamp",
            "POST",
            "/api/v1/messages",
            &good.replace("}", r#", "timestamp": "yesterday"}"#),
            422,
        )
        .at(json!(["body", "timestamp"])),
        case(
            "unknown conversation",
            "POST",
            "/api/v1/messages",
            &good.replace(&format!("{conversation}"), "999999"),
            422,
        )
        .at(json!(["body", "conversation_id"])),
        case(
            "duplicate external id",
            "POST",
            "/api/v1/messages",
            &good.replace("}", r#", "external_message_id": "kept"}"#),
            409,
        ),
        case("a 5 MiB body", "POST", "/api/v1/messages", &five_mib, 413),
        case(
            "is_read as text",
            "PATCH",
            "/api/v1/messages/1",
            r#"{"is_read": "yes"}"#,
            422,
        )
        .at(json!(["body", "is_read"])),
        case(
            "empty identifier",
            "POST",
            "/api/v1/conversations",
            r#"{"channel_id": 1, "participant_identifier": "  "}"#,
            422,
        )
        .at(json!(["body", "participant_identifier"])),
        case("limit=-1", "GET", "/api/v1/messages?limit=-1", "", 422).at(json!(["query", "limit"])),
        case("limit=0", "GET", "/api/v1/messages?limit=0", "", 422).at(json!(["query", "limit"])),
        case(
            "limit=10000",
            "GET",
            "/api/v1/messages?limit=10000",
            "",
            422,
        )
        .at(json!(["query", "limit"])),
        case(
            "limit=abc",
            "GET",
            "/api/v1/conversations?limit=abc",
            "",
            422,
        )
        .at(json!(["query", "limit"])),
        case(
            "offset=-5",
            "GET",
            "/api/v1/conversations?offset=-5",
            "",
            422,
        )
        .at(json!(["query", "offset"])),
        case(
            "conversation_id=abc",
            "GET",
            "/api/v1/messages?conversation_id=abc",
            "",
            422,
        )
        .at(json!(["query", "conversation_id"])),
        case(
            "unknown channel name",
            "GET",
            "/api/v1/messages?channel=telegram",
            "",
            422,
        )
        .at(json!(["query", "channel"])),
        case(
            "bad order",
            "GET",
            "/api/v1/messages?order=sideways",
            "",
            422,
        )
        .at(json!(["query", "order"])),
        case(
            "bad direction",
            "GET",
            "/api/v1/messages?direction=up",
            "",
            422,
        )
        .at(json!(["query", "direction"])),
        case(
            "is_active=maybe",
            "GET",
            "/api/v1/conversations?is_active=maybe",
            "",
            422,
        )
        .at(json!(["query", "is_active"])),
        case(
            "a huge id",
            "GET",
            "/api/v1/messages?after_id=99999999999999999999",
            "",
            422,
        )
        .at(json!(["query", "after_id"])),
        case("path id abc", "GET", "/api/v1/messages/abc", "", 422).at(json!(["path", "id"])),
        case("unknown route", "GET", "/api/v1/nothing-here", "", 404),
        case("wrong method", "DELETE", "/api/v1/messages", "", 405),
        case(
            "wrong method on an item",
            "PUT",
            "/api/v1/conversations/1",
            "{}",
            405,
        ),
    ];
    let mut wrong_type = case("form content type", "POST", "/api/v1/messages", &good, 415);
    wrong_type.content_type = Some("application/x-www-form-urlencoded");
    let mut no_type = case("no content type", "POST", "/api/v1/messages", &good, 415);
    no_type.content_type = None;

    // A refused upload closes its connection; a fresh connection per case keeps cases apart.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for case in cases.into_iter().chain([wrong_type, no_type]) {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).expect("method");
        let mut request = client.request(method, app.url(&case.path)).body(case.body);
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), case.status, "{}", case.what);
        assert!(
            response.headers().contains_key("x-request-id"),
            "{}: request id",
            case.what
        );
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|_| panic!("{}: JSON error body", case.what));
        match &case.loc {
            Some(loc) => {
                assert_eq!(&body["detail"][0]["loc"], loc, "{}: {body}", case.what);
                assert!(body["detail"][0]["msg"].is_string(), "{}", case.what);
                assert!(body["detail"][0]["type"].is_string(), "{}", case.what);
            }
            None => {
                assert!(body["detail"].is_string(), "{}: {body}", case.what);
                assert!(body["code"].is_string(), "{}: {body}", case.what);
            }
        }
    }
    assert_eq!(counts(&app).await, before, "bad input changed nothing");
}

async fn nul_bytes_are_refused_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let conversation = app.create_conversation(1, "5550101", "A").await["id"]
        .as_i64()
        .expect("id");
    let response = app
        .post_message(conversation, json!({"content": "a\u{0}b"}))
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "content"]));
    let response = app
        .post_json(
            "/api/v1/conversations",
            &json!({"channel_id": 1, "participant_identifier": "x\u{0}"}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let (status, _, _) = app.list("/api/v1/messages?channel=what%00sapp").await;
    assert_eq!(status, 422);
    assert_eq!(app.list("/api/v1/messages").await.1, Some(0));
}
