//! Pieces of the OpenAPI document shared by several routes: the error responses each kind of
//! route can give, and the query parameters of the list routes. The handlers parse queries
//! themselves (for precise error locations); these types describe the same rules.

#![allow(dead_code)]

use utoipa::{IntoParams, IntoResponses, ToSchema};

use crate::error::{ErrorBody, ValidationErrorBody};

/// Errors of a route that reads with query parameters.
#[derive(IntoResponses)]
pub enum ListErrors {
    /// `API_KEYS` is set and no valid key was sent.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A query parameter is out of range or of the wrong type.
    #[response(status = 422)]
    Invalid(ValidationErrorBody),
    /// The database is unreachable.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Errors of a route on one resource by id.
#[derive(IntoResponses)]
pub enum ItemErrors {
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No such id.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The id is not an integer.
    #[response(status = 422)]
    Invalid(ValidationErrorBody),
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Errors of a route that takes a JSON body.
#[derive(IntoResponses)]
pub enum BodyErrors {
    /// The body is not valid JSON.
    #[response(status = 400)]
    Malformed(ErrorBody),
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No such id (routes with an id in the path).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body is larger than `MAX_BODY_BYTES`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A field is missing, of the wrong type, or invalid.
    #[response(status = 422)]
    Invalid(ValidationErrorBody),
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The answer to a list request whose `If-None-Match` names the current page.
#[derive(IntoResponses)]
#[response(
    status = 304,
    description = "The copy named in If-None-Match is current: no body, the same ETag"
)]
pub struct NotModified;

/// Revalidation of a list page a client already holds.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Revalidation {
    /// The `ETag` of the copy held (or a list of them, or `*`): 304 when it is still current.
    #[param(rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

/// Query of `GET /conversations`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationFilters {
    /// Only this channel's conversations.
    pub channel_id: Option<i64>,
    /// Only active (or inactive) conversations.
    pub is_active: Option<bool>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<i64>,
    /// Rows to skip (default 0).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}

/// `order` of message lists.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// Query of `GET /messages` and `GET /conversations/{id}/messages`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageFilters {
    /// Only this conversation's messages.
    pub conversation_id: Option<i64>,
    /// A channel name (`whatsapp`, `instagram`, `gmail`); an unknown name is 422.
    #[param(example = json!(crate::domain::ChannelKind::Whatsapp))]
    pub channel: Option<String>,
    pub direction: Option<crate::domain::Direction>,
    /// `desc` (default, newest first) or `asc`.
    pub order: Option<SortOrder>,
    /// Only messages with a smaller id (paging back).
    pub before_id: Option<i64>,
    /// Only messages with a larger id (catching up after a WebSocket drop).
    pub after_id: Option<i64>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<i64>,
    /// Rows to skip (default 0).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
}
