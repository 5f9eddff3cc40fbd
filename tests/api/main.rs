//! Integration tests: a real server on port 0, spoken to over HTTP.

mod abuse;
mod access;
mod browser;
mod click_log;
mod compat;
mod export;
mod geo;
mod helpers;
mod hostile;
mod imports;
mod limits;
mod links;
mod live;
mod ops;
mod pipeline;
mod preview;
mod privacy;
mod protected;
mod redirect;
mod secrets;
mod smart;
mod stats;
mod ui;
mod webhooks;

#[cfg(feature = "dynamodb")]
#[path = "../support/dynamo.rs"]
#[allow(dead_code)]
mod dynamo_support;
#[path = "../support/postgres.rs"]
#[allow(dead_code)]
mod pg_support;
#[path = "../support/receiver.rs"]
#[allow(dead_code)]
mod receiver_support;
#[path = "../support/redis.rs"]
#[allow(dead_code)]
mod redis_support;
