//! hop: a URL shortener with exact, real-time click analytics.
//!
//! # Layout
//! Layers depend only downwards:
//! - [`domain`]: `Slug`, `TargetUrl`, `Link`, click events. No I/O.
//! - [`store`]: the storage traits, backends (SQLite, in-memory) and the
//!   conformance suite every backend passes.
//! - [`stats`]: turns a stats question into aligned rollup reads and raw edges.
//! - [`clicks`]: the click pipeline: sink (hand-off from the redirect),
//!   enrichment (user agent, geo, visitor hash) and the batch writer.
//! - [`service`]: the rules of links, access, reports and takedowns, as
//!   functions over domain types returning domain errors; no HTTP.
//! - [`cache`]: the in-process link cache in front of the store.
//! - [`cluster`]: cluster mode over Redis: shared cache and invalidation,
//!   the click stream and its workers, shared salts, the live relay.
//! - [`auth`]: API keys and per-link secrets; [`session`]: web UI sessions.
//! - [`ratelimit`]: rate limits per client, key and link secret;
//!   [`slots`]: caps on live streams open at once.
//! - [`http`]: the axum router: redirect, `/api/v1`, live streams, the web
//!   UI (templates and embedded assets), ops endpoints.
//! - [`public_host`]: whether a target host is on the public internet
//!   (`--refuse-private-targets`): the special-purpose address registries,
//!   special-use names, bounded fail-closed lookups.
//! - [`app`]: wiring: `Application::build(config)` and graceful shutdown.
//! - [`config`] and [`cli`]: flags, env vars and the client subcommands.

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
pub mod metrics;
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
pub mod tls;
