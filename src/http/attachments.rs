//! `GET /api/v1/attachments/{id}`: the file a message carries, streamed from the media store;
//! fetched from its provider first when it is not here yet. Guarded by `API_KEYS`, which this
//! route also takes as `?api_key=` so that `<img src>`, `<audio src>` and links work.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::extract::PathId;
use super::file_response::{respond, ServedFile};
use super::AppState;
use crate::attachments::FetchError;
use crate::domain::media_type;
use crate::error::{ApiError, ApiResult, ErrorBody, ValidationErrorBody};
use crate::store::attachments;

/// A file's bytes, as they were received from the provider.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub(super) struct FileBytes(Vec<u8>);

pub fn router() -> Router<AppState> {
    Router::new().route("/attachments/{id}", get(download))
}

#[utoipa::path(get, path = "/api/v1/attachments/{id}", operation_id = "get_attachment", tag = "attachments",
    params(
        ("id" = i64, Path, description = "Attachment id (a message's `attachments[].id`; its `url` is this route)"),
        ("api_key" = Option<String>, Query, description = "The API key, for `<img src>` and links when API_KEYS is set (headers work too)"),
        ("Range" = Option<String>, Header, description = "One byte range, `bytes=START-END`, `bytes=START-` or `bytes=-LENGTH` (several ranges get the whole file)"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag received before: 304 when the file is the same"),
        ("If-Range" = Option<String>, Header, description = "The ETag the Range was computed from; another one gets the whole file"),
    ),
    responses(
        (status = 200, description = "The file, streamed", content_type = "application/octet-stream", body = FileBytes, headers(
            ("Content-Type" = String, description = "The file's media type as the provider gave it, else application/octet-stream"),
            ("Content-Length" = i64, description = "Bytes in the body"),
            ("Content-Disposition" = String, description = "`inline; filename=\"ascii fallback\"; filename*=UTF-8''percent-encoded name` (RFC 6266, RFC 8187)"),
            ("ETag" = String, description = "The content's SHA-256 in quotes"),
            ("Accept-Ranges" = String, description = "`bytes`"),
            ("Cache-Control" = String, description = "`private, max-age=31536000, immutable`: a file's content never changes"),
        )),
        (status = 206, description = "The requested byte range", content_type = "application/octet-stream", body = FileBytes, headers(
            ("Content-Range" = String, description = "`bytes START-END/LENGTH`"),
            ("Content-Length" = i64, description = "Bytes in the range"),
        )),
        (status = 304, description = "Not modified: the If-None-Match ETag is this file's"),
        (status = 401, description = "API_KEYS is set and no valid key was sent (header or ?api_key=)", body = ErrorBody),
        (status = 403, description = "`media_refused`: the file's URL came in an unsigned webhook delivery (or is not https), so it is never fetched", body = ErrorBody),
        (status = 404, description = "No attachment with this id", body = ErrorBody),
        (status = 416, description = "`range_not_satisfiable`: the range starts past the end (`Content-Range: bytes */LENGTH`)", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ValidationErrorBody),
        (status = 502, description = "`media_unavailable`: the provider no longer has the file; `media_too_large`: it is larger than MEDIA_MAX_BYTES and was not kept; `media_fetch_failed`: the provider could not be reached or refused (try again later)", body = ErrorBody),
        (status = 503, description = "`channel_not_configured`: the channel's credentials are needed to fetch it; `media_missing`: the file is not in this server's MEDIA_DIR; `database_unavailable`", body = ErrorBody),
        (status = 504, description = "`media_timeout`: fetching it took longer than MEDIA_FETCH_TIMEOUT_SECS", body = ErrorBody),
    ),
    security((), ("api_key" = []), ("bearer" = []), ("api_key_query" = [])))]
/// An attachment's file: streamed with its type and name, in byte ranges for players; fetched
/// from the provider first when it is not here yet.
pub(super) async fn download(
    State(state): State<AppState>,
    PathId(id): PathId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let file = attachments::file(&mut state.db().exec(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let here = state.attachments().here(file).await.map_err(refusal)?;
    let content_type = here
        .file
        .mime_type
        .as_deref()
        .and_then(media_type)
        .and_then(|t| HeaderValue::from_str(&t).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let file_name = here
        .file
        .file_name
        .clone()
        .unwrap_or_else(|| default_name(id, here.file.mime_type.as_deref()));
    let served = ServedFile {
        content: here.content,
        length: here.length,
        sha256: here.file.sha256.clone().unwrap_or_default(),
        content_type,
        file_name,
    };
    respond(served, &headers).await
}

/// The answer to a file that is not here.
fn refusal(e: FetchError) -> ApiError {
    let (status, code) = match &e {
        FetchError::NotFound => return ApiError::not_found("attachment"),
        FetchError::Database {
            unavailable: true, ..
        } => return ApiError::Unavailable,
        FetchError::Database { detail, .. } => return ApiError::Internal(detail.clone()),
        FetchError::Gone(_) => (StatusCode::BAD_GATEWAY, "media_unavailable"),
        FetchError::TooLarge(_) => (StatusCode::BAD_GATEWAY, "media_too_large"),
        FetchError::Failed(_) | FetchError::Transient(_) => {
            (StatusCode::BAD_GATEWAY, "media_fetch_failed")
        }
        FetchError::Refused(_) => (StatusCode::FORBIDDEN, "media_refused"),
        FetchError::NotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "channel_not_configured"),
        FetchError::NotInStore => (StatusCode::SERVICE_UNAVAILABLE, "media_missing"),
        FetchError::TimedOut(_) => (StatusCode::GATEWAY_TIMEOUT, "media_timeout"),
    };
    ApiError::Client {
        status,
        code,
        detail: e.to_string(),
    }
}

/// A name for a file its provider sent without one: `attachment-7.jpg`.
fn default_name(id: i64, mime_type: Option<&str>) -> String {
    let essence = mime_type
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    let extension = match essence.as_deref() {
        Some("image/jpeg") => ".jpg",
        Some("image/png") => ".png",
        Some("image/webp") => ".webp",
        Some("image/gif") => ".gif",
        Some("video/mp4") => ".mp4",
        Some("video/3gpp") => ".3gp",
        Some("audio/ogg") => ".ogg",
        Some("audio/mpeg") => ".mp3",
        Some("audio/mp4") | Some("audio/aac") => ".m4a",
        Some("audio/amr") => ".amr",
        Some("application/pdf") => ".pdf",
        Some("text/plain") => ".txt",
        _ => "",
    };
    format!("attachment-{id}{extension}")
}
