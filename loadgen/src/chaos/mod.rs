//! `chaos`: the soak of issue 11. Webhooks and sends under load while the server is killed
//! (SIGKILL) and restarted every few seconds; then, with the server left alone, what was
//! acknowledged must be stored once, Meta's redelivery of everything unacknowledged must store
//! each webhook once, and each accepted send must reach the provider (more than once only when
//! a kill fell inside its provider call: the soak counts how often).
//!
//! This process starts the server itself (the command after `--`, environment included), as
//! `ready` does, so the kills fall at known moments and never during the final checks.

mod audit;
mod figures;
mod load;
mod provider;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use self::figures::Figures;
use self::load::Requests;
use crate::conn::{Error, Target};
use crate::ingest::{Channel, Ingest};
use crate::measure::mix;

/// Acknowledged webhooks posted again at the end, to see that redelivery stores nothing more.
const ACKNOWLEDGED_REDELIVERIES: usize = 200;

pub struct Plan {
    pub target: Target,
    pub graph: SocketAddr,
    pub webhook_connections: usize,
    pub send_connections: usize,
    pub senders: u64,
    pub duration: Duration,
    /// Mean time between a restart and the next kill (each falls within ±50 % of it).
    pub kill_every: Duration,
    /// How long the provider takes to answer a send.
    pub provider_delay: Duration,
    /// Longest wait at the end for sends still pending (longer than the outbox lease).
    pub drain: Duration,
    pub server_log: PathBuf,
    pub command: Vec<String>,
}

/// Webhooks: Meta's text-message deliveries, one wamid per request number.
struct Webhooks(Ingest);

impl Webhooks {
    fn number(&self, wamid: &str) -> Option<u64> {
        wamid
            .strip_prefix(&format!("wamid.bench.{:x}.", self.0.run))?
            .parse()
            .ok()
    }
}

impl Requests for Webhooks {
    fn path(&self) -> &'static str {
        "/webhook/whatsapp"
    }

    fn body(&self, n: u64) -> Bytes {
        self.0.body(n)
    }
}

/// Agents' replies through `POST /api/v1/send`, one text per request number.
struct Sends {
    run: u64,
    recipients: u64,
}

impl Sends {
    fn text(&self, n: u64) -> String {
        format!("Gracias, te confirmamos la reserva {:x}-{n}.", self.run)
    }

    fn number(&self, text: &str) -> Option<u64> {
        text.strip_prefix(&format!(
            "Gracias, te confirmamos la reserva {:x}-",
            self.run
        ))?
        .strip_suffix('.')?
        .parse()
        .ok()
    }
}

impl Requests for Sends {
    fn path(&self) -> &'static str {
        "/api/v1/send"
    }

    fn body(&self, n: u64) -> Bytes {
        let to = mix(n ^ self.run) % self.recipients;
        Bytes::from(
            json!({"channel": "whatsapp", "to": format!("+34 6{to:08}"), "message": self.text(n)})
                .to_string(),
        )
    }
}

pub async fn run(plan: Plan) -> Result<Value, Error> {
    if !plan.graph.ip().is_loopback() {
        return Err("--graph: the fake provider listens on loopback only".into());
    }
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let webhooks = Arc::new(Webhooks(Ingest {
        run,
        senders: plan.senders.max(1),
        channel: Channel::Whatsapp,
    }));
    let sends = Arc::new(Sends {
        run,
        recipients: 1000,
    });
    let accepted: provider::Record = Arc::default();
    let listener = TcpListener::bind(plan.graph).await?;
    let numbers = sends.clone();
    let fake = tokio::spawn(provider::serve(
        listener,
        accepted.clone(),
        plan.provider_delay,
        Arc::new(move |text: &str| numbers.number(text)),
    ));
    let mut server = server::Server::new(plan.command, plan.target.clone(), plan.server_log)?;
    server.start().await?;

    let started = Instant::now();
    let deadline = started + plan.duration;
    let webhook_load = tokio::spawn({
        let (target, webhooks) = (plan.target.clone(), webhooks.clone());
        async move { load::run(&target, webhooks, plan.webhook_connections, 0, deadline).await }
    });
    let send_load = tokio::spawn({
        let (target, sends) = (plan.target.clone(), sends.clone());
        async move { load::run(&target, sends, plan.send_connections, 0, deadline).await }
    });
    let restarts = kill_and_restart(&mut server, plan.kill_every, run, deadline).await?;
    let webhook_answers = webhook_load.await??;
    let send_answers = send_load.await??;
    let elapsed = started.elapsed();

    // From here on the server is left alone.
    let target = &plan.target;
    let (webhook_number, send_number) = (|w: &str| webhooks.number(w), |t: &str| sends.number(t));
    let inbound = audit::Kind {
        direction: "inbound",
        field: "external_message_id",
        number: &webhook_number,
    };
    let outbound = audit::Kind {
        direction: "outbound",
        field: "content",
        number: &send_number,
    };
    let before = audit::rows(target, &inbound).await?;
    let mut again: Vec<u64> = webhook_answers.not_acknowledged().collect();
    let unacknowledged = again.len();
    again.extend(
        webhook_answers
            .acknowledged
            .iter()
            .take(ACKNOWLEDGED_REDELIVERIES),
    );
    let redelivery_failures =
        load::post_each(target, webhooks.clone(), &again, plan.webhook_connections).await?;
    let after = audit::rows(target, &inbound).await?;
    // Sends a killed instance had claimed wait for their lease to expire.
    let drained = Instant::now() + plan.drain;
    let mut stored_sends = audit::rows(target, &outbound).await?;
    while stored_sends.with_status("pending") > 0 && Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stored_sends = audit::rows(target, &outbound).await?;
    }
    fake.abort();
    let accepted = std::mem::take(&mut *accepted.lock().map_err(|_| "the provider's record")?);
    let figures = Figures {
        webhooks: &webhook_answers,
        sends: &send_answers,
        before: &before,
        after: &after,
        stored_sends: &stored_sends,
        accepted: &accepted,
        unacknowledged,
        redelivered: again.len(),
        redelivery_failures: redelivery_failures.len(),
    };
    let mut restart_ms: Vec<f64> = restarts.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    restart_ms.sort_by(f64::total_cmp);
    let round = |ms: Option<&f64>| ms.map(|m| (m * 10.0).round() / 10.0);
    let mut result = json!({
        "elapsed_s": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        "rate_per_s": (webhook_answers.acknowledged.len() as f64 / elapsed.as_secs_f64()).round(),
        "kills": restarts.len(),
        "restart_ms_p50": round(restart_ms.get(restart_ms.len() / 2)),
        "restart_ms_max": round(restart_ms.last()),
        "webhooks": figures.webhooks(),
        "sends": figures.sends(),
    });
    result["check"] = crate::read::check(figures.problems());
    Ok(result)
}

/// Kills the server and starts it again, a jittered `every` after each start, until a kill
/// would fall past `deadline`; returns how long each start took (exec to first 200).
async fn kill_and_restart(
    server: &mut server::Server,
    every: Duration,
    seed: u64,
    deadline: Instant,
) -> Result<Vec<Duration>, Error> {
    let mut restarts = Vec::new();
    for i in 0.. {
        let jitter = (mix(seed ^ i) % 1000) as f64 / 1000.0;
        let wait = every.mul_f64(0.5 + jitter);
        if Instant::now() + wait >= deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        server.kill9();
        restarts.push(server.start().await?);
    }
    Ok(restarts)
}
