//! Configuration, read once from the environment (and `.env`) at start-up.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HOST`, `PORT` | `0.0.0.0`, `8000` | listen address |
//! | `DATABASE_URL` | `sqlite://switchboard.db` | `postgres://…` or `sqlite://path` |
//! | `DATABASE_MAX_CONNECTIONS` | `10` | pool size (SQLite caps it at 8) |
//! | `CORS_ORIGINS` | `http://localhost:3000` | comma-separated browser origins, credentials allowed |
//! | `API_KEYS` | unset | `name:key,…`; set, `/api/v1/*` and the WebSocket need a key |
//! | `MAX_BODY_BYTES` | `1048576` | largest request body accepted |
//! | `HTTP_HEADER_TIMEOUT_SECS` | `30` | a request head must be complete within this; also an idle keep-alive connection's life |
//! | `HTTP_BODY_TIMEOUT_SECS` | `60` | a request body must be complete within this of its head (408) |
//! | `HTTP_MAX_CONNECTIONS` | `25000`, lowered to fit `ulimit -n` | connections (WebSockets included) open at once; more wait to be accepted |
//! | `WS_QUEUE_CAPACITY` | `1024` | events a socket may fall behind before it gets `resync` |
//! | `WS_QUEUE_BYTES` | `4194304` | bytes of events kept for sockets that fall behind; past it, `resync` |
//! | `WS_PING_INTERVAL_SECS` | `20` | how often sockets are pinged; a peer silent for two intervals is closed |
//! | `WHATSAPP_ACCESS_TOKEN`, `WHATSAPP_PHONE_NUMBER_ID` | unset | Cloud API credentials; both needed to send |
//! | `WHATSAPP_GATEWAY_SEND_URL`, `WHATSAPP_GATEWAY_API_KEY` | unset | the WhatsApp Web gateway's send endpoint (and its `X-API-Key`): agents' replies to customers who write through the gateway go there |
//! | `WHATSAPP_WEBHOOK_VERIFY_TOKEN` | unset | token of Meta's GET verification handshake |
//! | `WHATSAPP_APP_SECRET` (alias `WHATSAPP_WEBHOOK_SECRET`) | unset | comma-separated app secrets; set, webhook POSTs need a valid `X-Hub-Signature-256` |
//! | `WHATSAPP_API_BASE_URL`, `WHATSAPP_API_VERSION` | `https://graph.facebook.com`, `v26.0` | where sends go |
//! | `WHATSAPP_TIMEOUT_MS` | `15000` | one Cloud API request's time limit |
//! | `INSTAGRAM_ACCESS_TOKEN`, `INSTAGRAM_ACCOUNT_ID` | unset | the professional account's Instagram-Login token and numeric id; both needed to send and to look names up |
//! | `INSTAGRAM_WEBHOOK_VERIFY_TOKEN`, `INSTAGRAM_APP_SECRET` | unset | as the WhatsApp pair, for `/webhook/instagram` (secrets comma-separated) |
//! | `INSTAGRAM_API_BASE_URL`, `INSTAGRAM_API_VERSION` | `https://graph.instagram.com`, `v26.0` | where sends and profile look-ups go (https, or http to a loopback host) |
//! | `INSTAGRAM_TIMEOUT_MS` | `15000` | one Instagram Graph request's time limit |
//! | `INSTAGRAM_HUMAN_AGENT_TAG` | `false` | agents' replies carry `MESSAGE_TAG`/`HUMAN_AGENT` (never the assistant's) |
//! | `SEND_MAX_ATTEMPTS` | `8` | attempts for one outbound message before it is `failed` |
//! | `SEND_RETRY_BASE_MS` | `2000` | first retry delay; doubles per attempt (with jitter), capped at 5 minutes |
//! | `OUTBOX_POLL_MS` | `1000` | how often the outbox looks for due messages |
//! | `AI_ASSISTANTS_API_KEYS` | unset | `project:key,…`; set, the gateway endpoint needs one as `X-API-Key` |
//! | `LLM_BASE_URL`, `LLM_API_KEY`, `LLM_MODEL` | unset | an OpenAI-compatible server; `LLM_MODEL` is required with a base URL |
//! | `LLM_TIMEOUT_SECS` | `20` | one LLM call's time limit (fractions allowed) |
//! | `ASSISTANT_SYSTEM_PROMPT` | a short receptionist prompt | the assistant's instructions |
//! | `ASSISTANT_HISTORY_LIMIT` | `20` | earlier messages of the conversation the LLM sees (0–200) |
//! | `ASSISTANT_FALLBACK_REPLY` | a short Spanish "we will answer soon" | the reply when no LLM answers |
//! | `ASSISTANT_AUTOREPLY` | `false` | `true`: inbound messages on every channel that can send get the assistant's answer through the outbox; or a comma list of channel names |
//! | `MEDIA_DIR`, `MEDIA_MAX_BYTES` | `./media`, `104857600` | where attachment files are kept (several instances: a directory they share), and the largest kept |
//! | `MEDIA_FETCH_TIMEOUT_SECS`, `MEDIA_FETCH_CONCURRENCY` | `120`, `4` | the longest one file's fetch from its provider may take, and files fetched at once per instance |
//! | `EVENT_WEBHOOK_URL`, `EVENT_WEBHOOK_SECRET` | unset | set: every event is also POSTed there, signed with the secret ([`events`]) |
//! | `EVENT_WEBHOOK_TIMEOUT_SECS`, `EVENT_WEBHOOK_RETRY_BASE_MS`, `EVENT_WEBHOOK_RETRY_HOURS` | `10`, `2000`, `24` | one attempt's limit; first retry delay (doubling, capped at 5 minutes); how long after it was recorded an event is retried |
//! | `EVENT_WEBHOOK_CONCURRENCY`, `EVENT_WEBHOOK_RETENTION_HOURS` | `16`, `24` | deliveries in flight (one per conversation); how long finished events are kept |
//! | `EMAIL_IMAP_URL` | unset | `imaps://USER:PASSWORD@HOST[:993][/MAILBOX]` (or `imap://`: STARTTLS, plain only to loopback); set, the mailbox is read |
//! | `EMAIL_SMTP_URL` | unset | `smtps://USER:PASSWORD@HOST[:465]` or `smtp://[USER:PASSWORD@]HOST[:587]`; needed to send on `gmail` |
//! | `EMAIL_FROM` | the IMAP user | `Name <address>` on outgoing mail |
//! | `EMAIL_POLL_SECS` | `30` | the longest a new mail waits before it is read (IDLE may make it sooner) |
//! | `EMAIL_BACKFILL_HOURS` | `24` | on the very first start, mails that arrived this far back are imported |
//! | `EMAIL_TIMEOUT_SECS` | `30` | one IMAP command's, or one SMTP send's, time limit |
//! | `EMAIL_CA_FILE` | unset | PEM certificates trusted besides the public roots (a company's own CA) |
//! | `PAGE_CACHE_BYTES` | `268435456` | memory for the first pages of the lists clients poll, kept serialised (`src/pages`); `0` keeps none |
//! | `METRICS_ADDR` | unset | serve `/metrics` there (unguarded, for an internal network) instead of on the main port behind `API_KEYS` |
//! | `RUST_LOG`, `LOG_FORMAT` | `info`, `pretty` | log filter; `json` for one JSON object per line |
//!
//! Every error names its variable. Secrets are kept in [`Secret`], whose `Debug` hides them.
//! Each area reads its own variables: [`channels`] (WhatsApp, Meta webhooks, the outbox),
//! [`instagram`], [`assistant`] (the LLM and auto-replies), [`server`] (connection limits),
//! [`events`] (the event webhook), [`email`] (IMAP and SMTP); [`vars`] holds the readers they
//! share.

