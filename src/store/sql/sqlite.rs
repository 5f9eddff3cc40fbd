//! `SqliteStore`: the embedded default. One file in WAL mode; two writer
//! connections (sqlx's for links, keys and upkeep; rusqlite's for click
//! batches, see `sqlite_clicks.rs`), both beginning their write
//! transactions `IMMEDIATE`, and a small pool of readers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use super::SqlDialect;
use super::sqlite_clicks::ClickWriter;
use crate::domain::{EnrichedClick, Link, LinkId};
use crate::store::StoreError;

pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    /// Writes click batches (rusqlite, see `sqlite_clicks`).
    clicks: Arc<ClickWriter>,
}

/// Rows per multi-row INSERT: well under SQLite's 32766 bound parameters.
const CHUNK: usize = 1000;

impl SqliteStore {
    /// `cache_mib`: page cache per connection (one writer, four readers).
    pub async fn open(
        path: &Path,
        cache_mib: u32,
        migrate: bool,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", format!("-{}", cache_mib * 1024))
            .pragma("temp_store", "memory");
        // The writer connection lives as long as the store (no recycling),
        // and its SQLite thread runs below serving (see WRITER_NICE).
        let before = sqlite_threads();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        for tid in sqlite_threads().difference(&before) {
            crate::priority::set_thread_nice(*tid, crate::priority::WRITER_NICE);
        }
        if migrate {
            sqlx::migrate!("migrations/sqlite")
                .run(&writer)
                .await
                .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        }
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let clicks = Arc::new(ClickWriter::open(path, cache_mib)?);
        Ok(SqliteStore {
            writer,
            readers,
            clicks,
        })
    }
}

/// Ids of this process's threads that run SQLite connections (sqlx names
/// them `sqlx-sqlite-worker-N`).
fn sqlite_threads() -> HashSet<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return HashSet::new();
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            comm.starts_with("sqlx-sqlite")
                .then(|| t.file_name().to_str()?.parse().ok())
                .flatten()
        })
        .collect()
}

super::sql_store!(SqliteStore);

impl SqlDialect for SqliteStore {
    type Db = Sqlite;

    const OVERRIDING_GENERATED: &'static str = "";
    // AUTOINCREMENT keeps the largest id inserted, explicit ones included.
    fn after_copy(_table: &str) -> Option<String> {
        None
    }

    // SQLite's LIKE ignores ASCII case already.
    const LIST_LINKS: &'static str = "SELECT * FROM links
         WHERE ($1 IS NULL OR owner_key = $1)
           AND ($2 IS NULL OR id < $2)
           AND ($3 IS NULL OR EXISTS (SELECT 1 FROM link_tags t WHERE t.tag = $3 AND t.link_id = links.id))
           AND ($4 IS NULL OR slug LIKE $4 ESCAPE '\\' OR target LIKE $4 ESCAPE '\\' OR title LIKE $4 ESCAPE '\\')
         ORDER BY id DESC LIMIT $5";

    const EXPORT_CLICKS: &'static str = "SELECT * FROM clicks
         WHERE link_id = $1 AND at >= $2 AND at < $3 AND (NOT bot OR $4)
           AND (at > $5 OR (at = $5 AND event_id > $6))
         ORDER BY at, event_id LIMIT $7";

    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const SKIP_LOCKED: &'static str = "";
    const LOCK_LINK: Option<&'static str> = None;
    const READ_SNAPSHOT: Option<&'static str> = None;

    fn top_dims(limited: bool) -> &'static str {
        static TOP: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| super::top_dims_sql(r#"COLLATE BINARY"#, false, None));
        static ALL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            super::top_dims_sql(
                r#"COLLATE BINARY"#,
                false,
                Some("json_group_array(json_array(value, n))"),
            )
        });
        if limited { TOP.as_str() } else { ALL.as_str() }
    }

    fn packs() -> &'static str {
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| super::packs_sql(false));
        SQL.as_str()
    }

    fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn insert_tags(tx: &mut sqlx::SqliteConnection, link: &Link) -> Result<(), StoreError> {
        for tag in &link.tags {
            sqlx::query("INSERT OR IGNORE INTO link_tags (tag, link_id) VALUES ($1, $2)")
                .bind(tag)
                .bind(link.id.0)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    async fn record_batch(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError> {
        // The write is synchronous. On hop's writer thread (a runtime of its
        // own, running nothing else) it runs in place. Any other caller gets
        // it done on the blocking pool, on a copy: blocking the caller's
        // task could stall a future beside it (`join!`) that holds SQLite's
        // write lock, which the write then waits for.
        if crate::priority::on_own_thread() {
            return self.clicks.record(clicks);
        }
        let writer = self.clicks.clone();
        let clicks = clicks.to_vec();
        tokio::task::spawn_blocking(move || writer.record(&clicks))
            .await
            .map_err(|e| StoreError::Unavailable(format!("click write stopped: {e}")))?
    }

    async fn record_counted(
        &self,
        counts: &[crate::store::CountedClicks],
        mark: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let writer = self.clicks.clone();
        let counts = counts.to_vec();
        let mark = mark.map(|(k, v)| (k.to_owned(), v.to_owned()));
        tokio::task::spawn_blocking(move || {
            writer.record_counts(
                &counts,
                mark.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
            )
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("click write stopped: {e}")))?
    }

    async fn totals(
        &self,
        links: &[LinkId],
        include_bots: bool,
    ) -> Result<HashMap<LinkId, u64>, StoreError> {
        let mut out: HashMap<LinkId, u64> = links.iter().map(|l| (*l, 0)).collect();
        for chunk in links.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT link_id, SUM(clicks) FROM link_totals WHERE (NOT bot OR ",
            );
            qb.push_bind(include_bots);
            qb.push(") AND link_id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.0);
            }
            qb.push(") GROUP BY link_id");
            let rows: Vec<(i64, i64)> = qb.build_query_as().fetch_all(self.readers()).await?;
            for (id, n) in rows {
                out.insert(LinkId(id), n as u64);
            }
        }
        Ok(out)
    }

    async fn delete_raw_before(&self, before: i64) -> Result<u64, StoreError> {
        // Link by link, so each delete is a range of the clustered key.
        let links: Vec<i64> = sqlx::query_scalar("SELECT id FROM links")
            .fetch_all(self.readers())
            .await?;
        let mut n = 0;
        for link in links {
            n += sqlx::query("DELETE FROM clicks WHERE link_id = $1 AND at < $2")
                .bind(link)
                .bind(before)
                .execute(self.writer())
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}
