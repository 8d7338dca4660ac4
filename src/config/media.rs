//! How attachment files are fetched from providers (`MEDIA_DIR` and `MEDIA_MAX_BYTES`, where
//! they are kept, are read with the rest in `config/mod.rs`).

use std::time::Duration;

use super::vars::Vars;
use super::ConfigError;

/// Fetching attachment files from providers.
#[derive(Clone, Debug)]
pub struct MediaFetch {
    /// The longest one file's fetch may take (the Graph look-up and the whole download).
    pub timeout: Duration,
    /// Files one instance fetches at once (background jobs and on-demand requests together).
    pub concurrency: usize,
}

impl Vars<'_> {
    pub(super) fn media_fetch(&self) -> Result<MediaFetch, ConfigError> {
        Ok(MediaFetch {
            timeout: Duration::from_secs(self.bounded("MEDIA_FETCH_TIMEOUT_SECS", 120, 1, 3600)?),
            concurrency: self.bounded("MEDIA_FETCH_CONCURRENCY", 4, 1, 64)?,
        })
    }
}
