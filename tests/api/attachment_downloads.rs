//! `GET /api/v1/attachments/{id}` as browsers and players use it: byte ranges, ETags, the key
//! as a header or `?api_key=`, unknown ids, file names no client can misread, a file not here
//! yet fetched once however many ask, and a file served by another instance sharing MEDIA_DIR.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::attachments::{deliver, description, media_delivery, sample, serve_media, wait_stored};
use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use crate::whatsapp::app_with_graph;

on_both_backends!(
    ranges_and_etags_serve_players_and_caches,
    api_keys_guard_files_as_a_header_or_in_the_query,
    unknown_and_malformed_ids_are_404_and_422,
    names_with_quotes_slashes_and_accents_are_served_safely,
    many_requests_for_a_file_not_here_fetch_it_once,
    an_instance_sharing_media_dir_serves_what_another_fetched,
);

/// A stored file of `bytes` (fetched by its job); returns its URL.
async fn stored_file(
    app: &TestApp,
    graph: &wiremock::MockServer,
    media_id: &str,
    bytes: &[u8],
) -> String {
    serve_media(graph, media_id, bytes, "audio/ogg; codecs=opus", 1).await;
    let message = deliver(
        app,
        &media_delivery(
            &format!("wamid.{media_id}"),
            "audio",
            json!({"id": media_id, "voice": true}),
        ),
    )
    .await;
    let attachment = wait_stored(app, message["id"].as_i64().expect("id")).await;
    attachment["url"].as_str().expect("url").to_owned()
}

