//! Sending mail through `EMAIL_SMTP_URL` with lettre: `smtps://` TLS from the first byte,
//! `smtp://` STARTTLS (required, except to a loopback host, where it is used when offered). Each
//! send opens its own connection under one time limit (lettre's own only covers the connect).
//!
//! Outcomes, as the outbox reads them: the server accepting the mail is `sent` (mail has no
//! delivered or read); a refused or dropped connection, a TLS failure, a timeout or a 4xx reply
//! is worth retrying; a 5xx reply is permanent, with the server's reply as the reason.

use std::time::{Duration, SystemTime};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::compose::{Headers, Party};
use crate::channels::SendOutcome;
use crate::config::{is_loopback, Email, Security};
use crate::store::outbox::Due;

/// The configured SMTP server and sender.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl Mailer {
    /// A mailer when `EMAIL_SMTP_URL` is set; the error names what is wrong.
    pub fn from_config(email: &Email) -> Result<Option<Mailer>, String> {
        let (Some(server), Some(from)) = (&email.smtp, &email.from) else {
            return Ok(None);
        };
        let mut tls = TlsParameters::builder(server.host.clone());
        for root in &email.extra_roots {
            let certificate =
                Certificate::from_der(root.to_vec()).map_err(|e| format!("EMAIL_CA_FILE: {e}"))?;
            tls = tls.add_root_certificate(certificate);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| format!("EMAIL_SMTP_URL: cannot set up TLS: {e}"))?;
        let tls = match server.security {
            Security::Implicit => Tls::Wrapper(tls),
            // Where STARTTLS is offered it is used, and a bad certificate fails the send (no
            // falling back to the clear); only a loopback host may lack it.
            Security::StartTls if is_loopback(&server.host) => Tls::Opportunistic(tls),
            Security::StartTls => Tls::Required(tls),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .tls(tls)
            .timeout(Some(email.timeout));
        if let Some((user, password)) = &server.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(Some(Mailer {
            transport: builder.build(),
            from: from.clone(),
            timeout: email.timeout,
        }))
    }

    /// `From` of every mail.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Sends `due` with the headers decided when it was stored.
    pub async fn send(&self, due: &Due) -> SendOutcome {
        let Some(headers) = Headers::from_metadata(due.metadata.as_deref()) else {
            return SendOutcome::Permanent(
                "the message was stored without its mail headers".into(),
            );
        };
        let message = match build(&headers, &due.content) {
            Ok(message) => message,
            Err(reason) => return SendOutcome::Permanent(reason),
        };
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_accepted)) => SendOutcome::Accepted(Some(headers.message_id)),
            Ok(Err(e)) if e.is_permanent() => SendOutcome::Permanent(reply_text(&e)),
            Ok(Err(e)) => SendOutcome::Transient(format!("the SMTP server: {e}")),
            Err(_) => SendOutcome::Transient(format!(
                "the SMTP server did not take the mail within {:?}",
                self.timeout
            )),
        }
    }
}

/// The mail `headers` describe, with `text` as its `text/plain; charset=utf-8` body.
fn build(headers: &Headers, text: &str) -> Result<Message, String> {
    let mailbox = |party: &Party| -> Result<Mailbox, String> {
        let address = party
            .address
            .parse()
            .map_err(|_| format!("{} is not a mail address", party.address))?;
        Ok(Mailbox::new(party.name.clone(), address))
    };
    let mut builder = Message::builder()
        .from(mailbox(&headers.from)?)
        .subject(headers.subject.clone())
        .message_id(Some(format!("<{}>", headers.message_id)))
        .date(SystemTime::from(headers.date));
    for to in &headers.to {
        builder = builder.to(mailbox(to)?);
    }
    for cc in &headers.cc {
        builder = builder.cc(mailbox(cc)?);
    }
    if let Some(id) = &headers.in_reply_to {
        builder = builder.in_reply_to(format!("<{id}>"));
    }
    if !headers.references.is_empty() {
        let ids: Vec<String> = headers
            .references
            .iter()
            .map(|id| format!("<{id}>"))
            .collect();
        builder = builder.references(ids.join(" "));
    }
    if let Some(value) = &headers.auto_submitted {
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            value.clone(),
        ));
    }
    // `singlepart` adds MIME-Version, which `body` leaves out.
    builder
        .singlepart(SinglePart::plain(text.to_string()))
        .map_err(|e| format!("the mail cannot be built: {e}"))
}

/// A 5xx refusal as the server worded it: `550 5.1.1 Recipient rejected`.
fn reply_text(e: &lettre::transport::smtp::Error) -> String {
    let text = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string());
    match e.status() {
        Some(code) => format!("{code} {text}"),
        None => text,
    }
}
