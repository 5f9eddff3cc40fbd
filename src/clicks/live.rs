//! The live feed: stored, enriched clicks fanned out to open dashboards
//! (server-sent events). Each click gets a sequence number, increasing in the
//! order clicks were stored on this node, which the SSE stream uses as its
//! event id. Slow subscribers lag and are told to resync; they never slow the
//! writer.
//!
//! The streams of one link share their reads of its running totals
//! ([`TotalsReads`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::broadcast;

use crate::domain::{EnrichedClick, LinkId};

#[derive(Debug)]
pub struct LiveClick {
    pub seq: u64,
    pub click: EnrichedClick,
}

pub struct LiveFeed {
    tx: broadcast::Sender<Arc<LiveClick>>,
    /// Last sequence number sent; held while sending so that concurrent
    /// publishers cannot send out of order.
    seq: parking_lot::Mutex<u64>,
}

impl LiveFeed {
    /// A feed that buffers up to `capacity` clicks for each subscriber.
    pub fn new(capacity: usize) -> LiveFeed {
        let (tx, _) = broadcast::channel(capacity.max(1));
        LiveFeed {
            tx,
            seq: parking_lot::Mutex::new(0),
        }
    }

    pub fn publish(&self, clicks: impl IntoIterator<Item = EnrichedClick>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let mut seq = self.seq.lock();
        for click in clicks {
            *seq += 1;
            let _ = self.tx.send(Arc::new(LiveClick { seq: *seq, click }));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveClick>> {
        self.tx.subscribe()
    }
}

pub use crate::store::ClickTotals;

/// How long a finished read is kept for streams that may still use it.
const KEEP_READ: Duration = Duration::from_secs(10);

struct TotalsRead<T> {
    started: Instant,
    result: Shared<BoxFuture<'static, Option<T>>>,
}

/// Reads of links' running totals, shared by the live streams of a link.
/// A stream that has sent a click must next send totals that count it, so
/// it asks for a read started no earlier than it learned of the click
/// (`since`); any such read, running or finished, will do. The streams of
/// a link learn of a click within moments of each other, so they share one
/// store read per burst of clicks instead of making one each.
pub struct TotalsReads<T> {
    reads: parking_lot::Mutex<HashMap<LinkId, TotalsRead<T>>>,
}

impl<T: Clone + Send + Sync + 'static> TotalsReads<T> {
    pub fn new() -> TotalsReads<T> {
        TotalsReads {
            reads: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// `link`'s totals from a read started at or after `since`: one already
    /// made or under way, else a new one from `start` (None: it failed; a
    /// failed read is not shared with later callers).
    pub async fn read(
        &self,
        link: LinkId,
        since: Instant,
        start: impl FnOnce() -> BoxFuture<'static, Option<T>>,
    ) -> Option<T> {
        let result = {
            let mut reads = self.reads.lock();
            match reads.get(&link) {
                Some(r) if r.started >= since && !matches!(r.result.peek(), Some(None)) => {
                    r.result.clone()
                }
                _ => {
                    let now = Instant::now();
                    // Reads too old to be of use to anyone go as new ones
                    // start, so the map holds only links being watched.
                    reads.retain(|_, r| now.duration_since(r.started) < KEEP_READ);
                    let result = start().shared();
                    reads.insert(
                        link,
                        TotalsRead {
                            started: now,
                            result: result.clone(),
                        },
                    );
                    result
                }
            }
        };
        result.await
    }
}

impl<T: Clone + Send + Sync + 'static> Default for TotalsReads<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A read that counts how often it was started and answers that count
    /// (or fails, when `fail`).
    fn counted(
        starts: &Arc<AtomicU64>,
        fail: bool,
    ) -> impl FnOnce() -> BoxFuture<'static, Option<u64>> + use<> {
        let starts = starts.clone();
        move || {
            async move {
                let n = starts.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                (!fail).then_some(n)
            }
            .boxed()
        }
    }

    async fn later() -> Instant {
        // Strictly after anything before it, whatever the clock's grain.
        tokio::time::sleep(Duration::from_millis(2)).await;
        Instant::now()
    }

    #[tokio::test]
    async fn streams_of_a_link_share_reads_started_after_their_clicks() {
        let reads = TotalsReads::<u64>::new();
        let starts = Arc::new(AtomicU64::new(0));
        let (a, b) = (LinkId(1), LinkId(2));
        // Ten streams learn of a click at once: one read, under way, for all.
        let since = Instant::now();
        let answers = futures::future::join_all(
            (0..10).map(|_| reads.read(a, since, counted(&starts, false))),
        )
        .await;
        assert!(answers.iter().all(|t| *t == Some(1)), "{answers:?}");
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        // A stream a little behind uses the finished read.
        assert_eq!(reads.read(a, since, counted(&starts, false)).await, Some(1));
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        // Another link is read apart.
        assert_eq!(reads.read(b, since, counted(&starts, false)).await, Some(2));
        // A click learnt of after that read started needs a new read.
        let since = later().await;
        assert_eq!(reads.read(a, since, counted(&starts, false)).await, Some(3));
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        // A failed read is not handed on: the next caller reads again.
        let since = later().await;
        assert_eq!(reads.read(a, since, counted(&starts, true)).await, None);
        assert_eq!(reads.read(a, since, counted(&starts, false)).await, Some(5));
    }
}
