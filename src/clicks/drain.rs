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
    /// How long writing one batch should take (zero: batches are always
    /// up to `batch_size`). With a backlog, batches grow to what the
    /// destination writes in about this long, never past `batch_size`: a
    /// bigger batch costs less per click (rollup rows shared by more
    /// clicks, fewer commits), but holds the store's write lock for longer.
    pub target_write: Duration,
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
    let mut sizer = BatchSizer::new(pace);
    let mut batch = Vec::new();
    let mut closing = false;
    loop {
        let batch_size = sizer.limit();
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
        let started = std::time::Instant::now();
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
            Ok(()) => {
                sizer.wrote(batch.len(), started.elapsed());
                rx.stored()
            }
            Err(_) if rx.given_up() => break,
            Err(_) => metrics::counter!(names::CLICKS_LOST).increment(batch.len() as u64),
        }
        batch.clear();
    }
    depth.set(0.0);
}

/// Fewest clicks a batch is sized down to.
const MIN_BATCH: usize = 256;

/// Sizes batches so that writing one takes about `target_write`: the
/// destination's cost per click, smoothed over the last batches, sets the
/// next limit (between [`MIN_BATCH`] and `batch_size`).
struct BatchSizer {
    max: usize,
    target: Duration,
    /// Smoothed seconds per click of the batches written so far.
    per_click: Option<f64>,
}

impl BatchSizer {
    fn new(pace: DrainPace) -> BatchSizer {
        BatchSizer {
            max: pace.batch_size.max(1),
            target: pace.target_write,
            per_click: None,
        }
    }

    /// Most clicks the next batch takes.
    fn limit(&self) -> usize {
        match self.per_click {
            Some(cost) if !self.target.is_zero() && cost > 0.0 => {
                let fits = (self.target.as_secs_f64() / cost) as usize;
                fits.clamp(MIN_BATCH.min(self.max), self.max)
            }
            _ => self.max,
        }
    }

    /// Learns from a batch of `clicks` written in `took`. Small batches
    /// (the writer keeping up) say little of the cost per click: their
    /// commit dominates, so they are not counted.
    fn wrote(&mut self, clicks: usize, took: Duration) {
        if clicks < MIN_BATCH {
            return;
        }
        let cost = took.as_secs_f64() / clicks as f64;
        self.per_click = Some(match self.per_click {
            Some(old) => 0.7 * old + 0.3 * cost,
            None => cost,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Backoff;

    fn pace(batch_size: usize, target_ms: u64) -> DrainPace {
        DrainPace {
            batch_size,
            target_write: Duration::from_millis(target_ms),
            max_wait: Duration::ZERO,
            backoff: Backoff::doubling(Duration::from_millis(1), Duration::from_millis(1)),
        }
    }

    #[test]
    fn batches_grow_to_what_is_written_in_the_target_time() {
        let mut s = BatchSizer::new(pace(32_768, 50));
        assert_eq!(s.limit(), 32_768, "nothing learnt yet: the most");
        // 10 µs a click: 5 000 clicks fill 50 ms.
        for _ in 0..20 {
            s.wrote(1_000, Duration::from_millis(10));
        }
        assert!((4_900..=5_100).contains(&s.limit()), "{}", s.limit());
        // Cheaper clicks: bigger batches, up to the bound.
        for _ in 0..20 {
            s.wrote(5_000, Duration::from_millis(1));
        }
        assert_eq!(s.limit(), 32_768);
        // A very slow destination still gets batches of MIN_BATCH.
        for _ in 0..20 {
            s.wrote(1_000, Duration::from_secs(10));
        }
        assert_eq!(s.limit(), MIN_BATCH);
    }

    #[test]
    fn small_batches_and_no_target_leave_the_size_alone() {
        let mut s = BatchSizer::new(pace(2_000, 50));
        s.wrote(10, Duration::from_secs(1));
        assert_eq!(s.limit(), 2_000, "a batch under MIN_BATCH says nothing");
        let mut s = BatchSizer::new(pace(2_000, 0));
        s.wrote(1_000, Duration::from_secs(1));
        assert_eq!(s.limit(), 2_000, "no target: always the most");
    }
}
