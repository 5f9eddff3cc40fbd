//! What reaches every node by pub/sub: cache invalidations (to its
//! in-process tier), workers' stored clicks (to its live dashboards) and
//! takedown changes (it re-reads the set from the store). A node that lost
//! its subscription resubscribes, and then clears its in-process cache and
//! re-reads the takedowns: it may have missed messages.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::redis::Redis;
use super::{INVALIDATE, LIVE, TAKEDOWNS};
use crate::cache::LinkCache;
use crate::clicks::LiveFeed;
use crate::domain::EnrichedClick;
use crate::retry::{Backoff, until_ok};
use crate::takedown::{TakedownNotices, Takedowns};

/// Waits between attempts to subscribe: 100 ms doubling to 2 s.
const SUBSCRIBE_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(100), Duration::from_secs(2));

#[async_trait::async_trait]
impl TakedownNotices for Redis {
    /// Tells every node to re-read the domain takedowns.
    async fn announce(&self) {
        let mut conn = self.conn();
        let r = conn
            .publish::<_, _, ()>(TAKEDOWNS, self.seal.seal(TAKEDOWNS, "changed"))
            .await;
        if let Err(e) = self.mark(r) {
            // Every node re-reads the set every few seconds anyway.
            tracing::warn!(error = %e, "takedown change not published");
        }
    }
}

/// Keeps a node's subscriptions: invalidations reach its in-process cache
/// and workers' stored clicks reach its live feed. Runs until `shutdown`.
pub async fn listen(
    redis: Arc<Redis>,
    cache: Arc<dyn LinkCache>,
    live: Arc<LiveFeed>,
    takedowns: Arc<Takedowns>,
    shutdown: CancellationToken,
) {
    loop {
        let subscribe = || async {
            let mut pubsub = redis.client.get_async_pubsub().await?;
            pubsub.subscribe(INVALIDATE).await?;
            pubsub.subscribe(LIVE).await?;
            pubsub.subscribe(TAKEDOWNS).await?;
            redis::RedisResult::Ok(pubsub)
        };
        let failed = |e: &redis::RedisError, _| {
            tracing::debug!(error = %e, "subscribing to redis failed; retrying");
        };
        let Some(mut pubsub) = until_ok(SUBSCRIBE_BACKOFF, &shutdown, subscribe, failed).await
        else {
            return;
        };
        // Invalidations and takedowns may have been missed while
        // unsubscribed, and this node's own may not have been sent.
        redis.resend_invalidations().await;
        cache.clear();
        reload_takedowns(&takedowns);
        tracing::info!("subscribed to cache invalidations and live clicks");
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                msg = messages.next() => {
                    let Some(msg) = msg else { break };
                    let Ok(sealed) = msg.get_payload::<String>() else { continue };
                    let channel = msg.get_channel_name();
                    let Some(payload) = redis.seal.open(channel, &sealed) else {
                        tracing::warn!(channel, "refused a message that does not verify");
                        continue;
                    };
                    match channel {
                        INVALIDATE => cache.invalidate(payload),
                        TAKEDOWNS => reload_takedowns(&takedowns),
                        LIVE => {
                            if let Ok(clicks) = serde_json::from_str::<Vec<EnrichedClick>>(payload) {
                                live.publish(clicks);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        tracing::warn!("lost the redis subscription; resubscribing");
    }
}

/// Re-reads the takedowns off the listener's path.
fn reload_takedowns(takedowns: &Arc<Takedowns>) {
    let takedowns = takedowns.clone();
    tokio::spawn(async move {
        if let Err(e) = takedowns.reload().await {
            tracing::warn!(error = %e, "reloading takedowns failed");
        }
    });
}
