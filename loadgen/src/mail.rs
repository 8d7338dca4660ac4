//! The email import scenario: `mail-fill` writes a mailbox of N mails straight into a Maildir
//! (far faster than N IMAP APPENDs), and `mail-import` waits while a server started on that
//! mailbox imports it, then reports mails per second and the server's memory.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::conn::{self, Error, Target};
use crate::measure::{mix, Watched, Window};

/// Every this many mails carries an attachment.
const ATTACHMENT_EVERY: u64 = 10;
/// The attachment's size before base64, about.
const ATTACHMENT_BYTES: usize = 24 * 1024;

pub struct Fill {
    pub maildir: PathBuf,
    pub count: u64,
    pub senders: u64,
}

/// Writes `count` mails from `senders` senders into `maildir` (`cur/`, unread), LF line ends as
/// Dovecot keeps them, each file's mtime (its arrival) now.
pub fn fill(plan: Fill) -> Result<Value, Error> {
    let started = Instant::now();
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(plan.maildir.join(sub))?;
    }
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut bytes = 0u64;
    for n in 0..plan.count {
        let mail = mail(n, plan.senders.max(1));
        bytes += mail.len() as u64;
        // Dovecot's Maildir name: unique base, `S=` the size, `:2,` and no flags (unread).
        let name = format!("{stamp}.M{n}P1.bench,S={}:2,", mail.len());
        let mut file = std::fs::File::create(plan.maildir.join("cur").join(name))?;
        file.write_all(&mail)?;
    }
    Ok(json!({
        "mails": plan.count,
        "bytes": bytes,
        "fill_s": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        "check": "ok",
    }))
}

/// Mail number `n`: a few paragraphs from one of `senders`, one in ten with a PDF.
fn mail(n: u64, senders: u64) -> Vec<u8> {
    let sender = mix(n) % senders;
    let words = [
        "pedido", "factura", "entrega", "mañana", "gracias", "consulta", "horario", "reserva",
        "precio", "envío", "cambio", "talla",
    ];
    let text: Vec<&str> = (0..180)
        .map(|i| words[(mix(n * 1000 + i) % words.len() as u64) as usize])
        .collect();
    let body = text
        .chunks(12)
        .map(|line| line.join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    let headers = format!(
        "From: Customer {sender} <customer{sender}@example.com>\nTo: Support <support@example.org>\n\
         Subject: Consulta {n}\nDate: Mon, 06 Jan 2025 10:{:02}:{:02} +0000\n\
         Message-ID: <bench-{n}@example.com>\nMIME-Version: 1.0\n",
        (n / 60) % 60,
        n % 60
    );
    if !n.is_multiple_of(ATTACHMENT_EVERY) {
        return format!(
            "{headers}Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}\n"
        )
        .into_bytes();
    }
    // Random bytes, written as base64 directly: any run of the alphabet decodes.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let encoded: Vec<u8> = (0..ATTACHMENT_BYTES * 4 / 3)
        .map(|i| ALPHABET[(mix(n << 20 | i as u64) % 64) as usize])
        .collect();
    let lines: Vec<&str> = encoded
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!(
        "{headers}Content-Type: multipart/mixed; boundary=\"b{n}\"\n\n--b{n}\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}\n--b{n}\n\
         Content-Type: application/pdf; name=\"factura-{n}.pdf\"\n\
         Content-Disposition: attachment; filename=\"factura-{n}.pdf\"\nContent-Transfer-Encoding: base64\n\n\
         {}\n--b{n}--\n",
        lines.join("\n")
    )
    .into_bytes()
}

pub struct Import {
    pub target: Target,
    pub expect: u64,
    /// When the server was started (Unix seconds): the import is timed from there.
    pub started_at: f64,
    pub timeout: Duration,
}

/// Waits until the server has stored `expect` mails, then checks nothing more arrives and that
/// each mail was fetched once.
pub async fn import(plan: Import, watched: &Watched) -> Result<Value, Error> {
    let window = Window::open(watched);
    let waiting = Instant::now();
    let mut stored = 0;
    while waiting.elapsed() < plan.timeout {
        stored = count(&plan.target).await.unwrap_or(stored);
        if stored >= plan.expect {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let elapsed = now - plan.started_at;
    let after_ready = waiting.elapsed().as_secs_f64();
    let cpu = window.close();
    let server = watched.servers.first().copied();
    let peak = server.and_then(|pid| status_kib(pid, "VmHWM:"));
    let anon = server.and_then(|pid| status_kib(pid, "RssAnon:"));
    let rss = watched.servers_rss_kib();
    // Anything read twice or late would show now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = count(&plan.target).await.unwrap_or(stored);
    let fetched = fetched(&plan.target).await;
    let mut problems = Vec::new();
    if stored < plan.expect {
        problems.push(format!(
            "only {stored} of {} mails stored within {:?}",
            plan.expect, plan.timeout
        ));
    }
    if settled != plan.expect {
        problems.push(format!("{settled} messages for {} mails", plan.expect));
    }
    if fetched != Some(plan.expect) {
        problems.push(format!("{fetched:?} mails fetched for {}", plan.expect));
    }
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(json!({
        "mails": plan.expect,
        "stored": settled,
        "fetched": fetched,
        "elapsed_s": round(elapsed),
        "after_ready_s": round(after_ready),
        "rate_per_s": (plan.expect as f64 / elapsed.max(1e-3)).round(),
        "peak_rss_kib": peak,
        "rss_kib": rss,
        "rss_anon_kib": anon,
        "cpu": cpu,
        "check": crate::read::check(problems),
    }))
}

/// Messages on the `gmail` channel (`X-Total-Count`).
async fn count(target: &Target) -> Result<u64, Error> {
    let reply = conn::once(
        target,
        Method::GET,
        "/api/v1/messages?channel=gmail&limit=1",
        None,
    )
    .await?;
    if reply.status != StatusCode::OK {
        return Err(format!("GET /api/v1/messages: {}", reply.status).into());
    }
    Ok(reply.total_count().unwrap_or(0))
}

/// `switchboard_email_mails_fetched_total` from `/metrics`.
async fn fetched(target: &Target) -> Option<u64> {
    let reply = conn::once(target, Method::GET, "/metrics", None)
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    text.lines().find_map(|l| {
        l.strip_prefix("switchboard_email_mails_fetched_total ")?
            .trim()
            .parse()
            .ok()
    })
}

/// A `kB` field of /proc/PID/status.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
