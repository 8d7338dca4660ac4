//! Query arguments of mixed types, bound in order on either backend: [`Arg`] and the
//! [`args!`](crate::args) macro. Domain types bind as what their columns hold.

use chrono::{DateTime, Utc};

/// One bound query argument. Options bind as SQL `NULL`.
#[derive(Debug, Clone)]
pub enum Arg {
    I64(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::I64(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(Some(v))
    }
}
impl From<Option<bool>> for Arg {
    fn from(v: Option<bool>) -> Self {
        Arg::Bool(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(Some(v))
    }
}
impl From<Option<DateTime<Utc>>> for Arg {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Arg::Time(v)
    }
}

impl From<crate::domain::AttachmentKind> for Arg {
    fn from(v: crate::domain::AttachmentKind) -> Self {
        Arg::Text(Some(v.as_str().to_owned()))
    }
}
impl From<crate::domain::Status> for Arg {
    fn from(v: crate::domain::Status) -> Self {
        Arg::Text(Some(v.as_str().to_owned()))
    }
}
impl From<crate::domain::Direction> for Arg {
    fn from(v: crate::domain::Direction) -> Self {
        Arg::Text(Some(v.as_str().to_owned()))
    }
}
/// A channel is stored as its seeded row's id.
impl From<crate::domain::ChannelKind> for Arg {
    fn from(v: crate::domain::ChannelKind) -> Self {
        Arg::I64(Some(v.id()))
    }
}

/// Builds a `Vec<Arg>` from values of mixed types: `args![id, name, now]`.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::store::Arg::from($v)),*] };
}
