//! Who wrote an outbound message: an agent or the assistant. Stored as the message's
//! `sender_name` (`agent`, `assistant`), and handed to the provider client with each attempt,
//! since some providers treat the two differently (Instagram's `HUMAN_AGENT` tag is for people
//! only).

/// The writer of an outbound message we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Agent,
    Assistant,
}

impl Author {
    /// The `sender_name` a message written by this author carries.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_name_round_trips() {
        for author in [Author::Agent, Author::Assistant] {
            assert_eq!(Author::parse(author.as_str()), Some(author));
        }
        assert_eq!(Author::parse("someone"), None);
    }
}
