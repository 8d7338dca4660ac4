//! The email channel's settings: the mailbox read over IMAP (`EMAIL_IMAP_URL`), the SMTP server
//! replies go through (`EMAIL_SMTP_URL`), the sender (`EMAIL_FROM`), how often and how far back
//! the mailbox is read, and the TLS roots trusted besides the public ones.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use percent_encoding::percent_decode_str;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::vars::{err, Vars};
use super::{ConfigError, Secret};

/// Everything the email channel reads from the environment.
#[derive(Clone, Debug)]
pub struct Email {
    /// The mailbox to read; `None`: nothing is read.
    pub imap: Option<ImapServer>,
    /// Where replies go; `None`: the channel cannot send.
    pub smtp: Option<SmtpServer>,
    /// `From` of outgoing mail: `EMAIL_FROM`, else the IMAP user when it is an address.
    pub from: Option<Mailbox>,
    /// The longest a new mail waits before it is read.
    pub poll_interval: Duration,
    /// On the very first start, mails that arrived this far back are imported.
    pub backfill: Duration,
    /// One IMAP command's, or one SMTP send's, time limit.
    pub timeout: Duration,
    /// Roots trusted besides the public ones (`EMAIL_CA_FILE`: a company's own CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl Email {
    /// The addresses that are the mailbox itself: mail from them is never answered on its own.
    pub fn own_addresses(&self) -> Vec<String> {
        let mut own: Vec<String> = self
            .from
            .iter()
            .map(|m| m.email.to_string().to_lowercase())
            .collect();
        if let Some(imap) = &self.imap {
            if imap.user.contains('@') {
                own.push(imap.user.to_lowercase());
            }
        }
        own.sort();
        own.dedup();
        own
    }
}

/// How a connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (`imaps://`, `smtps://`).
    Implicit,
    /// STARTTLS; in the clear only to a loopback host (`imap://`, `smtp://`).
    StartTls,
}

/// `EMAIL_IMAP_URL`, parsed.
#[derive(Clone, Debug)]
pub struct ImapServer {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub mailbox: String,
}

impl ImapServer {
    /// Names this mailbox (without the password): where its reading position is kept.
    pub fn key(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user.to_lowercase(),
            self.host.to_lowercase(),
            self.port,
            self.mailbox
        )
    }
}

/// `EMAIL_SMTP_URL`, parsed.
#[derive(Clone, Debug)]
pub struct SmtpServer {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, Secret)>,
}

/// Whether `host` is this machine: only there may mail travel in the clear.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// What a mail URL's parts are, before each protocol's rules apply.
struct MailUrl {
    security: Security,
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<Secret>,
    path: String,
}

