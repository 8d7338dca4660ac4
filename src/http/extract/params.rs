//! `Params`: the query string, with typed accessors that report errors at `["query", name]`.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// The query string's parameters; the last occurrence of a name wins, as in most frameworks.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|_| ApiError::invalid(&["query"], "Malformed query string", "value_error"))?;
        Ok(Params(pairs.into_iter().collect()))
    }
}

impl Params {
    pub fn str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name) {
            Some(v) if v.contains('\0') => Err(ApiError::invalid(
                &["query", name],
                "String should not contain NUL characters",
                "string_nul",
            )),
            Some(v) => Ok(Some(v.as_str())),
            None => Ok(None),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.str(name)?
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::invalid(
                        &["query", name],
                        "Input should be a valid integer, unable to parse string as an integer",
                        "int_parsing",
                    )
                })
            })
            .transpose()
    }

    /// An integer within `min..=max`, or `default` when absent. Never clamped.
    pub fn bounded(
        &self,
        name: &str,
        default: i64,
        min: i64,
        max: Option<i64>,
    ) -> Result<i64, ApiError> {
        let value = self.int(name)?.unwrap_or(default);
        if value < min {
            return Err(ApiError::invalid(
                &["query", name],
                format!("Input should be greater than or equal to {min}"),
                "greater_than_equal",
            ));
        }
        if let Some(max) = max.filter(|max| value > *max) {
            return Err(ApiError::invalid(
                &["query", name],
                format!("Input should be less than or equal to {max}"),
                "less_than_equal",
            ));
        }
        Ok(value)
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.str(name)?
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ApiError::invalid(
                    &["query", name],
                    "Input should be a valid boolean, unable to interpret input",
                    "bool_parsing",
                )),
            })
            .transpose()
    }

    /// `limit` (1–500, default 50) and `offset` (≥ 0, default 0).
    pub fn page(&self) -> Result<(i64, i64), ApiError> {
        Ok((
            self.bounded("limit", 50, 1, Some(500))?,
            self.bounded("offset", 0, 0, None)?,
        ))
    }
}
