//! Attachments fetched after the webhook's commit: WhatsApp media through a wiremock fake of
//! the Graph API (the media endpoint, then the download URL it returns, both with the token),
//! URLs only from signed deliveries, the size limit, one file per content, final and passing
//! failures, and a `kill -9` of the process in the middle of a download.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::domain::{AttachmentKind, ChannelKind};
use switchboard::inbox::{Delivery, Incoming, NewAttachment, Source};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::process::ServerProcess;
use crate::helpers::{fresh_database, Backend, TestApp};
use crate::on_both_backends;
use crate::whatsapp::{app_with_graph, post_webhook, PHONE_NUMBER_ID, TOKEN};

on_both_backends!(
    every_whatsapp_media_type_is_fetched_with_the_token_and_served,
    a_slow_download_does_not_delay_the_webhook,
    a_file_over_the_limit_is_not_kept,
    the_same_bytes_are_stored_once,
    a_file_the_provider_no_longer_has_is_unavailable,
    passing_failures_are_retried_until_the_file_is_here,
    without_credentials_whatsapp_files_wait_for_them,
    a_url_is_fetched_only_from_a_signed_delivery_and_only_over_tls,
    a_fetch_cut_by_kill_9_is_finished_after_the_restart,
);

/// Mounts the Graph API's description of `media_id` and its download, each expected `times`
/// with the access token, as Meta serves them.
pub(crate) async fn serve_media(
    graph: &MockServer,
    media_id: &str,
    bytes: &[u8],
    mime: &str,
    times: u64,
) {
    Mock::given(method("GET"))
        .and(path(format!("/v26.0/{media_id}")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(description(graph, media_id, bytes, mime)),
        )
        .expect(times)
        .mount(graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .and(query_param("mid", media_id))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), mime))
        .expect(times)
        .mount(graph)
        .await;
}

/// What `GET /{version}/{media-id}` answers: a short-lived URL and what the file is.
pub(crate) fn description(graph: &MockServer, media_id: &str, bytes: &[u8], mime: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "url": format!("{}/whatsapp_business/attachments/?mid={media_id}&ext=1736330400&hash=ATuV", graph.uri()),
        "mime_type": mime,
        "sha256": "b221d9dbb083a7f33428d7c2a3c3198ae925614d70210e28716ccaa7cd4ddb79",
        "file_size": bytes.len(),
        "id": media_id,
    })
}

/// A webhook delivery of one media message of `kind` with `payload` (`{"id": media id, …}`).
pub(crate) fn media_delivery(wamid: &str, kind: &str, payload: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Lucía"}, "wa_id": "34600123456"}],
        "messages": [{"from": "34600123456", "id": wamid, "timestamp": "1736330400", "type": kind, kind: payload}]
    }}]}]})
}

