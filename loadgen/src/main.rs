//! The load generator of `bench/run`. One subcommand per scenario; each prints one JSON line
//! of results. Every loop is bounded by a count and a duration, and every target must be a
//! loopback address.
//!
//! It runs on one thread (a current-thread tokio runtime): `bench/run` pins it to one core,
//! and one thread there is the cheapest client per request.

mod attachments;
mod chaos;
mod closed_loop;
mod conn;
mod events;
mod fanout;
mod ingest;
mod loopback;
mod mail;
mod measure;
mod read;
mod ready;
mod send;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use conn::{Error, Target};
use measure::Watched;

/// Upper bounds on what any scenario may ask for.
const MAX_SECS: f64 = 300.0;
const MAX_CONNECTIONS: usize = 1024;
const MAX_CLIENTS: usize = 20_000;
const MAX_RATE: f64 = 100_000.0;
const MAX_MAILS: u64 = 1_000_000;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load scenarios for switchboard, on 127.0.0.1 only"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone)]
struct Common {
    /// Server base URLs, comma-separated (http://127.0.0.1:PORT); load is spread over them.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Server PIDs whose CPU and RSS are reported (repeat for several instances).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// The PostgreSQL postmaster's PID: its CPU and its backends' is reported.
    #[arg(long)]
    db_pid: Option<u32>,
    /// A free-form label copied into the output (e.g. the backend).
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Args, Clone)]
struct Load {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Stop after this many requests even if time remains.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
}

