//! Timestamps: always UTC, at microsecond precision (what PostgreSQL keeps), so both backends
//! return exactly what was stored.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

/// The current time, truncated to microseconds.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Parses an RFC 3339 timestamp; one without an offset (`2025-01-08T10:00:00`, or with a space
/// instead of `T`) is taken as UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).trunc_subsecs(6));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|n| n.and_utc().trunc_subsecs(6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_converted_and_naive_times_are_utc() {
        let a = parse_timestamp("2025-01-08T12:00:00+02:00").map(|t| t.to_rfc3339());
        let b = parse_timestamp("2025-01-08T10:00:00").map(|t| t.to_rfc3339());
        let c = parse_timestamp("2025-01-08 10:00:00.5").map(|t| t.to_rfc3339());
        assert_eq!(a.as_deref(), Some("2025-01-08T10:00:00+00:00"));
        assert_eq!(b.as_deref(), Some("2025-01-08T10:00:00+00:00"));
        assert_eq!(c.as_deref(), Some("2025-01-08T10:00:00.500+00:00"));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2025-13-01T00:00:00Z"), None);
    }

    #[test]
    fn precision_is_microseconds() {
        let t = parse_timestamp("2025-01-08T10:00:00.123456789Z").map(|t| t.to_rfc3339());
        assert_eq!(t.as_deref(), Some("2025-01-08T10:00:00.123456+00:00"));
    }
}