/// Posts `body` unsigned and returns the stored message, asserting 200.
pub(crate) async fn deliver(app: &TestApp, body: &Value) -> Value {
    let response = post_webhook(app, body.to_string().as_bytes(), None).await;
    assert_eq!(response.status(), 200, "webhook");
    let wamid = body["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        .as_str()
        .expect("wamid");
    message_by_wamid(app, wamid).await
}

pub(crate) async fn message_by_wamid(app: &TestApp, wamid: &str) -> Value {
    let (_, _, page) = app.list("/api/v1/messages?limit=500").await;
    page.as_array()
        .into_iter()
        .flatten()
        .find(|m| m["external_message_id"] == wamid)
        .cloned()
        .unwrap_or_else(|| panic!("{wamid} was not stored"))
}

/// Waits (10 s at most) until the message's first file is here, without asking for it.
pub(crate) async fn wait_stored(app: &TestApp, message_id: i64) -> Value {
    for _ in 0..200 {
        let message: Value = app
            .get(&format!("/api/v1/messages/{message_id}"))
            .await
            .json()
            .await
            .expect("message JSON");
        if !message["attachments"][0]["size"].is_null() {
            return message["attachments"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the file of message {message_id} was never fetched");
}

/// The content files under the server's MEDIA_DIR (temporary ones included).
pub(crate) fn media_files(app: &TestApp) -> Vec<PathBuf> {
    let dir = &app.state().config().media_dir;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A file of `len` bytes that no two tests share by accident.
pub(crate) fn sample(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sent to the server's API with the test app's client.
pub(crate) async fn fetch(app: &TestApp, url: &str) -> reqwest::Response {
    app.get(url).await
}

async fn every_whatsapp_media_type_is_fetched_with_the_token_and_served(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let cases = [
        (
            "image",
            json!({"id": "1001", "mime_type": "image/jpeg", "sha256": "x", "caption": "the broken lid"}),
            "image",
            Some("image/jpeg"),
            None,
            "the broken lid",
        ),
        (
            "video",
            json!({"id": "1002", "mime_type": "video/mp4", "sha256": "x"}),
            "video",
            Some("video/mp4"),
            None,
            "[video]",
        ),
        (
            "audio",
            json!({"id": "1003", "mime_type": "audio/ogg; codecs=opus", "sha256": "x", "voice": true}),
            "audio",
            Some("audio/ogg; codecs=opus"),
            None,
            "[audio]",
        ),
        (
            "document",
            json!({"id": "1004", "mime_type": "application/pdf", "sha256": "x", "filename": "factura-0042.pdf"}),
            "document",
            Some("application/pdf"),
            Some("factura-0042.pdf"),
            "[document: factura-0042.pdf]",
        ),
        (
            "sticker",
            json!({"id": "1005", "mime_type": "image/webp", "sha256": "x", "animated": false}),
            "sticker",
            Some("image/webp"),
            None,
            "[sticker]",
        ),
    ];
    for (n, (kind, payload, expected_kind, mime, name, content)) in cases.into_iter().enumerate() {
        let media_id = payload["id"].as_str().expect("id").to_owned();
        let bytes = sample(3000 + n, n as u8);
        serve_media(
            &graph,
            &media_id,
            &bytes,
            mime.unwrap_or("application/octet-stream"),
            1,
        )
        .await;
        let message = deliver(
            &app,
            &media_delivery(&format!("wamid.media.{kind}"), kind, payload),
        )
        .await;
        assert_eq!(
            message["content"], content,
            "{kind}: content stays readable"
        );
        assert_eq!(message["message_type"], kind);
        let listed = &message["attachments"][0];
        assert_eq!(
            message["attachments"].as_array().map(Vec::len),
            Some(1),
            "{kind}"
        );
        assert_eq!(listed["kind"], expected_kind, "{kind}");
        assert_eq!(listed["mime_type"], json!(mime), "{kind}");
        assert_eq!(listed["file_name"], json!(name), "{kind}");
        assert_eq!(
            listed["url"],
            format!("/api/v1/attachments/{}", listed["id"])
        );
        let id = message["id"].as_i64().expect("id");
        let stored = wait_stored(&app, id).await;
        assert_eq!(stored["size"], bytes.len(), "{kind}: fetched by the job");
        let response = fetch(&app, listed["url"].as_str().expect("url")).await;
        assert_eq!(response.status(), 200, "{kind}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("content-type").as_deref(),
            mime.or(Some("application/octet-stream"))
        );
        assert_eq!(header("content-length"), Some(bytes.len().to_string()));
        let disposition = header("content-disposition").expect("disposition");
        assert!(
            disposition.starts_with("inline; filename=\""),
            "{disposition}"
        );
        if let Some(name) = name {
            assert!(disposition.contains(name), "{disposition}");
        }
        assert_eq!(
            response.bytes().await.expect("body").as_ref(),
            bytes.as_slice(),
            "{kind}"
        );
    }
    // Every expectation (exactly one description and one download per file, each with the
    // token) is checked when the fake drops.
    graph.verify().await;
}

async fn a_slow_download_does_not_delay_the_webhook(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let bytes = sample(1000, 7);
    Mock::given(method("GET"))
        .and(path("/v26.0/2001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(description(
            &graph,
            "2001",
            &bytes,
            "image/png",
        )))
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(bytes.clone(), "image/png")
                .set_delay(Duration::from_secs(60)),
        )
        .mount(&graph)
        .await;
    let body = media_delivery(
        "wamid.slow",
        "image",
        json!({"id": "2001", "mime_type": "image/png"}),
    );
    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/webhook/whatsapp"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the webhook answers while the download hangs");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(20));
    let message = message_by_wamid(&app, "wamid.slow").await;
    assert!(message["attachments"][0]["size"].is_null(), "not here yet");
    // The download did start (after the commit), and hangs.
    for _ in 0..100 {
        let requests = graph.received_requests().await.unwrap_or_default();
        if requests
            .iter()
            .any(|r| r.url.path() == "/whatsapp_business/attachments/")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the download never started");
}

async fn a_file_over_the_limit_is_not_kept(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[("MEDIA_MAX_BYTES", "1000")]).await;
    // Said too large by the Graph API: not even downloaded.
    let big = sample(2000, 1);
    Mock::given(method("GET"))
        .and(path("/v26.0/3001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(description(
            &graph,
            "3001",
            &big,
            "video/mp4",
        )))
        .expect(1)
        .mount(&graph)
        .await;
    // Not said: the download is refused by its length.
    let mut quiet = description(&graph, "3002", &big, "video/mp4");
    quiet.as_object_mut().expect("object").remove("file_size");
    Mock::given(method("GET"))
        .and(path("/v26.0/3002"))
        .respond_with(ResponseTemplate::new(200).set_body_json(quiet))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .and(query_param("mid", "3002"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(big.clone(), "video/mp4"))
        .expect(1)
        .mount(&graph)
        .await;
    for (wamid, media_id) in [("wamid.big.1", "3001"), ("wamid.big.2", "3002")] {
        let message = deliver(
            &app,
            &media_delivery(wamid, "video", json!({"id": media_id})),
        )
        .await;
        let url = message["attachments"][0]["url"]
            .as_str()
            .expect("url")
            .to_owned();
        let mut answer = Value::Null;
        for _ in 0..200 {
            let response = fetch(&app, &url).await;
            if response.status() == 502 {
                answer = response.json().await.expect("JSON error");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(answer["code"], "media_too_large", "{media_id}: {answer}");
        assert!(
            answer["detail"]
                .as_str()
                .is_some_and(|d| d.contains("1000")),
            "{answer}"
        );
        let message = message_by_wamid(&app, wamid).await;
        assert!(message["attachments"][0]["size"].is_null());
    }
    assert!(
        media_files(&app).is_empty(),
        "nothing kept: {:?}",
        media_files(&app)
    );
    graph.verify().await;
}

async fn the_same_bytes_are_stored_once(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let bytes = sample(5000, 42);
    serve_media(&graph, "4001", &bytes, "image/jpeg", 1).await;
    serve_media(&graph, "4002", &bytes, "image/jpeg", 1).await;
    let first = deliver(
        &app,
        &media_delivery("wamid.same.1", "image", json!({"id": "4001"})),
    )
    .await;
    let second = deliver(
        &app,
        &media_delivery("wamid.same.2", "image", json!({"id": "4002"})),
    )
    .await;
    wait_stored(&app, first["id"].as_i64().expect("id")).await;
    wait_stored(&app, second["id"].as_i64().expect("id")).await;
    let files = media_files(&app);
    assert_eq!(files.len(), 1, "one file for one content: {files:?}");
    assert_eq!(std::fs::read(&files[0]).expect("read"), bytes);
    let tag = |m: &Value| {
        let app = &app;
        let url = m["attachments"][0]["url"].as_str().expect("url").to_owned();
        async move {
            let response = fetch(app, &url).await;
            assert_eq!(response.status(), 200);
            response.headers()["etag"]
                .to_str()
                .expect("etag")
                .to_owned()
        }
    };
    assert_eq!(tag(&first).await, tag(&second).await);
}

async fn a_file_the_provider_no_longer_has_is_unavailable(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    // The media id is gone from the Graph API (code 100) …
    Mock::given(method("GET"))
        .and(path("/v26.0/5001"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Unsupported get request. Object with ID '5001' does not exist",
            "type": "GraphMethodException", "code": 100, "error_subcode": 33, "fbtrace_id": "A1"}})))
        .expect(1)
        .mount(&graph)
        .await;
    // … or its download is.
    Mock::given(method("GET"))
        .and(path("/v26.0/5002"))
        .respond_with(ResponseTemplate::new(200).set_body_json(description(
            &graph,
            "5002",
            b"x",
            "image/jpeg",
        )))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&graph)
        .await;
    for (wamid, media_id) in [("wamid.gone.1", "5001"), ("wamid.gone.2", "5002")] {
        let message = deliver(
            &app,
            &media_delivery(wamid, "image", json!({"id": media_id})),
        )
        .await;
        let url = message["attachments"][0]["url"]
            .as_str()
            .expect("url")
            .to_owned();
        let mut last = (0, Value::Null);
        for _ in 0..200 {
            let response = fetch(&app, &url).await;
            last = (
                response.status().as_u16(),
                response.json().await.expect("JSON"),
            );
            if last.1["code"] == "media_unavailable" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last.0, 502, "{media_id}: {}", last.1);
        assert_eq!(last.1["code"], "media_unavailable");
    }
    // Final: asking again does not ask the provider again (each mock expects one call).
    let message = message_by_wamid(&app, "wamid.gone.1").await;
    let again = fetch(
        &app,
        message["attachments"][0]["url"].as_str().expect("url"),
    )
    .await;
    assert_eq!(again.status(), 502);
    graph.verify().await;
}

