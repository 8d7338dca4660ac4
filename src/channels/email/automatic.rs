//! Which mail is automatic, so that the assistant never answers it and no two auto-responders
//! write to each other forever (RFC 3834's rules, and the mail systems' own senders).

use mail_parser::Message;

use super::parse::Sender;

/// Why `m` is automatic mail, by the contract's rules: `Auto-Submitted` other than `no`,
/// `Precedence: bulk|junk|list`, a `List-Id`, a sender that is a mail system, or the mailbox
/// itself.
pub(super) fn reason(m: &Message, sender: Option<&Sender>, own: &[String]) -> Option<String> {
    let raw = |name: &str| m.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    if let Some(value) = raw("Auto-Submitted") {
        let keyword = value.split(';').next().unwrap_or("").trim().to_string();
        if keyword != "no" {
            return Some(format!("Auto-Submitted: {keyword}"));
        }
    }
    if let Some(value) = raw("Precedence") {
        if ["bulk", "junk", "list"].contains(&value.as_str()) {
            return Some(format!("Precedence: {value}"));
        }
    }
    if m.header_raw("List-Id").is_some() {
        return Some("List-Id".into());
    }
    let address = sender?.address.to_lowercase();
    let local = address.split('@').next().unwrap_or("");
    if local == "mailer-daemon" || local == "postmaster" {
        return Some(format!("from {local}"));
    }
    if own.contains(&address) {
        return Some("from the mailbox itself".into());
    }
    None
}
