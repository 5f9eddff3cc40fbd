//! The Redis connection a node's tasks share, and whether Redis answers:
//! every call's outcome goes through [`Redis::mark`], which logs the moment
//! Redis goes away and comes back (`/readyz` reports it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::seal::Sealer;

/// Longest a redirect (or a rate-limit check) waits on Redis before going
/// on without it.
pub(super) const CACHE_WAIT: Duration = Duration::from_millis(100);

/// A Redis connection shared by a node's tasks, and whether it works.
pub struct Redis {
    pub(super) client: redis::Client,
    conn: ConnectionManager,
    up: AtomicBool,
    /// Signs and checks everything hop writes to Redis and reads back
    /// (see [`crate::seal`]).
    pub(super) seal: Sealer,
    /// Slugs edited while Redis was away, whose invalidation is still to be
    /// sent.
    pub(super) unsent: parking_lot::Mutex<std::collections::HashSet<String>>,
}

impl Redis {
    /// Connects to `url` (`redis://` or `rediss://`; user and password
    /// for Redis AUTH/ACL in the URL), trusting `ca_file` for TLS if given.
    pub async fn connect(
        url: &str,
        seal: Sealer,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Arc<Redis>> {
        let client = match ca_file {
            Some(path) => {
                crate::tls::install_crypto();
                let root_cert = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )?
            }
            None => {
                if url.starts_with("rediss://") {
                    crate::tls::install_crypto();
                }
                redis::Client::open(url)?
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Arc::new(Redis {
            client,
            conn,
            up: AtomicBool::new(true),
            seal,
            unsent: Default::default(),
        }))
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(super) fn mark<T>(&self, r: redis::RedisResult<T>) -> redis::RedisResult<T> {
        let up = match &r {
            Ok(_) => true,
            Err(e) => !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()),
        };
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!("redis reachable again");
            } else {
                tracing::warn!("redis unreachable");
            }
        }
        r
    }

    pub(super) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}
