//! EMAIL_* variables: URLs parsed and decoded, bad values named, passwords never shown.

use super::is_loopback;
use crate::config::{Config, Security};

#[test]
fn mail_urls_are_parsed_and_decoded() {
    let c = Config::with(&[
        (
            "EMAIL_IMAP_URL",
            "imaps://support%40example.com:p%40ss%3Aw%2Frd@imap.example.com/Support%20Desk",
        ),
        ("EMAIL_SMTP_URL", "smtp://mail.example.com"),
    ])
    .expect("valid");
    let imap = c.email.imap.as_ref().expect("imap");
    assert_eq!(imap.security, Security::Implicit);
    assert_eq!(imap.port, 993);
    assert_eq!(imap.user, "support@example.com");
    assert_eq!(imap.password.expose(), "p@ss:w/rd");
    assert_eq!(imap.mailbox, "Support Desk");
    let smtp = c.email.smtp.as_ref().expect("smtp");
    assert_eq!((smtp.security, smtp.port), (Security::StartTls, 587));
    assert!(smtp.credentials.is_none());
    let from = c.email.from.as_ref().expect("from the IMAP user");
    assert_eq!(from.email.to_string(), "support@example.com");
    assert_eq!(c.email.own_addresses(), vec!["support@example.com"]);
    assert_eq!(c.email.poll_interval.as_secs(), 30);
    assert_eq!(c.email.backfill.as_secs(), 24 * 3600);

    let c = Config::with(&[("EMAIL_IMAP_URL", "imap://u:p@[::1]:1143")]).expect("valid");
    let imap = c.email.imap.expect("imap");
    assert_eq!((imap.host.as_str(), imap.port), ("::1", 1143));
    assert_eq!(imap.mailbox, "INBOX");
    assert!(!format!("{imap:?}").contains("p@"), "no password in Debug");
}

#[test]
fn bad_mail_settings_name_their_variable_and_hide_the_password() {
    for (var, value) in [
        ("EMAIL_IMAP_URL", "https://u:secret@imap.example.com"),
        ("EMAIL_IMAP_URL", "imaps://imap.example.com"),
        ("EMAIL_IMAP_URL", "imaps://u@imap.example.com"),
        ("EMAIL_SMTP_URL", "smtps://u@smtp.example.com"),
        ("EMAIL_SMTP_URL", "smtp://u:secret@smtp.example.com/path"),
        ("EMAIL_FROM", "not an address"),
        ("EMAIL_POLL_SECS", "0"),
        ("EMAIL_BACKFILL_HOURS", "-1"),
        ("EMAIL_CA_FILE", "/nonexistent/ca.pem"),
    ] {
        let e = Config::with(&[(var, value)]).expect_err(var);
        assert_eq!(e.variable, var, "{value}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }
    let e = Config::with(&[("EMAIL_SMTP_URL", "smtps://smtp.example.com")]).expect_err("no sender");
    assert_eq!(e.variable, "EMAIL_FROM");
}

#[test]
fn loopback_hosts_are_recognised() {
    for host in [
        "127.0.0.1",
        "127.0.0.2",
        "::1",
        "[::1]",
        "localhost",
        "LOCALHOST",
    ] {
        assert!(is_loopback(host), "{host}");
    }
    for host in [
        "10.0.0.1",
        "imap.example.com",
        "localhost.example.com",
        "0.0.0.0",
    ] {
        assert!(!is_loopback(host), "{host}");
    }
}
