//! The media store: attachment files under `MEDIA_DIR`, named by the SHA-256 of their content,
//! so the same bytes are stored once and instances that share the directory share the files.
//!
//! A file is written to a temporary name in the same directory, flushed to disk, then renamed
//! into place: a crash never leaves half a file under a content name, and a reader sees a
//! file complete or not at all. Files over `MEDIA_MAX_BYTES` are refused while they stream in,
//! so a large or endless source costs at most that much disk and a small buffer of memory. A
//! temporary file a killed process left behind is removed at a later start, once it is older
//! than any write could take.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Bytes read per step while streaming a file in.
const CHUNK: usize = 64 * 1024;
/// The prefix of temporary files' names.
const TEMPORARY: &str = ".incoming-";
/// A temporary file this old belongs to a process that died (a fetch is bounded by
/// `MEDIA_FETCH_TIMEOUT_SECS`, at most an hour); an instance sharing the directory may be
/// writing a younger one right now.
const STALE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What a stored file is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Lowercase hex SHA-256 of the content: its name in the store.
    pub sha256: String,
    pub size: i64,
}

/// Why a file was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("cannot write to the media directory: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    max_bytes: u64,
}

impl MediaStore {
    pub fn new(dir: PathBuf, max_bytes: u64) -> MediaStore {
        MediaStore { dir, max_bytes }
    }

    /// Creates the directory if missing (at start-up, so a bad `MEDIA_DIR` stops it early), and
    /// removes temporary files that dead processes left there.
    pub async fn prepare(&self) -> io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        self.remove_stale(STALE).await;
        Ok(())
    }

    /// Removes temporary files older than `age`; what cannot be read or removed is left.
    async fn remove_stale(&self, age: std::time::Duration) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let temporary = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TEMPORARY));
            let old = match entry.metadata().await.and_then(|m| m.modified()) {
                Ok(modified) => modified.elapsed().is_ok_and(|elapsed| elapsed > age),
                Err(_) => false,
            };
            if temporary && old {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Where the file of `sha256` lives (whether or not it is there). `None` for anything but
    /// 64 lowercase hex digits, so a stored name can never point outside the directory.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        let valid = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| self.dir.join(sha256))
    }

    /// Stores `bytes` (a mail's attachment, already in memory).
    pub async fn put_bytes(&self, bytes: &[u8]) -> Result<Stored, StoreError> {
        self.put_reader(bytes).await
    }

    /// Streams `reader` into the store, refusing it past `MEDIA_MAX_BYTES`. Dropped halfway
    /// (a time limit, a cancelled request), it leaves no temporary file behind.
    pub async fn put_reader(
        &self,
        mut reader: impl AsyncRead + Unpin,
    ) -> Result<Stored, StoreError> {
        let temporary = Temporary(
            self.dir
                .join(format!("{TEMPORARY}{}", uuid::Uuid::new_v4().simple())),
        );
        let stored = self.write_temporary(&mut reader, &temporary.0).await?;
        let Some(path) = self.path(&stored.sha256) else {
            return Err(StoreError::Io(io::Error::other("bad content name")));
        };
        // Renaming over an existing file of the same content is harmless: the bytes are equal.
        tokio::fs::rename(&temporary.0, &path).await?;
        Ok(stored)
    }

    /// Opens the stored file of `sha256` for reading, with its length; `None` when it is not
    /// here (never fetched on this directory, or removed).
    pub async fn open(&self, sha256: &str) -> io::Result<Option<(tokio::fs::File, u64)>> {
        let Some(path) = self.path(sha256) else {
            return Ok(None);
        };
        match tokio::fs::File::open(&path).await {
            Ok(file) => {
                let length = file.metadata().await?.len();
                Ok(Some((file, length)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write_temporary(
        &self,
        reader: &mut (impl AsyncRead + Unpin),
        temporary: &Path,
    ) -> Result<Stored, StoreError> {
        let mut file = tokio::fs::File::create(temporary).await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > self.max_bytes {
                return Err(StoreError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            hasher.update(&buffer[..n]);
            file.write_all(&buffer[..n]).await?;
        }
        file.sync_all().await?;
        let sha256: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Stored {
            sha256,
            size: size as i64,
        })
    }
}

/// A temporary file, removed when dropped unless it was renamed into place first.
struct Temporary(PathBuf);

impl Drop for Temporary {
    fn drop(&mut self) {
        // After a successful rename the name is gone and this fails harmlessly.
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max: u64) -> (MediaStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("sb-media-{}", uuid::Uuid::new_v4().simple()));
        (MediaStore::new(dir.clone(), max), dir)
    }

    #[tokio::test]
    async fn the_same_bytes_are_stored_once_under_their_hash() {
        let (media, dir) = store(1024);
        media.prepare().await.expect("dir");
        let a = media.put_bytes(b"hola").await.expect("stored");
        let b = media.put_bytes(b"hola").await.expect("stored");
        assert_eq!(a, b);
        assert_eq!(
            a.sha256,
            "b221d9dbb083a7f33428d7c2a3c3198ae925614d70210e28716ccaa7cd4ddb79"
        );
        assert_eq!(a.size, 4);
        let files: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert_eq!(files.len(), 1, "one file, no temporaries left");
        let path = media.path(&a.sha256).expect("a valid name");
        assert_eq!(std::fs::read(path).expect("read"), b"hola");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_file_over_the_limit_is_refused_and_leaves_nothing() {
        let (media, dir) = store(8);
        media.prepare().await.expect("dir");
        let refused = media.put_bytes(b"nine bytes").await;
        assert!(matches!(refused, Err(StoreError::TooLarge { limit: 8 })));
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_write_abandoned_halfway_leaves_nothing() {
        let (media, dir) = store(1 << 20);
        media.prepare().await.expect("dir");
        let (mut writer, reader) = tokio::io::duplex(1024);
        writer.write_all(b"the first half").await.expect("write");
        let put = media.put_reader(reader);
        let abandoned = tokio::time::timeout(std::time::Duration::from_millis(50), put).await;
        assert!(abandoned.is_err(), "the reader never ends");
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);
        let stored = media.put_bytes(b"hola").await.expect("stored");
        let (mut file, length) = media.open(&stored.sha256).await.expect("io").expect("here");
        let mut text = String::new();
        file.read_to_string(&mut text).await.expect("read");
        assert_eq!((text.as_str(), length), ("hola", 4));
        assert!(media.open(&"0".repeat(64)).await.expect("io").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn temporary_files_of_dead_processes_are_removed_once_stale() {
        let (media, dir) = store(1024);
        media.prepare().await.expect("dir");
        let stored = media.put_bytes(b"kept").await.expect("stored");
        std::fs::write(dir.join(".incoming-dead"), b"half").expect("write");
        media.remove_stale(STALE).await;
        assert_eq!(
            std::fs::read_dir(&dir).expect("dir").count(),
            2,
            "young: kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        media
            .remove_stale(std::time::Duration::from_millis(10))
            .await;
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec![stored.sha256], "content files are never removed");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_content_names_make_paths() {
        let (media, _) = store(8);
        for bad in [
            "",
            "../etc/passwd",
            &"A".repeat(64),
            &"g".repeat(64),
            &"a".repeat(63),
        ] {
            assert!(media.path(bad).is_none(), "{bad}");
        }
        assert!(media.path(&"a".repeat(64)).is_some());
    }
}
