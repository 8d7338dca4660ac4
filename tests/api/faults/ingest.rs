//! `kill -9` while 16 clients post webhooks: every acknowledged message is stored once, and
//! Meta redelivering everything it sent (acknowledged or not) stores each message once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::{all_messages, client, tally};
use crate::helpers::process::ServerProcess;
use crate::helpers::{text_delivery, Backend};
use crate::on_both_backends;

on_both_backends!(acknowledged_webhooks_survive_kill_9_and_redelivery_stores_each_once);

const CLIENTS: usize = 16;
/// Acknowledgements to wait for before the kill: the load is well under way.
const ACKS_BEFORE_KILL: usize = 200;

/// One webhook: its wamid, sender and text.
struct Webhook {
    wamid: String,
    from: String,
    text: String,
}

impl Webhook {
    fn new(client: usize, n: usize) -> Webhook {
        Webhook {
            wamid: format!("wamid.fault-{client}-{n}"),
            // Four senders: the clients share conversations, as customers' messages do.
            from: format!("3460055000{}", client % 4),
            text: format!("message {n} of client {client}"),
        }
    }

    /// Posts it to the server at `base`; the answer's status.
    async fn post(&self, http: &reqwest::Client, base: &str) -> reqwest::Result<u16> {
        let body = text_delivery(&self.wamid, &self.from, "Cliente", &self.text);
        let response = http
            .post(format!("{base}/webhook/whatsapp"))
            .json(&body)
            .send()
            .await?;
        Ok(response.status().as_u16())
    }
}

/// What one client sent: every webhook it posted (answered or not), and those answered 200.
#[derive(Default)]
struct Sent {
    posted: Vec<Webhook>,
    acknowledged: Vec<String>,
}

async fn acknowledged_webhooks_survive_kill_9_and_redelivery_stores_each_once(backend: Backend) {
    let mut server = ServerProcess::spawn(backend, &[]).await;
    let base = server.url("");
    let acks = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (acks, base) = (acks.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let http = client();
            let mut sent = Sent::default();
            // Until the server is gone: the first request without an answer ends this client.
            for n in 0.. {
                let webhook = Webhook::new(c, n);
                let answer = webhook.post(&http, &base).await;
                let wamid = webhook.wamid.clone();
                sent.posted.push(webhook);
                match answer {
                    Ok(200) => {
                        sent.acknowledged.push(wamid);
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(status) => panic!("{wamid} answered {status} before the kill"),
                    Err(_) => break,
                }
            }
            sent
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.load(Ordering::Relaxed) < ACKS_BEFORE_KILL {
        assert!(Instant::now() < deadline, "too few acknowledgements");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    let mut posted = Vec::new();
    let mut acknowledged = HashSet::new();
    for c in clients {
        let sent = c.await.expect("a client");
        posted.extend(sent.posted);
        acknowledged.extend(sent.acknowledged);
    }
    assert!(
        posted.len() > acknowledged.len(),
        "the kill fell while requests were in flight"
    );

    server.restart().await;
    let stored = all_messages(&server).await;
    let stored_after_restart = stored.len();
    let by_wamid = tally(&stored, "external_message_id");
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|w| !by_wamid.contains_key(*w))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let doubled: Vec<_> = by_wamid.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "stored more than once: {doubled:?}");
    let sent_wamids: HashSet<&str> = posted.iter().map(|w| w.wamid.as_str()).collect();
    for message in &stored {
        let wamid = message["external_message_id"].as_str().unwrap_or("");
        assert!(sent_wamids.contains(wamid), "never sent: {message}");
    }

    // Meta redelivers everything: what was acknowledged, and what never was.
    let http = client();
    let answers: Vec<(String, reqwest::Result<u16>)> = futures_util::stream::iter(&posted)
        .map(|webhook| {
            let (http, base) = (&http, &base);
            async move { (webhook.wamid.clone(), webhook.post(http, base).await) }
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    for (wamid, answer) in answers {
        assert_eq!(answer.ok(), Some(200), "redelivery of {wamid}");
    }
    let stored = all_messages(&server).await;
    assert_eq!(
        stored.len(),
        posted.len(),
        "every webhook sent is stored once"
    );
    let by_wamid = tally(&stored, "external_message_id");
    for webhook in &posted {
        assert_eq!(by_wamid.get(&webhook.wamid), Some(&1), "{}", webhook.wamid);
    }
    let texts: HashSet<&str> = stored
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    for webhook in &posted {
        assert!(texts.contains(webhook.text.as_str()), "{}", webhook.text);
    }
    eprintln!(
        "{backend:?}: {} posted, {} acknowledged before kill -9, {stored_after_restart} stored after the restart, all {} once after redelivery",
        posted.len(),
        acknowledged.len(),
        stored.len()
    );
}
