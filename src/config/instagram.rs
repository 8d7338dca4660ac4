//! Instagram's settings (Instagram API with Instagram Login): the professional account's token
//! and id, its webhook, where the Graph API is, and whether agents' replies carry Meta's
//! `HUMAN_AGENT` tag.

use std::time::Duration;

use super::channels::MetaWebhook;
use super::vars::{err, parse_flag, Vars};
use super::{ConfigError, Secret};

/// Instagram messaging settings.
#[derive(Clone, Debug)]
pub struct Instagram {
    /// Token and account id (`user_id` of `/me`), when both are set: sending and profile
    /// look-ups are possible.
    pub credentials: Option<(Secret, String)>,
    pub webhook: MetaWebhook,
    pub api_base_url: String,
    pub api_version: String,
    pub timeout: Duration,
    /// Agents' replies carry `messaging_type: MESSAGE_TAG, tag: HUMAN_AGENT` (the app has Meta's
    /// Human Agent permission): 7 days to answer instead of 24 hours. Never the assistant's.
    pub human_agent_tag: bool,
}

impl Vars<'_> {
    pub(super) fn instagram(&self) -> Result<Instagram, ConfigError> {
        let account_id = self
            .get("INSTAGRAM_ACCOUNT_ID")
            .map(|id| id.trim().to_owned());
        if let Some(id) = &account_id {
            if !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(err(
                    "INSTAGRAM_ACCOUNT_ID",
                    "expected the numeric id of the professional account (user_id of /me)",
                ));
            }
        }
        const BASE: &str = "INSTAGRAM_API_BASE_URL";
        let api_base_url = self
            .http_url(
                BASE,
                Some("https://graph.instagram.com"),
                "https://graph.instagram.com",
            )?
            .unwrap_or_default();
        if !tls_or_loopback(&api_base_url) {
            return Err(err(
                BASE,
                "expected an https:// URL (plain http only to a loopback host)",
            ));
        }
        let human_agent_tag = match self.get("INSTAGRAM_HUMAN_AGENT_TAG") {
            None => false,
            Some(raw) => parse_flag(&raw.trim().to_ascii_lowercase())
                .ok_or_else(|| err("INSTAGRAM_HUMAN_AGENT_TAG", "expected true or false"))?,
        };
        Ok(Instagram {
            credentials: self.secret("INSTAGRAM_ACCESS_TOKEN").zip(account_id),
            webhook: MetaWebhook {
                verify_token: self.get("INSTAGRAM_WEBHOOK_VERIFY_TOKEN").map(Secret::new),
                app_secrets: self
                    .list("INSTAGRAM_APP_SECRET")
                    .into_iter()
                    .map(Secret::new)
                    .collect(),
            },
            api_base_url,
            api_version: self.graph_version("INSTAGRAM_API_VERSION")?,
            timeout: Duration::from_millis(self.bounded(
                "INSTAGRAM_TIMEOUT_MS",
                15_000,
                10,
                300_000,
            )?),
            human_agent_tag,
        })
    }
}

/// The token travels with every request: only over TLS, or to this machine (tests, a local
/// proxy).
fn tls_or_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    if url.scheme() == "https" {
        return true;
    }
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn defaults_and_credentials() {
        let c = Config::with(&[]).expect("defaults");
        assert_eq!(c.instagram.api_base_url, "https://graph.instagram.com");
        assert_eq!(c.instagram.api_version, "v26.0");
        assert!(c.instagram.credentials.is_none());
        assert!(!c.instagram.human_agent_tag);
        let c = Config::with(&[
            ("INSTAGRAM_ACCESS_TOKEN", "IGAA-token"),
            ("INSTAGRAM_ACCOUNT_ID", " 17841452691600098 "),
            ("INSTAGRAM_APP_SECRET", "a, b"),
            ("INSTAGRAM_HUMAN_AGENT_TAG", "true"),
            ("INSTAGRAM_API_BASE_URL", "http://127.0.0.1:9999/"),
        ])
        .expect("valid");
        let (_, id) = c.instagram.credentials.expect("both set");
        assert_eq!(id, "17841452691600098");
        assert_eq!(c.instagram.webhook.app_secrets.len(), 2);
        assert!(c.instagram.human_agent_tag);
        assert_eq!(c.instagram.api_base_url, "http://127.0.0.1:9999");
        let one = Config::with(&[("INSTAGRAM_ACCESS_TOKEN", "t")]).expect("valid");
        assert!(one.instagram.credentials.is_none(), "both are needed");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("INSTAGRAM_ACCOUNT_ID", "@mybusiness"),
            ("INSTAGRAM_API_BASE_URL", "graph.instagram.com"),
            ("INSTAGRAM_API_BASE_URL", "http://graph.instagram.com"),
            ("INSTAGRAM_API_VERSION", "26"),
            ("INSTAGRAM_HUMAN_AGENT_TAG", "maybe"),
            ("INSTAGRAM_TIMEOUT_MS", "0"),
        ] {
            let e = Config::with(&[(var, value)]).expect_err(var);
            assert_eq!(e.variable, var, "{value}");
        }
    }
}
