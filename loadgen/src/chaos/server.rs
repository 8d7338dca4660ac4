//! The server under chaos: started from the command `bench/run` gives (its environment
//! included), killed with SIGKILL, started again on the same address and database.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};

use crate::conn::{self, Error, Target};

/// Longest wait for one start (migrations included).
const START_LIMIT: Duration = Duration::from_secs(60);

pub struct Server {
    command: Vec<String>,
    target: Target,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    pub fn new(command: Vec<String>, target: Target, log: PathBuf) -> Result<Server, Error> {
        if command.is_empty() {
            return Err("give the server command after --".into());
        }
        Ok(Server {
            command,
            target,
            log,
            child: None,
        })
    }

    /// Starts the command and waits for a 200 from `/health`; returns how long that took.
    pub async fn start(&mut self) -> Result<Duration, Error> {
        let started = Instant::now();
        let log = File::options().create(true).append(true).open(&self.log)?;
        let (program, args) = self.command.split_first().ok_or("no server command")?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        while started.elapsed() < START_LIMIT {
            if let Ok(reply) = conn::once(&self.target, Method::GET, "/health", None).await {
                if reply.status == StatusCode::OK {
                    return Ok(started.elapsed());
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(format!(
                        "the server exited at start ({status}); see {}",
                        self.log.display()
                    )
                    .into());
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(format!("no 200 from /health within {START_LIMIT:?}").into())
    }

    /// SIGKILL, as a crash or the OOM killer would; the process is reaped. The command execs
    /// the server (`env`, `taskset`), so the child is the server itself.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}