async fn passing_failures_are_retried_until_the_file_is_here(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let bytes = sample(2048, 9);
    // The Graph API is throttled once, then the download breaks once with a 503.
    Mock::given(method("GET"))
        .and(path("/v26.0/6001"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {"message": "(#4) Application request limit reached", "code": 4, "fbtrace_id": "A"}})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/v26.0/6001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(description(
            &graph,
            "6001",
            &bytes,
            "image/png",
        )))
        .expect(2)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.clone(), "image/png"))
        .expect(1)
        .mount(&graph)
        .await;
    let message = deliver(
        &app,
        &media_delivery("wamid.retry", "image", json!({"id": "6001"})),
    )
    .await;
    // Two backoffs (2 s, 4 s) in the job runner, then the file.
    let id = message["id"].as_i64().expect("id");
    let mut stored = Value::Null;
    for _ in 0..300 {
        let m: Value = app
            .get(&format!("/api/v1/messages/{id}"))
            .await
            .json()
            .await
            .expect("JSON");
        if !m["attachments"][0]["size"].is_null() {
            stored = m["attachments"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored["size"], 2048, "retried until here");
    let calls = graph.received_requests().await.unwrap_or_default();
    assert_eq!(
        calls.len(),
        5,
        "throttled; described, broken; described, downloaded"
    );
    graph.verify().await;
}

async fn without_credentials_whatsapp_files_wait_for_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let message = deliver(
        &app,
        &media_delivery(
            "wamid.nocreds",
            "audio",
            json!({"id": "7001", "voice": true}),
        ),
    )
    .await;
    let response = fetch(
        &app,
        message["attachments"][0]["url"].as_str().expect("url"),
    )
    .await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["code"], "channel_not_configured");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("WHATSAPP_ACCESS_TOKEN")),
        "{body}"
    );
    // Once configured, the same file is fetched on demand.
    let graph = MockServer::start().await;
    let bytes = sample(100, 3);
    serve_media(&graph, "7001", &bytes, "audio/ogg", 1).await;
    let mut vars = vec![
        ("WHATSAPP_API_BASE_URL".to_string(), graph.uri()),
        ("WHATSAPP_ACCESS_TOKEN".to_string(), TOKEN.to_string()),
        (
            "WHATSAPP_PHONE_NUMBER_ID".to_string(),
            PHONE_NUMBER_ID.to_string(),
        ),
    ];
    vars.push((
        "MEDIA_DIR".into(),
        app.state().config().media_dir.display().to_string(),
    ));
    let (url, backend) = (app.database_url.clone(), app.backend);
    let mut app = app;
    app.stop().await;
    let configured = TestApp::start(backend, url, None, vars).await;
    let response = fetch(
        &configured,
        message["attachments"][0]["url"].as_str().expect("url"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.expect("body").as_ref(),
        bytes.as_slice()
    );
}

