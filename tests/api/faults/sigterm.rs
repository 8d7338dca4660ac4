//! SIGTERM under load: clients keep posting webhooks and `POST /api/v1/messages` while the
//! signal arrives. The process exits with success within 15 s; every acknowledged request is
//! stored once, and a refused or cut one is stored whole or not at all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{all_messages, client, tally};
use crate::helpers::process::ServerProcess;
use crate::helpers::{text_delivery, Backend};
use crate::on_both_backends;

on_both_backends!(sigterm_under_load_exits_cleanly_and_stores_whole_messages);

/// Clients of each kind.
const CLIENTS: usize = 8;
const ACKS_BEFORE_SIGTERM: usize = 150;
const EXIT_WITHIN: Duration = Duration::from_secs(15);
const SENDER: &str = "34600770001";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Webhook,
    Message,
}

/// One request and what became of it: the status, or `None` when it was refused or cut.
struct Attempt {
    kind: Kind,
    /// The webhook's wamid, or the recorded message's content.
    key: String,
    text: String,
    status: Option<u16>,
    started: Instant,
    ended: Instant,
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    kind: Kind,
    conversation: i64,
    tag: &str,
) -> Attempt {
    let text = format!("text of {tag}");
    let (path, body, key) = match kind {
        Kind::Webhook => {
            let wamid = format!("wamid.term-{tag}");
            let body = text_delivery(&wamid, SENDER, "Bea", &text);
            ("/webhook/whatsapp", body, wamid)
        }
        Kind::Message => (
            "/api/v1/messages",
            json!({"conversation_id": conversation, "content": text, "direction": "inbound"}),
            text.clone(),
        ),
    };
    let started = Instant::now();
    let answer = http.post(format!("{base}{path}")).json(&body).send().await;
    Attempt {
        kind,
        key,
        text,
        status: answer.ok().map(|r| r.status().as_u16()),
        started,
        ended: Instant::now(),
    }
}

async fn sigterm_under_load_exits_cleanly_and_stores_whole_messages(backend: Backend) {
    let mut server = ServerProcess::spawn(backend, &[]).await;
    let base = server.url("");
    let http = client();
    let conversation = server.create_conversation("5550700").await;
    let conversation = conversation["id"].as_i64().expect("id");
    let (running, acks) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut clients = Vec::new();
    for (c, kind) in (0..CLIENTS * 2).map(|c| {
        (
            c,
            if c % 2 == 0 {
                Kind::Webhook
            } else {
                Kind::Message
            },
        )
    }) {
        let (running, acks, base, http) =
            (running.clone(), acks.clone(), base.clone(), http.clone());
        clients.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            let mut n = 0;
            while running.load(Ordering::Relaxed) {
                n += 1;
                let attempt = post(&http, &base, kind, conversation, &format!("{c}-{n}")).await;
                match attempt.status {
                    Some(status) if status / 100 == 2 => {
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                    // Refused: the listener is closed, or the process gone.
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                attempts.push(attempt);
            }
            attempts
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.load(Ordering::Relaxed) < ACKS_BEFORE_SIGTERM {
        assert!(Instant::now() < deadline, "too few acknowledgements");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let signalled = Instant::now();
    let status = server.sigterm().await;
    let took = signalled.elapsed();
    assert!(status.success(), "SIGTERM exits with success, got {status}");
    assert!(took < EXIT_WITHIN, "exited {took:?} after SIGTERM");
    // The clients keep trying a little after the exit: refused, all of them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.store(false, Ordering::Relaxed);
    let mut attempts: Vec<Attempt> = Vec::new();
    for c in clients {
        attempts.extend(c.await.expect("a client"));
    }
    let in_flight = attempts
        .iter()
        .filter(|a| a.started < signalled && a.ended > signalled)
        .count();
    assert!(in_flight > 0, "requests were in flight when SIGTERM came");
    let unanswered = attempts.iter().filter(|a| a.status.is_none()).count();
    assert!(
        unanswered > 0,
        "requests kept coming while the server stopped"
    );
    for a in &attempts {
        if let Some(status) = a.status {
            assert!(
                status / 100 == 2 || status == 503,
                "{:?} {} answered {status}",
                a.kind,
                a.key
            );
        }
    }

    server.restart().await;
    let stored = all_messages(&server).await;
    let conversations: Value = client()
        .get(server.url("/api/v1/conversations?limit=500"))
        .send()
        .await
        .expect("GET /api/v1/conversations")
        .json()
        .await
        .expect("a JSON list");
    let conversations: HashMap<i64, &Value> = conversations
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| Some((c["id"].as_i64()?, c)))
        .collect();
    let by_wamid = tally(&stored, "external_message_id");
    let by_content = tally(&stored, "content");
    let sent: HashMap<&str, &Attempt> = attempts.iter().map(|a| (a.key.as_str(), a)).collect();
    for a in &attempts {
        let copies = match a.kind {
            Kind::Webhook => by_wamid.get(&a.key),
            Kind::Message => by_content.get(&a.key),
        };
        let acknowledged = a.status.is_some_and(|s| s / 100 == 2);
        if acknowledged {
            assert_eq!(
                copies,
                Some(&1),
                "{:?} {} acknowledged, stored once",
                a.kind,
                a.key
            );
        } else {
            assert!(
                copies.is_none() || copies == Some(&1),
                "{:?} {} stored twice",
                a.kind,
                a.key
            );
        }
    }
    // Whatever was stored is whole: what was sent, in a conversation that knows of it.
    let mut refused_but_stored = HashSet::new();
    for message in &stored {
        let key = message["external_message_id"]
            .as_str()
            .or(message["content"].as_str())
            .unwrap_or("");
        let attempt = sent
            .get(key)
            .unwrap_or_else(|| panic!("never sent: {message}"));
        assert_eq!(message["content"], attempt.text.as_str(), "{message}");
        let kept_in = message["conversation_id"]
            .as_i64()
            .and_then(|id| conversations.get(&id));
        let kept_in = kept_in.unwrap_or_else(|| panic!("no conversation for {message}"));
        assert!(!kept_in["last_message_at"].is_null(), "{kept_in}");
        if attempt.kind == Kind::Webhook {
            assert_eq!(kept_in["participant_identifier"], SENDER);
        } else {
            assert_eq!(kept_in["id"], conversation);
        }
        if attempt.status.is_none_or(|s| s / 100 != 2) {
            refused_but_stored.insert(key.to_owned());
        }
    }
    eprintln!(
        "{backend:?}: exited {took:?} after SIGTERM; {} requests, {in_flight} in flight at the signal, {unanswered} refused or cut, {} stored ({} of them unanswered)",
        attempts.len(),
        stored.len(),
        refused_but_stored.len()
    );
}
