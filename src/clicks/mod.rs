//! The click pipeline: sink → (click log or queue) → enrich → store, and the
//! live feed.

pub mod drain;
pub mod enrich;
pub mod geo;
pub mod live;
pub mod log;
pub mod sink;
pub mod user_agent;
pub mod writer;

pub use enrich::Enricher;
pub use live::{ClickTotals, LiveClick, LiveFeed, TotalsReads};
pub use log::{ClickLog, LogConfig};
pub use sink::{ClickQueue, ClickRef, ClickSink};
pub use writer::{BatchWriter, ClickRecorder};
