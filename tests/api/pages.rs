//! Kept list pages (src/pages): a page served from memory is never older than the last write
//! before the read, whatever changed (a message, a status, `is_read`, a file, the conversation)
//! and whichever instance wrote it; `ETag` and `If-None-Match` give 304 for a current copy.

use serde_json::{json, Value};

use crate::helpers::{fresh_database, postgres_available, text_delivery, Backend, TestApp};
use crate::on_both_backends;
use crate::whatsapp::status_delivery;

on_both_backends!(
    a_page_is_kept_and_a_stored_message_is_in_the_next_page,
    statuses_read_marks_and_renames_show_in_the_next_page,
    a_file_arriving_shows_in_the_next_page,
    a_current_copy_is_answered_304_and_a_changed_one_is_not,
    nothing_is_kept_with_a_zero_budget,
);

/// `GET path` → (X-Total-Count, ETag, JSON body), asserting 200.
async fn page(app: &TestApp, path: &str) -> (i64, String, Value) {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let total = header("x-total-count").parse().expect("X-Total-Count");
    let etag = header("etag");
    assert!(etag.starts_with("W/\""), "a weak ETag on {path}: {etag:?}");
    assert_eq!(header("cache-control"), "private, no-cache");
    (total, etag, response.json().await.expect("JSON"))
}

/// `GET path` with `If-None-Match: tag` → its status and ETag.
async fn revalidate(app: &TestApp, path: &str, tag: &str) -> (u16, String, Vec<u8>) {
    let response = app
        .client
        .get(app.url(path))
        .header("if-none-match", tag)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.bytes().await.expect("body").to_vec();
    (status, etag, body)
}

/// A counter of `/metrics`.
async fn counter(app: &TestApp, name: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

fn ids(items: &Value) -> Vec<i64> {
    items
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

/// Runs `sql` with `id` bound on the app's database, as another writer would.
pub(crate) async fn write_directly(app: &TestApp, sql: &str, id: i64) {
    match app.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query(sql).bind(id).execute(&pool).await.expect(sql);
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query(sql).bind(id).execute(&pool).await.expect(sql);
            pool.close().await;
        }
    }
}

async fn a_page_is_kept_and_a_stored_message_is_in_the_next_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ana = app.create_conversation(1, "+34 600 000 001", "Ana").await["id"]
        .as_i64()
        .expect("id");
    // Older than the webhook's message below (2025-01-08), which then heads the page.
    let first = app
        .message(
            ana,
            json!({"content": "uno", "timestamp": "2025-01-01T00:00:00Z"}),
        )
        .await;
    let messages = format!("/api/v1/messages?conversation_id={ana}");
    let (total, _, items) = page(&app, &messages).await;
    assert_eq!(
        (total, ids(&items)),
        (1, vec![first["id"].as_i64().expect("id")])
    );
    // Read again, unchanged: served from memory, the same bytes.
    let kept_before = counter(&app, "switchboard_pages_kept_total").await;
    let (_, _, again) = page(&app, &messages).await;
    assert_eq!(again, items);
    let same_route = format!("/api/v1/conversations/{ana}/messages");
    let (_, _, through_conversation) = page(&app, &same_route).await;
    assert_eq!(through_conversation, items);
    assert_eq!(
        counter(&app, "switchboard_pages_kept_total").await,
        kept_before + 2
    );
    // Checked by the batched reader (a failing batch would leave each request to read alone).
    assert!(counter(&app, "switchboard_pages_stamp_reads_total").await >= 3);
    // Each way of storing a message shows in the very next page, with the total.
    let posted = app
        .message(
            ana,
            json!({"content": "dos", "timestamp": "2025-01-01T00:00:01Z"}),
        )
        .await;
    let (total, _, items) = page(&app, &messages).await;
    assert_eq!(total, 2);
    assert_eq!(items[0]["id"], posted["id"]);
    let delivered = app
        .post_json(
            "/webhook/whatsapp",
            &text_delivery("wamid.P1", "34600000001", "Ana", "tres"),
        )
        .await;
    assert_eq!(delivered.status(), 200);
    let (total, _, items) = page(&app, &same_route).await;
    assert_eq!((total, items[0]["content"].as_str()), (3, Some("tres")));
    // The conversations list moved too: activity, unread count.
    let (total, _, list) = page(&app, "/api/v1/conversations").await;
    assert_eq!(total, 1);
    assert_eq!(list[0]["unread_count"], 3);
    assert_eq!(list[0]["last_message_at"], items[0]["timestamp"]);
    // A new conversation heads the kept list at once.
    let luis = app.create_conversation(1, "+34 600 000 002", "Luis").await;
    let (total, _, list) = page(&app, "/api/v1/conversations").await;
    assert_eq!((total, &list[0]["id"]), (2, &luis["id"]));
    // Other pages and filters are right as well (they are not kept).
    let (status, total, older) = app.list(&format!("{messages}&offset=1&limit=1")).await;
    assert_eq!((status, total), (200, Some(3)));
    assert_eq!(older[0]["content"], "dos");
    let (_, total, _) = app.list(&format!("{messages}&direction=outbound")).await;
    assert_eq!(total, Some(0));
    // An unknown conversation: an empty list here, 404 under its own path.
    let (status, total, none) = app.list("/api/v1/messages?conversation_id=999").await;
    assert_eq!((status, total, none), (200, Some(0), json!([])));
    assert_eq!(
        app.get("/api/v1/conversations/999/messages").await.status(),
        404
    );
}

