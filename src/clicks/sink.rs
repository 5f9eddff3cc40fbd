//! `ClickSink`: how the redirect hands a click over without waiting. In
//! embedded mode it is the click log on disk ([`super::log`]); in cluster
//! mode (and with `memory://`) a bounded in-process queue, drained by the
//! Redis stream appender or the batch writer, where a full queue drops the
//! click and counts it rather than slowing the redirect.

use tokio::sync::mpsc;

use crate::domain::ClickEvent;
pub use crate::domain::ClickRef;
use crate::metrics::names;

pub trait ClickSink: Send + Sync {
    /// Hands a click over; never blocks. False if it had to be dropped.
    fn submit(&self, click: ClickRef<'_>) -> bool;
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
    fn submit(&self, click: ClickRef<'_>) -> bool {
        match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(click.to_event());
                true
            }
            Err(_) => {
                self.dropped.increment(1);
                false
            }
        }
    }
}
