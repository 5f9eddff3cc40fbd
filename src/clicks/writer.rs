//! The batch writer: drains the click queue in batches (by size, or after a
//! few milliseconds), enriches them and stores each batch in one transaction.
//! A failed write is retried with the same event ids, so it is never counted
//! twice. On shutdown it closes the queue and writes everything left in it
//! (the loop itself is [`super::drain`], shared with the stream appender).
//!
//! [`ClickRecorder`] is the enrich-and-store step alone, which the cluster's
//! worker uses too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::drain::{BatchDestination, ClickSource, DrainPace, drain};
use super::enrich::Enricher;
use super::live::LiveFeed;
use crate::domain::{ClickEvent, EnrichedClick};
use crate::metrics::names;
use crate::retry::Backoff;
use crate::store::{ClickStore, StoreError};

/// Enriches click events and stores them: what the embedded writer and the
/// cluster's worker have in common.
pub struct ClickRecorder {
    pub store: Arc<dyn ClickStore>,
    pub enricher: Arc<Enricher>,
}

impl ClickRecorder {
    /// Enriches and stores one batch; returns the enriched clicks.
    pub async fn record(&self, events: &[ClickEvent]) -> Result<Vec<EnrichedClick>, StoreError> {
        let enriched: Vec<EnrichedClick> = events
            .iter()
            .map(|e| {
                crate::priority::share_core();
                self.enricher.enrich(e)
            })
            .collect();
        let started = Instant::now();
        let stored = self.store.record_clicks(&enriched).await;
        metrics::histogram!(names::STORE_DURATION, "op" => "record_clicks")
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(names::CLICKS_STORED).increment(stored?);
        Ok(enriched)
    }
}

pub struct BatchWriter {
    pub recorder: ClickRecorder,
    pub batch_size: usize,
    pub max_wait: Duration,
    /// How long writing a batch should take: under a backlog batches grow
    /// to this (see [`DrainPace::target_write`]).
    pub target_write: Duration,
    /// Stored clicks are published here for live dashboards.
    pub live: Arc<LiveFeed>,
    /// A wait before each batch (a testing aid: `--click-writer-delay-ms`).
    pub delay: Duration,
}

/// Waits between failed writes: 100 ms doubling to 6.4 s.
const STORE_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(100), Duration::from_millis(6400));

impl BatchWriter {
    /// Enriches and stores one batch, and shows it on this node's live
    /// dashboards; returns how many clicks there were.
    pub async fn process_batch(&self, events: &[ClickEvent]) -> Result<u64, StoreError> {
        let enriched = self.recorder.record(events).await?;
        let n = enriched.len() as u64;
        self.live.publish(enriched);
        Ok(n)
    }

    /// Runs until `shutdown` fires and the queue is empty.
    pub async fn run(self, rx: impl ClickSource, shutdown: CancellationToken) {
        let pace = DrainPace {
            batch_size: self.batch_size,
            max_wait: self.max_wait,
            target_write: self.target_write,
            backoff: STORE_BACKOFF,
        };
        drain(rx, pace, shutdown, &self).await;
        tracing::info!("click writer drained");
    }
}

impl BatchDestination for BatchWriter {
    type Error = StoreError;

    async fn write(&self, batch: &[ClickEvent]) -> Result<(), StoreError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.process_batch(batch).await.map(|_| ())
    }

    fn failed(&self, error: &StoreError, attempt: u32, clicks: usize) {
        tracing::error!(error = %error, clicks, attempt, "storing clicks failed");
    }
}

/// Runs `writer` until `shutdown` on a thread of its own at
/// [`crate::priority::WRITER_NICE`] (with a runtime of its own); the handle
/// ends when it does.
pub fn spawn_writer_thread(
    writer: BatchWriter,
    source: impl ClickSource + 'static,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let (done, ended) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("hop-click-writer".into())
        .spawn(move || {
            crate::priority::lower_this_thread(crate::priority::WRITER_NICE);
            crate::priority::mark_own_thread();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(writer.run(source, shutdown)),
                Err(e) => tracing::error!(error = %e, "cannot start the click writer's runtime"),
            }
            let _ = done.send(());
        })?;
    Ok(tokio::spawn(async move {
        let _ = ended.await;
    }))
}
