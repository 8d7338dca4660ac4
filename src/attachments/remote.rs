//! Downloading one file from its provider into the media store: a WhatsApp media id through
//! the Graph API (`GET {base}/{version}/{media-id}` with the access token, then the returned
//! `url`, with the token too), a URL as it is (Instagram's CDN links). The body streams into
//! [`MediaStore::put_reader`], never whole in memory.
//!
//! Only https is spoken to remote servers; plain http only to a loopback host (local fakes).
//! Redirects follow the same rule, and reqwest drops the token on a redirect to another host.

use std::io;
use std::time::Duration;

use futures_util::TryStreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio_util::io::StreamReader;

use super::FetchError;
use crate::channels::meta::graph;
use crate::channels::SendOutcome;
use crate::config::{Config, Secret};
use crate::domain::media_type;
use crate::media::{MediaStore, StoreError, Stored};
use crate::store::attachments::Source;

/// Longest wait for a connection to a provider.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest silence in the middle of a download before it counts as broken.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed for one download.
const MAX_REDIRECTS: usize = 5;
/// The Graph API's description of a media file is a few hundred bytes.
const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;

/// The Graph API's media endpoint, with the access token.
#[derive(Clone, Debug)]
struct GraphMedia {
    base_url: String,
    version: String,
    token: Secret,
}

/// A file fetched into the store, and its media type as the provider gave it.
#[derive(Debug)]
pub(super) struct Fetched {
    pub stored: Stored,
    pub mime_type: Option<String>,
}

#[derive(Clone, Debug)]
pub(super) struct Remote {
    http: reqwest::Client,
    whatsapp: Option<GraphMedia>,
}

impl Remote {
    pub fn from_config(config: &Config) -> Result<Remote, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(config.media_fetch.timeout))
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if !secure(attempt.url()) {
                    attempt.error("a redirect to a URL that is neither https nor loopback")
                } else {
                    attempt.follow()
                }
            }))
            .build()?;
        let whatsapp = config
            .whatsapp
            .credentials
            .as_ref()
            .map(|(token, _)| GraphMedia {
                base_url: config.whatsapp.api_base_url.clone(),
                version: config.whatsapp.api_version.clone(),
                token: token.clone(),
            });
        Ok(Remote { http, whatsapp })
    }

    /// Fetches the file `source` names into `media`.
    pub async fn fetch(&self, source: &Source, media: &MediaStore) -> Result<Fetched, FetchError> {
        match source {
            Source::WhatsappMedia { media_id } => self.whatsapp(media_id, media).await,
            Source::Url { url } => {
                let url = checked(url)?;
                let response = self.get(url, None).await?;
                let mime_type = content_type(&response);
                let stored = download(response, media).await?;
                Ok(Fetched { stored, mime_type })
            }
            Source::Stored { .. } => Err(FetchError::Gone(
                "the file was stored with its message and is not in MEDIA_DIR".into(),
            )),
        }
    }

    async fn whatsapp(&self, media_id: &str, media: &MediaStore) -> Result<Fetched, FetchError> {
        let Some(graph) = &self.whatsapp else {
            return Err(FetchError::NotConfigured(
                "WhatsApp files are fetched with the Cloud API credentials: set \
                 WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID"
                    .into(),
            ));
        };
        // Meta's media ids are digits; anything else would make the token-bearing request go
        // to another Graph path of an unsigned request's choosing.
        let plain = !media_id.is_empty()
            && media_id.len() <= 128
            && media_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !plain {
            return Err(FetchError::Refused("not a WhatsApp media id".into()));
        }
        let endpoint = checked(&format!("{}/{}/{media_id}", graph.base_url, graph.version))?;
        let response = self.get(endpoint, Some(&graph.token)).await?;
        let description = read_description(response).await?;
        let size = description.get("file_size").and_then(Value::as_u64);
        if size.is_some_and(|size| size > media.max_bytes()) {
            return Err(FetchError::TooLarge(media.max_bytes()));
        }
        let Some(url) = description.get("url").and_then(Value::as_str) else {
            return Err(FetchError::Failed(
                "the Graph API described the media without a url".into(),
            ));
        };
        // Meta's media URLs need the token too.
        let response = self.get(checked(url)?, Some(&graph.token)).await?;
        let mime_type = description
            .get("mime_type")
            .and_then(Value::as_str)
            .and_then(media_type)
            .or_else(|| content_type(&response));
        let stored = download(response, media).await?;
        Ok(Fetched { stored, mime_type })
    }

    /// A GET answered with success; any other answer is classified.
    async fn get(&self, url: Url, token: Option<&Secret>) -> Result<reqwest::Response, FetchError> {
        let mut request = self.http.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = match read_limited(response).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        Err(refusal(status, &body))
    }
}

/// The JSON a provider answered with, bounded.
async fn read_description(response: reqwest::Response) -> Result<Value, FetchError> {
    let bytes = read_limited(response).await.map_err(unreachable)?;
    serde_json::from_slice(&bytes)
        .map_err(|_| FetchError::Failed("the Graph API answered something other than JSON".into()))
}

