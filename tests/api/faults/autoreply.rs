//! Durable auto-replies: `kill -9` while the LLM composes the answer to an acknowledged webhook;
//! restarted, the server composes the answer again once the job's lease has expired and sends
//! it exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::{all_messages, client, Accepting};
use crate::helpers::process::ServerProcess;
use crate::helpers::{text_delivery, Backend};
use crate::on_both_backends;
use crate::whatsapp::{graph_path, PHONE_NUMBER_ID, TOKEN};

on_both_backends!(an_auto_reply_interrupted_by_kill_9_is_sent_once_after_the_restart);

const ANSWER: &str = "Abrimos a las 13:00";
const FALLBACK: &str = "Gracias, te respondemos enseguida.";
/// The LLM's time limit: the job's lease is this + twice the longer provider timeout + 5 s.
const LLM_TIMEOUT_SECS: &str = "2";

/// An OpenAI-compatible LLM that hangs (answers after its caller's time limit) until told to
/// answer.
struct Llm {
    hanging: Arc<AtomicBool>,
}

impl Respond for Llm {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let answer = ResponseTemplate::new(200).set_body_json(
            json!({"choices": [{"message": {"role": "assistant", "content": ANSWER}}]}),
        );
        if self.hanging.load(Ordering::Relaxed) {
            answer.set_delay(Duration::from_secs(5))
        } else {
            answer
        }
    }
}

async fn an_auto_reply_interrupted_by_kill_9_is_sent_once_after_the_restart(backend: Backend) {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(graph_path()))
        .respond_with(Accepting::new("wamid.reply"))
        .mount(&graph)
        .await;
    let llm = MockServer::start().await;
    let hanging = Arc::new(AtomicBool::new(true));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Llm {
            hanging: hanging.clone(),
        })
        .mount(&llm)
        .await;
    let (graph_uri, llm_base) = (graph.uri(), format!("{}/v1", llm.uri()));
    let mut server = ServerProcess::spawn(
        backend,
        &[
            ("WHATSAPP_API_BASE_URL", graph_uri.as_str()),
            ("WHATSAPP_ACCESS_TOKEN", TOKEN),
            ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
            ("WHATSAPP_TIMEOUT_MS", "500"),
            ("INSTAGRAM_TIMEOUT_MS", "500"),
            ("LLM_BASE_URL", llm_base.as_str()),
            ("LLM_MODEL", "test-model"),
            ("LLM_TIMEOUT_SECS", LLM_TIMEOUT_SECS),
            ("ASSISTANT_FALLBACK_REPLY", FALLBACK),
            ("ASSISTANT_AUTOREPLY", "true"),
        ],
    )
    .await;
    let delivery = text_delivery("wamid.ASK", "34600123456", "Ana", "¿A qué hora abrís?");
    let acknowledged = client()
        .post(server.url("/webhook/whatsapp"))
        .json(&delivery)
        .send()
        .await
        .expect("POST /webhook/whatsapp");
    assert_eq!(acknowledged.status(), 200);
    // Killed while the LLM is thinking, well within its time limit.
    let deadline = Instant::now() + Duration::from_secs(1);
    while llm.received_requests().await.unwrap_or_default().is_empty() {
        assert!(Instant::now() < deadline, "the LLM was never asked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    assert_eq!(
        graph.received_requests().await.map(|r| r.len()),
        Some(0),
        "nothing was sent before the kill"
    );

    hanging.store(false, Ordering::Relaxed);
    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let reply = loop {
        let sent = all_messages(&server)
            .await
            .into_iter()
            .find(|m| m["direction"] == "outbound" && m["status"] == "sent");
        if let Some(reply) = sent {
            break reply;
        }
        assert!(Instant::now() < deadline, "no auto-reply after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Whatever would answer twice has had time to.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        reply["content"], ANSWER,
        "the LLM's answer, not the fallback"
    );
    let stored = all_messages(&server).await;
    let question = &stored[0];
    assert_eq!(question["external_message_id"], "wamid.ASK");
    assert_eq!(reply["conversation_id"], question["conversation_id"]);
    assert_eq!(stored.len(), 2, "the question and one reply: {stored:?}");
    let sends = graph.received_requests().await.expect("recorded");
    assert_eq!(sends.len(), 1, "one send reached the Cloud API");
    let sent: Value = serde_json::from_slice(&sends[0].body).expect("JSON");
    assert_eq!(
        (sent["to"].as_str(), sent["text"]["body"].as_str()),
        (Some("34600123456"), Some(ANSWER))
    );
    assert_eq!(
        llm.received_requests().await.map(|r| r.len()),
        Some(2),
        "asked once before the kill and once after"
    );
}