mod assistant;
mod channels;
mod email;
mod events;
mod instagram;
mod media;
mod secret;
mod server;
mod vars;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

pub use self::assistant::{
    Assistant, AutoReply, Llm, DEFAULT_FALLBACK_REPLY, DEFAULT_SYSTEM_PROMPT,
};
pub use self::channels::{GatewaySend, MetaWebhook, Outbox, WhatsApp};
pub use self::email::{is_loopback, Email, ImapServer, Security, SmtpServer};
pub use self::events::EventWebhook;
pub use self::instagram::Instagram;
pub use self::media::MediaFetch;
pub use self::secret::{KeySet, Secret};
pub use self::server::Http;
use self::vars::{err, Vars};

/// Log output style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Everything the server reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub database_url: Secret,
    pub database_max_connections: u32,
    pub cors_origins: Vec<String>,
    pub api_keys: Option<KeySet>,
    pub max_body_bytes: usize,
    pub http: Http,
    pub ws_queue_capacity: usize,
    pub ws_queue_bytes: usize,
    pub ws_ping_interval: Duration,
    pub log_format: LogFormat,
    pub whatsapp: WhatsApp,
    pub instagram: Instagram,
    pub outbox: Outbox,
    pub gateway_keys: Option<KeySet>,
    pub assistant: Assistant,
    pub email: Email,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub media_dir: std::path::PathBuf,
    pub media_max_bytes: u64,
    pub media_fetch: MediaFetch,
    pub event_webhook: Option<EventWebhook>,
    pub page_cache_bytes: usize,
}

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`; tests pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let vars = Vars(&lookup);
        Ok(Config {
            host: vars.parsed("HOST", "0.0.0.0".parse().ok())?,
            port: vars.parsed("PORT", Some(8000))?,
            database_url: Secret::new(vars.database_url()?),
            database_max_connections: vars.bounded("DATABASE_MAX_CONNECTIONS", 10, 1, 1000)?,
            cors_origins: vars.cors_origins()?,
            api_keys: vars.key_set("API_KEYS")?,
            max_body_bytes: vars.bounded("MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024)?,
            http: vars.http()?,
            ws_queue_capacity: vars.bounded("WS_QUEUE_CAPACITY", 1024, 16, 1 << 20)?,
            ws_queue_bytes: vars.bounded("WS_QUEUE_BYTES", 4 << 20, 64 << 10, 1 << 30)?,
            ws_ping_interval: Duration::from_secs(vars.bounded(
                "WS_PING_INTERVAL_SECS",
                20,
                1,
                30,
            )?),
            log_format: match vars.get("LOG_FORMAT").as_deref() {
                None | Some("pretty") => LogFormat::Pretty,
                Some("json") => LogFormat::Json,
                Some(_) => return Err(err("LOG_FORMAT", "expected pretty or json")),
            },
            whatsapp: vars.whatsapp()?,
            instagram: vars.instagram()?,
            outbox: vars.outbox()?,
            gateway_keys: vars.key_set("AI_ASSISTANTS_API_KEYS")?,
            assistant: vars.assistant()?,
            email: vars.email()?,
            metrics_addr: vars
                .get("METRICS_ADDR")
                .map(|v| {
                    v.trim().parse().map_err(|_| {
                        err("METRICS_ADDR", "expected an address such as 127.0.0.1:9100")
                    })
                })
                .transpose()?,
            media_dir: vars
                .get("MEDIA_DIR")
                .map(|d| std::path::PathBuf::from(d.trim()))
                .unwrap_or_else(|| "media".into()),
            media_max_bytes: vars.bounded("MEDIA_MAX_BYTES", 100 * 1024 * 1024, 1, 1 << 40)?,
            media_fetch: vars.media_fetch()?,
            event_webhook: vars.event_webhook()?,
            page_cache_bytes: vars.bounded("PAGE_CACHE_BYTES", 256 << 20, 0, 1 << 40)?,
        })
    }

    /// A configuration for tests and tools: defaults, with `overrides` applied.
    pub fn with(overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }
}

impl Vars<'_> {
    fn database_url(&self) -> Result<String, ConfigError> {
        let url = self
            .get("DATABASE_URL")
            .unwrap_or_else(|| "sqlite://switchboard.db".into());
        let known = ["postgres://", "postgresql://", "sqlite:"];
        if !known.iter().any(|p| url.starts_with(p)) {
            return Err(err(
                "DATABASE_URL",
                "expected a postgres://… or sqlite://… URL",
            ));
        }
        Ok(url)
    }

    fn cors_origins(&self) -> Result<Vec<String>, ConfigError> {
        let raw = self
            .get("CORS_ORIGINS")
            .unwrap_or_else(|| "http://localhost:3000".into());
        let origins: Vec<String> = raw
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect();
        for origin in &origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && http::HeaderValue::from_str(origin).is_ok();
            if !ok {
                return Err(err(
                    "CORS_ORIGINS",
                    format!("{origin:?} is not an http(s) origin"),
                ));
            }
        }
        Ok(origins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChannelKind;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::with(&[]).expect("defaults are valid");
        assert_eq!(c.port, 8000);
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.database_url.expose(), "sqlite://switchboard.db");
        assert_eq!(c.cors_origins, vec!["http://localhost:3000"]);
        assert!(c.api_keys.is_none());
        assert_eq!(c.max_body_bytes, 1024 * 1024);
        assert_eq!(c.whatsapp.api_version, "v26.0");
        assert_eq!(c.whatsapp.api_base_url, "https://graph.facebook.com");
        assert!(c.whatsapp.credentials.is_none());
        assert_eq!(c.outbox.max_attempts, 8);
        assert!(c.assistant.llm.is_none());
        assert_eq!(c.assistant.history_limit, 20);
        assert_eq!(c.assistant.autoreply, AutoReply::Off);
        assert!(c.gateway_keys.is_none());
    }

    #[test]
    fn an_llm_needs_a_model_and_accepts_fractional_timeouts() {
        let e =
            Config::with(&[("LLM_BASE_URL", "http://localhost:11434/v1")]).expect_err("no model");
        assert_eq!(e.variable, "LLM_MODEL");
        let c = Config::with(&[
            ("LLM_BASE_URL", "http://localhost:11434/v1/"),
            ("LLM_MODEL", "llama3.2"),
            ("LLM_TIMEOUT_SECS", "0.5"),
        ])
        .expect("valid");
        let llm = c.assistant.llm.expect("configured");
        assert_eq!(llm.base_url, "http://localhost:11434/v1");
        assert_eq!(llm.timeout, Duration::from_millis(500));
        let e = Config::with(&[
            ("LLM_BASE_URL", "http://x"),
            ("LLM_MODEL", "m"),
            ("LLM_TIMEOUT_SECS", "0"),
        ])
        .expect_err("zero");
        assert_eq!(e.variable, "LLM_TIMEOUT_SECS");
    }

    #[test]
    fn webhook_secrets_are_a_list_and_have_an_alias() {
        let c = Config::with(&[("WHATSAPP_WEBHOOK_SECRET", "old, new")]).expect("valid");
        assert_eq!(
            c.whatsapp.webhook.app_secrets,
            vec![Secret::new("old"), Secret::new("new")]
        );
        let c = Config::with(&[
            ("WHATSAPP_APP_SECRET", "a"),
            ("WHATSAPP_WEBHOOK_SECRET", "b"),
        ])
        .expect("valid");
        assert_eq!(
            c.whatsapp.webhook.app_secrets,
            vec![Secret::new("a")],
            "the primary name wins"
        );
    }

    #[test]
    fn autoreply_is_a_flag_or_a_list_of_channels() {
        let on =
            |v: &str| Config::with(&[("ASSISTANT_AUTOREPLY", v)]).map(|c| c.assistant.autoreply);
        assert_eq!(on("true").ok(), Some(AutoReply::Everywhere));
        assert_eq!(on("off").ok(), Some(AutoReply::Off));
        let some = on("WhatsApp, instagram").ok();
        assert_eq!(
            some,
            Some(AutoReply::Only(vec![
                ChannelKind::Whatsapp,
                ChannelKind::Instagram
            ]))
        );
        assert!(some.is_some_and(|a| !a.covers(ChannelKind::Gmail)));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("PORT", "eighty"),
            ("DATABASE_URL", "mysql://x"),
            ("API_KEYS", "justakey"),
            ("LOG_FORMAT", "xml"),
            ("CORS_ORIGINS", "localhost:3000"),
            ("WS_QUEUE_CAPACITY", "0"),
            ("WS_QUEUE_BYTES", "1000"),
            ("WHATSAPP_API_VERSION", "26"),
            ("WHATSAPP_API_BASE_URL", "graph.facebook.com"),
            ("WHATSAPP_PHONE_NUMBER_ID", "+1 555"),
            ("SEND_MAX_ATTEMPTS", "0"),
            ("AI_ASSISTANTS_API_KEYS", ":nokey"),
            ("LLM_BASE_URL", "localhost:11434"),
            ("ASSISTANT_HISTORY_LIMIT", "-1"),
            ("ASSISTANT_AUTOREPLY", "sometimes"),
            ("ASSISTANT_AUTOREPLY", "whatsapp,telegram"),
            ("MEDIA_MAX_BYTES", "0"),
            ("MEDIA_FETCH_TIMEOUT_SECS", "0"),
            ("MEDIA_FETCH_CONCURRENCY", "1000"),
        ] {
            let e = Config::with(&[(var, value)]).expect_err(var);
            assert_eq!(e.variable, var);
            assert!(e.to_string().starts_with(var), "{e}");
        }
    }
}
