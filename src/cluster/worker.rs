//! The click worker: reads the click stream in the `hop-workers` consumer
//! group ([`super::stream::GroupReader`]), loads the day's shared salts,
//! enriches and stores (idempotent by event id, so a batch claimed again
//! after a crash is not counted twice), then acknowledges the entries and
//! publishes the stored clicks on `hop:live` in the same round trip. A
//! click is stored exactly once whatever crashes: at-least-once delivery,
//! exactly-once counting.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::redis::Redis;
use super::stream::{EntryHandler, GroupReader};
use super::{GROUP, LIVE, STREAM};
use crate::clicks::ClickRecorder;
use crate::domain::ClickEvent;
use crate::retry::{Backoff, retry};

/// Waits between failed store writes: 100 ms doubling to 3.2 s.
const STORE_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(100), Duration::from_millis(3200));

pub struct Worker {
    /// A connection of its own: blocking stream reads hold it.
    pub redis: Arc<Redis>,
    /// Enriches and stores the clicks read.
    pub recorder: ClickRecorder,
    /// Consumer name in the group; unique per process.
    pub consumer: String,
    /// Entries pending this long with another consumer are claimed.
    pub claim_idle: Duration,
    pub batch_size: usize,
    /// The store's link feed ([`crate::store::LinkStore::link_feed`]),
    /// followed while this worker holds the reader's lease.
    pub link_feed: Option<Box<dyn crate::store::LinkFeed>>,
}

impl EntryHandler for Worker {
    type Entry = ClickEvent;

    /// Stores one batch; retries the store until it succeeds or the worker
    /// stops (the entries stay pending, so a crash here hands them to
    /// another worker).
    async fn handle(
        &self,
        events: Vec<ClickEvent>,
        ack: &mut redis::Pipeline,
        shutdown: &CancellationToken,
    ) -> bool {
        if let Err(e) = self
            .redis
            .share_salts(self.recorder.enricher.salts(), &events)
            .await
        {
            tracing::warn!(error = %e, "loading shared salts failed");
            return false;
        }
        let stored = retry(
            STORE_BACKOFF,
            None,
            || self.recorder.record(&events),
            |e, attempt| {
                tracing::error!(error = %e, attempt, "storing clicks failed; will retry");
                !shutdown.is_cancelled()
            },
        )
        .await;
        let Ok(stored) = stored else {
            return false;
        };
        // Every node relays these to its live dashboards.
        let live = self
            .redis
            .seal
            .seal(LIVE, &serde_json::to_string(&stored).unwrap_or_default());
        ack.publish(LIVE, live).ignore();
        true
    }
}

impl Worker {
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(consumer = %self.consumer, "click worker started");
        let feed = self.link_feed.take().map(|feed| {
            tokio::spawn(super::feed::follow(
                self.redis.clone(),
                feed,
                self.consumer.clone(),
                shutdown.clone(),
            ))
        });
        let reader = GroupReader {
            redis: self.redis.clone(),
            stream: STREAM,
            group: GROUP,
            consumer: self.consumer.clone(),
            claim_idle: self.claim_idle,
            batch_size: self.batch_size,
        };
        reader.run(&self, &shutdown).await;
        if let Some(feed) = feed {
            let _ = feed.await;
        }
        tracing::info!(consumer = %self.consumer, "click worker stopped");
    }
}
