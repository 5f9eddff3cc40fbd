//! The batch writer: drains the click queue in batches (by size, or after a
//! few milliseconds), enriches them and stores each batch in one transaction.
//! A failed write is retried with the same event ids, so it is never counted
//! twice. On shutdown it closes the queue and writes everything left in it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::enrich::Enricher;
use super::live::LiveFeed;
use crate::domain::{ClickEvent, EnrichedClick};
use crate::metrics::names;
use crate::store::{ClickStore, StoreError};

/// Failed attempts after which a batch is given up during shutdown (while
/// running, the writer keeps trying: the queue bounds what waits behind it).
const SHUTDOWN_ATTEMPTS: u32 = 20;

pub struct BatchWriter {
    pub store: Arc<dyn ClickStore>,
    pub enricher: Arc<Enricher>,
    pub batch_size: usize,
    pub max_wait: Duration,
    /// Stored clicks are published here for live dashboards.
    pub live: Arc<LiveFeed>,
}

impl BatchWriter {
    /// Enriches and stores one batch; returns the enriched clicks.
    pub async fn store_batch(
        &self,
        events: &[ClickEvent],
    ) -> Result<Vec<EnrichedClick>, StoreError> {
        let enriched: Vec<EnrichedClick> = events.iter().map(|e| self.enricher.enrich(e)).collect();
        let started = Instant::now();
        let stored = self.store.record_clicks(&enriched).await;
        metrics::histogram!(names::STORE_DURATION, "op" => "record_clicks")
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(names::CLICKS_STORED).increment(stored?);
        Ok(enriched)
    }

    /// Enriches and stores one batch, and shows it on this node's live
    /// dashboards; returns how many clicks there were.
    pub async fn process_batch(&self, events: &[ClickEvent]) -> Result<u64, StoreError> {
        let enriched = self.store_batch(events).await?;
        let n = enriched.len() as u64;
        self.live.publish(enriched);
        Ok(n)
    }

    async fn flush(&self, batch: &mut Vec<ClickEvent>, closing: bool) {
        let mut attempt = 0u32;
        loop {
            match self.process_batch(batch).await {
                Ok(_) => break,
                Err(e) => {
                    attempt += 1;
                    tracing::error!(error = %e, clicks = batch.len(), attempt, "storing clicks failed");
                    if closing && attempt >= SHUTDOWN_ATTEMPTS {
                        metrics::counter!(names::CLICKS_LOST).increment(batch.len() as u64);
                        break;
                    }
                    let backoff = Duration::from_millis(50 * 2u64.pow(attempt.min(7)));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
        batch.clear();
    }

    /// Runs until `shutdown` fires and the queue is empty.
    pub async fn run(self, mut rx: mpsc::Receiver<ClickEvent>, shutdown: CancellationToken) {
        let depth = metrics::gauge!(names::QUEUE_DEPTH);
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut closing = false;
        loop {
            tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, self.batch_size) => {
                    if n == 0 {
                        break;
                    }
                }
                _ = shutdown.cancelled(), if !closing => {
                    // No new clicks from here on; what is queued is written.
                    rx.close();
                    closing = true;
                    continue;
                }
            }
            if !closing {
                // Fill the batch for a moment, but not past a shutdown: a
                // stop must not wait out `max_wait`.
                let deadline = tokio::time::Instant::now() + self.max_wait;
                while batch.len() < self.batch_size {
                    let room = self.batch_size - batch.len();
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        got = tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)) => {
                            match got {
                                Ok(n) if n > 0 => {}
                                _ => break,
                            }
                        }
                    }
                }
            }
            depth.set(rx.len() as f64);
            self.flush(&mut batch, closing).await;
        }
        depth.set(0.0);
        tracing::info!("click writer drained");
    }
}
