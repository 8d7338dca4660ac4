//! `TestApp`: one server on a fresh database, with a helper per endpoint.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard::app::App;
use switchboard::config::Config;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod cluster;
pub mod process;
pub mod proxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn NAME(backend: Backend)` once per backend, as `NAME::sqlite` and
/// `NAME::postgres`. Without `SWITCHBOARD_TEST_PG` the PostgreSQL run is skipped, except under
/// `CI=true`, where it fails.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_available() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        }
    )*};
}

/// The admin URL of the test cluster, if any. Panics under `CI=true` when it is missing.
pub fn postgres_available() -> bool {
    match std::env::var("SWITCHBOARD_TEST_PG") {
        Ok(url) if !url.is_empty() => true,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but SWITCHBOARD_TEST_PG is not set: the PostgreSQL suite must run")
        }
        _ => {
            eprintln!("SWITCHBOARD_TEST_PG not set: skipping the PostgreSQL run");
            false
        }
    }
}

/// A fresh, empty database of `backend`; returns its URL.
pub async fn fresh_database(backend: Backend) -> (String, Option<PathBuf>) {
    let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("switchboard-tests");
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join(format!("{name}.db"));
            (format!("sqlite://{}", path.display()), Some(path))
        }
        Backend::Postgres => {
            let admin = std::env::var("SWITCHBOARD_TEST_PG").expect("SWITCHBOARD_TEST_PG");
            let pool = sqlx::PgPool::connect(&admin)
                .await
                .expect("connect to the test cluster");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .expect("create the test database");
            pool.close().await;
            (replace_database(&admin, &name), None)
        }
    }
}

/// `postgres://u@h:p/old` → `postgres://u@h:p/new`.
pub fn replace_database(url: &str, name: &str) -> String {
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
    format!("{base}/{name}")
}

/// A Cloud API webhook delivery of one text message from `from`, named `name`, shaped as Meta
/// sends it.
pub fn text_delivery(wamid: &str, from: &str, name: &str, body: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": [{"from": from, "id": wamid, "timestamp": "1736330400", "type": "text", "text": {"body": body}}]
    }}]}]})
}

