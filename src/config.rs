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
//! | `WS_QUEUE_CAPACITY` | `1024` | events a socket may fall behind before it gets `resync` |
//! | `WS_PING_INTERVAL_SECS` | `20` | how often sockets are pinged; a peer silent for two intervals is closed |
//! | `WHATSAPP_ACCESS_TOKEN`, `WHATSAPP_PHONE_NUMBER_ID` | unset | Cloud API credentials; both needed to send |
//! | `WHATSAPP_WEBHOOK_VERIFY_TOKEN` | unset | token of Meta's GET verification handshake |
//! | `WHATSAPP_APP_SECRET` (alias `WHATSAPP_WEBHOOK_SECRET`) | unset | comma-separated app secrets; set, webhook POSTs need a valid `X-Hub-Signature-256` |
//! | `WHATSAPP_API_BASE_URL`, `WHATSAPP_API_VERSION` | `https://graph.facebook.com`, `v26.0` | where sends go |
//! | `WHATSAPP_TIMEOUT_MS` | `15000` | one Cloud API request's time limit |
//! | `SEND_MAX_ATTEMPTS` | `8` | attempts for one outbound message before it is `failed` |
//! | `SEND_RETRY_BASE_MS` | `2000` | first retry delay; doubles per attempt (with jitter), capped at 5 minutes |
//! | `OUTBOX_POLL_MS` | `1000` | how often the outbox looks for due messages |
//! | `AI_ASSISTANTS_API_KEYS` | unset | `project:key,…`; set, the gateway endpoint needs one as `X-API-Key` |
//! | `LLM_BASE_URL`, `LLM_API_KEY`, `LLM_MODEL` | unset | an OpenAI-compatible server; `LLM_MODEL` is required with a base URL |
//! | `LLM_TIMEOUT_SECS` | `20` | one LLM call's time limit (fractions allowed) |
//! | `ASSISTANT_SYSTEM_PROMPT` | a short receptionist prompt | the assistant's instructions |
//! | `ASSISTANT_HISTORY_LIMIT` | `20` | earlier messages of the conversation the LLM sees (0–200) |
//! | `ASSISTANT_FALLBACK_REPLY` | a short Spanish "we will answer soon" | the reply when no LLM answers |
//! | `ASSISTANT_AUTOREPLY` | `false` | answer inbound Cloud API text messages through the outbox |
//! | `METRICS_ADDR` | unset | serve `/metrics` there (unguarded, for an internal network) instead of on the main port behind `API_KEYS` |
//! | `RUST_LOG`, `LOG_FORMAT` | `info`, `pretty` | log filter; `json` for one JSON object per line |
//!
//! Every error names its variable. Secrets are kept in [`Secret`], whose `Debug` hides them.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use subtle::ConstantTimeEq;

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Compares in constant time (for equal lengths; the length itself is not secret enough to
    /// matter for random keys).
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Named keys (`name:key,name2:key2`), as in `API_KEYS`.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<(String, Secret)>,
}

