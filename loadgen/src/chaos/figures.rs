//! The soak's figures, from what the clients were answered, what the server stored and what
//! the provider accepted, and which of them are wrong.

use serde_json::{json, Value};

use super::audit;
use super::load::Answers;
use super::provider::Accepted;

/// The soak's figures and what in them is wrong.
pub struct Figures<'a> {
    pub webhooks: &'a Answers,
    pub sends: &'a Answers,
    /// Webhooks stored before the redelivery, and after it.
    pub before: &'a audit::Rows,
    pub after: &'a audit::Rows,
    /// Sends stored once the pending ones were sent (or the drain gave up).
    pub stored_sends: &'a audit::Rows,
    pub accepted: &'a Accepted,
    pub unacknowledged: usize,
    pub redelivered: usize,
    pub redelivery_failures: usize,
}

impl Figures<'_> {
    pub fn webhooks(&self) -> Value {
        let lost = missing(&self.webhooks.acknowledged, |n| self.before.holds(n));
        let written = self.webhooks.written();
        json!({
            "written": written,
            "acknowledged": self.webhooks.acknowledged.len(),
            "refused": self.webhooks.refused.len(),
            "unanswered": self.webhooks.unanswered.len(),
            "rejected": self.webhooks.rejected.len(),
            "stored": self.before.per_request.len(),
            "lost": lost,
            "doubled_rows": self.before.doubled(),
            "redelivered": self.redelivered,
            "redelivered_unacknowledged": self.unacknowledged,
            "redelivery_failures": self.redelivery_failures,
            "stored_after_redelivery": self.after.per_request.len(),
            "doubled_rows_after_redelivery": self.after.doubled(),
            "foreign_rows": self.after.foreign + self.stored_sends.foreign,
        })
    }

    pub fn sends(&self) -> Value {
        let stored = &self.stored_sends.per_request;
        let per_send = &self.accepted.per_send;
        let lost = missing(&self.sends.acknowledged, |n| self.stored_sends.holds(n));
        // Recorded sent (or later) without the provider ever having it: a fake acceptance.
        let sent_not_at_provider = stored
            .iter()
            .filter(|(n, rows)| {
                rows.iter().any(|s| s != "pending" && s != "failed") && !per_send.contains_key(n)
            })
            .count();
        json!({
            "written": self.sends.written(),
            "accepted": self.sends.acknowledged.len(),
            "refused": self.sends.refused.len(),
            "unanswered": self.sends.unanswered.len(),
            "rejected": self.sends.rejected.len(),
            "stored": stored.len(),
            "stored_unanswered": self.sends.unanswered.iter().filter(|&&n| self.stored_sends.holds(n)).count(),
            "lost": lost,
            "doubled_rows": self.stored_sends.doubled(),
            "at_provider": per_send.len(),
            "at_provider_more_than_once": per_send.values().filter(|&&c| c > 1).count(),
            "provider_calls": per_send.values().map(|&c| u64::from(c)).sum::<u64>(),
            "provider_stray": self.accepted.stray,
            "pending": self.stored_sends.with_status("pending"),
            "failed": self.stored_sends.with_status("failed"),
            "sent_not_at_provider": sent_not_at_provider,
        })
    }

    /// What is wrong: lost or doubled rows, wrong answers, a fake acceptance.
    pub fn problems(&self) -> Vec<String> {
        let (w, s) = (self.webhooks(), self.sends());
        let mut problems = Vec::new();
        let nonzero = [
            (&w, "lost", "acknowledged webhooks not stored"),
            (&w, "doubled_rows", "webhook rows stored twice"),
            (
                &w,
                "doubled_rows_after_redelivery",
                "webhook rows stored twice after redelivery",
            ),
            (&w, "rejected", "webhooks answered neither 2xx nor 503"),
            (
                &w,
                "redelivery_failures",
                "redelivered webhooks not acknowledged",
            ),
            (&s, "lost", "accepted sends not stored"),
            (&s, "doubled_rows", "send rows stored twice"),
            (&s, "rejected", "sends answered neither 2xx nor 503"),
            (
                &s,
                "provider_stray",
                "requests the provider could not place",
            ),
            (
                &s,
                "sent_not_at_provider",
                "sends recorded sent that the provider never had",
            ),
            (&w, "foreign_rows", "rows that belong to no request"),
        ];
        for (figures, key, what) in nonzero {
            let n = figures[key].as_u64().unwrap_or(0);
            if n > 0 {
                problems.push(format!("{n} {what}"));
            }
        }
        let (stored, written) = (w["stored_after_redelivery"].as_u64(), w["written"].as_u64());
        if stored != written {
            problems.push(format!(
                "{stored:?} webhooks stored after redelivery of all {written:?} written"
            ));
        }
        if let Some(sample) = self.webhooks.sample.as_ref().or(self.sends.sample.as_ref()) {
            if !problems.is_empty() {
                problems.push(format!("a wrong answer: {sample}"));
            }
        }
        problems
    }
}

/// How many of `numbers` `stored` does not hold.
fn missing(numbers: &[u64], stored: impl Fn(u64) -> bool) -> usize {
    numbers.iter().filter(|&&n| !stored(n)).count()
}
