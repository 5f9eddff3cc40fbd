//! The link cache in front of the store, in tiers:
//! - the in-process tier ([`LocalCache`], a [`LinkCache`]): bounded by
//!   entries, with a TTL, and with short-lived negative entries so a flood of
//!   unknown slugs does not reach the store;
//! - in cluster mode, a shared tier behind it ([`SharedLinkCache`]; Redis,
//!   `crate::cluster::cache`), so a link read by one node is warm on all.
//!
//! [`LinkTiers`] asks them in order and then the store, fills the tiers
//! that missed, and carries invalidations to all of them.
//!
//! A load that races an edit must not put the old link back after the edit
//! invalidated it. Every invalidation bumps an epoch; a loader remembers the
//! epoch before reading the store and drops its own entry if the epoch moved.
//! (The shared tier keeps a short tombstone per invalidated slug for the
//! same purpose.)
//!
//! The two tiers have two traits because they are asked differently: the
//! in-process tier answers almost every redirect and does so without
//! waiting, so its trait is synchronous (no future, no allocation on a hit);
//! the shared tier is a network round trip, asked only on a local miss.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::domain::{Link, Slug};
use crate::metrics::names;
use crate::store::{LinkFeed, Store, StoreError};

#[derive(Debug, Clone)]
pub enum CachedLink {
    Found(Arc<Link>),
    /// The store had no such slug a moment ago.
    Missing,
}

/// The in-process tier ([`LocalCache`]): answers without waiting.
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

/// A tier shared by every node (Redis, in cluster mode). Its failures are
/// its own business: a tier that does not answer is a miss, and the store is
/// asked instead.
#[async_trait::async_trait]
pub trait SharedLinkCache: Send + Sync {
    /// The tier's entry for a slug; `None` on a miss or when it does not
    /// answer in time.
    async fn get(&self, slug: &str) -> Option<CachedLink>;
    /// Keeps an entry for `ttl`, unless the slug was invalidated a moment
    /// ago (the entry may be older than that edit).
    async fn insert(&self, slug: &str, entry: &CachedLink, ttl: Duration);
    /// Drops a slug here and from every node's in-process tier; an
    /// invalidation the tier did not take is kept and sent again by
    /// [`SharedLinkCache::resend_invalidations`].
    async fn invalidate(&self, slug: &str);
    /// Sends the invalidations that did not get through earlier.
    async fn resend_invalidations(&self);
    /// Whether the tier answered its last request (`/readyz` reports it).
    fn is_up(&self) -> bool;
}

/// The shared tier and how long it keeps links and unknown slugs.
pub struct SharedTier {
    pub cache: Arc<dyn SharedLinkCache>,
    pub ttl: Duration,
    pub negative_ttl: Duration,
}

/// The redirect's way to a link: the in-process tier, the shared tier (if
/// any), then the store; counted in hop's cache metrics.
pub struct LinkTiers {
    pub local: Arc<dyn LinkCache>,
    pub shared: Option<SharedTier>,
    metrics: CacheMetrics,
}

struct CacheMetrics {
    hits: metrics::Counter,
    misses: metrics::Counter,
    store_latency: metrics::Histogram,
}

impl LinkTiers {
    pub fn new(local: Arc<dyn LinkCache>, shared: Option<SharedTier>) -> LinkTiers {
        LinkTiers {
            local,
            shared,
            metrics: CacheMetrics {
                hits: metrics::counter!(names::CACHE_HITS),
                misses: metrics::counter!(names::CACHE_MISSES),
                store_latency: metrics::histogram!(names::STORE_DURATION, "op" => "link_by_slug"),
            },
        }
    }

    /// The link behind a slug: the tiers first, then the store (and cache
    /// what it said, including "no such link").
    pub async fn resolve(
        &self,
        store: &dyn Store,
        slug: &Slug,
    ) -> Result<Option<Arc<Link>>, StoreError> {
        if let Some(entry) = self.local.get(slug.as_str()) {
            self.metrics.hits.increment(1);
            return Ok(entry.link());
        }
        self.metrics.misses.increment(1);
        let epoch = self.local.epoch();
        if let Some(shared) = &self.shared
            && let Some(entry) = shared.cache.get(slug.as_str()).await
        {
            let link = entry.link();
            self.local.insert(slug.as_str(), entry, epoch);
            return Ok(link);
        }
        let started = std::time::Instant::now();
        let link = store.link_by_slug(slug).await?.map(Arc::new);
        self.metrics
            .store_latency
            .record(started.elapsed().as_secs_f64());
        let entry = match &link {
            Some(l) => CachedLink::Found(l.clone()),
            None => CachedLink::Missing,
        };
        if let Some(shared) = &self.shared {
            let ttl = match entry {
                CachedLink::Found(_) => shared.ttl,
                CachedLink::Missing => shared.negative_ttl,
            };
            let (tier, slug, entry) = (shared.cache.clone(), slug.to_string(), entry.clone());
            // Off the redirect's path.
            tokio::spawn(async move { tier.insert(&slug, &entry, ttl).await });
        }
        self.local.insert(slug.as_str(), entry, epoch);
        Ok(link)
    }

    /// After an edit or delete: this node's tier at once, then the shared
    /// tier and, through it, every other node's.
    pub async fn invalidate(&self, slug: &Slug) {
        self.local.invalidate(slug.as_str());
        if let Some(shared) = &self.shared {
            shared.cache.invalidate(slug.as_str()).await;
        }
    }

    /// Re-sends invalidations the shared tier did not take (upkeep).
    pub async fn resend_invalidations(&self) {
        if let Some(shared) = &self.shared {
            shared.cache.resend_invalidations().await;
        }
    }
}

impl CachedLink {
    fn link(&self) -> Option<Arc<Link>> {
        match self {
            CachedLink::Found(link) => Some(link.clone()),
            CachedLink::Missing => None,
        }
    }
}

/// How long a link feed is left alone after a round that found nothing
/// (DynamoDB Streams take about five reads a second per shard).
pub const FEED_IDLE: Duration = Duration::from_millis(250);

/// One round of a store's link feed ([`crate::store::LinkStore::link_feed`]):
/// hands each slug it names to `invalidate`; returns how long to wait
/// before the next round.
pub async fn feed_round<F, Fut>(feed: &mut dyn LinkFeed, invalidate: F) -> Duration
where
    F: Fn(Slug) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    match feed.changed().await {
        Ok(slugs) if slugs.is_empty() => FEED_IDLE,
        Ok(slugs) => {
            metrics::counter!(names::FEED_INVALIDATIONS).increment(slugs.len() as u64);
            for slug in slugs {
                invalidate(slug).await;
            }
            Duration::ZERO
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading the link feed failed");
            Duration::from_secs(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::link;

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
