//! Which way a message travelled, and where an outbound message is in its delivery. The order
//! of statuses is defined here once: [`Status::may_follow`] decides in Rust, and
//! [`Status::may_follow_sql`] writes the same rule for the SQL that applies provider statuses.

use serde::{Deserialize, Serialize};

/// Which way a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// Delivery state. Inbound messages are `received`; outbound ones move forward through
/// `pending → sent → delivered → read`, or end `failed` (from `pending` or `sent` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Received,
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Received,
        Status::Pending,
        Status::Sent,
        Status::Delivered,
        Status::Read,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Position on the outbound path; `None` off it (`received`) or past its end (`failed`).
    fn step(self) -> Option<u8> {
        match self {
            Status::Pending => Some(0),
            Status::Sent => Some(1),
            Status::Delivered => Some(2),
            Status::Read => Some(3),
            Status::Received | Status::Failed => None,
        }
    }

    /// Whether a message now `current` may move to `self`: only forward, `failed` only before
    /// delivery, nothing after `failed`, and never to `received` or back to `pending`.
    pub fn may_follow(self, current: Status) -> bool {
        match (current.step(), self) {
            (None, _) | (_, Status::Received | Status::Pending) => false,
            (Some(now), Status::Failed) => now <= 1,
            (Some(now), next) => next.step().is_some_and(|next| next > now),
        }
    }

    /// The statuses a message may hold for `self` to replace it, as a SQL list literal
    /// (`('pending', 'sent')`), derived from [`Status::may_follow`]. `None` when nothing may.
    pub fn may_follow_sql(self) -> Option<String> {
        let from: Vec<String> = Status::ALL
            .into_iter()
            .filter(|current| self.may_follow(*current))
            .map(|current| format!("'{}'", current.as_str()))
            .collect();
        (!from.is_empty()).then(|| format!("({})", from.join(", ")))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

super::text_column!(Direction);
super::text_column!(Status);

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn statuses_only_move_forward() {
        let allowed = [
            (Pending, Sent),
            (Pending, Delivered),
            (Pending, Read),
            (Pending, Failed),
            (Sent, Delivered),
            (Sent, Read),
            (Sent, Failed),
            (Delivered, Read),
        ];
        for current in Status::ALL {
            for next in Status::ALL {
                assert_eq!(
                    next.may_follow(current),
                    allowed.contains(&(current, next)),
                    "{current} -> {next}"
                );
            }
        }
    }

    #[test]
    fn the_sql_list_says_the_same() {
        assert_eq!(
            Read.may_follow_sql().as_deref(),
            Some("('pending', 'sent', 'delivered')")
        );
        assert_eq!(
            Failed.may_follow_sql().as_deref(),
            Some("('pending', 'sent')")
        );
        assert_eq!(Pending.may_follow_sql(), None);
        assert_eq!(Received.may_follow_sql(), None);
    }
}
