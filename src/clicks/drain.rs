//! The drain loop of the click queue, shared by its two destinations: the
//! batch writer (embedded: enrich and store) and the stream appender
//! (cluster: `XADD` to Redis). It takes clicks off the queue in batches,
//! retries a failed batch with backoff for as long as the node runs (the
//! queue bounds what waits behind it), and on shutdown closes the queue,
//! writes what is left in it and gives a batch up (counted as lost) only
//! after [`SHUTDOWN_ATTEMPTS`] failures.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::ClickEvent;
use crate::metrics::names;
use crate::retry::{Backoff, retry};

/// Failed attempts after which a batch is given up during shutdown (while
/// running, the drain keeps trying: the queue bounds what waits behind it).
pub const SHUTDOWN_ATTEMPTS: u32 = 20;

/// Where clicks are drained from: the in-process queue, or the click log.
pub trait ClickSource: Send {
    /// Waits for clicks and appends up to `limit` of them to `out`; 0 once
    /// the source is closed and empty.
    fn recv_many(
        &mut self,
        out: &mut Vec<ClickEvent>,
        limit: usize,
    ) -> impl Future<Output = usize> + Send;
    /// Takes no new clicks from here on; what is in it is still handed out.
    fn close(&mut self);
    /// Clicks waiting.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The clicks handed out so far are stored: never hand them out again.
    fn stored(&mut self) {}
    /// Storing the last clicks handed out failed for good (shutdown). True
    /// if they are kept for the next start (the drain then stops); false if
    /// they are lost.
    fn given_up(&mut self) -> bool {
        false
    }
}

impl ClickSource for mpsc::Receiver<ClickEvent> {
    async fn recv_many(&mut self, out: &mut Vec<ClickEvent>, limit: usize) -> usize {
        mpsc::Receiver::recv_many(self, out, limit).await
    }
    fn close(&mut self) {
        mpsc::Receiver::close(self)
    }
    fn len(&self) -> usize {
        mpsc::Receiver::len(self)
    }
}

/// Where drained batches go.
pub trait BatchDestination: Send + Sync {
    type Error: Display + Send;
    /// Writes one batch (all or nothing: a failed batch is written again
    /// whole, with the same event ids).
    fn write(&self, batch: &[ClickEvent]) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Hears of the `attempt`-th failure to write a batch of `clicks`.
    fn failed(&self, error: &Self::Error, attempt: u32, clicks: usize);
}

/// How the queue is drained.
#[derive(Debug, Clone, Copy)]
pub struct DrainPace {
    /// Most clicks in one batch.
    pub batch_size: usize,
    /// How long a batch waits to fill up (zero: it takes what is queued).
    pub max_wait: Duration,
    /// Waits between failed attempts at a batch.
    pub backoff: Backoff,
}

/// Drains `rx` into `to` until `shutdown` fires and the queue is empty.
pub async fn drain(
    mut rx: impl ClickSource,
    pace: DrainPace,
    shutdown: CancellationToken,
    to: &impl BatchDestination,
) {
    let depth = metrics::gauge!(names::QUEUE_DEPTH);
    let batch_size = pace.batch_size.max(1);
    let mut batch = Vec::with_capacity(batch_size);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, batch_size) => {
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
        if !closing && !pace.max_wait.is_zero() {
            // Fill the batch for a moment, but not past a shutdown: a
            // stop must not wait out `max_wait`.
            let deadline = tokio::time::Instant::now() + pace.max_wait;
            while batch.len() < batch_size {
                let room = batch_size - batch.len();
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
        let attempts = closing.then_some(SHUTDOWN_ATTEMPTS);
        let written = retry(
            pace.backoff,
            attempts,
            || to.write(&batch),
            |e, n| {
                to.failed(e, n, batch.len());
                true
            },
        )
        .await;
        match written {
            Ok(()) => rx.stored(),
            Err(_) if rx.given_up() => break,
            Err(_) => metrics::counter!(names::CLICKS_LOST).increment(batch.len() as u64),
        }
        batch.clear();
    }
    depth.set(0.0);
}
