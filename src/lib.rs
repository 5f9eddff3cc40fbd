//! hop: a URL shortener with exact, real-time click analytics.
//!
//! # Layout
//! Layers depend only downwards (lowest first; modules named on one line
//! share a layer and form no circle). `tests/layers.rs` checks this list
//! against every `crate::`/`super::` path in `src/`, and that no folder's
//! modules import each other in a circle.
//! - [`domain`]: `Slug`, `TargetUrl`, `Link`, click events, `Rate`. No I/O.
//! - [`metrics`], [`retry`], [`seal`], [`tls`], [`priority`]: metric names,
//!   the one backoff helper, authenticated sealing of what goes through
//!   Redis, the TLS provider, thread priorities.
//! - [`store`]: the storage traits, `StoreConfig`, the in-memory store and
//!   the SQL core with its SQLite and PostgreSQL dialects (each behind a
//!   cargo feature).
//! - [`stats`]: turns a stats question into aligned rollup reads and raw
//!   edges.
//! - [`testing`]: the conformance suite every store passes (only with the
//!   `testing` feature, or in unit tests).
//! - [`auth`], [`session`], [`blocklist`], [`takedown`], [`public_host`], [`ratelimit`], [`slots`], [`password`]:
//!   API keys and link secrets, web UI sessions,
//!   blocked and taken-down domains, whether a host is on the public
//!   internet, in-process rate limits, caps on live streams, protected
//!   links' password hashes.
//! - [`clicks`]: the click pipeline: sink (hand-off from the redirect), one
//!   drain loop, enrichment (user agent, geo, visitor hash), the recorder
//!   and batch writer, the live feed.
//! - [`import`]: `hop import`: links and click history from another
//!   shortener (YOURLS, a plain CSV), enriched like live clicks, with
//!   import marks in the store so that a second run adds nothing.
//! - [`cache`]: the link cache tiers (in process; shared) and the lookup
//!   that asks them before the store.
//! - [`cluster`]: cluster mode over Redis (the `redis` feature): the shared
//!   cache tier and invalidations, the click stream and its workers, shared
//!   rate limits and salts, the pub/sub relay.
//! - [`state`]: `AppState`, what every request shares.
//! - [`service`], [`webhooks`]: the rules of links, access, reports and
//!   takedowns, as functions over domain types returning domain errors; no
//!   HTTP. Webhook endpoints, fan-out, signing and delivery.
//! - [`http`]: the axum router: redirect, `/api/v1`, live streams, the web
//!   UI (handlers over `render`, the templates and embedded assets), ops
//!   endpoints.
//! - [`config`], [`cli`]: flags and env vars; the client subcommands.
//! - [`app`]: wiring: `Application::build(config)` and graceful shutdown.

/// The version and the commit built from, as `hop --version` prints it.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HOP_GIT_COMMIT"), ")");
/// The commit the binary was built from (build.rs), or "unknown".
pub const COMMIT: &str = env!("HOP_GIT_COMMIT");

pub mod app;
pub mod auth;
pub mod blocklist;
pub mod cache;
pub mod cli;
pub mod clicks;
#[cfg(feature = "redis")]
pub mod cluster;
pub mod config;
pub mod domain;
pub mod http;
pub mod import;
pub mod metrics;
pub mod password;
pub mod priority;
pub mod public_host;
pub mod ratelimit;
pub mod retry;
pub mod seal;
pub mod service;
pub mod session;
pub mod slots;
pub mod state;
pub mod stats;
pub mod store;
pub mod takedown;
#[cfg(any(test, doc, feature = "testing"))]
pub mod testing;
pub mod tls;
pub mod webhooks;