async fn statuses_read_marks_and_renames_show_in_the_next_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ana = app.create_conversation(1, "34600000001", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let inbound = app.message(ana, json!({"content": "hola"})).await;
    let outbound = app
        .message(
            ana,
            json!({"content": "buenas", "direction": "outbound", "external_message_id": "wamid.OUT1"}),
        )
        .await;
    let messages = format!("/api/v1/messages?conversation_id={ana}");
    let status_of = |items: &Value, id: &Value| {
        items
            .as_array()
            .and_then(|a| a.iter().find(|m| m["id"] == *id))
            .map(|m| (m["status"].clone(), m["is_read"].clone()))
            .expect("the message is on the page")
    };
    let (_, _, items) = page(&app, &messages).await;
    assert_eq!(status_of(&items, &outbound["id"]).0, "sent");
    // A provider's status.
    let response = app
        .post_json(
            "/webhook/whatsapp",
            &status_delivery("wamid.OUT1", "delivered", None),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (_, _, items) = page(&app, &messages).await;
    assert_eq!(status_of(&items, &outbound["id"]).0, "delivered");
    // PATCH is_read, on the messages page and in the conversations list's unread count.
    let (_, _, list) = page(&app, "/api/v1/conversations").await;
    assert_eq!(list[0]["unread_count"], 1);
    let id = inbound["id"].as_i64().expect("id");
    let patched = app
        .patch_json(&format!("/api/v1/messages/{id}"), &json!({"is_read": true}))
        .await;
    assert_eq!(patched.status(), 200);
    let (_, _, items) = page(&app, &messages).await;
    assert_eq!(status_of(&items, &inbound["id"]).1, true);
    let (_, _, list) = page(&app, "/api/v1/conversations").await;
    assert_eq!(list[0]["unread_count"], 0);
    // Marked unread again, then the whole conversation marked read.
    app.patch_json(
        &format!("/api/v1/messages/{id}"),
        &json!({"is_read": false}),
    )
    .await;
    let (_, _, items) = page(&app, &messages).await;
    assert_eq!(status_of(&items, &inbound["id"]).1, false);
    let (_, _, list) = page(&app, "/api/v1/conversations").await;
    assert_eq!(list[0]["unread_count"], 1);
    let read = app
        .post_json(&format!("/api/v1/conversations/{ana}/read"), &json!({}))
        .await;
    assert_eq!(read.status(), 200);
    let (_, _, items) = page(&app, &messages).await;
    assert_eq!(status_of(&items, &inbound["id"]).1, true);
    let (_, _, list) = page(&app, "/api/v1/conversations").await;
    assert_eq!(list[0]["unread_count"], 0);
    // The conversation itself: renamed, closed (the filtered lists follow).
    let active = "/api/v1/conversations?is_active=true";
    let (total, _, _) = page(&app, active).await;
    assert_eq!(total, 1);
    let patched = app
        .patch_json(
            &format!("/api/v1/conversations/{ana}"),
            &json!({"participant_name": "Ana M.", "is_active": false}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let (_, _, list) = page(&app, "/api/v1/conversations").await;
    assert_eq!(list[0]["participant_name"], "Ana M.");
    let (total, _, list) = page(&app, active).await;
    assert_eq!((total, list), (0, json!([])));
}

async fn a_file_arriving_shows_in_the_next_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ana = app.create_conversation(1, "34600000001", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let message = app.message(ana, json!({"content": "[image]"})).await["id"]
        .as_i64()
        .expect("id");
    let messages = format!("/api/v1/messages?conversation_id={ana}");
    assert_eq!(page(&app, &messages).await.2[0]["attachments"], json!([]));
    // A file recorded with the message (as the inbox records one: the row, then the count).
    write_directly(
        &app,
        "INSERT INTO attachments (message_id, kind, mime_type, source, source_ref, fetchable, \
         state, created_at) VALUES ($1, 'image', 'image/jpeg', 'whatsapp_media', '65463453', \
         TRUE, 'pending', '2025-01-01T00:00:00Z')",
        message,
    )
    .await;
    write_directly(
        &app,
        "UPDATE messages SET attachment_count = attachment_count + 1 WHERE id = $1",
        message,
    )
    .await;
    let (_, _, items) = page(&app, &messages).await;
    let file = &items[0]["attachments"][0];
    assert_eq!(
        (&file["kind"], &file["size"]),
        (&json!("image"), &Value::Null),
        "not fetched yet: {file}"
    );
    // The file arrives (as the fetcher records it): its size shows in the next page.
    let id = file["id"].as_i64().expect("attachment id");
    write_directly(
        &app,
        "UPDATE attachments SET size = 2048, sha256 = 'ab', state = 'stored' WHERE id = $1",
        id,
    )
    .await;
    let (_, _, items) = page(&app, &messages).await;
    assert_eq!(items[0]["attachments"][0]["size"], 2048);
    // So does any other change to a shown column written behind the server's back, while
    // columns no page shows (an outbox lease) leave the page kept.
    write_directly(
        &app,
        "UPDATE messages SET content = 'edited' WHERE id = $1",
        message,
    )
    .await;
    let (_, _, items) = page(&app, &messages).await;
    assert_eq!(items[0]["content"], "edited");
    let kept = counter(&app, "switchboard_pages_kept_total").await;
    write_directly(
        &app,
        "UPDATE messages SET send_attempts = send_attempts + 1 WHERE id = $1",
        message,
    )
    .await;
    page(&app, &messages).await;
    assert_eq!(
        counter(&app, "switchboard_pages_kept_total").await,
        kept + 1
    );
}

async fn a_current_copy_is_answered_304_and_a_changed_one_is_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ana = app.create_conversation(1, "+34 600 000 001", "Ana").await["id"]
        .as_i64()
        .expect("id");
    app.message(ana, json!({"content": "uno"})).await;
    // Kept pages and plain ones, and whether storing a message changes them.
    let pages = [
        (format!("/api/v1/messages?conversation_id={ana}"), true),
        (
            format!("/api/v1/conversations/{ana}/messages?limit=10"),
            true,
        ),
        ("/api/v1/conversations".to_string(), true),
        (
            "/api/v1/conversations?channel_id=1&is_active=true".to_string(),
            true,
        ),
        (
            format!("/api/v1/messages?conversation_id={ana}&order=asc"),
            true,
        ),
        ("/api/v1/messages?direction=inbound".to_string(), true),
        // Past the end: `[]` both times, but its total changes.
        ("/api/v1/messages?offset=5".to_string(), true),
        ("/api/v1/conversations?offset=1".to_string(), false),
        ("/api/v1/channels".to_string(), false),
    ];
    let mut copies = Vec::new();
    for (path, _) in &pages {
        let (total, tag, body) = page(&app, path).await;
        let (status, same, empty) = revalidate(&app, path, &tag).await;
        assert_eq!((status, &same, empty.len()), (304, &tag, 0), "{path}");
        // Strong or weak, in a list, or `*`: the same copy.
        let listed = format!("\"nope\", {}", tag.trim_start_matches("W/"));
        assert_eq!(revalidate(&app, path, &listed).await.0, 304, "{path}");
        assert_eq!(revalidate(&app, path, "*").await.0, 304, "{path}");
        assert_eq!(revalidate(&app, path, "W/\"other\"").await.0, 200, "{path}");
        copies.push((total, tag, body));
    }
    // Kept pages are tagged by their key: no two share a tag (plain ones with the same body and
    // total do, as they should).
    let mut tags: Vec<&String> = copies[..4].iter().map(|(_, tag, _)| tag).collect();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 4, "every kept page has its own tag");
    // A write changes the pages that show it: their old copies are no longer current.
    app.message(ana, json!({"content": "dos"})).await;
    for ((path, changes), (total, tag, body)) in pages.iter().zip(&copies) {
        let (status, new_tag, new_body) = revalidate(&app, path, tag).await;
        if !changes {
            assert_eq!(status, 304, "{path}");
            continue;
        }
        assert_eq!(status, 200, "{path}");
        assert_ne!(&new_tag, tag, "{path}");
        let (new_total, _, fetched) = page(&app, path).await;
        assert!(new_total != *total || fetched != *body, "{path} changed");
        assert_eq!(
            serde_json::from_slice::<Value>(&new_body).expect("JSON"),
            fetched
        );
        assert_eq!(revalidate(&app, path, &new_tag).await.0, 304, "{path}");
    }
}

async fn nothing_is_kept_with_a_zero_budget(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("PAGE_CACHE_BYTES", "0")]).await;
    let ana = app.create_conversation(1, "+34 600 000 001", "Ana").await["id"]
        .as_i64()
        .expect("id");
    app.message(ana, json!({"content": "uno"})).await;
    let messages = format!("/api/v1/messages?conversation_id={ana}");
    let (_, tag, first) = page(&app, &messages).await;
    let (_, _, again) = page(&app, &messages).await;
    assert_eq!(first, again);
    assert_eq!(counter(&app, "switchboard_pages_kept_total").await, 0);
    assert_eq!(counter(&app, "switchboard_pages_built_total").await, 2);
    // Revalidation needs no kept page.
    assert_eq!(revalidate(&app, &messages, &tag).await.0, 304);
}