/// Matches a request that carries no `Authorization` header.
struct NoAuthorization;

impl wiremock::Match for NoAuthorization {
    fn matches(&self, request: &wiremock::Request) -> bool {
        !request.headers.contains_key("authorization")
    }
}

/// A delivery as a channel whose webhooks carry file URLs (Instagram) hands it to the inbox.
fn url_delivery(mid: &str, url: &str, signed: bool) -> Delivery {
    Delivery {
        channel: ChannelKind::Instagram,
        messages: vec![Incoming {
            direction: switchboard::domain::Direction::Inbound,
            conversation_key: "17841400000000001".into(),
            participant_identifier: "17841400000000001".into(),
            participant_name: None,
            content: "[image]".into(),
            message_type: "image".into(),
            timestamp: switchboard::domain::now(),
            external_message_id: Some(mid.into()),
            metadata: None,
            answerable: false,
            attachments: vec![NewAttachment {
                kind: AttachmentKind::Image,
                mime_type: None,
                file_name: None,
                source: Source::Url { url: url.into() },
            }],
        }],
        signed,
        ..Delivery::new(ChannelKind::Instagram)
    }
}

async fn a_url_is_fetched_only_from_a_signed_delivery_and_only_over_tls(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cdn = MockServer::start().await;
    let bytes = sample(777, 5);
    // Fetched plainly: no token goes to a CDN.
    Mock::given(method("GET"))
        .and(path("/v/t51.2885-15/photo.jpg"))
        .and(NoAuthorization)
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.clone(), "image/jpeg"))
        .expect(1)
        .mount(&cdn)
        .await;
    Mock::given(method("GET"))
        .and(path("/unsigned.jpg"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"secret".to_vec(), "image/jpeg"))
        .expect(0)
        .mount(&cdn)
        .await;
    let record = |delivery: Delivery| {
        let state = app.state().clone();
        async move { state.ingest().record(delivery).await.expect("recorded") }
    };
    let signed = record(url_delivery(
        "mid.signed",
        &format!("{}/v/t51.2885-15/photo.jpg", cdn.uri()),
        true,
    ))
    .await;
    let unsigned = record(url_delivery(
        "mid.unsigned",
        &format!("{}/unsigned.jpg", cdn.uri()),
        false,
    ))
    .await;
    let insecure = record(url_delivery(
        "mid.insecure",
        "http://example.invalid/photo.jpg",
        true,
    ))
    .await;
    let url_of = |recorded: &[switchboard::inbox::Recorded]| {
        recorded[0].message.as_ref().expect("stored").attachments[0]
            .url
            .clone()
    };
    let signed_id = signed[0].message.as_ref().expect("stored").id;
    let attachment = wait_stored(&app, signed_id).await;
    assert_eq!(
        attachment["mime_type"], "image/jpeg",
        "learnt from the download"
    );
    let response = fetch(&app, &url_of(&signed)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.expect("body").as_ref(),
        bytes.as_slice()
    );
    for (recorded, reason) in [(&unsigned, "unsigned"), (&insecure, "https")] {
        let response = fetch(&app, &url_of(recorded)).await;
        assert_eq!(response.status(), 403, "{reason}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["code"], "media_refused", "{body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(reason)),
            "{body}"
        );
    }
    cdn.verify().await;
}

