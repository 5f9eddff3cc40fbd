//! The shared link tier (cluster mode): behind each node's in-process
//! cache, `hop:link:{slug}` entries in Redis, sealed and with TTLs (negative
//! entries too). Edits and deletes delete the key, leave a short tombstone
//! (so a load that raced the edit cannot put the old link back) and publish
//! the slug on `hop:invalidate` for every node's in-process tier
//! ([`super::relay`]). [`Redis`] is the [`SharedLinkCache`] of
//! [`crate::cache::LinkTiers`].

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;

use super::INVALIDATE;
use super::redis::{CACHE_WAIT, Redis};
use crate::cache::{CachedLink, SharedLinkCache};
use crate::domain::{Link, TargetUrl};

const LINK_PREFIX: &str = "hop:link:";
const MISSING: &str = "-";
/// Marks a slug just invalidated, so a load that raced the edit does not
/// put the old link back into the shared tier.
const TOMBSTONE_PREFIX: &str = "hop:inval:";
const TOMBSTONE_SECS: u64 = 10;

impl Redis {
    /// The shared cache's entry for a slug; `None` on a miss or when Redis
    /// does not answer in time (the store is asked instead).
    pub async fn cached_link(&self, slug: &str) -> Option<CachedLink> {
        // This node edited the slug while Redis was away and has not yet
        // told Redis: the shared entry may be the old link (a restarted
        // Redis keeps it), so the store decides until the resend lands.
        if self.unsent.lock().contains(slug) {
            return None;
        }
        let mut conn = self.conn();
        let key = format!("{LINK_PREFIX}{slug}");
        let got = tokio::time::timeout(CACHE_WAIT, conn.get::<_, Option<String>>(&key)).await;
        let value = match got {
            Ok(r) => self.mark(r).ok().flatten()?,
            Err(_) => return None,
        };
        let entry = self.open_link_entry(&key, slug, &value);
        if entry.is_none() {
            // Not written by a node of this cluster: a forgery, a value moved
            // from another key, or a stale one. The store decides instead.
            tracing::warn!(
                link.slug = slug,
                "refused a shared cache entry that does not verify"
            );
        }
        entry
    }

    /// A shared cache entry: sealed for its key, not past the expiry it was
    /// sealed with (so an old entry cannot be replayed for longer than its
    /// TTL), for this slug, with a target that passes the same checks as a
    /// new one.
    fn open_link_entry(&self, key: &str, slug: &str, value: &str) -> Option<CachedLink> {
        let payload = self.seal.open(key, value)?;
        let (expires, body) = payload.split_once(':')?;
        if expires.parse::<i64>().ok()? < chrono::Utc::now().timestamp_millis() {
            return None;
        }
        if body == MISSING {
            return Some(CachedLink::Missing);
        }
        let link = serde_json::from_str::<Link>(body).ok()?;
        let target = TargetUrl::parse(link.target.as_str(), &[]).ok()?;
        (link.slug.as_str() == slug && target == link.target)
            .then(|| CachedLink::Found(Arc::new(link)))
    }

    pub async fn cache_link(&self, slug: &str, entry: &CachedLink, ttl: Duration) {
        if self.unsent.lock().contains(slug) {
            return;
        }
        let value = match entry {
            CachedLink::Found(link) => match serde_json::to_string(link.as_ref()) {
                Ok(v) => v,
                Err(_) => return,
            },
            CachedLink::Missing => MISSING.to_owned(),
        };
        let key = format!("{LINK_PREFIX}{slug}");
        let expires = chrono::Utc::now().timestamp_millis() + ttl.as_millis() as i64;
        let value = self.seal.seal(&key, &format!("{expires}:{value}"));
        // Not while a recent invalidation's tombstone stands: this value may
        // have been read from the store just before that edit.
        static SET_UNLESS_INVALIDATED: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| {
                redis::Script::new(
                    "if redis.call('EXISTS', KEYS[2]) == 0 then \
                       redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end \
                     return 0",
                )
            });
        let mut conn = self.conn();
        let r = SET_UNLESS_INVALIDATED
            .key(key)
            .key(format!("{TOMBSTONE_PREFIX}{slug}"))
            .arg(value)
            .arg(ttl.as_secs().max(1))
            .invoke_async::<i64>(&mut conn)
            .await;
        let _ = self.mark(r);
    }

    /// Drops a slug from the shared cache and tells every node to drop it.
    /// If Redis does not take it, the slug is kept and sent again when
    /// Redis is back ([`Redis::resend_invalidations`]): otherwise the shared
    /// tier would keep serving the old link until its TTL.
    pub async fn invalidate(&self, slug: &str) {
        if let Err(e) = self.send_invalidation(slug).await {
            tracing::warn!(error = %e, link.slug = slug, "cache invalidation not published; will resend");
            self.unsent.lock().insert(slug.to_owned());
        }
    }

    async fn send_invalidation(&self, slug: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn();
        let r = redis::pipe()
            .del(format!("{LINK_PREFIX}{slug}"))
            .ignore()
            .set_ex(format!("{TOMBSTONE_PREFIX}{slug}"), 1, TOMBSTONE_SECS)
            .ignore()
            .publish(INVALIDATE, self.seal.seal(INVALIDATE, slug))
            .ignore()
            .query_async::<()>(&mut conn)
            .await;
        self.mark(r)
    }

    /// Sends the invalidations Redis did not take while it was away; those
    /// that fail again stay for the next try.
    pub async fn resend_invalidations(&self) {
        let slugs: Vec<String> = self.unsent.lock().drain().collect();
        for slug in slugs {
            if self.send_invalidation(&slug).await.is_err() {
                self.unsent.lock().insert(slug);
            }
        }
    }
}

#[async_trait::async_trait]
impl SharedLinkCache for Redis {
    async fn get(&self, slug: &str) -> Option<CachedLink> {
        self.cached_link(slug).await
    }

    async fn insert(&self, slug: &str, entry: &CachedLink, ttl: Duration) {
        self.cache_link(slug, entry, ttl).await
    }

    async fn invalidate(&self, slug: &str) {
        Redis::invalidate(self, slug).await
    }

    async fn resend_invalidations(&self) {
        Redis::resend_invalidations(self).await
    }

    fn is_up(&self) -> bool {
        Redis::is_up(self)
    }
}
