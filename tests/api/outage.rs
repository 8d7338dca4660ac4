//! A PostgreSQL that refuses our connections (`55000` the database does not accept
//! connections, `53300` too many connections) is an unreachable database: every route that
//! needs it answers 503 `database_unavailable`, never a 500, and recovers by itself.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{fresh_database, postgres_available, text_delivery, Backend, TestApp};

/// What the database refuses, and how to undo it.
const REFUSALS: [(&str, &str, &str); 2] = [
    (
        "55000 not accepting connections",
        "ALLOW_CONNECTIONS false",
        "ALLOW_CONNECTIONS true",
    ),
    (
        "53300 too many connections",
        "CONNECTION LIMIT 0",
        "CONNECTION LIMIT -1",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusing_connections_is_503_on_every_route_and_recovers() {
    if !postgres_available() {
        return;
    }
    // The server connects as a role of its own: a connection limit does not bind superusers.
    let (url, _) = fresh_database(Backend::Postgres).await;
    let database = url.rsplit('/').next().expect("name").to_string();
    let admin_url = std::env::var("SWITCHBOARD_TEST_PG").expect("SWITCHBOARD_TEST_PG");
    let admin = sqlx::PgPool::connect(&admin_url).await.expect("admin pool");
    let role = format!("{database}_app");
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("ALTER DATABASE {database} OWNER TO {role}"),
    ] {
        sqlx::query(&sql).execute(&admin).await.expect(&sql);
    }
    let app_url = url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let vars = vec![
        ("WHATSAPP_ACCESS_TOKEN".to_string(), "token".to_string()),
        ("WHATSAPP_PHONE_NUMBER_ID".to_string(), "1065".to_string()),
        // Nothing must reach the provider; a closed port makes sure nothing could.
        (
            "WHATSAPP_API_BASE_URL".to_string(),
            "http://127.0.0.1:9".to_string(),
        ),
    ];
    let app = TestApp::start(Backend::Postgres, app_url, None, vars).await;
    let conversation = app.create_conversation(1, "34600222333", "Ana").await["id"]
        .as_i64()
        .expect("id");

    for (what, refuse, allow) in REFUSALS {
        sqlx::query(&format!("ALTER DATABASE {database} {refuse}"))
            .execute(&admin)
            .await
            .expect(refuse);
        // Existing sessions end too, as when the server restarts.
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&database)
            .execute(&admin)
            .await
            .expect("terminate sessions");
        let started = Instant::now();
        let requests: [(&str, Value); 3] = [
            (
                "/api/v1/messages",
                json!({"conversation_id": conversation, "content": "x", "direction": "inbound"}),
            ),
            (
                "/webhook/whatsapp",
                text_delivery("wamid.refused", "34600222444", "Bea", "hola"),
            ),
            (
                "/api/v1/send",
                json!({"channel": "whatsapp", "to": "34600222333", "message": "hola"}),
            ),
        ];
        for (path, body) in requests {
            let response = app.post_json(path, &body).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 503, "{what}: POST {path}: {body}");
            assert_eq!(body["code"], "database_unavailable", "{what}: {path}");
        }
        assert_eq!(app.get("/api/v1/messages").await.status(), 503, "{what}");
        assert_eq!(app.get("/health").await.status(), 503, "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: answered instead of hanging"
        );

        sqlx::query(&format!("ALTER DATABASE {database} {allow}"))
            .execute(&admin)
            .await
            .expect(allow);
        let deadline = Instant::now() + Duration::from_secs(15);
        while app.get("/health").await.status() != 200 {
            assert!(Instant::now() < deadline, "{what}: health did not recover");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(app.get("/api/v1/messages").await.status(), 200, "{what}");
    }
    let (_, stored, _) = app.list("/api/v1/messages").await;
    assert_eq!(stored, Some(0), "nothing refused was stored");
    admin.close().await;
}
