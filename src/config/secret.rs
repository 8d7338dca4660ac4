//! Values that must never reach a log line, and named key sets (`API_KEYS`), compared in
//! constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Compares in constant time (for equal lengths; the length itself is not secret enough to
    /// matter for random keys).
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Named keys (`name:key,name2:key2`), as in `API_KEYS`.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<(String, Secret)>,
}

impl KeySet {
    pub fn parse(raw: &str) -> Result<KeySet, String> {
        let mut keys = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, key) = item
                .split_once(':')
                .ok_or_else(|| "each entry must be name:key".to_string())?;
            let (name, key) = (name.trim(), key.trim());
            if name.is_empty() || key.is_empty() {
                return Err("each entry must be name:key with neither part empty".into());
            }
            keys.push((name.to_string(), Secret::new(key)));
        }
        if keys.is_empty() {
            return Err("no name:key entry found".into());
        }
        Ok(KeySet { keys })
    }

    /// The name of the key equal to `candidate`. Every key is compared, so the time taken does
    /// not tell which one (or whether any) matched.
    pub fn find(&self, candidate: &str) -> Option<&str> {
        let mut found = None;
        for (name, key) in &self.keys {
            if key.matches(candidate) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_value_and_hidden_in_debug() {
        let keys = KeySet::parse("web:abc123, ops:xyz:789").expect("valid");
        assert_eq!(keys.find("abc123"), Some("web"));
        assert_eq!(keys.find("xyz:789"), Some("ops"));
        assert_eq!(keys.find("abc12"), None);
        assert_eq!(keys.find(""), None);
        assert!(!format!("{keys:?}").contains("abc123"));
    }
}
