//! The live feed: stored, enriched clicks fanned out to open dashboards
//! (server-sent events). Each click gets a sequence number, increasing in the
//! order clicks were stored on this node, which the SSE stream uses as its
//! event id. Slow subscribers lag and are told to resync; they never slow the
//! writer.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::domain::EnrichedClick;

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
