//! The providers, one folder each, and what each channel defines in one place.
//!
//! Where a channel plugs in:
//! - **in**: its provider turns what it received (a webhook body, a polled mail) into the
//!   channel-neutral [`crate::inbox::Delivery`] that one recorder stores;
//! - **out**: [`crate::outbox::dispatch`] picks the provider client for a message's channel;
//! - **rules** ([`rules`]): how the channel keys a conversation, validates a recipient and
//!   limits a text, used by the REST routes, the providers and the assistant alike.

pub mod email;
pub mod instagram;
pub mod meta;
pub mod whatsapp;

use crate::domain::ChannelKind;

/// What a channel defines about addressing people and the texts it carries.
pub trait ChannelRules: Sync {
    /// The conversation key (`external_id`) for a participant identifier as a client or a
    /// provider writes it.
    fn conversation_key(&self, identifier: &str) -> String;
    /// A send's `to`, validated and in the form the provider expects; the error is readable.
    fn recipient(&self, to: &str) -> Result<String, String>;
    /// The longest text one message may carry, in characters.
    fn max_text_chars(&self) -> usize;
}

/// The rules of `kind`.
pub fn rules(kind: ChannelKind) -> &'static dyn ChannelRules {
    match kind {
        ChannelKind::Whatsapp => &whatsapp::Rules,
        ChannelKind::Instagram => &instagram::Rules,
        ChannelKind::Gmail => &email::Rules,
    }
}

/// What became of one attempt to hand a message to its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted, with the provider's id for the message when it gives one.
    Accepted(Option<String>),
    /// Worth retrying later (timeouts, 5xx, throttling).
    Transient(String),
    /// Retrying the same message cannot help (bad token, invalid recipient, window closed).
    Permanent(String),
}

/// What became of looking a participant's name up with their provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOutcome {
    /// The name to show.
    Found(String),
    /// Worth trying again later (timeouts, 5xx, throttling).
    Transient(String),
    /// Asking again cannot help (no such person, no name, no permission).
    Permanent(String),
}