impl KeySet {
    pub fn parse(raw: &str) -> Result<KeySet, String> {
        let mut keys = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, key) = item
                .split_once(':')
                .ok_or_else(|| "each entry must be name:key".to_string())?;
            let (name, key) = (name.trim(), key.trim());
            if name.is_empty() || key.is_empty() {
                return Err("each entry must be name:key with neither part empty".into());
            }
            keys.push((name.to_string(), Secret::new(key)));
        }
        if keys.is_empty() {
            return Err("no name:key entry found".into());
        }
        Ok(KeySet { keys })
    }

    /// The name of the key equal to `candidate`. Every key is compared, so the time taken does
    /// not tell which one (or whether any) matched.
    pub fn find(&self, candidate: &str) -> Option<&str> {
        let mut found = None;
        for (name, key) in &self.keys {
            if key.matches(candidate) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

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
    pub ws_queue_capacity: usize,
    pub ws_ping_interval: Duration,
    pub log_format: LogFormat,
    pub whatsapp: WhatsApp,
    pub outbox: Outbox,
    pub gateway_keys: Option<KeySet>,
    pub assistant: Assistant,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// The LLM assistant.
#[derive(Clone, Debug)]
pub struct Assistant {
    pub llm: Option<Llm>,
    pub system_prompt: String,
    pub history_limit: i64,
    pub fallback_reply: String,
    pub autoreply: bool,
}

/// An OpenAI-compatible chat-completions server.
#[derive(Clone, Debug)]
pub struct Llm {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    pub timeout: Duration,
}

pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are the friendly assistant of a small business on WhatsApp. \
Answer briefly and politely, in the customer's language. If you cannot help, say that a person \
from the team will answer soon. Never invent prices, opening hours or availability.";

pub const DEFAULT_FALLBACK_REPLY: &str =
    "¡Gracias por tu mensaje! En breve te responderá una persona de nuestro equipo.";

/// WhatsApp Cloud API settings.
#[derive(Clone, Debug)]
pub struct WhatsApp {
    /// Token and phone number id, when both are set: sending is possible.
    pub credentials: Option<(Secret, String)>,
    pub verify_token: Option<Secret>,
    /// Any one of these may sign a webhook (several allow rotating the secret).
    pub app_secrets: Vec<Secret>,
    pub api_base_url: String,
    pub api_version: String,
    pub timeout: Duration,
}

/// Delivery of outbound messages.
#[derive(Clone, Debug)]
pub struct Outbox {
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub poll_interval: Duration,
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
            ws_queue_capacity: vars.bounded("WS_QUEUE_CAPACITY", 1024, 16, 1 << 20)?,
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
            outbox: Outbox {
                max_attempts: vars.bounded("SEND_MAX_ATTEMPTS", 8, 1, 100)?,
                retry_base: Duration::from_millis(vars.bounded(
                    "SEND_RETRY_BASE_MS",
                    2000,
                    1,
                    600_000,
                )?),
                poll_interval: Duration::from_millis(vars.bounded(
                    "OUTBOX_POLL_MS",
                    1000,
                    10,
                    60_000,
                )?),
            },
            gateway_keys: vars.key_set("AI_ASSISTANTS_API_KEYS")?,
            assistant: vars.assistant()?,
            metrics_addr: vars
                .get("METRICS_ADDR")
                .map(|v| {
                    v.trim().parse().map_err(|_| {
                        err("METRICS_ADDR", "expected an address such as 127.0.0.1:9100")
                    })
                })
                .transpose()?,
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

fn err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The variable's value; empty counts as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: Option<T>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| err(name, format!("cannot parse {raw:?}"))),
            None => default.ok_or_else(|| err(name, "is required")),
        }
    }

    fn bounded<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let value: T = self.parsed(name, Some(default))?;
        if value < min || value > max {
            return Err(err(
                name,
                format!("must be between {min} and {max}, got {value}"),
            ));
        }
        Ok(value)
    }

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

    fn whatsapp(&self) -> Result<WhatsApp, ConfigError> {
        let token = self.get("WHATSAPP_ACCESS_TOKEN");
        let phone_number_id = self.get("WHATSAPP_PHONE_NUMBER_ID");
        if let Some(id) = &phone_number_id {
            if !id.trim().chars().all(|c| c.is_ascii_digit()) {
                return Err(err(
                    "WHATSAPP_PHONE_NUMBER_ID",
                    "expected the numeric id Meta shows",
                ));
            }
        }
        let secrets = self
            .get("WHATSAPP_APP_SECRET")
            .or_else(|| self.get("WHATSAPP_WEBHOOK_SECRET"));
        let base = self
            .get("WHATSAPP_API_BASE_URL")
            .unwrap_or_else(|| "https://graph.facebook.com".into());
        let base = base.trim().trim_end_matches('/').to_string();
        if reqwest::Url::parse(&base)
            .map(|u| !u.scheme().starts_with("http"))
            .unwrap_or(true)
        {
            return Err(err("WHATSAPP_API_BASE_URL", "expected an http(s) URL"));
        }
        let version = self
            .get("WHATSAPP_API_VERSION")
            .unwrap_or_else(|| "v26.0".into());
        let version = version.trim().to_string();
        let well_formed = version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && (a.to_string() + b).chars().all(|c| c.is_ascii_digit())
            });
        if !well_formed {
            return Err(err(
                "WHATSAPP_API_VERSION",
                "expected a Graph version such as v26.0",
            ));
        }
        Ok(WhatsApp {
            credentials: token
                .zip(phone_number_id)
                .map(|(t, id)| (Secret::new(t.trim()), id.trim().to_string())),
            verify_token: self.get("WHATSAPP_WEBHOOK_VERIFY_TOKEN").map(Secret::new),
            app_secrets: secrets
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(Secret::new)
                        .collect()
                })
                .unwrap_or_default(),
            api_base_url: base,
            api_version: version,
            timeout: Duration::from_millis(self.bounded(
                "WHATSAPP_TIMEOUT_MS",
                15_000,
                10,
                300_000,
            )?),
        })
    }

    fn assistant(&self) -> Result<Assistant, ConfigError> {
        let llm = match self.get("LLM_BASE_URL") {
            None => None,
            Some(base) => {
                let base = base.trim().trim_end_matches('/').to_string();
                if reqwest::Url::parse(&base)
                    .map(|u| !u.scheme().starts_with("http"))
                    .unwrap_or(true)
                {
                    return Err(err(
                        "LLM_BASE_URL",
                        "expected an http(s) URL such as http://localhost:11434/v1",
                    ));
                }
                let model = self
                    .get("LLM_MODEL")
                    .ok_or_else(|| err("LLM_MODEL", "is required when LLM_BASE_URL is set"))?;
                let seconds: f64 = self.parsed("LLM_TIMEOUT_SECS", Some(20.0))?;
                if !(seconds > 0.0 && seconds <= 600.0) {
                    return Err(err("LLM_TIMEOUT_SECS", "must be above 0 and at most 600"));
                }
                Some(Llm {
                    base_url: base,
                    api_key: self.get("LLM_API_KEY").map(|k| Secret::new(k.trim())),
                    model: model.trim().to_string(),
                    timeout: Duration::from_secs_f64(seconds),
                })
            }
        };
        let autoreply = match self
            .get("ASSISTANT_AUTOREPLY")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => false,
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => true,
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => false,
            Some(_) => return Err(err("ASSISTANT_AUTOREPLY", "expected true or false")),
        };
        Ok(Assistant {
            llm,
            system_prompt: self
                .get("ASSISTANT_SYSTEM_PROMPT")
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.into()),
            history_limit: self.bounded("ASSISTANT_HISTORY_LIMIT", 20, 0, 200)?,
            fallback_reply: self
                .get("ASSISTANT_FALLBACK_REPLY")
                .unwrap_or_else(|| DEFAULT_FALLBACK_REPLY.into()),
            autoreply,
        })
    }

    fn key_set(&self, name: &'static str) -> Result<Option<KeySet>, ConfigError> {
        self.get(name)
            .map(|raw| KeySet::parse(&raw).map_err(|problem| err(name, problem)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!c.assistant.autoreply);
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
            c.whatsapp.app_secrets,
            vec![Secret::new("old"), Secret::new("new")]
        );
        let c = Config::with(&[
            ("WHATSAPP_APP_SECRET", "a"),
            ("WHATSAPP_WEBHOOK_SECRET", "b"),
        ])
        .expect("valid");
        assert_eq!(
            c.whatsapp.app_secrets,
            vec![Secret::new("a")],
            "the primary name wins"
        );
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
            ("WHATSAPP_API_VERSION", "26"),
            ("WHATSAPP_API_BASE_URL", "graph.facebook.com"),
            ("WHATSAPP_PHONE_NUMBER_ID", "+1 555"),
            ("SEND_MAX_ATTEMPTS", "0"),
            ("AI_ASSISTANTS_API_KEYS", ":nokey"),
            ("LLM_BASE_URL", "localhost:11434"),
            ("ASSISTANT_HISTORY_LIMIT", "-1"),
            ("ASSISTANT_AUTOREPLY", "sometimes"),
        ] {
            let e = Config::with(&[(var, value)]).expect_err(var);
            assert_eq!(e.variable, var);
            assert!(e.to_string().starts_with(var), "{e}");
        }
    }

    #[test]
    fn keys_are_found_by_value_and_hidden_in_debug() {
        let keys = KeySet::parse("web:abc123, ops:xyz:789").expect("valid");
        assert_eq!(keys.find("abc123"), Some("web"));
        assert_eq!(keys.find("xyz:789"), Some("ops"));
        assert_eq!(keys.find("abc12"), None);
        assert_eq!(keys.find(""), None);
        assert!(!format!("{keys:?}").contains("abc123"));
    }
}
