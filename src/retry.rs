//! The wait before a retry, shared by everything that retries a remote peer (the outbox's
//! sends, event webhook deliveries, the mailbox reader): doubling per attempt, capped, with
//! "equal jitter" (half fixed, half random) so the retries of many items or instances spread
//! out instead of arriving together.

use std::time::Duration;

/// The wait before attempt `attempt + 1`: `base` doubled `attempt - 1` times, at most `max`,
/// then between half of that and all of it.
pub fn backoff(base: Duration, attempt: u32, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let full = base.saturating_mul(1 << exponent).min(max);
    full / 2 + full.mul_f64(fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn doubles_within_its_jitter_and_is_capped() {
        let base = Duration::from_secs(2);
        for _ in 0..100 {
            let first = backoff(base, 1, MAX);
            assert!(
                first >= Duration::from_secs(1) && first <= base,
                "{first:?}"
            );
            let third = backoff(base, 3, MAX);
            assert!(
                third >= Duration::from_secs(4) && third <= Duration::from_secs(8),
                "{third:?}"
            );
            let late = backoff(base, 1_000, MAX);
            assert!(late >= MAX / 2 && late <= MAX, "{late:?}");
        }
        assert!(backoff(base, 0, MAX) <= base);
    }
}
