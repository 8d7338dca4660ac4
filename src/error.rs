//! `ApiError`: every failure a handler can return, rendered as the contract's JSON.
//!
//! Client mistakes become 4xx with a readable `detail` and a machine `code`; validation errors
//! use FastAPI's `{"detail": [{"loc", "msg", "type"}]}`. Database outages become 503. Anything
//! else is an opaque 500 whose cause is logged inside the request's span (so with its id).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

/// One entry of a FastAPI-style validation error.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FieldError {
    /// Where: `["body", "to"]`, `["query", "limit"]`, `["path", "id"]`; array indices are integers.
    #[schema(value_type = Vec<LocPart>, example = json!(["query", "limit"]))]
    pub loc: Vec<Value>,
    #[schema(example = "Input should be less than or equal to 500")]
    pub msg: String,
    #[serde(rename = "type")]
    #[schema(example = "less_than_equal")]
    pub kind: String,
}

/// A part of a validation error's location: a field name or an array index.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum LocPart {
    Name(String),
    Index(u64),
}

/// Every error but validation: `{"detail": "…", "code": "…"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"detail": "conversation not found", "code": "not_found"}))]
pub struct ErrorBody {
    pub detail: String,
    pub code: String,
}

/// A validation error (422), as FastAPI clients expect it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

impl FieldError {
    /// `loc` is given as `["query", "limit"]`-style parts; numeric parts stay numbers.
    pub fn new(loc: &[&str], msg: impl Into<String>, kind: &str) -> FieldError {
        FieldError {
            loc: loc
                .iter()
                .map(|p| {
                    p.parse::<u64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| Value::from(*p))
                })
                .collect(),
            msg: msg.into(),
            kind: kind.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    Client {
        status: StatusCode,
        code: &'static str,
        detail: String,
    },
    #[error("database unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: &str) -> ApiError {
        ApiError::Client {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            detail: format!("{what} not found"),
        }
    }

    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::Client {
            status: StatusCode::CONFLICT,
            code: "conflict",
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::Client {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_json",
            detail: detail.into(),
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::Client {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            detail: detail.into(),
        }
    }

    /// A single validation error at `loc`.
    pub fn invalid(loc: &[&str], msg: impl Into<String>, kind: &str) -> ApiError {
        ApiError::Validation(vec![FieldError::new(loc, msg, kind)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Client { status, .. } => *status,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::Unavailable
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<crate::pages::Error> for ApiError {
    fn from(e: crate::pages::Error) -> Self {
        match e {
            crate::pages::Error::Database(e) => e.into(),
            crate::pages::Error::Serialise(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::inbox::ingest::IngestError> for ApiError {
    fn from(e: crate::inbox::ingest::IngestError) -> Self {
        use crate::inbox::ingest::IngestError;
        match e {
            IngestError::Unavailable => ApiError::Unavailable,
            IngestError::Failed(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let plain = |detail: &str, code: &str| ErrorBody {
            detail: detail.into(),
            code: code.into(),
        };
        match self {
            ApiError::Validation(detail) => {
                (status, Json(ValidationErrorBody { detail })).into_response()
            }
            ApiError::Client { code, detail, .. } => {
                (status, Json(plain(&detail, code))).into_response()
            }
            ApiError::Unavailable => {
                let body = plain(
                    "database unavailable, try again shortly",
                    "database_unavailable",
                );
                (status, Json(body)).into_response()
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal server error");
                (
                    status,
                    Json(plain("internal server error", "internal_error")),
                )
                    .into_response()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