async fn get_with(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(app.url(url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("GET")
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn ranges_and_etags_serve_players_and_caches(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let bytes = sample(10_000, 21);
    let url = stored_file(&app, &graph, "9001", &bytes).await;

    let whole = get_with(&app, &url, &[]).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(
        header(&whole, "content-type").as_deref(),
        Some("audio/ogg; codecs=opus")
    );
    assert_eq!(
        header(&whole, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let etag = header(&whole, "etag").expect("etag");
    assert_eq!(etag.len(), 66, "the SHA-256 in quotes: {etag}");

    for (range, start, end) in [
        ("bytes=0-99", 0usize, 99usize),
        ("bytes=9990-", 9990, 9999),
        ("bytes=-10", 9990, 9999),
        ("bytes=5000-20000", 5000, 9999),
    ] {
        let part = get_with(&app, &url, &[("range", range)]).await;
        assert_eq!(part.status(), 206, "{range}");
        assert_eq!(
            header(&part, "content-range"),
            Some(format!("bytes {start}-{end}/10000")),
            "{range}"
        );
        assert_eq!(
            header(&part, "content-length"),
            Some((end - start + 1).to_string())
        );
        assert_eq!(
            part.bytes().await.expect("body").as_ref(),
            &bytes[start..=end],
            "{range}"
        );
    }
    let beyond = get_with(&app, &url, &[("range", "bytes=10000-")]).await;
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        header(&beyond, "content-range").as_deref(),
        Some("bytes */10000")
    );
    let body: Value = beyond.json().await.expect("JSON");
    assert_eq!(body["code"], "range_not_satisfiable");
    // Several ranges, or a range computed from another version, get the whole file.
    for extra in [
        vec![("range", "bytes=0-1,5-6")],
        vec![("range", "bytes=0-1"), ("if-range", "\"not-this-one\"")],
    ] {
        let response = get_with(&app, &url, &extra).await;
        assert_eq!(response.status(), 200, "{extra:?}");
        assert_eq!(response.bytes().await.expect("body").len(), 10_000);
    }
    let ranged = get_with(
        &app,
        &url,
        &[("range", "bytes=0-1"), ("if-range", etag.as_str())],
    )
    .await;
    assert_eq!(ranged.status(), 206);

    let cached = get_with(&app, &url, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(cached.status(), 304);
    assert_eq!(header(&cached, "etag").as_deref(), Some(etag.as_str()));
    assert!(cached.bytes().await.expect("body").is_empty());
    let changed = get_with(&app, &url, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(changed.status(), 200);
    let head = app.client.head(app.url(&url)).send().await.expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length").as_deref(), Some("10000"));
}

async fn api_keys_guard_files_as_a_header_or_in_the_query(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[("API_KEYS", "frontend:s3cret-key")]).await;
    let bytes = sample(64, 2);
    serve_media(&graph, "9101", &bytes, "image/png", 1).await;
    let body = media_delivery("wamid.keys", "image", json!({"id": "9101"}));
    let response = crate::whatsapp::post_webhook(&app, body.to_string().as_bytes(), None).await;
    assert_eq!(response.status(), 200, "the webhook needs no key");
    let (status, _, page) = {
        let response = get_with(&app, "/api/v1/messages", &[("x-api-key", "s3cret-key")]).await;
        let status = response.status().as_u16();
        (status, (), response.json::<Value>().await.expect("JSON"))
    };
    assert_eq!(status, 200);
    let url = page[0]["attachments"][0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    for (what, path, headers, expected) in [
        ("no key", url.clone(), vec![], 401),
        ("wrong key", url.clone(), vec![("x-api-key", "nope")], 401),
        (
            "wrong key in the query",
            format!("{url}?api_key=nope"),
            vec![],
            401,
        ),
        (
            "header",
            url.clone(),
            vec![("x-api-key", "s3cret-key")],
            200,
        ),
        (
            "bearer",
            url.clone(),
            vec![("authorization", "Bearer s3cret-key")],
            200,
        ),
        (
            "query, for <img src>",
            format!("{url}?api_key=s3cret-key"),
            vec![],
            200,
        ),
        (
            "query, percent-encoded",
            format!("{url}?x=1&api_key=s3cret%2Dkey"),
            vec![],
            200,
        ),
        // Only files take the key in the query.
        (
            "query on another route",
            "/api/v1/messages?api_key=s3cret-key".into(),
            vec![],
            401,
        ),
    ] {
        let response = get_with(&app, &path, &headers).await;
        assert_eq!(response.status(), expected, "{what}");
        if expected == 200 && path.starts_with("/api/v1/attachments") {
            assert_eq!(
                response.bytes().await.expect("body").as_ref(),
                bytes.as_slice(),
                "{what}"
            );
        } else if expected == 401 {
            let body: Value = response.json().await.expect("JSON");
            assert_eq!(body["code"], "unauthorized", "{what}");
        }
    }
}

async fn unknown_and_malformed_ids_are_404_and_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let missing = get_with(&app, "/api/v1/attachments/999999", &[]).await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("JSON");
    assert_eq!(
        body,
        json!({"detail": "attachment not found", "code": "not_found"})
    );
    for bad in ["abc", "1.5", "99999999999999999999999"] {
        let response = get_with(&app, &format!("/api/v1/attachments/{bad}"), &[]).await;
        assert_eq!(response.status(), 422, "{bad}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["detail"][0]["loc"], json!(["path", "id"]), "{bad}");
    }
}

async fn names_with_quotes_slashes_and_accents_are_served_safely(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let bytes = sample(300, 8);
    serve_media(&graph, "9201", &bytes, "application/pdf", 1).await;
    let name = "Factura \"Año 2025\"/../../etc\\passwd ñ.pdf";
    let message = deliver(
        &app,
        &media_delivery(
            "wamid.name",
            "document",
            json!({"id": "9201", "filename": name, "mime_type": "application/pdf"}),
        ),
    )
    .await;
    assert_eq!(message["attachments"][0]["file_name"], name, "kept as sent");
    let attachment = wait_stored(&app, message["id"].as_i64().expect("id")).await;
    let response = get_with(&app, attachment["url"].as_str().expect("url"), &[]).await;
    assert_eq!(response.status(), 200);
    let disposition = header(&response, "content-disposition").expect("disposition");
    assert_eq!(
        disposition,
        "inline; filename=\"Factura 'A_o 2025'_.._.._etc_passwd _.pdf\"; \
         filename*=UTF-8''Factura%20%22A%C3%B1o%202025%22_.._.._etc_passwd%20%C3%B1.pdf"
    );
}

async fn many_requests_for_a_file_not_here_fetch_it_once(backend: Backend) {
    // The job starts the (slow) download at once; the requests join it.
    let (app, graph) = app_with_graph(backend, &[]).await;
    let bytes = sample(200_000, 4);
    Mock::given(method("GET"))
        .and(path("/v26.0/9301"))
        .respond_with(ResponseTemplate::new(200).set_body_json(description(
            &graph,
            "9301",
            &bytes,
            "video/mp4",
        )))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(bytes.clone(), "video/mp4")
                .set_delay(Duration::from_millis(1500)),
        )
        .expect(1)
        .mount(&graph)
        .await;
    let message = deliver(
        &app,
        &media_delivery("wamid.once", "video", json!({"id": "9301"})),
    )
    .await;
    assert!(message["attachments"][0]["size"].is_null(), "not here yet");
    let url = message["attachments"][0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let requests = (0..10).map(|_| {
        let (app, url) = (&app, url.clone());
        async move {
            let response = get_with(app, &url, &[]).await;
            (
                response.status().as_u16(),
                response.bytes().await.expect("body"),
            )
        }
    });
    for (status, body) in futures_util::future::join_all(requests).await {
        assert_eq!(status, 200);
        assert_eq!(body.as_ref(), bytes.as_slice());
    }
    // One description and one download (each mock expects exactly one call).
    graph.verify().await;
}

async fn an_instance_sharing_media_dir_serves_what_another_fetched(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    let bytes = sample(4000, 13);
    let url = stored_file(&app, &graph, "9401", &bytes).await;
    let media = app.state().config().media_dir.display().to_string();
    // Another instance: same database, same directory, no provider configured at all.
    let other = TestApp::start(
        backend,
        app.database_url.clone(),
        None,
        vec![("MEDIA_DIR".into(), media)],
    )
    .await;
    let response = get_with(&other, &url, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.expect("body").as_ref(),
        bytes.as_slice()
    );
    graph.verify().await;
}
