//! The event webhook's settings: where every event is POSTed (`EVENT_WEBHOOK_URL`), the secret
//! that signs it, how long it is retried and how long finished events are kept.

use std::time::Duration;

use super::vars::{err, Vars};
use super::{ConfigError, Secret};

/// Where and how events are pushed to the operator's own systems. Present only when
/// `EVENT_WEBHOOK_URL` is set.
#[derive(Clone, Debug)]
pub struct EventWebhook {
    /// An http(s) URL of the operator's choosing. Kept secret: it may carry credentials
    /// (`user:password@`) or a token in its path, as n8n's and many CRMs' webhook URLs do.
    pub url: Secret,
    /// Signs each delivery (`X-Switchboard-Signature`) when set.
    pub secret: Option<Secret>,
    /// One delivery attempt's time limit (connect, send, answer).
    pub timeout: Duration,
    /// The first retry's delay; it doubles per attempt, capped at five minutes.
    pub retry_base: Duration,
    /// How long after it was recorded a failing event is still retried.
    pub retry_for: Duration,
    /// Deliveries in flight at once (each to a different conversation).
    pub concurrency: usize,
    /// How long delivered and given-up events are kept before they are pruned.
    pub retention: Duration,
}

impl Vars<'_> {
    pub(super) fn event_webhook(&self) -> Result<Option<EventWebhook>, ConfigError> {
        const URL: &str = "EVENT_WEBHOOK_URL";
        let Some(url) = self.get(URL) else {
            return Ok(None);
        };
        // Kept as written (a receiver may tell `/hook` from `/hook/`); any host, and plain http
        // too: the operator chose where its own events go.
        let url = url.trim().to_string();
        if reqwest::Url::parse(&url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            return Err(err(
                URL,
                "expected an http(s) URL such as https://crm.example.com/hooks/switchboard",
            ));
        }
        Ok(Some(EventWebhook {
            url: Secret::new(url),
            secret: self.secret("EVENT_WEBHOOK_SECRET"),
            timeout: self.seconds("EVENT_WEBHOOK_TIMEOUT_SECS", 10.0, 300.0)?,
            retry_base: Duration::from_millis(self.bounded(
                "EVENT_WEBHOOK_RETRY_BASE_MS",
                2000,
                1,
                600_000,
            )?),
            retry_for: self.hours("EVENT_WEBHOOK_RETRY_HOURS", 24.0, 24.0 * 30.0)?,
            concurrency: self.bounded("EVENT_WEBHOOK_CONCURRENCY", 16, 1, 256)?,
            retention: self.hours("EVENT_WEBHOOK_RETENTION_HOURS", 24.0, 24.0 * 365.0)?,
        }))
    }

    /// A positive number of seconds up to `max` (fractions allowed).
    fn seconds(&self, name: &'static str, default: f64, max: f64) -> Result<Duration, ConfigError> {
        let value: f64 = self.parsed(name, Some(default))?;
        if !(value > 0.0 && value <= max) {
            return Err(err(name, format!("must be above 0 and at most {max}")));
        }
        Ok(Duration::from_secs_f64(value))
    }

    /// A number of hours from 0 up to `max` (fractions allowed).
    fn hours(&self, name: &'static str, default: f64, max: f64) -> Result<Duration, ConfigError> {
        let value: f64 = self.parsed(name, Some(default))?;
        if !(0.0..=max).contains(&value) {
            return Err(err(name, format!("must be between 0 and {max} hours")));
        }
        Ok(Duration::from_secs_f64(value * 3600.0))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn event_webhooks_are_off_until_a_url_is_set_and_default_to_a_day() {
        let c = Config::with(&[("EVENT_WEBHOOK_SECRET", "s")]).expect("valid");
        assert!(c.event_webhook.is_none());
        let c = Config::with(&[("EVENT_WEBHOOK_URL", "http://n8n.internal:5678/webhook/abc/")])
            .expect("valid");
        let hook = c.event_webhook.expect("configured");
        assert_eq!(hook.url.expose(), "http://n8n.internal:5678/webhook/abc/");
        assert!(hook.secret.is_none());
        assert_eq!(hook.timeout.as_secs(), 10);
        assert_eq!(hook.retry_for.as_secs(), 24 * 3600);
        assert_eq!(hook.retention.as_secs(), 24 * 3600);
        assert!(
            !format!("{hook:?}").contains("n8n.internal"),
            "the URL is secret"
        );
    }

    #[test]
    fn a_bad_event_webhook_value_names_its_variable() {
        for (var, value) in [
            ("EVENT_WEBHOOK_URL", "crm.example.com/hook"),
            ("EVENT_WEBHOOK_URL", "ftp://crm.example.com/hook"),
            ("EVENT_WEBHOOK_TIMEOUT_SECS", "0"),
            ("EVENT_WEBHOOK_RETRY_HOURS", "-1"),
            ("EVENT_WEBHOOK_RETENTION_HOURS", "forever"),
            ("EVENT_WEBHOOK_CONCURRENCY", "0"),
            ("EVENT_WEBHOOK_RETRY_BASE_MS", "0"),
        ] {
            let e = Config::with(&[
                ("EVENT_WEBHOOK_URL", "https://crm.example.com/hook"),
                (var, value),
            ])
            .expect_err(var);
            assert_eq!(e.variable, var, "{value}");
        }
    }
}
