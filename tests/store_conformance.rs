//! Runs the store conformance suite against every backend: in-memory,
//! SQLite and PostgreSQL (a private server started for this test binary),
//! those two when built with their cargo features.

use std::sync::Arc;

use hop::store::Store;

mod memory {
    use super::*;

    async fn make() -> (Arc<dyn Store>, ()) {
        (Arc::new(hop::store::memory::MemoryStore::default()), ())
    }

    hop::store_conformance!(make);
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;

    async fn make() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = hop::store::sqlite::SqliteStore::open(
            &dir.path().join("hop.db"),
            hop::store::DEFAULT_SQLITE_CACHE_MIB,
            true,
        )
        .await
        .unwrap();
        (Arc::new(store), dir)
    }

    hop::store_conformance!(make);
}

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
#[allow(dead_code)]
mod pg_support;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    async fn make() -> (Arc<dyn Store>, ()) {
        let server = tokio::task::spawn_blocking(pg_support::PgServer::shared)
            .await
            .unwrap();
        let db = tokio::task::spawn_blocking(|| pg_support::PgServer::shared().create_db())
            .await
            .unwrap();
        let store = hop::store::postgres::PgStore::open(&server.url(&db), true)
            .await
            .unwrap();
        (Arc::new(store), ())
    }

    hop::store_conformance!(make);
}
