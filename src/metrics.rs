//! Prometheus metrics, rendered in the text exposition format on `GET /metrics`.
//!
//! Counters are atomics; the per-route request histogram sits behind one mutex taken once per
//! request (a few hundred nanoseconds). Gauges that live in the database (the outbox backlog)
//! and in the hub (open sockets, events) are read at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Everything counted in-process.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    pub webhook_messages_stored: AtomicU64,
    pub webhook_duplicates_ignored: AtomicU64,
    /// Transactions that stored webhook deliveries, and the deliveries they held (group commit).
    pub webhook_batches: AtomicU64,
    pub webhook_batched_deliveries: AtomicU64,
    /// Batches that failed and were written again one delivery per transaction.
    pub webhook_batches_retried: AtomicU64,
    pub outbox_sent: AtomicU64,
    pub outbox_failed: AtomicU64,
    pub outbox_retried: AtomicU64,
    /// Event webhook deliveries: taken by the receiver, failed attempts to retry, given up.
    pub event_webhooks_delivered: AtomicU64,
    pub event_webhooks_retried: AtomicU64,
    pub event_webhooks_given_up: AtomicU64,
    /// Mails fetched from the IMAP mailbox, those of them stored (not already there), and
    /// failed attempts to read it.
    pub email_mails_fetched: AtomicU64,
    pub email_mails_imported: AtomicU64,
    pub email_read_failures: AtomicU64,
    /// List pages served from memory, built from the database, and answered 304 (src/pages).
    pub pages_kept: AtomicU64,
    pub pages_built: AtomicU64,
    pub pages_not_modified: AtomicU64,
    /// Queries that read the stamps of a batch of page checks.
    pub pages_stamp_reads: AtomicU64,
    llm: Mutex<BTreeMap<String, Histogram>>,
}

/// Values read at scrape time from elsewhere.
pub struct Gauges {
    pub open_sockets: usize,
    pub events_published: u64,
    pub events_dropped: u64,
    pub outbox_pending: Option<i64>,
    /// Events waiting for the event webhook's receiver (`None`: not configured, or unknown).
    pub event_webhooks_pending: Option<i64>,
    /// Bytes of list pages kept in memory.
    pub pages_kept_bytes: usize,
}

