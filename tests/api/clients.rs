//! Real clients against the real server: curl running the README's commands, wscat on the
//! WebSocket hub, and Debian's headless Chromium (driven by playwright-core through
//! `tests/clients/browser.mjs`) loading a page from the frontend's origin, `http://localhost:3000`,
//! then from an origin that CORS does not allow.
//!
//! `scripts/install-test-tools` installs the tools. A missing tool skips its test with a line on
//! stderr, except under `CI=true`, where it fails. Every wait is bounded, and every child process
//! is stopped when its guard drops, on success and on panic alike.
//!
//! These tests are about the clients, not the store, so they run on SQLite only.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::helpers::{Backend, TestApp};

/// The port of the frontend's origin, `http://localhost:3000`: the default of `CORS_ORIGINS`.
const FRONTEND_PORT: u16 = 3000;
const STEP: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_curl_commands_list_messages_and_conversations() {
    let Some(curl) = require("curl", on_path("curl")) else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let messages = format!("http://localhost:{}/api/v1/messages", app.port);
    let conversations = format!("http://localhost:{}/api/v1/conversations", app.port);

    // The README's commands as written, on the test server's port.
    for url in [&messages, &conversations] {
        let (status, output) = run(&curl, &["-X", "GET", url]).await;
        assert!(status.success(), "curl -X GET {url}: {status}");
        let body: Value = serde_json::from_str(&output).expect("a JSON body");
        assert_eq!(body, json!([]), "{url} on an empty database");
    }

    let conversation = app.create_conversation(1, "+34 600 123 456", "Ana").await["id"]
        .as_i64()
        .expect("id");
    for content in ["Hola", "¿Qué tal?"] {
        app.message(conversation, json!({ "content": content }))
            .await;
    }

    let (status, headers, body) = curl_with_headers(&curl, &messages).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(headers.get("x-total-count").map(String::as_str), Some("2"));
    let mut contents: Vec<&str> = as_array(&body)
        .iter()
        .map(|m| m["content"].as_str().expect("content"))
        .collect();
    contents.sort_unstable();
    assert_eq!(contents, ["Hola", "¿Qué tal?"]);

    let (status, headers, body) = curl_with_headers(&curl, &conversations).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(headers.get("x-total-count").map(String::as_str), Some("1"));
    let listed = as_array(&body);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["participant_name"], "Ana");
    assert_eq!(listed[0]["unread_count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wscat_prints_the_new_message_event_of_a_posted_message() {
    let (Some(_node), Some(wscat)) = (
        require("node", on_path("node")),
        require("wscat", find_tool("wscat")),
    ) else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let conversation = app.create_conversation(1, "5550101", "Ana").await["id"]
        .as_i64()
        .expect("id");

    let mut command = Command::new(wscat);
    command.args(["--no-color", "-c", &format!("ws://127.0.0.1:{}", app.port)]);
    let mut wscat = Running::spawn("wscat", command);
    let hello = wscat
        .event("the connected event", |e| e["type"] == "connected")
        .await;
    assert!(hello["data"]["server_time"].is_string(), "{hello}");

    // What a person types at wscat's prompt.
    wscat.type_line(r#"{"type":"ping"}"#);
    wscat.event("pong", |e| e["type"] == "pong").await;

    let posted = app
        .message(conversation, json!({"content": "Hola desde wscat"}))
        .await;
    let event = wscat
        .event("the new_message event", |e| e["type"] == "new_message")
        .await;
    assert_eq!(event["data"]["id"], posted["id"]);
    assert_eq!(event["data"]["content"], "Hola desde wscat");
    assert_eq!(event["data"]["conversation_id"], conversation);
    assert_eq!(event["data"]["channel"], "whatsapp");
}

/// Both page loads share port 3000, so they live in this one test and run one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_on_the_frontend_origin_lists_conversations_and_shows_a_live_message_and_another_origin_is_refused(
) {
    let chromium = Path::new("/usr/bin/chromium")
        .is_file()
        .then(|| PathBuf::from("/usr/bin/chromium"));
    let playwright = clients_dir().join("node_modules/playwright-core/package.json");
    let (Some(node), Some(chromium), Some(_)) = (
        require("node", on_path("node")),
        require("chromium", chromium),
        require(
            "playwright-core",
            playwright.is_file().then_some(playwright),
        ),
    ) else {
        return;
    };
    // CORS_ORIGINS is left at its default, which is the frontend's origin.
    let app = TestApp::spawn(Backend::Sqlite).await;
    let conversation = app.create_conversation(1, "5550102", "Ana").await["id"]
        .as_i64()
        .expect("id");
    let _pages = PageServer::start().await;
    let api = format!("http://127.0.0.1:{}", app.port);

    // From the allowed origin: the list, the exposed total, then a message posted while the
    // page listens.
    let mut browser = browse(
        &node,
        &chromium,
        &format!("http://localhost:{FRONTEND_PORT}/?api={api}"),
        true,
    );
    let ready = browser.json_line("the page to be ready").await;
    assert_eq!(ready["stage"], "ready", "{ready}");
    assert_eq!(ready["origin"], "http://localhost:3000");
    assert_eq!(ready["fetch"], "ok 200", "{ready}");
    assert_eq!(ready["total"], "1", "X-Total-Count is exposed: {ready}");
    assert_eq!(ready["conversations"], json!(["Ana"]));
    assert_eq!(ready["socket"], "open", "{ready}");
    app.message(conversation, json!({"content": "Hola desde Chromium"}))
        .await;
    let done = browser.json_line("the message to show").await;
    assert_eq!(done["stage"], "done", "{done}");
    assert_eq!(done["messages"], json!(["Hola desde Chromium"]));
    let (status, _) = browser.finish(STEP).await;
    assert!(status.success(), "browser.mjs: {status}");

    // The same page from another origin: the browser withholds the response.
    let mut browser = browse(
        &node,
        &chromium,
        &format!("http://127.0.0.1:{FRONTEND_PORT}/?api={api}"),
        false,
    );
    let refused = browser.json_line("the page to be ready").await;
    assert_eq!(refused["stage"], "ready", "{refused}");
    assert_eq!(refused["origin"], "http://127.0.0.1:3000");
    let fetch = refused["fetch"].as_str().unwrap_or_default();
    assert!(fetch.starts_with("blocked: TypeError"), "{refused}");
    assert_eq!(refused["conversations"], json!([]));
    let console = refused["console"].to_string();
    assert!(
        console.contains("CORS policy"),
        "refused by CORS: {refused}"
    );
    // CORS does not cover WebSockets: the hub checks Origin itself and refuses this one.
    assert_ne!(refused["socket"], "open", "{refused}");
    assert!(
        refused["messages"].as_array().is_none_or(Vec::is_empty),
        "{refused}"
    );
    let (status, _) = browser.finish(STEP).await;
    assert!(status.success(), "browser.mjs: {status}");
}

/// Starts `browser.mjs` on `url`.
fn browse(node: &Path, chromium: &Path, url: &str, wait_for_message: bool) -> Running {
    let mut command = Command::new(node);
    command
        .current_dir(clients_dir())
        .arg("browser.mjs")
        .arg(url)
        .env("CHROMIUM", chromium)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    if wait_for_message {
        command.arg("--wait-for-message");
    }
    Running::spawn("browser.mjs", command)
}

/// Serves `tests/clients/page.html` on 127.0.0.1:3000, reachable as `http://localhost:3000`
/// and as `http://127.0.0.1:3000`: two origins, one server. Stops when dropped.
struct PageServer {
    _stop: oneshot::Sender<()>,
}

impl PageServer {
    async fn start() -> PageServer {
        let page = axum::response::Html(include_str!("../clients/page.html"));
        let router =
            axum::Router::new().route("/", axum::routing::get(move || async move { page }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", FRONTEND_PORT))
            .await
            .unwrap_or_else(|e| {
                panic!("the frontend's port {FRONTEND_PORT} must be free for this test: {e}")
            });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        PageServer { _stop: stop }
    }
}

/// Runs `program args` to completion (bounded) and returns its status and stdout.
async fn run(program: &Path, args: &[&str]) -> (ExitStatus, String) {
    let mut command = Command::new(program);
    command.args(args);
    let (status, lines) = Running::spawn(&program.display().to_string(), command)
        .finish(STEP)
        .await;
    (status, lines.join("\n"))
}

/// `curl -i -X GET url` → (status line, lower-cased headers, JSON body).
async fn curl_with_headers(
    curl: &Path,
    url: &str,
) -> (String, std::collections::HashMap<String, String>, Value) {
    let (status, output) = run(curl, &["-i", "-X", "GET", url]).await;
    assert!(status.success(), "curl -i -X GET {url}: {status}");
    let mut lines = output.lines().map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or_default().to_string();
    let mut headers = std::collections::HashMap::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let body = lines.collect::<Vec<_>>().join("\n");
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("JSON body ({e}): {body}"));
    (status_line, headers, json)
}

fn as_array(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("a JSON array: {value}"))
}

/// `tests/clients`: the node clients, their lockfile and the page.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// `name` from `tests/clients/node_modules/.bin`, else from PATH.
fn find_tool(name: &str) -> Option<PathBuf> {
    let local = clients_dir().join("node_modules/.bin").join(name);
    if local.is_file() {
        return Some(local);
    }
    on_path(name)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Passes a found tool through; a missing one skips the test, or fails it under `CI=true`.
fn require(name: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    if found.is_some() {
        return found;
    }
    let why = format!("{name} is not installed (scripts/install-test-tools installs it)");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {why}");
    }
    eprintln!("skipping: {why}");
    None
}

/// A child process whose stdout arrives as lines; stopped when dropped.
struct Running {
    name: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(name: &str, mut command: Command) -> Running {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        // Blocking pipes read on plain threads: they end at EOF, when the child goes.
        let (sender, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let sink = errors.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut text = sink.lock().expect("stderr buffer");
                text.push_str(&line);
                text.push('\n');
            }
        });
        Running {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
            stderr: errors,
        }
    }

    /// The next stdout line for which `wanted` holds, within `STEP`.
    async fn line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!("{} ended before {what}\n{}", self.name, self.transcript()),
                Err(_) => panic!(
                    "no {what} from {} within {STEP:?}\n{}",
                    self.name,
                    self.transcript()
                ),
            }
        }
    }

    /// The next event wscat prints that satisfies `wanted`. wscat writes one frame per line,
    /// after its `> ` prompt when it has shown one.
    async fn event(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let line = self
            .line(what, |line| frame(line).is_some_and(|event| wanted(&event)))
            .await;
        frame(&line).expect("checked above")
    }

    /// The next stdout line that is a JSON object.
    async fn json_line(&mut self, what: &str) -> Value {
        let line = self
            .line(what, |line| serde_json::from_str::<Value>(line).is_ok())
            .await;
        serde_json::from_str(&line).expect("checked above")
    }

    fn type_line(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{text}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("write to {}: {e}", self.name));
    }

    /// Closes stdin and waits, within `wait`, for the process to exit; returns its status and
    /// every stdout line.
    async fn finish(mut self, wait: Duration) -> (ExitStatus, Vec<String>) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => self.seen.push(line),
                Ok(None) => break,
                Err(_) => panic!(
                    "{} did not finish within {wait:?}\n{}",
                    self.name,
                    self.transcript()
                ),
            }
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return (status, std::mem::take(&mut self.seen));
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {wait:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn transcript(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.seen.join("\n"),
            self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // SIGTERM first: node then lets playwright close the Chromium it started, which a
        // SIGKILL would leave behind.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON frame on one line of wscat's output, if any.
fn frame(line: &str) -> Option<Value> {
    let start = line.find('{')?;
    serde_json::from_str(&line[start..]).ok()
}
