//! Reaching the server: TCP, then TLS from the first byte (`imaps://`) or STARTTLS when offered
//! (`imap://`; without it, the clear only to a loopback host), the greeting, and the login.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_util::either::Either;

use super::{Connection, ImapError, Stream};
use crate::channels::email::tls;
use crate::config::{is_loopback, ImapServer, Security};

impl Connection {
    /// Connects, secures the connection as the URL says, and logs in.
    pub async fn open(
        server: &ImapServer,
        tls: &Arc<ClientConfig>,
        timeout: Duration,
    ) -> Result<Connection, ImapError> {
        let address = (server.host.as_str(), server.port);
        let tcp = limited!(timeout, "connect", TcpStream::connect(address))?;
        let stream = match server.security {
            Security::Implicit => Either::Right(limited!(
                timeout,
                "TLS",
                tls::connect(tls, &server.host, tcp)
            )?),
            Security::StartTls => starttls(server, tls, tcp, timeout).await?,
        };
        let mut client = async_imap::Client::new(stream);
        if matches!(server.security, Security::Implicit) {
            greeting(&mut client, timeout).await?;
        }
        let login = tokio::time::timeout(
            timeout,
            client.login(&server.user, server.password.expose()),
        );
        let mut session = match login.await {
            Ok(Ok(session)) => session,
            // The server's words ("[AUTHENTICATIONFAILED] …") never hold the password.
            Ok(Err((e, _))) => return Err(ImapError(format!("login refused: {e}"))),
            Err(_) => return Err(ImapError(format!("login: no answer within {timeout:?}"))),
        };
        let capabilities = limited!(timeout, "CAPABILITY", session.capabilities())?;
        let idle = capabilities.has_str("IDLE");
        Ok(Connection {
            session,
            timeout,
            idle,
        })
    }
}

/// Reads the server's greeting (async-imap leaves that to the caller).
async fn greeting<T>(client: &mut async_imap::Client<T>, timeout: Duration) -> Result<(), ImapError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match tokio::time::timeout(timeout, client.read_response()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(ImapError("the server closed the connection".into())),
        Ok(Err(e)) => Err(ImapError(format!("greeting: {e}"))),
        Err(_) => Err(ImapError(format!("greeting: no answer within {timeout:?}"))),
    }
}

/// `imap://`: STARTTLS when the server offers it; otherwise the clear only to a loopback host,
/// as the password would cross the network readable.
async fn starttls(
    server: &ImapServer,
    tls: &Arc<ClientConfig>,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<Stream, ImapError> {
    let mut client = async_imap::Client::new(tcp);
    greeting(&mut client, timeout).await?;
    // A server that does not offer STARTTLS answers BAD or NO and the session goes on in the
    // clear; asking is simpler than reading capabilities a greeting need not list.
    let offered = match tokio::time::timeout(
        timeout,
        client.run_command_and_check_ok("STARTTLS", None),
    )
    .await
    {
        Ok(Ok(())) => true,
        Ok(Err(async_imap::error::Error::Bad(_) | async_imap::error::Error::No(_))) => false,
        Ok(Err(e)) => return Err(ImapError(format!("STARTTLS: {e}"))),
        Err(_) => return Err(ImapError(format!("STARTTLS: no answer within {timeout:?}"))),
    };
    let tcp = client.into_inner();
    if offered {
        // No second greeting follows STARTTLS.
        let secured = limited!(timeout, "TLS", tls::connect(tls, &server.host, tcp))?;
        return Ok(Either::Right(secured));
    }
    if is_loopback(&server.host) {
        return Ok(Either::Left(tcp));
    }
    Err(ImapError(format!(
        "{} offers no STARTTLS: refusing to send the password in the clear (use imaps://)",
        server.host
    )))
}