impl Metrics {
    /// One finished HTTP request; `route` is the matched route pattern, never the raw path (so
    /// the label set stays bounded).
    pub fn request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            requests
                .entry((method.to_string(), route.to_string(), status))
                .or_default()
                .observe(latency.as_secs_f64());
        }
    }

    /// One LLM call and how it ended (`ok`, or the fallback reason).
    pub fn llm_call(&self, outcome: &str, latency: Duration) {
        if let Ok(mut llm) = self.llm.lock() {
            llm.entry(outcome.to_string())
                .or_default()
                .observe(latency.as_secs_f64());
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str("# HELP switchboard_http_request_duration_seconds HTTP requests by method, matched route and status.\n");
        out.push_str("# TYPE switchboard_http_request_duration_seconds histogram\n");
        if let Ok(requests) = self.requests.lock() {
            for ((method, route, status), histogram) in requests.iter() {
                let labels = format!(
                    "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                    escape(route)
                );
                histogram.render(
                    &mut out,
                    "switchboard_http_request_duration_seconds",
                    &labels,
                );
            }
        }
        gauge(
            &mut out,
            "switchboard_websocket_open",
            "Open WebSocket connections on this instance.",
            gauges.open_sockets as u64,
        );
        counter(
            &mut out,
            "switchboard_events_published_total",
            "Events handed to this instance's sockets.",
            gauges.events_published,
        );
        counter(
            &mut out,
            "switchboard_events_dropped_total",
            "Events dropped for sockets that fell behind (each got resync).",
            gauges.events_dropped,
        );
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "switchboard_webhook_messages_stored_total",
            "Webhook messages stored.",
            load(&self.webhook_messages_stored),
        );
        counter(
            &mut out,
            "switchboard_webhook_duplicates_ignored_total",
            "Redelivered webhook messages ignored.",
            load(&self.webhook_duplicates_ignored),
        );
        counter(
            &mut out,
            "switchboard_webhook_batches_total",
            "Transactions that stored webhook deliveries (concurrent deliveries share one).",
            load(&self.webhook_batches),
        );
        counter(
            &mut out,
            "switchboard_webhook_batched_deliveries_total",
            "Webhook deliveries stored by those transactions.",
            load(&self.webhook_batched_deliveries),
        );
        counter(
            &mut out,
            "switchboard_webhook_batches_retried_total",
            "Batches that failed and were written again one delivery per transaction.",
            load(&self.webhook_batches_retried),
        );
        if let Some(pending) = gauges.outbox_pending {
            gauge(
                &mut out,
                "switchboard_outbox_pending",
                "Outbound messages waiting to be sent or retried.",
                pending.max(0) as u64,
            );
        }
        counter(
            &mut out,
            "switchboard_outbox_sent_total",
            "Outbound messages accepted by the provider.",
            load(&self.outbox_sent),
        );
        counter(
            &mut out,
            "switchboard_outbox_retries_total",
            "Transient send failures scheduled for a retry.",
            load(&self.outbox_retried),
        );
        counter(
            &mut out,
            "switchboard_outbox_failed_total",
            "Outbound messages failed for good.",
            load(&self.outbox_failed),
        );
        if let Some(pending) = gauges.event_webhooks_pending {
            gauge(
                &mut out,
                "switchboard_event_webhooks_pending",
                "Events waiting for the event webhook's receiver (first try or retry).",
                pending.max(0) as u64,
            );
        }
        counter(
            &mut out,
            "switchboard_event_webhooks_delivered_total",
            "Events the event webhook's receiver took (2xx).",
            load(&self.event_webhooks_delivered),
        );
        counter(
            &mut out,
            "switchboard_event_webhooks_retries_total",
            "Event webhook attempts that failed and were scheduled again.",
            load(&self.event_webhooks_retried),
        );
        counter(
            &mut out,
            "switchboard_event_webhooks_given_up_total",
            "Events given up after the retry window (each logged with its id).",
            load(&self.event_webhooks_given_up),
        );
        counter(
            &mut out,
            "switchboard_email_mails_fetched_total",
            "Mails fetched from the IMAP mailbox (each is read once; a restart resumes after the last).",
            load(&self.email_mails_fetched),
        );
        counter(
            &mut out,
            "switchboard_email_mails_imported_total",
            "Mails read from the IMAP mailbox and stored.",
            load(&self.email_mails_imported),
        );
        counter(
            &mut out,
            "switchboard_email_read_failures_total",
            "Attempts to read the IMAP mailbox that failed (retried with backoff).",
            load(&self.email_read_failures),
        );
        counter(
            &mut out,
            "switchboard_pages_kept_total",
            "List pages served from memory after their stamp was checked.",
            load(&self.pages_kept),
        );
        counter(
            &mut out,
            "switchboard_pages_built_total",
            "List pages read from the database and serialised (not kept, or stale).",
            load(&self.pages_built),
        );
        counter(
            &mut out,
            "switchboard_pages_not_modified_total",
            "List pages answered 304 from their stamp alone.",
            load(&self.pages_not_modified),
        );
        counter(
            &mut out,
            "switchboard_pages_stamp_reads_total",
            "Queries that read the stamps of a batch of page checks (the checks share them).",
            load(&self.pages_stamp_reads),
        );
        gauge(
            &mut out,
            "switchboard_pages_kept_bytes",
            "Bytes of list pages kept in memory (PAGE_CACHE_BYTES bounds it).",
            gauges.pages_kept_bytes as u64,
        );
        out.push_str("# HELP switchboard_llm_call_duration_seconds LLM calls by outcome (ok, or the fallback reason).\n");
        out.push_str("# TYPE switchboard_llm_call_duration_seconds histogram\n");
        if let Ok(llm) = self.llm.lock() {
            for (outcome, histogram) in llm.iter() {
                histogram.render(
                    &mut out,
                    "switchboard_llm_call_duration_seconds",
                    &format!("outcome=\"{}\"", escape(outcome)),
                );
            }
        }
        out
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
    );
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
    );
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let metrics = Metrics::default();
        metrics.request("GET", "/api/v1/messages", 200, Duration::from_millis(3));
        metrics.request("GET", "/api/v1/messages", 200, Duration::from_millis(30));
        metrics.llm_call("llm_\"odd\"", Duration::from_millis(10));
        let text = metrics.render(&Gauges {
            open_sockets: 2,
            events_published: 5,
            events_dropped: 1,
            outbox_pending: Some(3),
            event_webhooks_pending: None,
            pages_kept_bytes: 4096,
        });
        let labels = r#"method="GET",route="/api/v1/messages",status="200""#;
        assert!(text.contains(&format!(
            "switchboard_http_request_duration_seconds_bucket{{{labels},le=\"0.0025\"}} 0"
        )));
        assert!(text.contains(&format!(
            "switchboard_http_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1"
        )));
        assert!(text.contains(&format!(
            "switchboard_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"
        )));
        assert!(text.contains(&format!(
            "switchboard_http_request_duration_seconds_count{{{labels}}} 2"
        )));
        assert!(text.contains("switchboard_websocket_open 2\n"));
        assert!(text.contains("switchboard_outbox_pending 3\n"));
        assert!(text.contains(r#"outcome="llm_\"odd\"""#));
    }
}
