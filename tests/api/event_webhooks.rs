//! Event webhooks: every change POSTed to a real local receiver, signed, with the WebSocket's
//! `data`; retried with the same delivery id; in order per conversation while other
//! conversations flow; nothing lost across a restart while the receiver is down; the API
//! unaffected by a hanging receiver; two instances delivering each event once; given-up events
//! counted; finished events pruned.

mod receiver;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use sqlx::Connection;

use self::receiver::{always, Answer, Received, Receiver};
use crate::helpers::{fresh_database, postgres_available, text_delivery, Backend, TestApp};
use crate::ingest::counter;
use crate::on_both_backends;
use crate::whatsapp::status_delivery;

on_both_backends!(
    every_change_reaches_the_receiver_signed_with_the_websockets_data,
    without_a_secret_deliveries_carry_no_signature,
    a_failed_delivery_is_retried_with_the_same_delivery_id_and_body,
    a_conversations_later_events_wait_for_its_first_while_others_flow,
    events_stored_while_the_receiver_is_down_all_arrive_after_a_restart,
    a_hanging_receiver_does_not_hold_up_the_api_or_the_sockets,
    an_event_retried_past_the_window_is_given_up_counted_and_its_conversation_moves_on,
    finished_events_are_pruned_and_nothing_is_recorded_without_a_url,
);

const SECRET: &str = "whsec_5up3r-s3cret";
const WAIT: Duration = Duration::from_secs(20);

