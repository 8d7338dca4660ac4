//! Agents writing to new numbers while those customers' first messages arrive: the webhook and
//! the sends each create conversations, in opposite orders. Nothing deadlocks into a 500; every
//! request is answered 2xx and each customer has one conversation. (Found by the chaos soak:
//! on PostgreSQL a conversation's insert also updates the per-channel count row, so two such
//! transactions waited on each other.)

use futures_util::future::join_all;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::Mock;

use super::Accepting;
use crate::helpers::Backend;
use crate::on_both_backends;
use crate::whatsapp::{app_with_graph, graph_path};

on_both_backends!(first_messages_and_first_replies_at_once_are_all_stored);

/// New customers per round: one webhook brings all their first messages.
const CUSTOMERS: usize = 20;
const ROUNDS: usize = 3;

/// One Cloud API delivery carrying the first message of each of `numbers`.
fn first_messages(round: usize, numbers: &[String]) -> Value {
    let contacts: Vec<Value> = numbers
        .iter()
        .map(|n| json!({"profile": {"name": format!("Cliente {n}")}, "wa_id": n}))
        .collect();
    let messages: Vec<Value> = numbers
        .iter()
        .map(|n| json!({"from": n, "id": format!("wamid.first-{round}-{n}"), "timestamp": "1736330400", "type": "text", "text": {"body": "Hola"}}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106540352242922"},
        "contacts": contacts,
        "messages": messages,
    }}]}]})
}

async fn first_messages_and_first_replies_at_once_are_all_stored(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(Accepting::new("wamid.welcome"))
        .mount(&graph)
        .await;
    for round in 0..ROUNDS {
        let numbers: Vec<String> = (0..CUSTOMERS)
            .map(|c| format!("3461{round:02}{c:05}"))
            .collect();
        let delivery = first_messages(round, &numbers);
        // The replies go out in the opposite order to the webhook's messages.
        let sends: Vec<Value> = numbers
            .iter()
            .rev()
            .map(|to| json!({"channel": "whatsapp", "to": to, "message": format!("Bienvenido {to}")}))
            .collect();
        let webhook = app.post_json("/webhook/whatsapp", &delivery);
        let replies = join_all(sends.iter().map(|send| app.post_json("/api/v1/send", send)));
        let (webhook, replies) = tokio::join!(webhook, replies);
        assert_eq!(webhook.status(), 200, "round {round}: the webhook");
        for reply in replies {
            let status = reply.status();
            let body: Value = reply.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 200, "round {round}: a reply: {body}");
        }
    }
    let (_, total, _) = app.list("/api/v1/conversations?limit=1").await;
    assert_eq!(
        total,
        Some((CUSTOMERS * ROUNDS) as i64),
        "one conversation per customer"
    );
    let (_, messages, _) = app.list("/api/v1/messages?limit=1").await;
    assert_eq!(messages, Some((2 * CUSTOMERS * ROUNDS) as i64));
}
