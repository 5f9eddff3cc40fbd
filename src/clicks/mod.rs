//! The click pipeline: sink → (queue) → enrich → store, and the live feed.

pub mod drain;
pub mod enrich;
pub mod geo;
pub mod live;
pub mod sink;
pub mod user_agent;
pub mod writer;

pub use enrich::Enricher;
pub use live::{ClickTotals, LiveClick, LiveFeed, TotalsReads};
pub use sink::{ClickQueue, ClickSink};
pub use writer::{BatchWriter, ClickRecorder};
