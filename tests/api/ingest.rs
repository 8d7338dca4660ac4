//! Group commit of webhook deliveries: deliveries that queue up meanwhile share one transaction,
//! none is acknowledged before its commit, and one that fails does not fail its neighbours.

use std::time::Duration;

use sqlx::Connection;

use crate::helpers::{text_delivery, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    deliveries_queued_behind_a_lock_are_acknowledged_after_one_shared_commit,
    a_delivery_the_database_rejects_fails_alone,
    one_batch_stores_each_message_once_with_its_conversation_counts,
);

/// A second connection holding what the webhook's transaction needs: SQLite's write lock, or
/// PostgreSQL's `messages` table. Released (rolled back) by [`Blocker::release`].
pub(crate) enum Blocker {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Blocker {
    pub(crate) async fn hold(app: &TestApp) -> Blocker {
        match app.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&app.database_url)
                    .await
                    .expect("connect");
                sqlx::raw_sql("BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .expect("lock messages");
                Blocker::Postgres(conn)
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                    .await
                    .expect("connect");
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .expect("take the write lock");
                Blocker::Sqlite(conn)
            }
        }
    }

    pub(crate) async fn release(self) {
        match self {
            Blocker::Postgres(mut conn) => sqlx::raw_sql("ROLLBACK")
                .execute(&mut conn)
                .await
                .map(|_| ()),
            Blocker::Sqlite(mut conn) => sqlx::raw_sql("ROLLBACK")
                .execute(&mut conn)
                .await
                .map(|_| ()),
        }
        .expect("release");
    }
}

/// Posts a delivery of one text message in the background; the handle yields the status.
pub(crate) fn deliver(
    app: &TestApp,
    wamid: &str,
    from: &str,
    body: &str,
) -> tokio::task::JoinHandle<u16> {
    let request = app
        .client
        .post(app.url("/webhook/whatsapp"))
        .json(&text_delivery(wamid, from, "Ana", body));
    tokio::spawn(async move {
        request
            .send()
            .await
            .expect("POST webhook")
            .status()
            .as_u16()
    })
}

/// A counter's value from `GET /metrics`.
pub(crate) async fn counter(app: &TestApp, name: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

async fn deliveries_queued_behind_a_lock_are_acknowledged_after_one_shared_commit(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let blocker = Blocker::hold(&app).await;
    let pending: Vec<_> = (0..20)
        .map(|i| deliver(&app, &format!("wamid.batch-{i}"), "34633333333", "queued"))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        pending.iter().all(|p| !p.is_finished()),
        "a delivery was acknowledged before anything could commit"
    );
    let (_, stored, _) = app.list("/api/v1/messages").await;
    assert_eq!(stored, Some(0));
    blocker.release().await;
    for p in pending {
        assert_eq!(p.await.expect("task"), 200);
    }
    let (_, stored, _) = app.list("/api/v1/messages").await;
    assert_eq!(stored, Some(20));
    let batches = counter(&app, "switchboard_webhook_batches_total").await;
    let batched = counter(&app, "switchboard_webhook_batched_deliveries_total").await;
    assert_eq!(batched, 20);
    // The first delivery's transaction waits on the lock alone; the others queue behind it and
    // commit together.
    assert!(batches < 10, "20 deliveries took {batches} transactions");
    assert_eq!(
        counter(&app, "switchboard_webhook_batches_retried_total").await,
        0
    );
}

async fn a_delivery_the_database_rejects_fails_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A fault the database raises for one message's content, as a constraint would.
    let trigger = match backend {
        Backend::Postgres => {
            "CREATE FUNCTION reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.content = 'poison' THEN RAISE EXCEPTION 'poison'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER reject_poison BEFORE INSERT ON messages \
             FOR EACH ROW EXECUTE FUNCTION reject_poison()"
        }
        Backend::Sqlite => {
            "CREATE TRIGGER reject_poison BEFORE INSERT ON messages \
             WHEN NEW.content = 'poison' BEGIN SELECT RAISE(ABORT, 'poison'); END"
        }
    };
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::raw_sql(trigger).execute(&mut conn).await.map(|_| ())
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::raw_sql(trigger).execute(&mut conn).await.map(|_| ())
        }
    }
    .expect("create the trigger");

    let blocker = Blocker::hold(&app).await;
    // The first delivery takes the writer and waits on the lock; the next ten queue behind it
    // and will share a transaction.
    let first = deliver(&app, "wamid.first", "34644444444", "first");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let neighbours: Vec<_> = (0..10)
        .map(|i| {
            let body = if i == 4 { "poison" } else { "fine" };
            deliver(&app, &format!("wamid.n-{i}"), "34644444444", body)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    blocker.release().await;

    assert_eq!(first.await.expect("task"), 200);
    let mut statuses = Vec::new();
    for n in neighbours {
        statuses.push(n.await.expect("task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 9);
    assert_eq!(
        statuses[4], 500,
        "the rejected delivery is not acknowledged"
    );
    let (_, stored, messages) = app.list("/api/v1/messages?limit=100").await;
    assert_eq!(stored, Some(10));
    let contents: Vec<&str> = messages
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert!(!contents.contains(&"poison"));
    assert_eq!(
        counter(&app, "switchboard_webhook_batches_retried_total").await,
        1
    );
}

/// A batch recorded with one look-up and one insert (src/inbox/batch.rs) stores what one
/// delivery at a time would: a copy of a message in the same batch stores nothing, a new
/// conversation is created once, and the counts the lists show are right.
async fn one_batch_stores_each_message_once_with_its_conversation_counts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Bea's conversation exists before the batch, with one message.
    assert_eq!(
        deliver(&app, "wamid.bea-0", "34600000002", "earlier")
            .await
            .expect("task"),
        200
    );
    let blocker = Blocker::hold(&app).await;
    let pending = vec![
        deliver(&app, "wamid.ana-1", "34600000001", "first"),
        deliver(&app, "wamid.bea-1", "34600000002", "again"),
        deliver(&app, "wamid.ana-1", "34600000001", "first"),
        deliver(&app, "wamid.ana-2", "34600000001", "second"),
        deliver(&app, "wamid.ana-2", "34600000001", "second"),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    blocker.release().await;
    for p in pending {
        assert_eq!(p.await.expect("task"), 200);
    }
    let (_, stored, _) = app.list("/api/v1/messages").await;
    assert_eq!(stored, Some(4), "each wamid stored once");
    let (_, total, conversations) = app.list("/api/v1/conversations").await;
    assert_eq!(total, Some(2));
    let unread = |identifier: &str| {
        conversations
            .as_array()
            .expect("a list")
            .iter()
            .find(|c| c["participant_identifier"] == identifier)
            .unwrap_or_else(|| panic!("no conversation of {identifier}: {conversations}"))
            ["unread_count"]
            .clone()
    };
    assert_eq!(unread("34600000001"), 2);
    assert_eq!(unread("34600000002"), 2);
    let batched = counter(&app, "switchboard_webhook_batched_deliveries_total").await;
    assert_eq!(batched, 6);
    assert_eq!(
        counter(&app, "switchboard_webhook_batches_retried_total").await,
        0
    );
}
