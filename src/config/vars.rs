//! Reading variables: every reader names its variable in its error, an empty value counts as
//! unset, and the shapes that recur (bounded numbers, flags, lists, URLs, key sets) are read
//! one way.

use std::fmt;

use super::{ConfigError, KeySet, Secret};

pub(super) fn err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

/// The environment, or a map in tests.
pub(super) struct Vars<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The variable's value; empty counts as unset.
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// The value as a secret, trimmed.
    pub(super) fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(|v| Secret::new(v.trim()))
    }

    pub(super) fn parsed<T: std::str::FromStr>(
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

    pub(super) fn bounded<T>(
        &self,
        name: &'static str,
        default: T,
        min: T,
        max: T,
    ) -> Result<T, ConfigError>
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

    /// A comma-separated list, items trimmed, empty ones dropped.
    pub(super) fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An http(s) URL without a trailing slash.
    pub(super) fn http_url(
        &self,
        name: &'static str,
        default: Option<&str>,
        example: &str,
    ) -> Result<Option<String>, ConfigError> {
        let Some(url) = self.get(name).or_else(|| default.map(str::to_owned)) else {
            return Ok(None);
        };
        let url = url.trim().trim_end_matches('/').to_string();
        if reqwest::Url::parse(&url)
            .map(|u| !u.scheme().starts_with("http"))
            .unwrap_or(true)
        {
            return Err(err(
                name,
                format!("expected an http(s) URL such as {example}"),
            ));
        }
        Ok(Some(url))
    }

    /// A Graph API version such as `v26.0`.
    pub(super) fn graph_version(&self, name: &'static str) -> Result<String, ConfigError> {
        let version = self.get(name).unwrap_or_else(|| "v26.0".into());
        let version = version.trim().to_string();
        let well_formed = version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
            });
        if !well_formed {
            return Err(err(name, "expected a Graph version such as v26.0"));
        }
        Ok(version)
    }

    pub(super) fn key_set(&self, name: &'static str) -> Result<Option<KeySet>, ConfigError> {
        self.get(name)
            .map(|raw| KeySet::parse(&raw).map_err(|problem| err(name, problem)))
            .transpose()
    }
}

pub(super) fn parse_flag(value: &str) -> Option<bool> {
    match value {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
