//! Domain takedowns: an admin-only state, kept in the store, that no link
//! owner can lift. A domain taken down (with its subdomains) answers 410 at
//! every redirect to it, and no link may be created or edited to point
//! there, until an admin lifts it.
//!
//! Every node keeps the set in memory and checks it on each redirect, after
//! the cache: a takedown does not depend on cached links being invalidated.
//! The node that records a change reloads at once; in cluster mode it also
//! publishes on `hop:takedowns` so every other node reloads within
//! milliseconds, and every node re-reads the set every few seconds anyway
//! (a missed message, Redis away).

use std::collections::HashSet;
use std::sync::Arc;

use crate::blocklist::DomainSet;
use crate::store::{Store, StoreError};

/// Tells the other nodes that the set changed (Redis pub/sub, in cluster
/// mode), so they reload it at once.
#[async_trait::async_trait]
pub trait TakedownNotices: Send + Sync {
    async fn announce(&self);
}

pub struct Takedowns {
    store: Arc<dyn Store>,
    /// Domains taken down, lower-case punycode.
    domains: DomainSet,
}

impl Takedowns {
    /// Loads the current set from `store`.
    pub async fn load(store: Arc<dyn Store>) -> Result<Takedowns, StoreError> {
        let takedowns = Takedowns {
            store,
            domains: DomainSet::default(),
        };
        takedowns.reload().await?;
        Ok(takedowns)
    }

    /// Re-reads the set from the store.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let domains: HashSet<String> = self
            .store
            .list_takedowns()
            .await?
            .into_iter()
            .map(|t| t.domain)
            .collect();
        self.domains.replace(domains);
        Ok(())
    }

    /// Whether `host` is a domain taken down or one of its subdomains.
    pub fn covers(&self, host: &str) -> bool {
        self.domains.covers(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn covers_domains_and_subdomains_after_reload() {
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::default());
        let takedowns = Takedowns::load(store.clone()).await.unwrap();
        assert!(!takedowns.covers("evil.example"));
        store
            .add_takedown("evil.example", "phishing")
            .await
            .unwrap();
        assert!(!takedowns.covers("evil.example"), "until reloaded");
        takedowns.reload().await.unwrap();
        assert!(takedowns.covers("evil.example"));
        assert!(takedowns.covers("login.EVIL.example."));
        assert!(!takedowns.covers("notevil.example"));
        store.remove_takedown("evil.example").await.unwrap();
        takedowns.reload().await.unwrap();
        assert!(!takedowns.covers("login.evil.example"));
    }
}
