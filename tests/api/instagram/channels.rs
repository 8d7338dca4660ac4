//! Instagram among the channels: whether it can send (`configured`, 503 otherwise), the
//! assistant answering DMs when the operator turns it on, and Instagram's conversations never
//! mixed with WhatsApp's.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use super::{
    accepted, app_with_graph, deliver, dm, eventually, messages, read, send, send_path,
    sent_bodies, ACCOUNT_ID, ANA,
};
use crate::helpers::{text_delivery, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    without_credentials_instagram_is_not_configured_and_sends_are_503,
    the_assistant_answers_instagram_dms_when_turned_on_without_the_agents_tag,
    conversations_and_messages_of_the_two_channels_never_mix,
);

async fn configured(app: &TestApp) -> Value {
    let (status, _, channels) = app.list("/api/v1/channels").await;
    assert_eq!(status, 200);
    channels
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "instagram")
        .map(|c| c["configured"].clone())
        .expect("the instagram channel")
}

async fn without_credentials_instagram_is_not_configured_and_sends_are_503(backend: Backend) {
    let bare = TestApp::spawn(backend).await;
    assert_eq!(configured(&bare).await, false);
    let (status, body) = send(&bare, json!({"to": ANA, "message": "hola"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "channel_not_configured");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("INSTAGRAM_ACCESS_TOKEN") && detail.contains("INSTAGRAM_ACCOUNT_ID"),
        "{detail}"
    );
    assert!(messages(&bare).await.is_empty());
    assert_eq!(
        bare.list("/api/v1/conversations").await.1,
        Some(0),
        "nothing stored"
    );
    // Webhooks still come in; nobody is looked up without a token.
    deliver(&bare, &dm("m.1", ANA, "hola")).await;
    assert_eq!(messages(&bare).await.len(), 1);

    let half = TestApp::spawn_with(backend, &[("INSTAGRAM_ACCESS_TOKEN", "t")]).await;
    assert_eq!(
        configured(&half).await,
        false,
        "the account id is needed too"
    );
    let (app, _graph) = app_with_graph(backend, &[]).await;
    assert_eq!(configured(&app).await, true);
}

async fn the_assistant_answers_instagram_dms_when_turned_on_without_the_agents_tag(
    backend: Backend,
) {
    let fallback = "¡Gracias! Te respondemos enseguida.";
    let (app, graph) = app_with_graph(
        backend,
        &[
            ("ASSISTANT_AUTOREPLY", "instagram"),
            ("ASSISTANT_FALLBACK_REPLY", fallback),
            ("INSTAGRAM_HUMAN_AGENT_TAG", "true"),
        ],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(accepted(ANA, "mid.ANY"))
        .up_to_n_times(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(accepted(ANA, "mid.AGENT"))
        .mount(&graph)
        .await;
    deliver(&app, &dm("m.q", ANA, "¿Abrís el domingo?")).await;
    eventually("the assistant answered", || async {
        messages(&app)
            .await
            .iter()
            .any(|m| m["sender_name"] == "assistant" && m["status"] == "sent")
    })
    .await;
    let bodies = sent_bodies(&graph).await;
    assert_eq!(
        bodies,
        vec![json!({"recipient": {"id": ANA}, "message": {"text": fallback}})],
        "the assistant never uses the HUMAN_AGENT tag"
    );
    // Its echo changes nothing, and files get no answer.
    deliver(&app, &super::echo("mid.ANY", ANA, fallback)).await;
    let mention = super::envelope(vec![
        json!({"sender": {"id": ANA}, "recipient": {"id": ACCOUNT_ID}, "timestamp": 1736330500000_i64,
        "message": {"mid": "m.mention", "attachments": [{"type": "story_mention", "payload": {"url": "https://lookaside.fbsbx.com/s"}}]}}),
    ]);
    deliver(&app, &mention).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent_bodies(&graph).await.len(), 1);
    assert_eq!(messages(&app).await.len(), 3);

    // An agent's reply carries the tag (7 days to answer).
    let (status, body) = send(&app, json!({"to": ANA, "message": "Sí, de 10 a 14"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sent_bodies(&graph).await[1],
        json!({"recipient": {"id": ANA}, "message": {"text": "Sí, de 10 a 14"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"})
    );

    // Auto-replies on WhatsApp only: Instagram DMs wait for an agent.
    let (quiet, quiet_graph) =
        app_with_graph(backend, &[("ASSISTANT_AUTOREPLY", "whatsapp")]).await;
    deliver(&quiet, &dm("m.q", ANA, "¿Abrís el domingo?")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sent_bodies(&quiet_graph).await.is_empty());
}

/// The same digits as a WhatsApp number and as an IGSID, and the same provider id on both
/// channels: two conversations, each with its own messages, sends and receipts.
async fn conversations_and_messages_of_the_two_channels_never_mix(backend: Backend) {
    let whatsapp_graph = MockServer::start().await;
    let instagram_graph = MockServer::start().await;
    let (wa_uri, ig_uri) = (whatsapp_graph.uri(), instagram_graph.uri());
    let app = TestApp::spawn_with(
        backend,
        &[
            ("WHATSAPP_API_BASE_URL", wa_uri.as_str()),
            ("WHATSAPP_ACCESS_TOKEN", "wa-token"),
            ("WHATSAPP_PHONE_NUMBER_ID", "106540352242922"),
            ("INSTAGRAM_API_BASE_URL", ig_uri.as_str()),
            ("INSTAGRAM_ACCESS_TOKEN", super::TOKEN),
            ("INSTAGRAM_ACCOUNT_ID", ACCOUNT_ID),
        ],
    )
    .await;
    let same = "34600123456";
    Mock::given(method("POST"))
        .and(path("/v26.0/106540352242922/messages"))
        .respond_with(crate::whatsapp::accepted("shared-id"))
        .expect(1)
        .mount(&whatsapp_graph)
        .await;
    Mock::given(method("POST"))
        .and(path(send_path()))
        .respond_with(accepted(same, "shared-id"))
        .expect(1)
        .mount(&instagram_graph)
        .await;
    assert_eq!(
        app.post_json(
            "/webhook/whatsapp",
            &text_delivery("same-mid", same, "Ana WA", "por WhatsApp")
        )
        .await
        .status(),
        200
    );
    deliver(&app, &dm("same-mid", same, "por Instagram")).await;
    let (_, total, conversations) = app.list("/api/v1/conversations").await;
    assert_eq!(total, Some(2));
    let by_channel = |channel: i64| {
        conversations
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["channel_id"] == channel)
            .map(|c| c["id"].as_i64().expect("id"))
            .expect("a conversation per channel")
    };
    let (wa, ig) = (by_channel(1), by_channel(2));
    assert_ne!(wa, ig);
    let (status, wa_reply) = crate::whatsapp::send(&app, same, "respuesta WA").await;
    assert_eq!(status, 200, "{wa_reply}");
    let (status, ig_reply) = send(&app, json!({"to": same, "message": "respuesta IG"})).await;
    assert_eq!(status, 200, "{ig_reply}");
    assert_eq!(
        (
            wa_reply["conversation_id"].as_i64(),
            ig_reply["conversation_id"].as_i64()
        ),
        (Some(wa), Some(ig))
    );
    // The same provider id on both channels: each stored, each its own.
    assert_eq!(wa_reply["message_id"], "shared-id");
    assert_eq!(ig_reply["message_id"], "shared-id");

    for (conversation, channel, texts) in [
        (wa, "whatsapp", ["por WhatsApp", "respuesta WA"]),
        (ig, "instagram", ["por Instagram", "respuesta IG"]),
    ] {
        let (_, _, listed) = app
            .list(&format!(
                "/api/v1/conversations/{conversation}/messages?order=asc"
            ))
            .await;
        let contents: Vec<Value> = listed
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["content"].clone())
            .collect();
        assert_eq!(contents, texts.map(|t| json!(t)).to_vec(), "{channel}");
        let (_, total, _) = app
            .list(&format!("/api/v1/messages?channel={channel}"))
            .await;
        assert_eq!(total, Some(2), "{channel}");
    }
    // An Instagram read receipt reads Instagram's reply only.
    deliver(&app, &read(same, "shared-id")).await;
    let statuses: Vec<(Value, Value)> = messages(&app)
        .await
        .iter()
        .filter(|m| m["direction"] == "outbound")
        .map(|m| (m["conversation_id"].clone(), m["status"].clone()))
        .collect();
    assert!(
        statuses.contains(&(json!(ig), json!("read"))),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(json!(wa), json!("sent"))),
        "{statuses:?}"
    );
}
