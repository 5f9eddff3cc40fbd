//! `SqliteStore`: the embedded default. One file in WAL mode; a single writer
//! connection (SQLite serialises writers anyway, and one connection avoids
//! busy retries) and a small pool of readers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use super::{FirstClick, SqlDialect, VisitorDeltas, event_ids, visitors_by_day};
use crate::domain::{EnrichedClick, Link, LinkId};
use crate::store::StoreError;
use crate::store::rollup::BatchRollup;

pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
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
        Ok(SqliteStore { writer, readers })
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

    const CLICK_CHUNK: usize = CHUNK;
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

    async fn live_links(
        conn: &mut sqlx::SqliteConnection,
        clicks: &[EnrichedClick],
    ) -> Result<HashSet<i64>, StoreError> {
        let link_ids: HashSet<i64> = clicks.iter().map(|c| c.link_id.0).collect();
        let mut live: HashSet<i64> = HashSet::new();
        for chunk in link_ids.into_iter().collect::<Vec<_>>().chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new("SELECT id FROM links WHERE id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            qb.push(")");
            let ids: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
            live.extend(ids);
        }
        Ok(live)
    }

    /// were inserted. No rows come back (each returned row would cost a
    /// round trip to the connection's thread).
    async fn insert_clicks(
        conn: &mut sqlx::SqliteConnection,
        clicks: &[&EnrichedClick],
    ) -> Result<u64, StoreError> {
        if clicks.is_empty() {
            return Ok(0);
        }
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO clicks (link_id, at, event_id, bot, country, city, browser, os, device,
                 referrer_host, utm_source, utm_medium, utm_campaign, visitor, region) ",
        );
        qb.push_values(clicks, |mut b, c| {
            b.push_bind(c.link_id.0)
                .push_bind(c.at)
                .push_bind(c.event_id.as_bytes().to_vec())
                .push_bind(c.bot)
                .push_bind(c.country.clone())
                .push_bind(c.city.clone())
                .push_bind(c.browser.clone())
                .push_bind(c.os.clone())
                .push_bind(c.device.as_str())
                .push_bind(c.referrer_host.clone())
                .push_bind(c.utm.source.clone())
                .push_bind(c.utm.medium.clone())
                .push_bind(c.utm.campaign.clone())
                .push_bind(c.visitor)
                .push_bind(c.region.clone());
        });
        qb.push(" ON CONFLICT DO NOTHING");
        Ok(qb.build().execute(&mut *conn).await?.rows_affected())
    }

    /// Which of these clicks are stored already.
    async fn stored_event_ids(
        conn: &mut sqlx::SqliteConnection,
        clicks: &[&EnrichedClick],
    ) -> Result<HashSet<Uuid>, StoreError> {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT event_id FROM clicks WHERE (link_id, at, event_id) IN (VALUES ",
        );
        let mut sep = qb.separated(", ");
        for c in clicks {
            sep.push("(")
                .push_bind_unseparated(c.link_id.0)
                .push_unseparated(", ")
                .push_bind_unseparated(c.at)
                .push_unseparated(", ")
                .push_bind_unseparated(c.event_id.as_bytes().to_vec())
                .push_unseparated(")");
        }
        qb.push(")");
        let ids: Vec<Vec<u8>> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        event_ids(ids)
    }

    async fn write_rollups(
        conn: &mut sqlx::SqliteConnection,
        rollup: BatchRollup,
    ) -> Result<(), StoreError> {
        // The sealer's to-do list (one writer: no ordering to keep).
        for chunk in rollup.touched().chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO rollup_dirty (closes_at, link_id, res, bucket, pending) ",
            );
            qb.push_values(chunk, |mut b, (closes_at, link, res, bucket, n)| {
                b.push_bind(*closes_at)
                    .push_bind(*link)
                    .push_bind(*res)
                    .push_bind(*bucket)
                    .push_bind(*n);
            });
            qb.push(" ON CONFLICT DO UPDATE SET pending = pending + excluded.pending");
            qb.build().execute(&mut *conn).await?;
        }
        let series: Vec<_> = rollup.series.into_iter().collect();
        add_counts(&mut *conn, "rollup_series", "clicks", &series).await?;
        for chunk in rollup.totals.into_iter().collect::<Vec<_>>().chunks(CHUNK) {
            let mut qb =
                QueryBuilder::<Sqlite>::new("INSERT INTO link_totals (link_id, bot, clicks) ");
            qb.push_values(chunk, |mut b, ((link, bot), n)| {
                b.push_bind(*link).push_bind(*bot).push_bind(*n);
            });
            qb.push(" ON CONFLICT DO UPDATE SET clicks = clicks + excluded.clicks");
            qb.build().execute(&mut *conn).await?;
        }

        let dims: Vec<_> = rollup.dims.into_iter().collect();
        for chunk in dims.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO rollup_dims (link_id, res, bucket, bot, dim, value, clicks) ",
            );
            qb.push_values(chunk, |mut b, ((link, res, bucket, bot, dim, value), n)| {
                b.push_bind(*link)
                    .push_bind(*res)
                    .push_bind(*bucket)
                    .push_bind(*bot)
                    .push_bind(*dim as i64)
                    .push_bind(value.clone())
                    .push_bind(*n);
            });
            qb.push(" ON CONFLICT DO UPDATE SET clicks = clicks + excluded.clicks");
            qb.build().execute(&mut *conn).await?;
        }

        // Visitors: new ones count at their first click; one seen before but
        // whose stored first click is later than this batch's moves buckets.
        let mut deltas = VisitorDeltas::default();
        let mut fresh: Vec<(i64, i64, i64, i64, bool)> = Vec::new();
        let days = visitors_by_day(rollup.visitors);
        // The stored first clicks of every visitor of the batch, a chunk of
        // (link, day, visitor) keys per statement: one statement per link
        // and day made a batch spread over thousands of links thousands of
        // statements (each a round trip to sqlx's SQLite thread).
        let keys: Vec<(i64, i64, i64)> = days
            .iter()
            .flat_map(|((link, day), seen)| seen.iter().map(move |(v, ..)| (*link, *day, *v)))
            .collect();
        let mut stored: HashMap<(i64, i64, i64), i64> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT v.link_id, v.day, v.visitor, v.first_at FROM (",
            );
            qb.push_values(chunk, |mut b, (link, day, visitor)| {
                b.push_bind(*link).push_bind(*day).push_bind(*visitor);
            });
            // CROSS JOIN keeps the keys outside: a primary-key probe each.
            qb.push(
                ") AS k CROSS JOIN visitors v \
                 ON v.link_id = k.column1 AND v.day = k.column2 AND v.visitor = k.column3",
            );
            let rows: Vec<(i64, i64, i64, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;
            stored.extend(rows.into_iter().map(|(l, d, v, first)| ((l, d, v), first)));
        }
        for ((link, day), seen) in days {
            for (visitor, bot, first) in seen {
                match deltas.see(link, stored.get(&(link, day, visitor)).copied(), first, bot) {
                    FirstClick::New => fresh.push((link, day, visitor, first, bot)),
                    FirstClick::Earlier => {
                        sqlx::query("UPDATE visitors SET first_at = ? WHERE link_id = ? AND day = ? AND visitor = ?")
                            .bind(first)
                            .bind(link)
                            .bind(day)
                            .bind(visitor)
                            .execute(&mut *conn)
                            .await?;
                    }
                    FirstClick::Known => {}
                }
            }
        }
        for chunk in fresh.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO visitors (link_id, day, visitor, first_at, bot) ",
            );
            qb.push_values(chunk, |mut b, (link, day, visitor, first, bot)| {
                b.push_bind(*link)
                    .push_bind(*day)
                    .push_bind(*visitor)
                    .push_bind(*first)
                    .push_bind(*bot);
            });
            qb.build().execute(&mut *conn).await?;
        }
        let new_visitors = deltas.into_rows();
        add_counts(&mut *conn, "rollup_visitors", "visitors", &new_visitors).await
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

/// Adds counts to a (link, res, bucket, bot)-keyed rollup table, `CHUNK`
/// rows per statement; `column` is the table's count.
async fn add_counts(
    conn: &mut sqlx::SqliteConnection,
    table: &'static str,
    column: &'static str,
    rows: &[(crate::store::rollup::BucketKey, i64)],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "INSERT INTO {table} (link_id, res, bucket, bot, {column}) "
        ));
        qb.push_values(chunk, |mut b, ((link, res, bucket, bot), n)| {
            b.push_bind(*link)
                .push_bind(*res)
                .push_bind(*bucket)
                .push_bind(*bot)
                .push_bind(*n);
        });
        qb.push(format!(
            " ON CONFLICT DO UPDATE SET {column} = {column} + excluded.{column}"
        ));
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}