/// A fresh PostgreSQL database reached through a proxy that can be cut: returns the proxy and
/// the URL that goes through it.
pub async fn proxied_postgres() -> (proxy::Proxy, String) {
    let (url, _) = fresh_database(Backend::Postgres).await;
    let rest = url
        .strip_prefix("postgres://postgres@")
        .expect("the test cluster's URL");
    let (host_port, database) = rest.split_once('/').expect("host/db");
    let target: std::net::SocketAddr = host_port.parse().expect("host:port");
    let proxy = proxy::Proxy::start(target).await;
    let proxied = format!("postgres://postgres@127.0.0.1:{}/{database}", proxy.port);
    (proxy, proxied)
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub database_url: String,
    pub backend: Backend,
    /// The server's services, for tests that hand it what no route takes (see `state`).
    state: Option<switchboard::http::AppState>,
    overrides: Vec<(String, String)>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    sqlite_file: Option<PathBuf>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, &[]).await
    }

    /// Starts a server with extra configuration variables.
    pub async fn spawn_with(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
        let (database_url, sqlite_file) = fresh_database(backend).await;
        let overrides = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TestApp::start(backend, database_url, sqlite_file, overrides).await
    }

    /// Starts a server on an existing database.
    pub async fn start(
        backend: Backend,
        database_url: String,
        sqlite_file: Option<PathBuf>,
        overrides: Vec<(String, String)>,
    ) -> TestApp {
        let mut overrides = overrides;
        // Each server keeps its files apart (tests share a process and a working directory); a
        // restart keeps the same directory.
        if !overrides.iter().any(|(k, _)| k == "MEDIA_DIR") {
            let media = std::env::temp_dir()
                .join("switchboard-tests")
                .join(format!("media-{}", uuid::Uuid::new_v4().simple()));
            overrides.push(("MEDIA_DIR".into(), media.display().to_string()));
        }
        let mut vars: Vec<(&str, &str)> = vec![
            ("DATABASE_URL", database_url.as_str()),
            ("DATABASE_MAX_CONNECTIONS", "5"),
        ];
        vars.extend(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let config = Config::with(&vars).expect("test configuration");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = App::build(config, listener).await.expect("build the app");
        let port = app.address().port();
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::new(),
            database_url,
            backend,
            state: Some(state),
            overrides,
            stop: Some(stop),
            server: Some(server),
            sqlite_file,
        }
    }

    /// The running server's services. A clone must not outlive the test's use of it: the
    /// server's shutdown waits for the last handle to its webhook queue.
    pub fn state(&self) -> &switchboard::http::AppState {
        self.state.as_ref().expect("the server is running")
    }

    /// Shuts the server down gracefully and waits for it.
    pub async fn stop(&mut self) {
        self.state = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), server).await;
            assert!(result.is_ok(), "the server did not stop within 15 s");
        }
    }

    /// Stops the server and starts a new one on the same database.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let (url, file, vars) = (
            self.database_url.clone(),
            self.sqlite_file.take(),
            self.overrides.clone(),
        );
        TestApp::start(self.backend, url, file, vars).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .json(body)
            .send()
            .await
            .expect("PATCH")
    }

    /// Creates a conversation and returns it.
    pub async fn create_conversation(
        &self,
        channel_id: i64,
        identifier: &str,
        name: &str,
    ) -> Value {
        let response = self
            .post_json(
                "/api/v1/conversations",
                &json!({"channel_id": channel_id, "participant_identifier": identifier, "participant_name": name}),
            )
            .await;
        assert_eq!(response.status(), 201, "create conversation");
        response.json().await.expect("conversation JSON")
    }

    /// Records a message with `fields` merged over sensible defaults; returns the response.
    pub async fn post_message(&self, conversation_id: i64, fields: Value) -> reqwest::Response {
        let mut body =
            json!({"conversation_id": conversation_id, "content": "hello", "direction": "inbound"});
        if let (Some(target), Value::Object(extra)) = (body.as_object_mut(), fields) {
            target.extend(extra);
        }
        self.post_json("/api/v1/messages", &body).await
    }

    /// Records a message and returns it, asserting 201.
    pub async fn message(&self, conversation_id: i64, fields: Value) -> Value {
        let response = self.post_message(conversation_id, fields).await;
        assert_eq!(response.status(), 201, "create message");
        response.json().await.expect("message JSON")
    }

    /// `GET path` → (status, X-Total-Count, JSON body).
    pub async fn list(&self, path: &str) -> (u16, Option<i64>, Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (status, total, response.json().await.expect("JSON body"))
    }

    /// Connects a WebSocket client to `path` and consumes the `connected` event.
    pub async fn websocket(&self, path: &str) -> Socket {
        let url = format!("ws://127.0.0.1:{}{}", self.port, path);
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connect");
        let mut socket = Socket { stream };
        let hello = socket.next_event().await;
        assert_eq!(hello["type"], "connected");
        socket
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(path) = self.sqlite_file.take() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// A real WebSocket client.
pub struct Socket {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Socket {
    /// The next text frame as JSON, skipping pings; fails after 10 s.
    pub async fn next_event(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("an event within 10 s")
                .expect("the socket is open")
                .expect("a frame");
            match frame {
                Frame::Text(text) => return serde_json::from_str(&text).expect("event JSON"),
                Frame::Ping(_) | Frame::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Asserts no text frame arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(Some(Ok(Frame::Text(text)))) =
            tokio::time::timeout(wait, self.stream.next()).await
        {
            panic!("expected no event, got {text}");
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Frame::text(text)).await.expect("send");
    }

    pub async fn send(&mut self, frame: Frame) {
        self.stream.send(frame).await.expect("send");
    }
}
