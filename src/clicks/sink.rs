//! `ClickSink`: how the redirect hands a click over without waiting: a
//! bounded in-process queue, drained by the batch writer (embedded) or the
//! Redis stream appender (cluster); a full queue drops the click
//! and counts it rather than slowing the redirect.

use tokio::sync::mpsc;

use crate::domain::ClickEvent;
use crate::metrics::names;

pub trait ClickSink: Send + Sync {
    /// Hands a click over; never blocks. False if it had to be dropped.
    fn submit(&self, click: ClickEvent) -> bool;
}

pub struct ClickQueue {
    tx: mpsc::Sender<ClickEvent>,
    dropped: metrics::Counter,
}

impl ClickQueue {
    /// A queue holding at most `capacity` clicks, and its receiving end for
    /// the batch writer.
    pub fn new(capacity: usize) -> (ClickQueue, mpsc::Receiver<ClickEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = metrics::counter!(names::CLICKS_DROPPED);
        (ClickQueue { tx, dropped }, rx)
    }
}

impl ClickSink for ClickQueue {
    fn submit(&self, click: ClickEvent) -> bool {
        match self.tx.try_send(click) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.increment(1);
                false
            }
        }
    }
}
