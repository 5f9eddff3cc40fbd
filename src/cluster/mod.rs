//! Cluster mode over Redis (`--redis-url`): what lets many stateless nodes
//! and `hop worker` processes act as one.
//!
//! - **Shared link cache.** Behind each node's in-process cache, a Redis tier
//!   (`hop:link:{slug}`, with TTLs, negative entries too). Edits and deletes
//!   delete the key and publish the slug on `hop:invalidate`; every node drops
//!   it from its in-process cache. A node that lost its subscription clears
//!   its whole in-process cache when it resubscribes (it may have missed
//!   messages).
//! - **Click stream.** Nodes append click events to the `hop:clicks` stream
//!   (pipelined `XADD`, `MAXLEN ~` bound) from the same bounded in-process
//!   queue as embedded mode ([`crate::clicks::ClickQueue`]):
//!   while Redis is down, clicks wait there and are flushed when it returns;
//!   a full buffer drops (and counts) clicks rather than slowing redirects.
//! - **Workers** read the stream in the `hop-workers` consumer group, enrich,
//!   store (idempotent by event id), then `XACK` and `XDEL` (so raw IPs do not
//!   linger in Redis). Entries left pending by a dead worker are claimed with
//!   `XAUTOCLAIM` once idle. A click is stored exactly once whatever crashes:
//!   at-least-once delivery, exactly-once counting.
//! - **Shared visitor salts** (`hop:salt:{day}`, set once with `NX`, expiring
//!   after three days), so every worker hashes a visitor alike.
//! - **Takedowns.** A node that records a domain takedown (or lifts one)
//!   publishes on `hop:takedowns`; every node re-reads the set from the
//!   store (and does on resubscribing, and every few seconds anyway).
//! - **Live feed.** Workers publish stored clicks on `hop:live`; every node
//!   relays them to its dashboards' SSE streams.
//!
//! # Parts
//! - `redis`: the connection, its up/down state.
//! - `cache`: the shared link tier and its invalidations.
//! - [`stream`]: the stream appender and the consumer-group reader.
//! - [`worker`]: the click worker, a reader of the click stream.
//! - [`relay`]: the pub/sub listener (invalidations, live clicks,
//!   takedowns).
//! - [`limits`]: rate limits shared through Redis (GCRA in Lua).
//! - `salts`: the cluster's visitor salts and secret.

mod cache;
mod feed;
pub mod limits;
mod redis;
pub mod relay;
mod salts;
pub mod stream;
pub mod worker;

pub use self::redis::Redis;
pub use relay::listen;
pub use stream::run_appender;
pub use worker::Worker;

/// The click stream nodes append to and workers read.
pub const STREAM: &str = "hop:clicks";
/// The click workers' consumer group on [`STREAM`].
pub const GROUP: &str = "hop-workers";
pub const INVALIDATE: &str = "hop:invalidate";
pub const LIVE: &str = "hop:live";
pub const TAKEDOWNS: &str = "hop:takedowns";
