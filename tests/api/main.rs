//! Integration tests: a real server on port 0, spoken to over HTTP.

mod access;
mod helpers;
mod links;
mod pipeline;
mod redirect;
mod stats;
