//! The link feed in cluster mode: one worker of the deployment at a time
//! (a lease in Redis) follows the store's link feed, the writes of other
//! regions replicated into this one's, and invalidates every node's caches
//! through Redis, as an edit made here does. One reader, because DynamoDB
//! Streams throttle more than two readers of a shard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::redis::Redis;
use crate::cache::feed_round;
use crate::store::LinkFeed;

const LEASE_KEY: &str = "hop:link-feed";

/// How long the reader's lease lasts without renewal: when a worker dies,
/// another takes over within this (and starts from the newest records;
/// caches keep a TTL for what the handover misses).
const LEASE: Duration = Duration::from_secs(15);

impl Redis {
    /// Takes or renews the lease `key` for `me`; false while another holds
    /// it, or Redis does not answer.
    async fn lead(&self, key: &str, me: &str, ttl: Duration) -> bool {
        static LEAD: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "local cur = redis.call('GET', KEYS[1]) \
                 if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
                 if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
                 return 0",
            )
        });
        let mut conn = self.conn();
        let r = LEAD
            .key(key)
            .arg(me)
            .arg(ttl.as_millis() as u64)
            .invoke_async::<i64>(&mut conn)
            .await;
        self.mark(r).is_ok_and(|v| v == 1)
    }

    /// Gives the lease `key` back if `me` holds it.
    async fn resign(&self, key: &str, me: &str) {
        static RESIGN: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end \
                 return 0",
            )
        });
        let mut conn = self.conn();
        let r = RESIGN.key(key).arg(me).invoke_async::<i64>(&mut conn).await;
        let _ = self.mark(r);
    }
}

/// Follows `feed` while this worker (`me`) holds the lease, until `stop`.
pub async fn follow(
    redis: Arc<Redis>,
    mut feed: Box<dyn LinkFeed>,
    me: String,
    stop: CancellationToken,
) {
    let mut leading = false;
    let mut check_at = Instant::now();
    loop {
        if Instant::now() >= check_at {
            let lead = redis.lead(LEASE_KEY, &me, LEASE).await;
            if lead != leading {
                tracing::info!(consumer = %me, leading = lead, "link feed reader");
            }
            leading = lead;
            check_at = Instant::now() + LEASE / 3;
        }
        let wait = if leading {
            feed_round(&mut *feed, |slug| {
                let redis = redis.clone();
                async move { redis.invalidate(slug.as_str()).await }
            })
            .await
        } else {
            LEASE / 3
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if leading {
        redis.resign(LEASE_KEY, &me).await;
    }
}