#[derive(Subcommand)]
enum Scenario {
    /// POST unique text-message webhooks; then check stored = acknowledged.
    Ingest {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        /// Distinct senders (conversations).
        #[arg(long, default_value_t = 1000)]
        senders: u64,
        /// Whose webhooks: WhatsApp Cloud API or Instagram.
        #[arg(long, value_enum, default_value = "whatsapp")]
        channel: ingest::Channel,
    },
    /// The ingest workload while this process plays the event webhook's receiver on --receiver;
    /// then the check that every event arrived once, in order per conversation.
    Events {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        #[arg(long, default_value_t = 1000)]
        senders: u64,
        /// Where the receiver listens (the server's EVENT_WEBHOOK_URL).
        #[arg(long)]
        receiver: SocketAddr,
        /// The server's EVENT_WEBHOOK_SECRET: every signature is checked.
        #[arg(long)]
        secret: Option<String>,
        /// Hold every delivery until the load ends, then measure the drain of the backlog.
        #[arg(long)]
        hold: bool,
        /// Longest wait for the last event after the load, in seconds.
        #[arg(long, default_value_t = 120.0)]
        drain_timeout: f64,
    },
    /// GET pages of messages or conversations from a bulk-loaded database.
    Read {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        #[arg(long, value_enum)]
        page: read::Page,
        /// Conversation ids 1..=N exist.
        #[arg(long, default_value_t = 10_000)]
        conversations: u64,
    },
    /// GET one route in a closed loop: the HTTP ceiling on a route without database.
    Http {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        #[arg(long, default_value = "/")]
        path: String,
    },
    /// POST /api/v1/send while this process plays the Graph API on --graph.
    Send {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        /// Where the fake Graph API listens (the server's WHATSAPP_API_BASE_URL).
        #[arg(long)]
        graph: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        recipients: u64,
    },
    /// Clients downloading one attachment file in a closed loop while this process plays the
    /// Graph API it is fetched from; the server's RSS is sampled meanwhile.
    Attachments {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        /// Where the fake Graph API listens (the server's WHATSAPP_API_BASE_URL).
        #[arg(long)]
        graph: SocketAddr,
        /// The file's size in MiB.
        #[arg(long, default_value_t = 10)]
        size_mib: usize,
    },
    /// WebSocket clients receiving messages posted at a fixed rate (or a rising one).
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Messages stored per second.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Seconds of posting (per step with --ramp).
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Raise the rate by --ramp-factor each step until p99 passes --threshold-ms.
        #[arg(long)]
        ramp: bool,
        #[arg(long, default_value_t = 1.5)]
        ramp_factor: f64,
        #[arg(long, default_value_t = 8)]
        max_steps: usize,
        #[arg(long, default_value_t = 100.0)]
        threshold_ms: f64,
        /// Connection attempts in flight while the clients connect.
        #[arg(long, default_value_t = 200)]
        connect_concurrency: usize,
        /// Seconds to wait after the last client connected before reading RSS.
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
    },
    /// Write a mailbox of --count mails straight into a Maildir (for `mail-import`).
    MailFill {
        /// The mailbox's Maildir (`…/Maildir`, created if missing).
        #[arg(long)]
        maildir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        /// Distinct senders (conversations).
        #[arg(long, default_value_t = 1000)]
        senders: u64,
    },
    /// Wait while a server started at --started-at imports --expect mails; mails/s and memory.
    MailImport {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        expect: u64,
        /// When the server was started, in Unix seconds (`date +%s.%N`).
        #[arg(long)]
        started_at: f64,
        /// Longest wait for the import, in seconds.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
    },
    /// Webhooks and sends while the server (the command after --) is killed with SIGKILL and
    /// restarted every few seconds; then stored = acknowledged, redelivery stores each once,
    /// and every accepted send reaches this process's fake provider on --graph.
    Chaos {
        /// Where the server listens (restarts keep the address).
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        url: String,
        /// Where the fake provider listens (the server's WHATSAPP_API_BASE_URL).
        #[arg(long)]
        graph: SocketAddr,
        #[arg(long, default_value_t = 16)]
        webhook_connections: usize,
        #[arg(long, default_value_t = 8)]
        send_connections: usize,
        /// Distinct webhook senders (conversations).
        #[arg(long, default_value_t = 200)]
        senders: u64,
        /// Seconds of load, kills included.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Mean seconds from a restart to the next kill (each within ±50 %).
        #[arg(long, default_value_t = 5.0)]
        kill_every: f64,
        /// Milliseconds the fake provider takes to answer a send.
        #[arg(long, default_value_t = 100)]
        provider_ms: u64,
        /// Longest wait in seconds, after the load, for sends still pending.
        #[arg(long, default_value_t = 30.0)]
        drain: f64,
        /// The server's output, appended over all its runs.
        #[arg(long)]
        server_log: PathBuf,
        #[arg(long, default_value = "")]
        label: String,
        /// The server command, its environment included (`env -i VAR=… switchboard`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// The machine's fan-out limit, writing side: accept --clients readers on --listen, then
    /// write event-sized frames to each in turn (run it where the server would run).
    LoopbackWriter {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Bytes of each frame, header included (an event of the fan-out scenario).
        #[arg(long, default_value_t = loopback::EVENT_FRAME_BYTES)]
        frame_bytes: usize,
        /// Stop after this many seconds of writing even if readers remain.
        #[arg(long, default_value_t = 120.0)]
        limit: f64,
    },
    /// The machine's fan-out limit, reading side: frames per second arriving from
    /// `loopback-writer` at --url over --duration seconds.
    Loopback {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = loopback::EVENT_FRAME_BYTES)]
        frame_bytes: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Wait until GET /health answers 200 (exit status 1 if it does not within --timeout).
    Wait {
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        url: String,
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// Start the server (the command after --) on SQLite: exec → first 200 from /health, idle RSS.
    Ready {
        /// Where the started server will listen.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        url: String,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Seconds idle before RSS is read.
        #[arg(long, default_value_t = 1.0)]
        idle: f64,
        /// A directory for the SQLite files.
        #[arg(long)]
        sqlite_dir: PathBuf,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn secs(s: f64) -> Result<Duration, Error> {
    if !(s > 0.0 && s <= MAX_SECS) {
        return Err(format!("durations are between 0 and {MAX_SECS} s").into());
    }
    Ok(Duration::from_secs_f64(s))
}

fn settings(common: &Common, load: &Load) -> Result<closed_loop::Settings, Error> {
    if load.connections == 0 || load.connections > MAX_CONNECTIONS {
        return Err(format!("--connections is between 1 and {MAX_CONNECTIONS}").into());
    }
    Ok(closed_loop::Settings {
        targets: Target::parse_list(&common.url)?,
        connections: load.connections,
        duration: secs(load.duration)?,
        max_requests: load.max_requests,
    })
}

fn watched(common: &Common) -> Watched {
    Watched {
        servers: common.pids.clone(),
        db: common.db_pid,
    }
}

async fn run(scenario: Scenario) -> Result<(&'static str, String, Value), Error> {
    Ok(match scenario {
        Scenario::Ingest {
            common,
            load,
            senders,
            channel,
        } => {
            let v = ingest::run(
                settings(&common, &load)?,
                senders.max(1),
                channel,
                &watched(&common),
            )
            .await?;
            ("ingest", common.label, v)
        }
        Scenario::Events {
            common,
            load,
            senders,
            receiver,
            secret,
            hold,
            drain_timeout,
        } => {
            let plan = events::Plan {
                settings: settings(&common, &load)?,
                senders: senders.max(1),
                receiver,
                secret,
                hold,
                drain_timeout: secs(drain_timeout)?,
            };
            let v = events::run(plan, &watched(&common)).await?;
            ("events", common.label, v)
        }
        Scenario::Read {
            common,
            load,
            page,
            conversations,
        } => {
            let v = read::read(
                settings(&common, &load)?,
                page,
                conversations.max(1),
                &watched(&common),
            )
            .await?;
            ("read", common.label, v)
        }
        Scenario::Http { common, load, path } => {
            let v = read::http(settings(&common, &load)?, path, &watched(&common)).await?;
            ("http", common.label, v)
        }
        Scenario::Send {
            common,
            load,
            graph,
            recipients,
        } => {
            let v = send::run(
                settings(&common, &load)?,
                graph,
                recipients.max(1),
                &watched(&common),
            )
            .await?;
            ("send", common.label, v)
        }
        Scenario::Attachments {
            common,
            load,
            graph,
            size_mib,
        } => {
            if size_mib == 0 || size_mib > 1024 {
                return Err("--size-mib is between 1 and 1024".into());
            }
            let v = attachments::run(
                settings(&common, &load)?,
                graph,
                size_mib * 1024 * 1024,
                &watched(&common),
            )
            .await?;
            ("attachments", common.label, v)
        }
        Scenario::Fanout {
            common,
            clients,
            rate,
            duration,
            ramp,
            ramp_factor,
            max_steps,
            threshold_ms,
            connect_concurrency,
            settle,
        } => {
            if clients == 0 || clients > MAX_CLIENTS {
                return Err(format!("--clients is between 1 and {MAX_CLIENTS}").into());
            }
            let step = secs(duration)?.as_secs_f64();
            let mut steps = Vec::new();
            let mut r = rate;
            for _ in 0..if ramp { max_steps.clamp(1, 20) } else { 1 } {
                if !(r > 0.0 && r <= MAX_RATE) {
                    break;
                }
                steps.push((r, step));
                r *= ramp_factor.max(1.01);
            }
            if steps.is_empty() {
                return Err(format!("--rate is between 0 and {MAX_RATE}").into());
            }
            let plan = fanout::Plan {
                targets: Target::parse_list(&common.url)?,
                clients,
                connect_concurrency,
                steps,
                threshold_ms: ramp.then_some(threshold_ms),
                settle: secs(settle)?,
            };
            let v = fanout::run(plan, &watched(&common)).await?;
            (if ramp { "fanout-ramp" } else { "fanout" }, common.label, v)
        }
        Scenario::MailFill {
            maildir,
            count,
            senders,
        } => {
            if count == 0 || count > MAX_MAILS {
                return Err(format!("--count is between 1 and {MAX_MAILS}").into());
            }
            let plan = mail::Fill {
                maildir,
                count,
                senders,
            };
            ("mail-fill", String::new(), mail::fill(plan)?)
        }
        Scenario::MailImport {
            common,
            expect,
            started_at,
            timeout,
        } => {
            let plan = mail::Import {
                target: Target::parse(&common.url)?,
                expect,
                started_at,
                timeout: secs(timeout)?,
            };
            let v = mail::import(plan, &watched(&common)).await?;
            ("email", common.label, v)
        }
        Scenario::Chaos {
            url,
            graph,
            webhook_connections,
            send_connections,
            senders,
            duration,
            kill_every,
            provider_ms,
            drain,
            server_log,
            label,
            command,
        } => {
            for connections in [webhook_connections, send_connections] {
                if connections == 0 || connections > MAX_CONNECTIONS {
                    return Err(format!("connections are between 1 and {MAX_CONNECTIONS}").into());
                }
            }
            let plan = chaos::Plan {
                target: Target::parse(&url)?,
                graph,
                webhook_connections,
                send_connections,
                senders,
                duration: secs(duration)?,
                kill_every: secs(kill_every)?,
                provider_delay: Duration::from_millis(provider_ms.min(60_000)),
                drain: secs(drain)?,
                server_log,
                command,
            };
            ("chaos", label, chaos::run(plan).await?)
        }
        Scenario::LoopbackWriter {
            listen,
            clients,
            frame_bytes,
            limit,
        } => {
            if clients == 0 || clients > MAX_CLIENTS {
                return Err(format!("--clients is between 1 and {MAX_CLIENTS}").into());
            }
            let v = loopback::write(listen, clients, frame_bytes, secs(limit)?)?;
            ("loopback-writer", String::new(), v)
        }
        Scenario::Loopback {
            common,
            clients,
            frame_bytes,
            duration,
        } => {
            if clients == 0 || clients > MAX_CLIENTS {
                return Err(format!("--clients is between 1 and {MAX_CLIENTS}").into());
            }
            let target = Target::parse(&common.url)?;
            let v = loopback::read(
                target,
                clients,
                frame_bytes,
                secs(duration)?,
                &watched(&common),
            )
            .await?;
            ("loopback", common.label, v)
        }
        Scenario::Wait { url, timeout } => {
            let target = Target::parse(&url)?;
            let deadline = std::time::Instant::now() + secs(timeout)?;
            loop {
                if let Ok(reply) = conn::once(&target, hyper::Method::GET, "/health", None).await {
                    if reply.status == hyper::StatusCode::OK {
                        break;
                    }
                }
                if std::time::Instant::now() >= deadline {
                    return Err(format!("{url}/health: no 200 within {timeout} s").into());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ("wait", String::new(), serde_json::json!({"check": "ok"}))
        }
        Scenario::Ready {
            url,
            runs,
            idle,
            sqlite_dir,
            command,
        } => {
            let plan = ready::Plan {
                target: Target::parse(&url)?,
                runs: runs.clamp(1, 50),
                idle: secs(idle)?,
                sqlite_dir,
                command,
            };
            ("ready", String::new(), ready::run(plan).await?)
        }
    })
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli.scenario)) {
        Ok((scenario, label, mut v)) => {
            if let Value::Object(map) = &mut v {
                let mut out = serde_json::Map::new();
                out.insert("scenario".into(), scenario.into());
                out.insert("label".into(), label.into());
                out.append(map);
                v = Value::Object(out);
            }
            println!("{v}");
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    }
}