async fn a_fetch_cut_by_kill_9_is_finished_after_the_restart(backend: Backend) {
    let (database_url, sqlite_file) = fresh_database(backend).await;
    let media_dir = std::env::temp_dir()
        .join("switchboard-tests")
        .join(format!("media-{}", uuid::Uuid::new_v4().simple()));
    let graph = MockServer::start().await;
    let bytes = sample(4096, 11);
    Mock::given(method("GET"))
        .and(path("/v26.0/8001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(description(
            &graph,
            "8001",
            &bytes,
            "image/jpeg",
        )))
        .mount(&graph)
        .await;
    // The first download hangs until the process is killed; the next one answers.
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(bytes.clone(), "image/jpeg")
                .set_delay(Duration::from_secs(120)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.clone(), "image/jpeg"))
        .mount(&graph)
        .await;
    let uri = graph.uri();
    let media = media_dir.display().to_string();
    // The job's lease is the fetch's time limit plus a margin: the next instance takes the job
    // over a few seconds after the crash.
    let vars = [
        ("MEDIA_DIR", media.as_str()),
        ("MEDIA_FETCH_TIMEOUT_SECS", "5"),
        ("WHATSAPP_TIMEOUT_MS", "500"),
        ("WHATSAPP_API_BASE_URL", uri.as_str()),
        ("WHATSAPP_ACCESS_TOKEN", TOKEN),
        ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
    ];
    let mut first = ServerProcess::on_database(backend, database_url.clone(), None, &vars).await;
    let body = media_delivery(
        "wamid.crash",
        "image",
        json!({"id": "8001", "mime_type": "image/jpeg"}),
    );
    let response = reqwest::Client::new()
        .post(first.url("/webhook/whatsapp"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("webhook");
    assert_eq!(response.status(), 200, "committed");
    let mut downloading = false;
    for _ in 0..200 {
        let requests = graph.received_requests().await.unwrap_or_default();
        if requests
            .iter()
            .any(|r| r.url.path() == "/whatsapp_business/attachments/")
        {
            downloading = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(downloading, "the download never started:\n{}", first.log());
    first.kill9();
    let overrides: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let second = TestApp::start(backend, database_url.clone(), sqlite_file, overrides).await;
    let message = message_by_wamid(&second, "wamid.crash").await;
    assert!(
        message["attachments"][0]["size"].is_null(),
        "not fetched before the crash"
    );
    // Fetched by the job once its lease ran out, without anyone asking for the file.
    let id = message["id"].as_i64().expect("id");
    let mut stored = Value::Null;
    for _ in 0..400 {
        let m: Value = second
            .get(&format!("/api/v1/messages/{id}"))
            .await
            .json()
            .await
            .expect("JSON");
        if !m["attachments"][0]["size"].is_null() {
            stored = m["attachments"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored["size"], bytes.len(), "the job survived the crash");
    let files = media_files(&second);
    assert_eq!(files.len(), 1, "one file, no temporary left: {files:?}");
    let response = fetch(&second, stored["url"].as_str().expect("url")).await;
    assert_eq!(
        response.bytes().await.expect("body").as_ref(),
        bytes.as_slice()
    );
}
