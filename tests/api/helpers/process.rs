//! `ServerProcess`: the real `switchboard` binary (the build under test, debug or release, or
//! the one `SWITCHBOARD_TEST_BIN` names) as a child process, for what an in-process `TestApp` cannot show: the process's own memory
//! (`RssAnon`), `kill -9`, SIGTERM, and a restart on the same database.
//!
//! Each process gets a free port, a fresh database of either backend (or one given), its own
//! working directory (so no `.env` is read and `./media` stays apart), a clean environment (so a
//! developer's `API_KEYS` or `LLM_*` never leak in) and a log file whose tail is printed when it
//! fails to start. It is killed and its SQLite file removed on drop.
//!
//! ```ignore
//! let mut server = ServerProcess::spawn(Backend::Sqlite, &[("WS_QUEUE_BYTES", "1048576")]).await;
//! reqwest::get(server.url("/health")).await?;
//! server.kill9();
//! server.restart().await; // same database, same port
//! ```

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{fresh_database, Backend};

/// How long a start may take before the test fails (migrations included, on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take: the server's own grace period is shorter.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ServerProcess {
    pub backend: Backend,
    pub database_url: String,
    pub port: u16,
    child: Option<Child>,
    vars: Vec<(String, String)>,
    sqlite_file: Option<PathBuf>,
    workdir: PathBuf,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the binary on a fresh database of `backend`, with `vars` added to its environment
    /// (`RUST_LOG` defaults to `warn`; `DATABASE_URL`, `HOST` and `PORT` are set here).
    pub async fn spawn(backend: Backend, vars: &[(&str, &str)]) -> ServerProcess {
        let (url, sqlite_file) = fresh_database(backend).await;
        ServerProcess::on_database(backend, url, sqlite_file, vars).await
    }

    /// Starts the binary on an existing database; `sqlite_file`, if given, is removed on drop.
    pub async fn on_database(
        backend: Backend,
        database_url: String,
        sqlite_file: Option<PathBuf>,
        vars: &[(&str, &str)],
    ) -> ServerProcess {
        let name = format!("server-{}", uuid::Uuid::new_v4().simple());
        let workdir = std::env::temp_dir().join("switchboard-tests").join(name);
        std::fs::create_dir_all(&workdir).expect("the server's working directory");
        let mut server = ServerProcess {
            backend,
            database_url,
            port: free_port(),
            child: None,
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            sqlite_file,
            log: workdir.join("server.log"),
            workdir,
        };
        server.start().await;
        server
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Creates a WhatsApp conversation with `participant_identifier` (named Ana) through the
    /// API and returns it.
    pub async fn create_conversation(&self, participant_identifier: &str) -> serde_json::Value {
        reqwest::Client::new()
            .post(self.url("/api/v1/conversations"))
            .json(&serde_json::json!({"channel_id": 1, "participant_identifier": participant_identifier, "participant_name": "Ana"}))
            .send()
            .await
            .expect("POST /api/v1/conversations")
            .json()
            .await
            .expect("conversation JSON")
    }

    /// `ws://127.0.0.1:PORT` followed by `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// The process's anonymous resident memory (`RssAnon` in `/proc/PID/status`), in KiB: its
    /// heap and stacks, without file pages such as SQLite's memory map.
    pub fn rss_anon_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status (Linux only)");
        status
            .lines()
            .find_map(|line| line.strip_prefix("RssAnon:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("an RssAnon line in kB")
    }

    /// Everything the process has logged so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub async fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
        // SAFETY: `kill` only sends a signal; the pid is our own unreaped child, so it cannot
        // have been reused by another process.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill(SIGTERM) failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the server") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the binary again on the same database and port, with the same variables; a
    /// process still running is stopped with SIGTERM first.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.sigterm().await;
        }
        self.start().await;
    }

    async fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the server's log file");
        // Another build (an older one, to compare) when SWITCHBOARD_TEST_BIN names it.
        let binary = std::env::var_os("SWITCHBOARD_TEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_switchboard").into());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .current_dir(&self.workdir)
            .env_clear()
            .env("RUST_LOG", "warn")
            .env("DATABASE_MAX_CONNECTIONS", "5");
        for (key, value) in &self.vars {
            command.env(key, value);
        }
        command
            .env("DATABASE_URL", &self.database_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn the switchboard binary"));
        self.wait_until_healthy().await;
    }

    async fn wait_until_healthy(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("started");
            if let Some(status) = child.try_wait().expect("poll the server") {
                self.child = None;
                panic!(
                    "the server exited at start ({status}); log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(response) = client.get(self.url("/health")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "the server was not healthy within {START_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        if let Some(path) = self.sqlite_file.take() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

/// A port nothing listens on right now. The server binds it a moment later; another process
/// could take it in between, which on a test machine is rare enough to accept.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