async fn app_for(backend: Backend, receiver_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("EVENT_WEBHOOK_URL", receiver_url),
        ("EVENT_WEBHOOK_RETRY_BASE_MS", "100"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

/// Posts a WhatsApp webhook delivery of one text message, asserting 200.
async fn inbound(app: &TestApp, wamid: &str, from: &str, body: &str) {
    let response = app
        .post_json(
            "/webhook/whatsapp",
            &text_delivery(wamid, from, "Ana", body),
        )
        .await;
    assert_eq!(response.status(), 200, "webhook");
}

fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("a key");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Waits until no event is pending (a delivery is recorded just after the receiver took it).
async fn settled(app: &TestApp) {
    for _ in 0..200 {
        if counter(app, "switchboard_event_webhooks_pending").await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("events still pending after their delivery");
}

/// Labels of the accepted events of each conversation, in the order they were accepted.
fn by_conversation(accepted: &[Received]) -> HashMap<i64, Vec<String>> {
    let mut map: HashMap<i64, Vec<String>> = HashMap::new();
    for r in accepted {
        map.entry(r.conversation()).or_default().push(r.label());
    }
    map
}

async fn every_change_reaches_the_receiver_signed_with_the_websockets_data(backend: Backend) {
    let receiver = Receiver::start(always(204)).await;
    let app = app_for(
        backend,
        &receiver.url("/hooks/switchboard"),
        &[("EVENT_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    let mut socket = app.websocket("/").await;
    // Each kind of change: a conversation and a message from a webhook, a rename, an outbound
    // message recorded, and its status from Meta.
    inbound(&app, "wamid.IN1", "34600000001", "hola").await;
    let created = socket.next_event().await;
    let conversation = created["data"]["id"].as_i64().expect("conversation id");
    let mut shown = vec![created, socket.next_event().await];
    let renamed = app
        .patch_json(
            &format!("/api/v1/conversations/{conversation}"),
            &json!({"participant_name": "Ana María"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    shown.push(socket.next_event().await);
    app.message(
        conversation,
        json!({"direction": "outbound", "external_message_id": "wamid.OUT1", "content": "¿En qué te ayudo? \"ñ\""}),
    )
    .await;
    shown.push(socket.next_event().await);
    let status = app
        .post_json(
            "/webhook/whatsapp",
            &status_delivery("wamid.OUT1", "delivered", None),
        )
        .await;
    assert_eq!(status.status(), 200);
    shown.push(socket.next_event().await);
    let kinds: Vec<_> = shown.iter().map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            Some("new_conversation"),
            Some("new_message"),
            Some("conversation_updated"),
            Some("new_message"),
            Some("message_status")
        ]
    );

    let got = receiver.wait_accepted(shown.len(), WAIT).await;
    assert_eq!(got.len(), shown.len(), "each event once");
    let now = chrono::Utc::now().timestamp();
    let mut ids = HashSet::new();
    for (hook, ws) in got.iter().zip(&shown) {
        let event = &hook.event;
        let keys: HashSet<_> = event
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, HashSet::from(["id", "type", "created_at", "data"]));
        assert_eq!(event["type"], ws["type"]);
        assert_eq!(event["data"], ws["data"], "data as on the WebSocket");
        let id = event["id"].as_str().expect("id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert!(ids.insert(id.to_string()), "ids are unique");
        assert!(chrono::DateTime::parse_from_rfc3339(
            event["created_at"].as_str().expect("created_at")
        )
        .is_ok());
        assert_eq!(hook.header("x-switchboard-event"), event["type"].as_str());
        assert_eq!(hook.header("x-switchboard-delivery"), Some(id));
        assert_eq!(hook.header("content-type"), Some("application/json"));
        let timestamp = hook.header("x-switchboard-timestamp").expect("timestamp");
        let seconds: i64 = timestamp.parse().expect("Unix seconds");
        assert!(
            (now - 60..=now + 5).contains(&seconds),
            "{seconds} vs {now}"
        );
        assert_eq!(
            hook.header("x-switchboard-signature"),
            Some(signature(SECRET, timestamp, &hook.body).as_str()),
            "HMAC-SHA256 of TIMESTAMP.BODY"
        );
        assert_ne!(
            hook.header("x-switchboard-signature"),
            Some(signature("another secret", timestamp, &hook.body).as_str())
        );
    }
    assert_eq!(
        counter(&app, "switchboard_event_webhooks_delivered_total").await,
        5
    );
    settled(&app).await;
}

async fn without_a_secret_deliveries_carry_no_signature(backend: Backend) {
    let receiver = Receiver::start(always(200)).await;
    let app = app_for(backend, &receiver.url("/"), &[]).await;
    inbound(&app, "wamid.U1", "34600000002", "sin firma").await;
    let got = receiver.wait_accepted(2, WAIT).await;
    for hook in got {
        assert_eq!(hook.header("x-switchboard-signature"), None);
        assert!(hook.header("x-switchboard-timestamp").is_some());
        assert_eq!(
            hook.header("x-switchboard-delivery"),
            hook.event["id"].as_str()
        );
    }
}

async fn a_failed_delivery_is_retried_with_the_same_delivery_id_and_body(backend: Backend) {
    // A timeout, a 500, a redirect (not followed) and a refusal before the receiver takes it.
    let receiver = Receiver::start(Box::new(|_, attempt, _| match attempt {
        1 => Answer::Hang,
        2 => Answer::Status(500),
        3 => Answer::Status(302),
        4 => Answer::Status(400),
        _ => Answer::Status(200),
    }))
    .await;
    let app = app_for(
        backend,
        &receiver.url("/hook"),
        &[
            ("EVENT_WEBHOOK_SECRET", SECRET),
            ("EVENT_WEBHOOK_TIMEOUT_SECS", "0.5"),
        ],
    )
    .await;
    let conversation = app.create_conversation(1, "+34 600 000 003", "Eva").await;
    let accepted = receiver.wait_accepted(1, WAIT).await;
    let attempts: Vec<Received> = receiver
        .log()
        .into_iter()
        .filter(|r| r.delivery() == accepted[0].delivery())
        .collect();
    assert_eq!(attempts.len(), 5, "four failures, then taken");
    assert_eq!(accepted[0].event["data"]["id"], conversation["id"]);
    let mut last = 0;
    for attempt in &attempts {
        assert_eq!(attempt.body, attempts[0].body, "the same bytes every time");
        let timestamp = attempt
            .header("x-switchboard-timestamp")
            .expect("timestamp");
        let seconds: i64 = timestamp.parse().expect("seconds");
        assert!(seconds >= last, "each attempt carries its own time");
        last = seconds;
        assert_eq!(
            attempt.header("x-switchboard-signature"),
            Some(signature(SECRET, timestamp, &attempt.body).as_str())
        );
    }
    assert_eq!(
        counter(&app, "switchboard_event_webhooks_retries_total").await,
        4
    );
    assert_eq!(
        counter(&app, "switchboard_event_webhooks_delivered_total").await,
        1
    );
    receiver.release();
}

async fn a_conversations_later_events_wait_for_its_first_while_others_flow(backend: Backend) {
    // Conversation A's first event fails until it has been tried four times and every event of
    // B has been taken: B must not wait for A, and A's later events must wait for its first.
    let receiver = Receiver::start(Box::new(|request, attempt, log| {
        let blocked = request.event["type"] == "new_conversation"
            && request.event["data"]["external_id"] == "34600000010";
        let b_done = log
            .iter()
            .filter(|r| r.accepted() && r.event.to_string().contains("34600000020"))
            .count()
            >= 3;
        if blocked && (attempt < 4 || !b_done) {
            Answer::Status(503)
        } else {
            Answer::Status(200)
        }
    }))
    .await;
    let app = app_for(backend, &receiver.url("/hook"), &[]).await;
    for i in 1..=3 {
        inbound(
            &app,
            &format!("wamid.A{i}"),
            "34600000010",
            &format!("a{i}"),
        )
        .await;
    }
    inbound(&app, "wamid.B1", "34600000020", "b1").await;
    inbound(&app, "wamid.B2", "34600000020", "b2").await;
    let accepted = receiver.wait_accepted(7, WAIT).await;
    let log = receiver.log();
    let a_head = log
        .iter()
        .position(|r| r.accepted() && r.event["data"]["external_id"] == "34600000010")
        .expect("A's first event taken");
    assert!(
        log[..a_head]
            .iter()
            .filter(|r| r.event["data"]["external_id"] == "34600000010")
            .count()
            >= 3,
        "A's first event failed before it was taken"
    );
    assert!(
        !log[..a_head]
            .iter()
            .any(|r| r.label().starts_with("new_message:a")),
        "an event of A was sent while its first one was undelivered"
    );
    let orders = by_conversation(&accepted);
    let a = accepted[accepted.len() - 1].conversation();
    assert_eq!(
        orders[&a],
        [
            "new_conversation",
            "new_message:a1",
            "new_message:a2",
            "new_message:a3"
        ]
    );
    let b = orders
        .iter()
        .find(|(id, _)| **id != a)
        .map(|(_, events)| events.clone())
        .expect("B");
    assert_eq!(b, ["new_conversation", "new_message:b1", "new_message:b2"]);
}

async fn events_stored_while_the_receiver_is_down_all_arrive_after_a_restart(backend: Backend) {
    // A port nobody listens on (yet): every attempt is refused.
    let address = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address")
    };
    let url = format!("http://{address}/hook");
    let app = app_for(backend, &url, &[]).await;
    let senders = ["34600000031", "34600000032", "34600000033"];
    for round in 1..=3 {
        for sender in senders {
            inbound(
                &app,
                &format!("wamid.{sender}.{round}"),
                sender,
                &format!("{sender}-{round}"),
            )
            .await;
        }
    }
    // Wait until each conversation's first event was refused at least once.
    for _ in 0..200 {
        if counter(&app, "switchboard_event_webhooks_retries_total").await >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counter(&app, "switchboard_event_webhooks_retries_total").await >= 3);
    assert_eq!(
        counter(&app, "switchboard_event_webhooks_pending").await,
        12
    );
    let app = app.restart().await;
    let receiver = Receiver::start_on(address, always(200)).await;
    let accepted = receiver.wait_accepted(12, WAIT).await;
    let ids: HashSet<_> = accepted.iter().map(|r| r.delivery().to_string()).collect();
    assert_eq!(ids.len(), 12, "every event, each once");
    for (_, events) in by_conversation(&accepted) {
        assert_eq!(events[0], "new_conversation");
        let contents: Vec<_> = events[1..].to_vec();
        let mut sorted = contents.clone();
        sorted.sort();
        assert_eq!(contents, sorted, "in the order stored");
        assert_eq!(contents.len(), 3);
    }
    settled(&app).await;
}

async fn a_hanging_receiver_does_not_hold_up_the_api_or_the_sockets(backend: Backend) {
    let receiver = Receiver::start(Box::new(|_, _, _| Answer::Hang)).await;
    let app = app_for(
        backend,
        &receiver.url("/hook"),
        &[
            ("EVENT_WEBHOOK_TIMEOUT_SECS", "120"),
            ("EVENT_WEBHOOK_CONCURRENCY", "3"),
        ],
    )
    .await;
    let mut socket = app.websocket("/").await;
    inbound(&app, "wamid.H0", "34600000040", "first").await;
    // The receiver now holds the worker's every slot.
    for i in 1..=3 {
        inbound(
            &app,
            &format!("wamid.H{i}"),
            &format!("3460000004{i}"),
            "fill",
        )
        .await;
    }
    receiver
        .wait_until(WAIT, "three deliveries hang", |log| log.len() >= 3)
        .await;
    // Requests complete and sockets hear of them while every delivery hangs. A client timeout
    // turns a request held up by the receiver into a failure.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for _ in 0..8 {
        assert!(socket.next_event().await["type"].is_string());
    }
    for i in 0..20 {
        let response = client
            .post(app.url("/webhook/whatsapp"))
            .json(&text_delivery(
                &format!("wamid.H-{i}"),
                &format!("346000005{i:02}"),
                "Ana",
                "while hanging",
            ))
            .send()
            .await
            .expect("the webhook answers while the receiver hangs");
        assert_eq!(response.status(), 200);
        assert_eq!(socket.next_event().await["type"], "new_conversation");
        assert_eq!(
            socket.next_event().await["data"]["content"],
            "while hanging"
        );
        let listed = client
            .get(app.url("/api/v1/conversations?limit=1"))
            .send()
            .await
            .expect("reads answer while the receiver hangs");
        assert_eq!(listed.status(), 200);
    }
    assert_eq!(receiver.hanging(), 3, "deliveries in flight are bounded");
    assert_eq!(receiver.log().len(), 3, "nothing else was sent meanwhile");
    receiver.release();
    receiver.wait_accepted(48, WAIT).await;
}

async fn an_event_retried_past_the_window_is_given_up_counted_and_its_conversation_moves_on(
    backend: Backend,
) {
    let receiver = Receiver::start(Box::new(|request, _, _| {
        if request.event["type"] == "new_conversation"
            && request.event["data"]["external_id"] == "34600000060"
        {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    }))
    .await;
    // A retry window of about a second.
    let app = app_for(
        backend,
        &receiver.url("/hook"),
        &[("EVENT_WEBHOOK_RETRY_HOURS", "0.0003")],
    )
    .await;
    inbound(&app, "wamid.G1", "34600000060", "after the give-up").await;
    let accepted = receiver.wait_accepted(1, WAIT).await;
    assert_eq!(accepted[0].label(), "new_message:after the give-up");
    let failures = receiver
        .log()
        .iter()
        .filter(|r| r.event["type"] == "new_conversation")
        .count();
    assert!(failures >= 2, "retried before it was given up ({failures})");
    assert_eq!(
        counter(&app, "switchboard_event_webhooks_given_up_total").await,
        1
    );
    settled(&app).await;
}

/// Rows in the `event_webhooks` table.
async fn stored_events(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM event_webhooks";
    match app.backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
    }
}

async fn finished_events_are_pruned_and_nothing_is_recorded_without_a_url(backend: Backend) {
    let plain = TestApp::spawn(backend).await;
    inbound(&plain, "wamid.P0", "34600000070", "no webhook").await;
    assert_eq!(stored_events(&plain).await, 0);

    let receiver = Receiver::start(always(200)).await;
    let app = app_for(
        backend,
        &receiver.url("/hook"),
        &[("EVENT_WEBHOOK_RETENTION_HOURS", "0")],
    )
    .await;
    // Past the first pruning pass after start-up, so these wait for the next start.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    inbound(&app, "wamid.P1", "34600000071", "kept a while").await;
    receiver.wait_accepted(2, WAIT).await;
    assert_eq!(stored_events(&app).await, 2, "kept until pruning runs");
    let app = app.restart().await;
    for _ in 0..100 {
        if stored_events(&app).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("finished events were not pruned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_event_once_in_order_per_conversation() {
    if !postgres_available() {
        return;
    }
    // A receiver that takes a moment, so both instances have deliveries in flight together.
    let receiver = Receiver::start(Box::new(|_, _, _| {
        Answer::After(Duration::from_millis(5), 200)
    }))
    .await;
    let url = receiver.url("/hook");
    let (database, _) = fresh_database(Backend::Postgres).await;
    let vars = vec![("EVENT_WEBHOOK_URL".to_string(), url)];
    let a = TestApp::start(Backend::Postgres, database.clone(), None, vars.clone()).await;
    let b = TestApp::start(Backend::Postgres, database, None, vars).await;
    let senders: Vec<String> = (0..10).map(|i| format!("3460000008{i}")).collect();
    for round in 0..10 {
        for (i, sender) in senders.iter().enumerate() {
            let app = if (round + i) % 2 == 0 { &a } else { &b };
            inbound(
                app,
                &format!("wamid.{sender}.{round}"),
                sender,
                &format!("m{round}"),
            )
            .await;
        }
    }
    let accepted = receiver.wait_accepted(110, WAIT).await;
    // Give a (wrong) second delivery the time to happen before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = receiver.log();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for r in &log {
        *per_id.entry(r.delivery()).or_default() += 1;
    }
    let doubled: Vec<_> = per_id.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "sent more than once: {doubled:?}");
    assert_eq!(accepted.len(), 110);
    for (_, events) in by_conversation(&accepted) {
        let expected: Vec<String> = std::iter::once("new_conversation".to_string())
            .chain((0..10).map(|i| format!("new_message:m{i}")))
            .collect();
        assert_eq!(events, expected);
    }
    let on_a = counter(&a, "switchboard_event_webhooks_delivered_total").await;
    let on_b = counter(&b, "switchboard_event_webhooks_delivered_total").await;
    assert_eq!(on_a + on_b, 110);
    assert!(
        on_a > 0 && on_b > 0,
        "both instances delivered ({on_a}, {on_b})"
    );
}