/// A small body, read up to [`MAX_DESCRIPTION_BYTES`] (the rest is not read).
async fn read_limited(response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.try_next().await? {
        let room = MAX_DESCRIPTION_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_DESCRIPTION_BYTES {
            break;
        }
    }
    Ok(body)
}

/// Streams the body into the store: refused past `MEDIA_MAX_BYTES`, before a byte is read
/// when the provider says how long it is.
async fn download(response: reqwest::Response, media: &MediaStore) -> Result<Stored, FetchError> {
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > media.max_bytes()) {
        return Err(FetchError::TooLarge(media.max_bytes()));
    }
    let body = response
        .bytes_stream()
        .map_err(|e| io::Error::other(Broken(e.without_url().to_string())));
    match media.put_reader(StreamReader::new(body)).await {
        Ok(stored) => Ok(stored),
        Err(StoreError::TooLarge { limit }) => Err(FetchError::TooLarge(limit)),
        Err(StoreError::Io(e)) => match e.get_ref().and_then(|e| e.downcast_ref::<Broken>()) {
            Some(Broken(reason)) => Err(FetchError::Transient(format!(
                "the download broke off: {reason}"
            ))),
            None => Err(FetchError::Transient(format!(
                "cannot write to MEDIA_DIR: {e}"
            ))),
        },
    }
}

/// A download that failed on the network side (as opposed to the media directory).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Broken(String);

/// The response's media type, when it is one.
fn content_type(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(media_type)
}

/// What an unanswered request means: worth another try.
fn unreachable(e: reqwest::Error) -> FetchError {
    if e.is_redirect() {
        return FetchError::Refused(format!("not followed: {e}"));
    }
    if e.is_timeout() {
        return FetchError::Transient("the provider did not answer in time".into());
    }
    FetchError::Transient(format!("cannot reach the provider: {}", e.without_url()))
}

/// What an error answer means. The provider no longer having the file is final
/// (`unavailable`); a refused token or permission waits for the operator; throttling and
/// outages are tried again.
fn refusal(status: StatusCode, body: &Value) -> FetchError {
    let code = body.pointer("/error/code").and_then(Value::as_i64);
    let reason = match graph::classify("the provider", status.as_u16(), body) {
        SendOutcome::Transient(reason) => return FetchError::Transient(reason),
        SendOutcome::Permanent(reason) | SendOutcome::Accepted(Some(reason)) => reason,
        SendOutcome::Accepted(None) => format!("the provider answered HTTP {status}"),
    };
    // Graph code 100 is "object does not exist" for a media id it no longer has.
    let gone = matches!(
        status,
        StatusCode::NOT_FOUND | StatusCode::GONE | StatusCode::FORBIDDEN
    ) && code.map_or(true, |c| c == 100)
        || code == Some(100);
    if gone {
        FetchError::Gone(reason)
    } else {
        FetchError::Failed(reason)
    }
}

/// `raw` parsed, when it is https, or plain http to a loopback host.
fn checked(raw: &str) -> Result<Url, FetchError> {
    let url = Url::parse(raw).map_err(|_| FetchError::Refused("not a URL".into()))?;
    if secure(&url) {
        Ok(url)
    } else {
        Err(FetchError::Refused(
            "only https URLs are fetched (plain http only from a loopback host)".into(),
        ))
    }
}

fn secure(url: &Url) -> bool {
    match (url.scheme(), url.host_str()) {
        ("https", Some(_)) => true,
        ("http", Some(host)) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        for good in [
            "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
            "http://127.0.0.1:8080/x",
            "http://127.3.2.1/x",
            "http://[::1]:9/x",
            "http://localhost/x",
        ] {
            assert!(checked(good).is_ok(), "{good}");
        }
        for bad in [
            "http://example.com/x",
            "http://10.0.0.1/x",
            "http://169.254.169.254/latest/meta-data",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
            "not a url",
            "http://127.0.0.1.example.com/x",
        ] {
            assert!(matches!(checked(bad), Err(FetchError::Refused(_))), "{bad}");
        }
    }

    #[test]
    fn a_provider_that_lost_the_file_is_final_and_a_bad_token_is_not() {
        let missing = json!({"error": {"message": "Unsupported get request. Object with ID '1' does not exist", "type": "GraphMethodException", "code": 100, "error_subcode": 33, "fbtrace_id": "x"}});
        assert!(matches!(
            refusal(StatusCode::BAD_REQUEST, &missing),
            FetchError::Gone(_)
        ));
        assert!(matches!(
            refusal(StatusCode::NOT_FOUND, &Value::Null),
            FetchError::Gone(_)
        ));
        assert!(matches!(
            refusal(StatusCode::FORBIDDEN, &json!("URL signature expired")),
            FetchError::Gone(_)
        ));
        let token = json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190, "fbtrace_id": "x"}});
        assert!(matches!(
            refusal(StatusCode::UNAUTHORIZED, &token),
            FetchError::Failed(_)
        ));
        assert!(matches!(
            refusal(StatusCode::SERVICE_UNAVAILABLE, &Value::Null),
            FetchError::Transient(_)
        ));
        assert!(matches!(
            refusal(StatusCode::TOO_MANY_REQUESTS, &Value::Null),
            FetchError::Transient(_)
        ));
    }
}
