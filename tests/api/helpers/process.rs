//! The real binary as a child process, for what only a process can show: a `kill -9` between
//! two steps, and a restart that finds what the dead one left.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `switchboard` process on a free loopback port.
pub struct ServerProcess {
    pub address: String,
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the binary with `vars` (and nothing from this process's environment but `PATH`)
    /// and waits until `/health` answers 200.
    pub async fn start(vars: &[(&str, &str)]) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join("switchboard-tests");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join(format!("process-{}.log", uuid::Uuid::new_v4().simple()));
        let output = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
            // No `.env` of the repository is read: the directory has none.
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output);
        let child = command.spawn().expect("start the switchboard binary");
        let mut process = ServerProcess {
            address: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        process.wait_ready().await;
        process
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited with {status}:\n{}", self.log_text());
            }
            let health = client
                .get(format!("{}/health", self.address))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if health.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server was not ready within 15 s:\n{}", self.log_text());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// SIGKILL: no shutdown, no flush, nothing finished.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the process logged, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.log);
    }
}
