//! The rules of hop, apart from HTTP: who may see and change a link
//! ([`access`]), how links are created, edited, listed and deleted
//! ([`links`]), and how abuse is reported and domains taken down
//! ([`reports`], [`takedowns`]).
//!
//! Functions here take commands made of domain types and plain values (not
//! the API's serde request types) and return one `thiserror` enum per area.
//! The API maps those to its `ApiError` envelope, the web UI to a page, so
//! both apply the same rules. Nothing here knows about axum or `crate::http`.
//!
//! The functions take `&AppState`: the store, the blocklist, the takedowns,
//! the private-target guard and the cache invalidation (local and, in
//! cluster mode, on every node) are all reached through it, and the last is
//! a method of the state that hides which cache tiers exist.

pub mod access;
pub mod links;
pub mod reports;
pub mod takedowns;
