//! Instagram's webhooks carry no names: the customer is looked up after the commit, once per
//! conversation, and a look-up that fails or hangs delays and fails nothing.

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::ResponseTemplate;

use super::{
    app_with_graph, conversation, conversations, deliver, dm, eventually, graph_error, lookups,
    messages, post_raw, profile, ANA, LEO,
};
use crate::helpers::Backend;
use crate::on_both_backends;

on_both_backends!(
    a_new_customer_is_named_after_the_commit_and_looked_up_once,
    a_failed_lookup_leaves_the_conversation_unnamed_and_is_not_retried_per_message,
    a_hanging_lookup_delays_nothing,
    concurrent_first_messages_look_the_customer_up_once,
);

async fn a_new_customer_is_named_after_the_commit_and_looked_up_once(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    profile(
        &graph,
        ANA,
        ResponseTemplate::new(200)
            .set_body_json(json!({"name": "Ana Pérez", "username": "ana.perez", "id": ANA})),
        1,
    )
    .await;
    profile(
        &graph,
        LEO,
        ResponseTemplate::new(200).set_body_json(json!({"username": "leo_b", "id": LEO})),
        1,
    )
    .await;
    let mut socket = app.websocket("/").await;
    deliver(&app, &dm("m.1", ANA, "Hola")).await;
    let created = socket.next_event().await;
    assert_eq!(created["type"], "new_conversation");
    assert_eq!(
        created["data"]["participant_name"],
        json!(null),
        "the webhook has no name"
    );
    assert_eq!(created["data"]["external_id"], ANA);
    assert_eq!(socket.next_event().await["type"], "new_message");
    let named = socket.next_event().await;
    assert_eq!(named["type"], "conversation_updated");
    assert_eq!(named["data"]["participant_name"], "Ana Pérez");
    let id = named["data"]["id"].as_i64().expect("id");
    assert_eq!(
        conversation(&app, id).await["participant_name"],
        "Ana Pérez"
    );

    // Later messages never ask again.
    for n in 2..5 {
        deliver(&app, &dm(&format!("m.{n}"), ANA, "¿Sigues ahí?")).await;
        assert_eq!(socket.next_event().await["type"], "new_message");
    }
    socket.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(lookups(&graph, ANA).await, 1);

    // No name: the username, with its @.
    deliver(&app, &dm("m.leo", LEO, "hey")).await;
    eventually("Leo is named", || async {
        conversations(&app)
            .await
            .iter()
            .any(|c| c["external_id"] == LEO && c["participant_name"] == "@leo_b")
    })
    .await;

    // A conversation that already has a name (an agent gave it) is not looked up.
    let named = app
        .create_conversation(2, "7736091267494803", "Marta (agent's note)")
        .await;
    deliver(&app, &dm("m.marta", "7736091267494803", "hola")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lookups(&graph, "7736091267494803").await, 0);
    assert_eq!(
        conversation(&app, named["id"].as_i64().expect("id")).await["participant_name"],
        "Marta (agent's note)"
    );
}

async fn a_failed_lookup_leaves_the_conversation_unnamed_and_is_not_retried_per_message(
    backend: Backend,
) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    profile(
        &graph,
        ANA,
        graph_error(
            400,
            100,
            Some(33),
            "Unsupported get request. Object does not exist",
        ),
        1,
    )
    .await;
    for n in 0..4 {
        deliver(&app, &dm(&format!("m.{n}"), ANA, "hola")).await;
    }
    eventually("the look-up ran", || async {
        lookups(&graph, ANA).await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        lookups(&graph, ANA).await,
        1,
        "not retried, not per message"
    );
    let all = conversations(&app).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["participant_name"], json!(null));
    assert_eq!(messages(&app).await.len(), 4);
}

async fn a_hanging_lookup_delays_nothing(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[("INSTAGRAM_TIMEOUT_MS", "4000")]).await;
    profile(
        &graph,
        ANA,
        ResponseTemplate::new(200)
            .set_body_json(json!({"name": "Too late"}))
            .set_delay(Duration::from_secs(30)),
        1..,
    )
    .await;
    let started = Instant::now();
    deliver(&app, &dm("m.0", ANA, "hola")).await;
    eventually("the look-up started", || async {
        lookups(&graph, ANA).await == 1
    })
    .await;
    for n in 1..4 {
        let body = dm(&format!("m.{n}"), ANA, "¿hola?").to_string();
        assert_eq!(post_raw(&app, body.as_bytes(), None).await.status(), 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered while the look-up hangs: {:?}",
        started.elapsed()
    );
    assert_eq!(
        lookups(&graph, ANA).await,
        1,
        "one look-up, not one per message"
    );
    assert_eq!(messages(&app).await.len(), 4);
    assert_eq!(
        conversations(&app).await[0]["participant_name"],
        json!(null)
    );
}

async fn concurrent_first_messages_look_the_customer_up_once(backend: Backend) {
    let (app, graph) = app_with_graph(backend, &[]).await;
    profile(
        &graph,
        LEO,
        ResponseTemplate::new(200).set_body_json(json!({"name": "Leo"})),
        1,
    )
    .await;
    let bodies: Vec<String> = (0..30)
        .map(|i| dm(&format!("m.c{i}"), LEO, "hi").to_string())
        .collect();
    let requests = bodies.iter().map(|b| post_raw(&app, b.as_bytes(), None));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    eventually("Leo is named", || async {
        conversations(&app).await[0]["participant_name"] == "Leo"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lookups(&graph, LEO).await, 1);
}
