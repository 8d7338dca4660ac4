//! The HTTP server's connection limits: how long a request head and body may take, and how many
//! connections may be open at once.

use std::time::Duration;

use super::vars::Vars;
use super::ConfigError;

/// Connection limits (see `http::serve`).
#[derive(Clone, Debug)]
pub struct Http {
    /// A request head must be complete within this; also an idle keep-alive connection's life.
    pub header_timeout: Duration,
    /// A request body must be complete within this of its head.
    pub body_timeout: Duration,
    /// Connections open at once; `None`: a default that follows the descriptor limit.
    pub max_connections: Option<usize>,
}

impl Vars<'_> {
    pub(super) fn http(&self) -> Result<Http, ConfigError> {
        let seconds = |name, default| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(self.bounded(name, default, 1, 3600)?))
        };
        Ok(Http {
            header_timeout: seconds("HTTP_HEADER_TIMEOUT_SECS", 30)?,
            body_timeout: seconds("HTTP_BODY_TIMEOUT_SECS", 60)?,
            max_connections: match self.get("HTTP_MAX_CONNECTIONS") {
                Some(_) => Some(self.bounded("HTTP_MAX_CONNECTIONS", 1, 1, 1_000_000)?),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;

    #[test]
    fn the_header_timeout_is_the_contracts_30_s_and_every_limit_can_be_set() {
        let c = Config::with(&[]).expect("defaults");
        assert_eq!(c.http.header_timeout, Duration::from_secs(30));
        assert_eq!(c.http.body_timeout, Duration::from_secs(60));
        assert_eq!(c.http.max_connections, None);
        let c = Config::with(&[
            ("HTTP_HEADER_TIMEOUT_SECS", "5"),
            ("HTTP_BODY_TIMEOUT_SECS", "600"),
            ("HTTP_MAX_CONNECTIONS", "12000"),
        ])
        .expect("valid");
        assert_eq!(c.http.header_timeout, Duration::from_secs(5));
        assert_eq!(c.http.body_timeout, Duration::from_secs(600));
        assert_eq!(c.http.max_connections, Some(12_000));
        for (var, value) in [
            ("HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("HTTP_BODY_TIMEOUT_SECS", "soon"),
            ("HTTP_MAX_CONNECTIONS", "0"),
        ] {
            let e = Config::with(&[(var, value)]).expect_err(var);
            assert_eq!(e.variable, var);
        }
    }
}
