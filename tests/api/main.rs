//! Integration tests: a real server on port 0, spoken to over HTTP.

mod access;
mod browser;
mod helpers;
mod links;
mod live;
mod pipeline;
mod redirect;
mod stats;
mod ui;
