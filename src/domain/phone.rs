//! Phone numbers as customers and agents type them.

/// A phone number reduced to its digits (the form WhatsApp uses as `wa_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts digits with an optional leading `+`, and spaces, dashes, dots and parentheses
    /// between them; 7 to 15 digits (E.164 allows at most 15).
    pub fn parse(input: &str) -> Result<PhoneNumber, &'static str> {
        let s = input.trim();
        let s = s.strip_prefix('+').unwrap_or(s);
        let mut digits = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err("a phone number may hold only digits, an optional leading +, spaces, dashes, dots and parentheses"),
            }
        }
        if !(7..=15).contains(&digits.len()) {
            return Err("a phone number has between 7 and 15 digits");
        }
        Ok(PhoneNumber(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_numbers_reduce_to_digits() {
        for input in [
            "+34 600 123 456",
            "34-600-123-456",
            "(34) 600.123.456",
            " 34600123456 ",
        ] {
            assert_eq!(
                PhoneNumber::parse(input).map(|p| p.0),
                Ok("34600123456".into()),
                "{input}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for input in [
            "",
            "+",
            "abc",
            "12",
            "1234567890123456",
            "+34 600 12x 456",
            "++34600123456",
            "34+600123456",
        ] {
            assert!(PhoneNumber::parse(input).is_err(), "{input}");
        }
    }
}
