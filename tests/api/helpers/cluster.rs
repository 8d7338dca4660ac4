//! A PostgreSQL cluster of a test's own, in a temporary directory on a free port, that the test
//! can stop and start again on the same port: a real database restart behind a running server.
//!
//! The server binaries come from `SWITCHBOARD_TEST_PG_BIN`, else `pg_config --bindir`, else the
//! newest `/usr/lib/postgresql/*/bin`. `initdb` refuses to run as root, so as root every
//! command runs as the `postgres` user. Without binaries the test is skipped, except under
//! `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// `runuser -u postgres --` when running as root, else nothing.
    run_as: Vec<String>,
}

impl Cluster {
    /// Creates and starts a cluster, or `None` (after saying why) when PostgreSQL's server
    /// binaries are not installed. Panics under `CI=true` instead of skipping.
    pub async fn start() -> Option<Cluster> {
        let Some(bin) = server_binaries() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but PostgreSQL's server binaries (initdb, pg_ctl) were not found");
            }
            eprintln!("PostgreSQL server binaries not found: skipping the restart test");
            return None;
        };
        let cluster = tokio::task::spawn_blocking(move || Cluster::init(bin))
            .await
            .expect("initdb task");
        cluster.start_again().await;
        Some(cluster)
    }

    fn init(bin: PathBuf) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-cluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let root = run(Command::new("id").arg("-u")).trim() == "0";
        let run_as = if root {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir));
            vec![
                "runuser".into(),
                "-u".into(),
                "postgres".into(),
                "--".into(),
            ]
        } else {
            Vec::new()
        };
        let cluster = Cluster {
            bin,
            dir,
            port: free_port(),
            run_as,
        };
        let data = cluster.data();
        run(cluster.command("initdb").args([
            "-D",
            data.as_str(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        ]));
        cluster
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let admin = sqlx::PgPool::connect(&self.url("postgres"))
            .await
            .expect("connect to the cluster");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        self.url(name)
    }

    /// Stops the server (fast shutdown: sessions are ended, as in a real restart) and waits
    /// until it is down.
    pub async fn stop(&self) {
        let args = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"]);
        self.blocking(args).await;
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        let args = self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &options]);
        self.blocking(args).await;
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn pg_ctl(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["-D".to_string(), self.data()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// Runs `pg_ctl args` off the runtime's worker threads, which keep serving meanwhile.
    async fn blocking(&self, args: Vec<String>) {
        let mut command = self.command("pg_ctl");
        command.args(args);
        tokio::task::spawn_blocking(move || run(&mut command))
            .await
            .expect("pg_ctl task");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let args = self.pg_ctl(&["stop", "-m", "immediate"]);
        let _ = self.command("pg_ctl").args(args).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The directory holding `initdb` and `pg_ctl`, if any.
fn server_binaries() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("SWITCHBOARD_TEST_PG_BIN").map(PathBuf::from) {
        if has_initdb(&dir) {
            return Some(dir);
        }
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| has_initdb(d)) {
        return Some(dir);
    }
    let mut installed: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_initdb(dir))
        .collect();
    installed.sort();
    installed.pop().map(|(_, dir)| dir)
}
