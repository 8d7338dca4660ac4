//! The readable `content` of each WhatsApp message type (`[image]`, a list reply's title, a
//! location's name, …) and of a delivery error, so agents read messages without knowing the
//! payload format.

use serde_json::Value;

use crate::channels::meta::json::{body, id, items, number, text, trimmed};

/// The readable `content` of a message of type `kind`. `nested` stops an edit inside an edit.
pub(super) fn render(item: &Value, kind: &str, nested: bool) -> String {
    let payload = item.get(kind);
    let caption = || payload.and_then(|p| body(p, "caption")).map(str::to_owned);
    let readable = match kind {
        "text" => payload.and_then(|p| body(p, "body")).map(str::to_owned),
        "image" | "video" | "audio" | "sticker" => caption(),
        "document" => caption().or_else(|| {
            let name = text(payload?, "filename")?;
            Some(format!("[document: {name}]"))
        }),
        "location" => payload.and_then(location),
        "contacts" => contact_cards(payload),
        "interactive" => payload.and_then(interactive),
        "button" => payload
            .and_then(|p| body(p, "text").or_else(|| body(p, "payload")))
            .map(str::to_owned),
        // A reaction with no emoji, or an empty one, is the removal of an earlier reaction.
        "reaction" => Some(
            payload
                .and_then(|p| body(p, "emoji"))
                .unwrap_or("[reaction removed]")
                .to_owned(),
        ),
        "order" => payload.map(order),
        "system" => payload.and_then(|p| body(p, "body")).map(str::to_owned),
        "edit" if !nested => Some(match payload.and_then(|p| p.get("message")) {
            Some(edited) => {
                let kind = text(edited, "type").unwrap_or("unknown");
                format!("[edited] {}", render(edited, kind, true))
            }
            None => "[edited message]".to_owned(),
        }),
        "revoke" => Some("[message deleted]".to_owned()),
        _ => None,
    };
    readable.unwrap_or_else(|| format!("[{kind}]"))
}

fn location(location: &Value) -> Option<String> {
    match (text(location, "name"), text(location, "address")) {
        (Some(name), Some(address)) if name != address => Some(format!("{name}, {address}")),
        (Some(place), _) | (None, Some(place)) => Some(place.to_owned()),
        (None, None) => {
            let latitude = number(location.get("latitude"))?;
            let longitude = number(location.get("longitude"))?;
            Some(format!("[location: {latitude}, {longitude}]"))
        }
    }
}

fn contact_cards(cards: Option<&Value>) -> Option<String> {
    let names: Vec<String> = items(cards).iter().filter_map(card_name).collect();
    (!names.is_empty()).then(|| format!("[contact: {}]", names.join(", ")))
}

fn card_name(card: &Value) -> Option<String> {
    let name = card.get("name");
    if let Some(formatted) = name.and_then(|n| text(n, "formatted_name")) {
        return Some(formatted.to_owned());
    }
    let parts: Vec<&str> = ["first_name", "last_name"]
        .into_iter()
        .filter_map(|part| name.and_then(|n| text(n, part)))
        .collect();
    if !parts.is_empty() {
        return Some(parts.join(" "));
    }
    // Contact requests (2026) send a raw vCard instead of the structured name.
    let from_vcard = card
        .get("vcard")
        .and_then(Value::as_str)
        .and_then(vcard_full_name);
    from_vcard.or_else(|| {
        items(card.get("phones"))
            .iter()
            .find_map(|phone| text(phone, "phone"))
            .map(str::to_owned)
    })
}

/// The `FN` (full name) property of a vCard, with or without parameters (`FN;CHARSET=…:`).
fn vcard_full_name(vcard: &str) -> Option<String> {
    vcard.lines().find_map(|line| {
        let (property, value) = line.trim().split_once(':')?;
        let name = property.split(';').next()?;
        let value = value.trim();
        (name.eq_ignore_ascii_case("fn") && !value.is_empty()).then(|| value.to_owned())
    })
}

/// Reply kinds looked for when an `interactive` object omits its `type`.
const INTERACTIVE_REPLIES: [&str; 4] = [
    "button_reply",
    "list_reply",
    "nfm_reply",
    "call_permission_reply",
];

fn interactive(interactive: &Value) -> Option<String> {
    let kind = text(interactive, "type").or_else(|| {
        INTERACTIVE_REPLIES
            .into_iter()
            .find(|kind| interactive.get(*kind).is_some())
    })?;
    let reply = interactive.get(kind);
    let title = reply.and_then(|r| text(r, "title"));
    Some(match kind {
        "button_reply" => title.unwrap_or("[button reply]").to_owned(),
        "list_reply" => match (title, reply.and_then(|r| text(r, "description"))) {
            (Some(title), Some(description)) => format!("{title} — {description}"),
            (Some(title), None) => title.to_owned(),
            (None, _) => "[list reply]".to_owned(),
        },
        // A WhatsApp Flow completion: the answers are in `response_json` (kept in `raw`).
        "nfm_reply" => reply
            .and_then(|r| body(r, "body"))
            .unwrap_or("[form reply]")
            .to_owned(),
        "call_permission_reply" => match reply.and_then(|r| text(r, "response")) {
            Some(response) => format!("[call permission: {response}]"),
            None => "[call permission reply]".to_owned(),
        },
        other => format!("[interactive: {other}]"),
    })
}

fn order(order: &Value) -> String {
    let count = items(order.get("product_items")).len();
    let plural = if count == 1 { "" } else { "s" };
    match body(order, "text") {
        Some(note) => format!("[order: {count} item{plural}] {note}"),
        None => format!("[order: {count} item{plural}]"),
    }
}

/// A readable line from the first `errors[]` entry: `code: title (details)`, with `message`
/// added when it says more than `title`. `details` sits in `error_data` normally and at the top
/// level in older payloads; Graph errors may make `error_data` a plain string.
pub(super) fn describe_error(error: &Value) -> Option<String> {
    let code = id(error.get("code"));
    let title = text(error, "title");
    let message = text(error, "message");
    let details = error
        .get("error_data")
        .and_then(|data| text(data, "details").or_else(|| trimmed(data)))
        .or_else(|| text(error, "details"));
    let headline = match (title, message) {
        (Some(title), Some(message)) if !title.eq_ignore_ascii_case(message) => {
            Some(format!("{title}: {message}"))
        }
        (Some(line), _) | (None, Some(line)) => Some(line.to_owned()),
        (None, None) => None,
    };
    let line = [code, headline]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    let details = details.filter(|d| Some(*d) != title && Some(*d) != message);
    let line = match (line.is_empty(), details) {
        (false, Some(details)) => format!("{line} ({details})"),
        (true, Some(details)) => details.to_owned(),
        (_, None) => line,
    };
    (!line.is_empty()).then_some(line)
}
