//! Serialised pages in memory, bounded in bytes, least recently used evicted first.

use std::sync::Mutex;

use hashlink::LinkedHashMap;

use super::{Key, Page};

/// What an entry costs beyond its body: key, label, header values, the map's links.
const ENTRY_OVERHEAD: usize = 160;

/// One serialised page and the stamp it was labelled with.
struct Entry {
    stamp: i64,
    page: Page,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.page.body.len() + self.page.etag.len() + ENTRY_OVERHEAD
    }
}

struct Lru {
    /// Oldest use at the front.
    entries: LinkedHashMap<Key, Entry>,
    bytes: usize,
}

/// The pages kept, shared by every request of this instance. The lock is held for a map
/// operation only (bodies are reference-counted, never copied under it).
pub struct Cache {
    capacity: usize,
    lru: Mutex<Lru>,
}

impl Cache {
    /// A cache of at most `capacity` bytes; 0 keeps nothing.
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            lru: Mutex::new(Lru {
                entries: LinkedHashMap::new(),
                bytes: 0,
            }),
        }
    }

    /// The page kept for `key` if it was labelled with `stamp`.
    pub fn get(&self, key: &Key, stamp: i64) -> Option<Page> {
        let mut lru = self.lru.lock().ok()?;
        let entry = lru.entries.to_back(key)?;
        (entry.stamp == stamp).then(|| entry.page.clone())
    }

    /// Keeps `page` for `key`, labelled with `stamp`, replacing what was kept for it; evicts
    /// the least recently used pages beyond the capacity.
    pub fn put(&self, key: Key, stamp: i64, page: Page) {
        let entry = Entry { stamp, page };
        let size = entry.bytes();
        if size > self.capacity {
            return;
        }
        let Ok(mut lru) = self.lru.lock() else {
            return;
        };
        if let Some(old) = lru.entries.insert(key, entry) {
            lru.bytes -= old.bytes();
        }
        lru.bytes += size;
        while lru.bytes > self.capacity {
            match lru.entries.pop_front() {
                Some((_, evicted)) => lru.bytes -= evicted.bytes(),
                None => break,
            }
        }
    }

    /// Bytes and pages kept now.
    pub fn usage(&self) -> (usize, usize) {
        self.lru
            .lock()
            .map(|lru| (lru.bytes, lru.entries.len()))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderValue;

    use super::*;

    fn page(len: usize) -> Page {
        Page {
            body: Bytes::from(vec![b'x'; len]),
            total: 1,
            etag: HeaderValue::from_static("W/\"t\""),
        }
    }

    fn key(id: i64) -> Key {
        Key::Messages {
            conversation_id: id,
            limit: 50,
        }
    }

    #[test]
    fn a_page_is_served_only_under_the_stamp_it_was_labelled_with() {
        let cache = Cache::new(1 << 20);
        cache.put(key(1), 7, page(10));
        assert!(cache.get(&key(1), 7).is_some());
        assert!(cache.get(&key(1), 8).is_none());
        assert!(cache.get(&key(2), 7).is_none());
        cache.put(key(1), 8, page(10));
        assert!(cache.get(&key(1), 7).is_none());
        assert!(cache.get(&key(1), 8).is_some());
        assert_eq!(cache.usage().1, 1);
    }

    #[test]
    fn the_least_recently_used_pages_go_first_and_the_bytes_stay_bounded() {
        let one = 1000 + 5 + ENTRY_OVERHEAD;
        let cache = Cache::new(3 * one);
        for id in 1..=3 {
            cache.put(key(id), 1, page(1000));
        }
        // 1 used again: 2 is now the oldest.
        assert!(cache.get(&key(1), 1).is_some());
        cache.put(key(4), 1, page(1000));
        assert!(cache.get(&key(2), 1).is_none());
        for id in [1, 3, 4] {
            assert!(cache.get(&key(id), 1).is_some(), "{id} kept");
        }
        assert_eq!(cache.usage(), (3 * one, 3));
        // Larger than everything: not kept, nothing evicted for it.
        cache.put(key(5), 1, page(4 * one));
        assert!(cache.get(&key(5), 1).is_none());
        assert_eq!(cache.usage(), (3 * one, 3));
        // A replacement counts only once.
        cache.put(key(1), 2, page(1000));
        assert_eq!(cache.usage(), (3 * one, 3));
        let none = Cache::new(0);
        none.put(key(1), 1, page(1));
        assert!(none.get(&key(1), 1).is_none());
    }
}
