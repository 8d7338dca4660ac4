//! Who wrote an outbound message: an agent, or the assistant on its own. Providers treat them
//! differently (the assistant's mail says `Auto-Submitted: auto-replied`), so the outbox carries
//! it to every attempt; it is stored as the message's `sender_name`.

/// Who wrote an outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    /// A person, through `POST /send`.
    Agent,
    /// The LLM assistant, answering on its own.
    Assistant,
}

impl Author {
    /// The `sender_name` the message is stored with.
    pub fn as_str(self) -> &'static str {
        match self {
            Author::Agent => "agent",
            Author::Assistant => "assistant",
        }
    }

    pub fn parse(s: &str) -> Option<Author> {
        match s {
            "agent" => Some(Author::Agent),
            "assistant" => Some(Author::Assistant),
            _ => None,
        }
    }
}

super::text_column!(Author);