impl Vars<'_> {
    pub(super) fn email(&self) -> Result<Email, ConfigError> {
        let imap = self.imap_server()?;
        let smtp = self.smtp_server()?;
        let from = match self.get("EMAIL_FROM") {
            Some(raw) => Some(raw.trim().parse::<Mailbox>().map_err(|_| {
                err(
                    "EMAIL_FROM",
                    "expected an address, optionally with a name: Support <support@example.com>",
                )
            })?),
            None => imap
                .as_ref()
                .and_then(|i| i.user.parse::<lettre::Address>().ok())
                .map(|address| Mailbox::new(None, address)),
        };
        if smtp.is_some() && from.is_none() {
            return Err(err(
                "EMAIL_FROM",
                "is required with EMAIL_SMTP_URL when EMAIL_IMAP_URL's user is not an address",
            ));
        }
        Ok(Email {
            imap,
            smtp,
            from,
            poll_interval: Duration::from_secs(self.bounded("EMAIL_POLL_SECS", 30, 1, 3600)?),
            backfill: Duration::from_secs(
                self.bounded("EMAIL_BACKFILL_HOURS", 24u64, 0, 24 * 365 * 10)? * 3600,
            ),
            timeout: Duration::from_secs(self.bounded("EMAIL_TIMEOUT_SECS", 30, 1, 600)?),
            extra_roots: self.extra_roots()?,
        })
    }

    fn imap_server(&self) -> Result<Option<ImapServer>, ConfigError> {
        const NAME: &str = "EMAIL_IMAP_URL";
        let Some(url) = self.mail_url(NAME, ("imaps", 993), ("imap", 143))? else {
            return Ok(None);
        };
        let (Some(user), Some(password)) = (url.user, url.password) else {
            return Err(err(
                NAME,
                "expected imaps://USER:PASSWORD@HOST[:PORT][/MAILBOX] with user and password",
            ));
        };
        let mailbox = match url.path.trim_matches('/') {
            "" => "INBOX".to_string(),
            path => decode(NAME, path)?,
        };
        if mailbox
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(err(
                NAME,
                "the mailbox name holds characters IMAP cannot quote",
            ));
        }
        Ok(Some(ImapServer {
            security: url.security,
            host: url.host,
            port: url.port,
            user,
            password,
            mailbox,
        }))
    }

    fn smtp_server(&self) -> Result<Option<SmtpServer>, ConfigError> {
        const NAME: &str = "EMAIL_SMTP_URL";
        let Some(url) = self.mail_url(NAME, ("smtps", 465), ("smtp", 587))? else {
            return Ok(None);
        };
        if !url.path.trim_matches('/').is_empty() {
            return Err(err(
                NAME,
                "expected no path: smtps://USER:PASSWORD@HOST[:PORT]",
            ));
        }
        let credentials = match (url.user, url.password) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            _ => return Err(err(NAME, "give both a user and a password, or neither")),
        };
        Ok(Some(SmtpServer {
            security: url.security,
            host: url.host,
            port: url.port,
            credentials,
        }))
    }

    /// `scheme://[USER[:PASSWORD]@]HOST[:PORT][/PATH]` with `implicit` (TLS from the first byte)
    /// or `starttls` as the scheme and its default port. Errors never repeat the password.
    fn mail_url(
        &self,
        name: &'static str,
        implicit: (&str, u16),
        starttls: (&str, u16),
    ) -> Result<Option<MailUrl>, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let shape = || {
            format!(
                "expected {}://USER:PASSWORD@HOST[:PORT] or {}://… (user and password percent-encoded)",
                implicit.0, starttls.0
            )
        };
        let url = reqwest::Url::parse(raw.trim()).map_err(|_| err(name, shape()))?;
        let (security, default_port) = match url.scheme() {
            s if s == implicit.0 => (Security::Implicit, implicit.1),
            s if s == starttls.0 => (Security::StartTls, starttls.1),
            _ => return Err(err(name, shape())),
        };
        let host = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err(name, shape()))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(err(name, "expected no ?query or #fragment"));
        }
        let user = match url.username() {
            "" => None,
            user => Some(decode(name, user)?),
        };
        let password = url
            .password()
            .map(|p| decode(name, p).map(Secret::new))
            .transpose()?;
        Ok(Some(MailUrl {
            security,
            host,
            port: url.port().unwrap_or(default_port),
            user,
            password,
            path: url.path().to_string(),
        }))
    }

    fn extra_roots(&self) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        const NAME: &str = "EMAIL_CA_FILE";
        let Some(path) = self.get(NAME) else {
            return Ok(Vec::new());
        };
        let path = PathBuf::from(path.trim());
        let pem = std::fs::read(&path)
            .map_err(|e| err(NAME, format!("cannot read {}: {e}", path.display())))?;
        let roots = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(NAME, format!("{} is not PEM: {e}", path.display())))?;
        if roots.is_empty() {
            return Err(err(
                NAME,
                format!("{} holds no certificate", path.display()),
            ));
        }
        Ok(roots)
    }
}

/// Percent-decodes a URL part into UTF-8.
fn decode(name: &'static str, part: &str) -> Result<String, ConfigError> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| err(name, "a percent-encoded part is not UTF-8"))
}

#[cfg(test)]
#[path = "email_tests.rs"]
mod tests;