/// Two instances on one fresh PostgreSQL database.
async fn two_instances() -> (TestApp, TestApp) {
    let (url, _) = fresh_database(Backend::Postgres).await;
    let a = TestApp::start(Backend::Postgres, url.clone(), None, Vec::new()).await;
    let b = TestApp::start(Backend::Postgres, url, None, Vec::new()).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_kept_by_one_instance_shows_what_another_just_wrote() {
    if !postgres_available() {
        return;
    }
    let (a, b) = two_instances().await;
    let ana = a.create_conversation(1, "34600000001", "Ana").await["id"]
        .as_i64()
        .expect("id");
    a.message(
        ana,
        json!({"content": "hola", "direction": "outbound", "external_message_id": "wamid.OUT1",
               "timestamp": "2025-01-01T00:00:00Z"}),
    )
    .await;
    let messages = format!("/api/v1/messages?conversation_id={ana}");
    let list = "/api/v1/conversations";
    // Both keep both pages, under the same tags.
    for app in [&a, &b] {
        page(app, &messages).await;
        page(app, list).await;
    }
    assert_eq!(page(&a, &messages).await.1, page(&b, &messages).await.1);
    assert_eq!(page(&a, list).await.1, page(&b, list).await.1);
    // Written through B (a webhook), read from A at once: no waiting for events.
    let delivered = b
        .post_json(
            "/webhook/whatsapp",
            &text_delivery("wamid.IN1", "34600000001", "Ana", "¿abrís hoy?"),
        )
        .await;
    assert_eq!(delivered.status(), 200);
    let (total, tag, items) = page(&a, &messages).await;
    assert_eq!(
        (total, items[0]["content"].as_str()),
        (2, Some("¿abrís hoy?"))
    );
    assert_eq!(page(&a, list).await.2[0]["unread_count"], 1);
    assert_eq!(page(&b, &messages).await.1, tag, "same state, same tag");
    // A status through A, read from B; a read mark through B, read from A.
    a.post_json(
        "/webhook/whatsapp",
        &status_delivery("wamid.OUT1", "read", None),
    )
    .await;
    assert_eq!(page(&b, &messages).await.2[1]["status"], "read");
    let read = b
        .post_json(&format!("/api/v1/conversations/{ana}/read"), &json!({}))
        .await;
    assert_eq!(read.status(), 200);
    assert_eq!(page(&a, &messages).await.2[0]["is_read"], true);
    assert_eq!(page(&a, list).await.2[0]["unread_count"], 0);
    // A's old copy is not current on B.
    assert_eq!(revalidate(&b, &messages, &tag).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_stamp_was_drawn_first_but_committed_last_is_not_missed() {
    if !postgres_available() {
        return;
    }
    use sqlx::Connection;
    let app = TestApp::spawn(Backend::Postgres).await;
    let first = app.create_conversation(1, "34600000001", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let second = app.create_conversation(1, "34600000002", "Luis").await["id"]
        .as_i64()
        .expect("id");
    let list = "/api/v1/conversations";
    page(&app, list).await;
    let connect = || sqlx::PgConnection::connect(&app.database_url);
    let (mut slow, mut quick) = (
        connect().await.expect("connect"),
        connect().await.expect("connect"),
    );
    let rename = "UPDATE conversations SET participant_name = $2 WHERE id = $1";
    // The slow writer draws its stamp first and holds it uncommitted; the quick one draws a
    // larger stamp and commits.
    sqlx::raw_sql("BEGIN")
        .execute(&mut slow)
        .await
        .expect("begin");
    sqlx::query(rename)
        .bind(first)
        .bind("Ana (slow)")
        .execute(&mut slow)
        .await
        .expect("rename");
    sqlx::query(rename)
        .bind(second)
        .bind("Luis (quick)")
        .execute(&mut quick)
        .await
        .expect("rename");
    // Read while the slow one is open: the largest stamp is the quick one's.
    let (_, tag, items) = page(&app, list).await;
    let names: Vec<&str> = items
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["participant_name"].as_str())
        .collect();
    assert!(
        names.contains(&"Luis (quick)") && names.contains(&"Ana"),
        "{names:?}"
    );
    sqlx::raw_sql("COMMIT")
        .execute(&mut slow)
        .await
        .expect("commit");
    // The largest stamp did not move, yet the page must.
    let (_, _, items) = page(&app, list).await;
    let names: Vec<&str> = items
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["participant_name"].as_str())
        .collect();
    assert!(names.contains(&"Ana (slow)"), "{names:?}");
    assert_eq!(revalidate(&app, list, &tag).await.0, 200);
}
