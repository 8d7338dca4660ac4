//! The email channel against real servers: Dovecot for IMAP and a recording SMTP server
//! (`scripts/mail-servers`). Each test uses a mailbox and addresses of its own. Without the
//! servers' variables these tests skip, except under `CI=true`.

mod assistant;
mod connections;
mod reading;
mod resilience;
mod sending;
mod validation;

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::mail::MailServers;
use crate::helpers::{Backend, TestApp};

/// A server reading `user`'s mailbox (quickly: a 1 s poll, 5 s command limits), with `extra`.
pub(crate) async fn reading_app(
    backend: Backend,
    mail: &MailServers,
    user: &str,
    extra: &[(&str, &str)],
) -> TestApp {
    let url = mail.imap_url(user);
    let mut vars = vec![
        ("EMAIL_IMAP_URL", url.as_str()),
        ("EMAIL_POLL_SECS", "1"),
        ("EMAIL_TIMEOUT_SECS", "5"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

/// Every message on `gmail`, oldest first.
pub(crate) async fn mail_messages(app: &TestApp) -> Vec<Value> {
    let (status, _, body) = app
        .list("/api/v1/messages?channel=gmail&order=asc&limit=500")
        .await;
    assert_eq!(status, 200);
    body.as_array().cloned().unwrap_or_default()
}

/// Waits up to `wait` for at least `n` messages on `gmail`; returns them, oldest first.
pub(crate) async fn wait_for_messages(app: &TestApp, n: usize, wait: Duration) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let found = mail_messages(app).await;
        if found.len() >= n || started.elapsed() > wait {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to `wait` until `/health` says `email` is `want` (or starts with it).
pub(crate) async fn wait_for_health(app: &TestApp, want: &str, wait: Duration) -> Value {
    let started = Instant::now();
    loop {
        let response = app.get("/health").await;
        let status = response.status();
        let body: Value = response.json().await.expect("health JSON");
        assert_eq!(
            status, 200,
            "/health's status stays about the database: {body}"
        );
        let email = body["email"].as_str().unwrap_or("");
        if email.starts_with(want) || started.elapsed() > wait {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A counter of `/metrics`.
pub(crate) async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The message with this provider id, waiting up to `wait` for it.
pub(crate) async fn wait_for_message(app: &TestApp, external_id: &str, wait: Duration) -> Value {
    let started = Instant::now();
    loop {
        let found = mail_messages(app)
            .await
            .into_iter()
            .find(|m| m["external_message_id"] == external_id);
        match found {
            Some(m) => return m,
            None if started.elapsed() > wait => panic!("no message {external_id} within {wait:?}"),
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The header `name` of a raw mail, unfolded, as mail-parser reads it.
pub(crate) fn header(raw: &[u8], name: &str) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(raw)?;
    parsed
        .header_raw(name)
        .map(|v| v.trim().replace("\r\n", "").to_string())
}
