//! Runs the store conformance suite against every embedded backend.

use std::sync::Arc;

use hop::store::Store;

mod memory {
    use super::*;

    async fn make() -> (Arc<dyn Store>, ()) {
        (Arc::new(hop::store::memory::MemoryStore::default()), ())
    }

    hop::store_conformance!(make);
}

mod sqlite {
    use super::*;

    async fn make() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = hop::store::sqlite::SqliteStore::open(&dir.path().join("hop.db"), true)
            .await
            .unwrap();
        (Arc::new(store), dir)
    }

    hop::store_conformance!(make);
}
