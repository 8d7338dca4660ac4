//! `ingest`: unique text-message webhooks (WhatsApp Cloud API, or Instagram with `--channel
//! instagram`) from a fixed set of senders, then the check that what was stored is exactly what
//! was acknowledged, and that a redelivery of acknowledged payloads stores nothing more.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::closed_loop::{self, Req, Settings, Workload};
use crate::conn::{self, Conn, Error, Target};
use crate::measure::{mix, Watched};

/// How many acknowledged payloads are sent a second time to check idempotency.
const REDELIVERIES: usize = 200;

/// Whose webhooks are posted.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Channel {
    Whatsapp,
    Instagram,
}

impl Channel {
    fn path(self) -> &'static str {
        match self {
            Channel::Whatsapp => "/webhook/whatsapp",
            Channel::Instagram => "/webhook/instagram",
        }
    }
}

pub struct Ingest {
    /// Distinguishes this run's message ids from any earlier run's.
    pub run: u64,
    pub senders: u64,
    pub channel: Channel,
}

impl Ingest {
    pub fn sender(&self, n: u64) -> u64 {
        mix(n ^ self.run) % self.senders
    }

    /// The webhook body of request `n`: one text message with an id unique to `n`.
    pub fn body(&self, n: u64) -> Bytes {
        match self.channel {
            Channel::Whatsapp => self.whatsapp(n),
            Channel::Instagram => self.instagram(n),
        }
    }

    fn whatsapp(&self, n: u64) -> Bytes {
        let sender = self.sender(n);
        let wa_id = format!("3460{:07}", sender);
        Bytes::from(format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001111","phone_number_id":"123456"}},"contacts":[{{"profile":{{"name":"Customer {sender}"}},"wa_id":"{wa_id}"}}],"messages":[{{"from":"{wa_id}","id":"wamid.bench.{run:x}.{n}","timestamp":"1764000000","type":"text","text":{{"body":"Hola, this is load-test message {n} from customer {sender}"}}}}]}}}}]}}]}}"#,
            run = self.run,
        ))
    }

    /// As Meta sends a DM: epoch milliseconds, the customer's IGSID, no name.
    fn instagram(&self, n: u64) -> Bytes {
        let sender = self.sender(n);
        let igsid = format!("17{sender:014}");
        Bytes::from(format!(
            r#"{{"object":"instagram","entry":[{{"id":"17841400000000001","time":1764000000000,"messaging":[{{"sender":{{"id":"{igsid}"}},"recipient":{{"id":"17841400000000001"}},"timestamp":1764000000000,"message":{{"mid":"aWdfZAG1.bench.{run:x}.{n}","text":"Hola, this is load-test message {n} from customer {sender}"}}}}]}}]}}"#,
            run = self.run,
        ))
    }
}

impl Workload for Ingest {
    fn request(&self, n: u64) -> Req {
        Req {
            id: n,
            method: Method::POST,
            path: self.channel.path().into(),
            body: Some(self.body(n)),
        }
    }

    fn expect(&self) -> StatusCode {
        StatusCode::OK
    }
}

pub async fn run(
    settings: Settings,
    senders: u64,
    channel: Channel,
    watched: &Watched,
) -> Result<Value, Error> {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let work = Arc::new(Ingest {
        run,
        senders,
        channel,
    });
    let outcome = closed_loop::run(&settings, work.clone(), watched).await?;
    let target = &settings.targets[0];

    let stored = count(target, "/api/v1/messages?limit=1").await?;
    let conversations = count(target, "/api/v1/conversations?limit=1").await?;
    let ok_senders: HashSet<u64> = outcome.ok_ids.iter().map(|&n| work.sender(n)).collect();
    let all_senders: HashSet<u64> = ok_senders
        .iter()
        .copied()
        .chain(outcome.unsure_ids.iter().map(|&n| work.sender(n)))
        .collect();

    // Redeliver some acknowledged payloads: each must be acknowledged again and store nothing.
    let mut redelivered = 0u64;
    let mut redelivery_failures = 0u64;
    let mut conn = Conn::open(target).await?;
    for &n in outcome.ok_ids.iter().take(REDELIVERIES) {
        match conn
            .send(Method::POST, channel.path(), Some(work.body(n)))
            .await
        {
            Ok(reply) if reply.status == StatusCode::OK => redelivered += 1,
            _ => redelivery_failures += 1,
        }
    }
    let stored_after = count(target, "/api/v1/messages?limit=1").await?;

    let lost = outcome.ok.saturating_sub(stored);
    let extra = stored.saturating_sub(outcome.ok + outcome.unsure);
    let mut problems = Vec::new();
    if outcome.rejected > 0 {
        problems.push(format!("{} webhooks rejected", outcome.rejected));
    }
    if lost > 0 {
        problems.push(format!("{lost} acknowledged messages not stored"));
    }
    if extra > 0 {
        problems.push(format!("{extra} more messages stored than sent"));
    }
    if conversations < ok_senders.len() as u64 || conversations > all_senders.len() as u64 {
        problems.push(format!(
            "{conversations} conversations for {} senders",
            ok_senders.len()
        ));
    }
    if stored_after != stored || redelivery_failures > 0 {
        problems.push(format!(
            "redelivery of {redelivered} payloads changed the count {stored} -> {stored_after} ({redelivery_failures} not acknowledged)"
        ));
    }
    let mut v = outcome.summary();
    if let Value::Object(map) = &mut v {
        map.extend(
            json!({
                "acknowledged": outcome.ok,
                "stored": stored,
                "senders_used": ok_senders.len(),
                "conversations": conversations,
                "redelivered": redelivered,
                "stored_after_redelivery": stored_after,
                "check": if problems.is_empty() { "ok".to_string() } else { format!("FAIL: {}", problems.join("; ")) },
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
    }
    Ok(v)
}

/// `X-Total-Count` of a list route.
pub async fn count(target: &Target, path: &str) -> Result<u64, Error> {
    let reply = conn::once(target, Method::GET, path, None).await?;
    if reply.status != StatusCode::OK {
        return Err(format!("GET {path}: {}", reply.status).into());
    }
    reply
        .total_count()
        .ok_or_else(|| format!("GET {path}: no X-Total-Count").into())
}
