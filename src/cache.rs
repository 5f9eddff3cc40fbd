//! The in-process link cache in front of the store: bounded by entries, with
//! a TTL, and with short-lived negative entries so a flood of unknown slugs
//! does not reach the store.
//!
//! A load that races an edit must not put the old link back after the edit
//! invalidated it. Every invalidation bumps an epoch; a loader remembers the
//! epoch before reading the store and drops its own entry if the epoch moved.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::domain::Link;

#[derive(Debug, Clone)]
pub enum CachedLink {
    Found(Arc<Link>),
    /// The store had no such slug a moment ago.
    Missing,
}

/// What a cache tier offers. The in-process tier is [`LocalCache`]; a shared
/// tier (Redis, in cluster mode) implements the same trait.
pub trait LinkCache: Send + Sync {
    fn get(&self, slug: &str) -> Option<CachedLink>;
    /// Current invalidation epoch, read before loading from the store.
    fn epoch(&self) -> u64;
    /// Caches a loaded entry unless an invalidation happened since `epoch`.
    fn insert(&self, slug: &str, entry: CachedLink, epoch: u64);
    fn invalidate(&self, slug: &str);
    /// Drops everything (e.g. after missing invalidation messages).
    fn clear(&self);
}

struct TtlPolicy {
    found: Duration,
    missing: Duration,
}

impl Expiry<String, CachedLink> for TtlPolicy {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &CachedLink,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match value {
            CachedLink::Found(_) => self.found,
            CachedLink::Missing => self.missing,
        })
    }
}

pub struct LocalCache {
    entries: moka::sync::Cache<String, CachedLink>,
    epoch: AtomicU64,
}

impl LocalCache {
    pub fn new(capacity: u64, ttl: Duration, negative_ttl: Duration) -> LocalCache {
        LocalCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(TtlPolicy {
                    found: ttl,
                    missing: negative_ttl,
                })
                .build(),
            epoch: AtomicU64::new(0),
        }
    }
}

impl LinkCache for LocalCache {
    fn get(&self, slug: &str) -> Option<CachedLink> {
        self.entries.get(slug)
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn insert(&self, slug: &str, entry: CachedLink, epoch: u64) {
        self.entries.insert(slug.to_owned(), entry);
        if self.epoch() != epoch {
            // An edit landed while we were loading: what we read may be stale.
            self.entries.invalidate(slug);
        }
    }

    fn invalidate(&self, slug: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(slug);
    }

    fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::link;

    fn cache() -> LocalCache {
        LocalCache::new(100, Duration::from_secs(60), Duration::from_millis(50))
    }

    #[test]
    fn stale_load_is_not_kept() {
        let c = cache();
        let epoch = c.epoch();
        c.invalidate("abc"); // an edit lands during the load
        c.insert("abc", CachedLink::Found(Arc::new(link("abc", None))), epoch);
        assert!(c.get("abc").is_none());
        let epoch = c.epoch();
        c.insert("abc", CachedLink::Missing, epoch);
        assert!(matches!(c.get("abc"), Some(CachedLink::Missing)));
    }

    #[test]
    fn negative_entries_expire_sooner() {
        let c = cache();
        c.insert("gone", CachedLink::Missing, c.epoch());
        c.insert(
            "here",
            CachedLink::Found(Arc::new(link("here", None))),
            c.epoch(),
        );
        std::thread::sleep(Duration::from_millis(120));
        assert!(c.get("gone").is_none());
        assert!(c.get("here").is_some());
    }

    #[test]
    fn clear_drops_everything() {
        let c = cache();
        c.insert("a", CachedLink::Missing, c.epoch());
        c.clear();
        assert!(c.get("a").is_none());
    }
}
