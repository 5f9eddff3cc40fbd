//! `SqliteStore`: the embedded default. One file in WAL mode; a single writer
//! connection (SQLite serialises writers anyway, and one connection avoids
//! busy retries) and a small pool of readers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::rollup::{BatchRollup, res_code};
use super::{
    ApiKey, ClickStore, Conflict, DimCount, ExportCursor, KeyStore, LinkQuery, LinkStore, Report,
    ReportStore, Resolution, SessionRecords, StoreError, Takedown, TimeRange, host_in_domain,
    like_containing,
};
use crate::domain::{
    DeviceType, Dimension, EnrichedClick, KeyId, Link, LinkId, RedirectStatus, Slug, TargetUrl, Utm,
};

pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// Rows per multi-row INSERT: well under SQLite's 32766 bound parameters.
const CHUNK: usize = 1000;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn max_bot(include_bots: bool) -> i64 {
    i64::from(include_bots)
}

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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
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

    fn link_from_row(row: &SqliteRow) -> Result<Link, StoreError> {
        let slug: String = row.try_get("slug")?;
        let target: String = row.try_get("target")?;
        let tags: String = row.try_get("tags")?;
        let status: i64 = row.try_get("redirect_status")?;
        let secret: Option<Vec<u8>> = row.try_get("secret_hash")?;
        Ok(Link {
            id: LinkId(row.try_get("id")?),
            slug: Slug::parse_path(&slug).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            target: TargetUrl::from_stored(&target)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            title: row.try_get("title")?,
            tags: serde_json::from_str(&tags).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at: from_ms(row.try_get("created_at")?),
            updated_at: from_ms(row.try_get("updated_at")?),
            expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(from_ms),
            max_clicks: row
                .try_get::<Option<i64>, _>("max_clicks")?
                .map(|n| n as u64),
            redirect_status: RedirectStatus::from_code(status as u16)
                .ok_or_else(|| StoreError::Corrupt(format!("redirect status {status}")))?,
            disabled: row.try_get("disabled")?,
            owner: row.try_get::<Option<i64>, _>("owner_key")?.map(KeyId),
            secret_hash: secret.and_then(|s| s.try_into().ok()),
        })
    }

    fn click_from_row(row: &SqliteRow) -> Result<EnrichedClick, StoreError> {
        let id: Vec<u8> = row.try_get("event_id")?;
        let device: String = row.try_get("device")?;
        Ok(EnrichedClick {
            event_id: Uuid::from_slice(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            link_id: LinkId(row.try_get("link_id")?),
            at: row.try_get("at")?,
            bot: row.try_get("bot")?,
            country: row.try_get("country")?,
            city: row.try_get("city")?,
            browser: row.try_get("browser")?,
            os: row.try_get("os")?,
            device: DeviceType::parse(&device),
            referrer_host: row.try_get("referrer_host")?,
            utm: Utm {
                source: row.try_get("utm_source")?,
                medium: row.try_get("utm_medium")?,
                campaign: row.try_get("utm_campaign")?,
            },
            visitor: row.try_get("visitor")?,
            region: row.try_get("region")?,
        })
    }

    async fn write_tags(tx: &mut sqlx::SqliteConnection, link: &Link) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM link_tags WHERE link_id = ?")
            .bind(link.id.0)
            .execute(&mut *tx)
            .await?;
        for tag in &link.tags {
            sqlx::query("INSERT OR IGNORE INTO link_tags (tag, link_id) VALUES (?, ?)")
                .bind(tag)
                .bind(link.id.0)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl LinkStore for SqliteStore {
    async fn insert_link(&self, link: &Link) -> Result<Result<(), Conflict>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO links (id, slug, target, title, tags, created_at, updated_at, expires_at,
                 max_clicks, redirect_status, disabled, owner_key, secret_hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(link.id.0)
        .bind(link.slug.as_str())
        .bind(link.target.as_str())
        .bind(&link.title)
        .bind(serde_json::to_string(&link.tags).unwrap_or_else(|_| "[]".into()))
        .bind(ms(link.created_at))
        .bind(ms(link.updated_at))
        .bind(link.expires_at.map(ms))
        .bind(link.max_clicks.map(|n| n as i64))
        .bind(i64::from(link.redirect_status.code()))
        .bind(link.disabled)
        .bind(link.owner.map(|k| k.0))
        .bind(link.secret_hash.map(|h| h.to_vec()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let slug_taken = sqlx::query("SELECT 1 FROM links WHERE slug = ?")
                .bind(link.slug.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Ok(Err(if slug_taken {
                Conflict::SlugTaken
            } else {
                Conflict::IdTaken
            }));
        }
        Self::write_tags(&mut tx, link).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn link_by_slug(&self, slug: &Slug) -> Result<Option<Link>, StoreError> {
        let row = sqlx::query("SELECT * FROM links WHERE slug = ?")
            .bind(slug.as_str())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(Self::link_from_row).transpose()
    }

    async fn list_links(&self, q: &LinkQuery) -> Result<Vec<Link>, StoreError> {
        let pattern = q.text.as_deref().map(like_containing);
        let rows = sqlx::query(
            "SELECT * FROM links
             WHERE (?1 IS NULL OR owner_key = ?1)
               AND (?2 IS NULL OR id < ?2)
               AND (?3 IS NULL OR EXISTS (SELECT 1 FROM link_tags t WHERE t.tag = ?3 AND t.link_id = links.id))
               AND (?4 IS NULL OR slug LIKE ?4 ESCAPE '\\' OR target LIKE ?4 ESCAPE '\\' OR title LIKE ?4 ESCAPE '\\')
             ORDER BY id DESC LIMIT ?5",
        )
        .bind(q.owner.map(|k| k.0))
        .bind(q.before.map(|b| b.0))
        .bind(&q.tag)
        .bind(pattern)
        .bind(q.limit as i64)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(Self::link_from_row).collect()
    }

    async fn update_link(&self, link: &Link) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "UPDATE links SET target = ?, title = ?, tags = ?, updated_at = ?, expires_at = ?,
                 max_clicks = ?, redirect_status = ?, disabled = ? WHERE id = ?",
        )
        .bind(link.target.as_str())
        .bind(&link.title)
        .bind(serde_json::to_string(&link.tags).unwrap_or_else(|_| "[]".into()))
        .bind(ms(link.updated_at))
        .bind(link.expires_at.map(ms))
        .bind(link.max_clicks.map(|n| n as i64))
        .bind(i64::from(link.redirect_status.code()))
        .bind(link.disabled)
        .bind(link.id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        Self::write_tags(&mut tx, link).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_link(&self, slug: &Slug) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let Some(id) = sqlx::query_scalar::<_, i64>("SELECT id FROM links WHERE slug = ?")
            .bind(slug.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        for statement in [
            "DELETE FROM links WHERE id = ?",
            "DELETE FROM link_tags WHERE link_id = ?",
            "DELETE FROM clicks WHERE link_id = ?",
            "DELETE FROM rollup_series WHERE link_id = ?",
            "DELETE FROM rollup_dims WHERE link_id = ?",
            "DELETE FROM visitors WHERE link_id = ?",
            "DELETE FROM rollup_visitors WHERE link_id = ?",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_click(&self, link: LinkId, max_clicks: u64) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE links SET served = served + 1 WHERE id = ? AND served < ?")
            .bind(link.0)
            .bind(max_clicks as i64)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }
}

fn key_from_row(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(ApiKey {
        id: KeyId(row.try_get("id")?),
        name: row.try_get("name")?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("key hash length".into()))?,
        admin: row.try_get("admin")?,
        created_at: from_ms(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_ms),
    })
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(
        &self,
        name: &str,
        hash: [u8; 32],
        admin: bool,
    ) -> Result<ApiKey, StoreError> {
        let row = sqlx::query(
            "INSERT INTO api_keys (name, hash, admin, created_at) VALUES (?, ?, ?, ?) RETURNING *",
        )
        .bind(name)
        .bind(hash.to_vec())
        .bind(admin)
        .bind(ms(Utc::now()))
        .fetch_one(&self.writer)
        .await?;
        key_from_row(&row)
    }

    async fn key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE hash = ?")
            .bind(hash.to_vec())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY id")
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id: KeyId) -> Result<bool, StoreError> {
        let n =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(ms(Utc::now()))
                .bind(id.0)
                .execute(&self.writer)
                .await?
                .rows_affected();
        Ok(n == 1)
    }
}

fn report_from_row(row: &SqliteRow) -> Result<Report, StoreError> {
    Ok(Report {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        link_id: row.try_get::<Option<i64>, _>("link_id")?.map(LinkId),
        reason: row.try_get("reason")?,
        details: row.try_get("details")?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

#[async_trait]
impl ReportStore for SqliteStore {
    async fn insert_report(
        &self,
        slug: &str,
        link: Option<LinkId>,
        reason: &str,
        details: Option<&str>,
    ) -> Result<Report, StoreError> {
        let row = sqlx::query(
            "INSERT INTO reports (slug, link_id, reason, details, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(slug)
        .bind(link.map(|l| l.0))
        .bind(reason)
        .bind(details)
        .bind(ms(Utc::now()))
        .fetch_one(&self.writer)
        .await?;
        report_from_row(&row)
    }

    async fn list_reports(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Report>, StoreError> {
        let rows = sqlx::query("SELECT * FROM reports WHERE id < ? ORDER BY id DESC LIMIT ?")
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit as i64)
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(report_from_row).collect()
    }

    async fn links_to_domain(&self, domain: &str) -> Result<Vec<Link>, StoreError> {
        // Narrowed in SQL by the domain's text, decided on the parsed host.
        let pattern = like_containing(&domain.to_ascii_lowercase());
        let rows = sqlx::query("SELECT * FROM links WHERE lower(target) LIKE ? ESCAPE '\\'")
            .bind(pattern)
            .fetch_all(&self.readers)
            .await?;
        let mut links = Vec::new();
        for row in &rows {
            let link = Self::link_from_row(row)?;
            if host_in_domain(link.target.host(), domain) {
                links.push(link);
            }
        }
        Ok(links)
    }

    async fn add_takedown(&self, domain: &str, reason: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO takedowns (domain, reason, created_at) VALUES (?, ?, ?)
             ON CONFLICT (domain) DO NOTHING",
        )
        .bind(domain)
        .bind(reason)
        .bind(ms(Utc::now()))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_takedown(&self, domain: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM takedowns WHERE domain = ?")
            .bind(domain)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_takedowns(&self) -> Result<Vec<Takedown>, StoreError> {
        let rows = sqlx::query("SELECT domain, reason, created_at FROM takedowns ORDER BY domain")
            .fetch_all(&self.readers)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Takedown {
                    domain: row.try_get("domain")?,
                    reason: row.try_get("reason")?,
                    created_at: DateTime::from_timestamp_millis(row.try_get("created_at")?)
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}

#[async_trait]
impl SessionRecords for SqliteStore {
    async fn load_session(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT data, expires_at FROM sessions WHERE id_hash = ? AND expires_at > ?",
        )
        .bind(id_hash.as_slice())
        .bind(now)
        .fetch_optional(&self.readers)
        .await?)
    }

    async fn save_session(
        &self,
        id_hash: &[u8; 32],
        data: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, data, expires_at) VALUES (?, ?, ?)
             ON CONFLICT (id_hash) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(id_hash.as_slice())
        .bind(data)
        .bind(expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash.as_slice())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }
}

/// Inserts raw clicks, skipping ones already stored; returns how many rows
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
    ids.into_iter()
        .map(|b| Uuid::from_slice(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

fn dim_counts(rows: Vec<(i64, String, i64)>) -> Result<Vec<DimCount>, StoreError> {
    rows.into_iter()
        .map(|(dim, value, clicks)| {
            Ok(DimCount {
                dim: Dimension::from_code(dim)
                    .ok_or_else(|| StoreError::Corrupt(format!("dimension {dim}")))?,
                value,
                clicks: clicks as u64,
            })
        })
        .collect()
}

/// Raw clicks per breakdown value, counted in SQL so that only one row per
/// value comes back. Mirrors [`Dimension::value_of`]; the conformance suite
/// checks that raw and rollup answers agree.
const RAW_DIMENSIONS: &str = "
    WITH c AS (SELECT * FROM clicks WHERE link_id = ?1 AND at >= ?2 AND at < ?3 AND bot <= ?4)
    SELECT 1, COALESCE(country, 'unknown'), COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 2, CASE WHEN city IS NULL THEN 'unknown'
                             WHEN country IS NULL THEN city
                             ELSE city || ', ' || country END, COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 3, COALESCE(referrer_host, 'direct'), COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 4, browser, COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 5, os, COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 6, device, COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 7, utm_source, COUNT(*) FROM c WHERE utm_source IS NOT NULL GROUP BY 2
    UNION ALL SELECT 8, utm_medium, COUNT(*) FROM c WHERE utm_medium IS NOT NULL GROUP BY 2
    UNION ALL SELECT 9, utm_campaign, COUNT(*) FROM c WHERE utm_campaign IS NOT NULL GROUP BY 2";

#[async_trait]
impl ClickStore for SqliteStore {
    async fn record_clicks(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError> {
        if clicks.is_empty() {
            return Ok(0);
        }
        let mut tx = self.writer.begin().await?;

        let link_ids: HashSet<i64> = clicks.iter().map(|c| c.link_id.0).collect();
        let mut live: HashSet<i64> = HashSet::new();
        for chunk in link_ids.into_iter().collect::<Vec<_>>().chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new("SELECT id FROM links WHERE id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            qb.push(")");
            let ids: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
            live.extend(ids);
        }

        let mut rollup = BatchRollup::default();
        let mut new = 0u64;
        let candidates: Vec<&EnrichedClick> = clicks
            .iter()
            .filter(|c| live.contains(&c.link_id.0))
            .collect();
        for chunk in candidates.chunks(CHUNK) {
            // Replays are rare: insert the whole chunk, and only when some
            // rows were already there, undo and find out which.
            sqlx::query("SAVEPOINT chunk").execute(&mut *tx).await?;
            let n = insert_clicks(&mut tx, chunk).await?;
            let fresh: Vec<&EnrichedClick> = if n == chunk.len() as u64 {
                sqlx::query("RELEASE chunk").execute(&mut *tx).await?;
                chunk.to_vec()
            } else {
                sqlx::query("ROLLBACK TO chunk; RELEASE chunk")
                    .execute(&mut *tx)
                    .await?;
                let stored = stored_event_ids(&mut tx, chunk).await?;
                let fresh: Vec<&EnrichedClick> = chunk
                    .iter()
                    .copied()
                    .filter(|c| !stored.contains(&c.event_id))
                    .collect();
                insert_clicks(&mut tx, &fresh).await?;
                fresh
            };
            for c in fresh {
                rollup.add(c);
                new += 1;
            }
        }

        let series: Vec<_> = rollup.series.into_iter().collect();
        for chunk in series.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO rollup_series (link_id, res, bucket, bot, clicks) ",
            );
            qb.push_values(chunk, |mut b, ((link, res, bucket, bot), n)| {
                b.push_bind(*link)
                    .push_bind(*res)
                    .push_bind(*bucket)
                    .push_bind(*bot)
                    .push_bind(*n);
            });
            qb.push(" ON CONFLICT DO UPDATE SET clicks = clicks + excluded.clicks");
            qb.build().execute(&mut *tx).await?;
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
            qb.build().execute(&mut *tx).await?;
        }

        // Visitors: new ones count at their first click; one seen before but
        // whose stored first click is later than this batch's moves buckets.
        let mut by_day: HashMap<(i64, i64), Vec<(i64, bool, i64)>> = HashMap::new();
        for ((link, day, visitor), (bot, first)) in rollup.visitors {
            by_day
                .entry((link, day))
                .or_default()
                .push((visitor, bot, first));
        }
        let mut new_visitors: HashMap<(i64, i64, i64, bool), i64> = HashMap::new();
        let mut fresh: Vec<(i64, i64, i64, i64, bool)> = Vec::new();
        let mut count = |link: i64, at: i64, bot: bool, delta: i64| {
            for res in [Resolution::Hour, Resolution::Day] {
                *new_visitors
                    .entry((link, res_code(res), res.floor(at), bot))
                    .or_default() += delta;
            }
        };
        for ((link, day), seen) in by_day {
            for chunk in seen.chunks(CHUNK) {
                let mut qb = QueryBuilder::<Sqlite>::new(
                    "SELECT visitor, first_at FROM visitors WHERE link_id = ",
                );
                qb.push_bind(link)
                    .push(" AND day = ")
                    .push_bind(day)
                    .push(" AND visitor IN (");
                let mut sep = qb.separated(", ");
                for (visitor, _, _) in chunk {
                    sep.push_bind(*visitor);
                }
                qb.push(")");
                let stored: HashMap<i64, i64> = qb
                    .build_query_as::<(i64, i64)>()
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
                for &(visitor, bot, first) in chunk {
                    match stored.get(&visitor) {
                        None => {
                            fresh.push((link, day, visitor, first, bot));
                            count(link, first, bot, 1);
                        }
                        Some(&old) if first < old => {
                            sqlx::query("UPDATE visitors SET first_at = ? WHERE link_id = ? AND day = ? AND visitor = ?")
                                .bind(first)
                                .bind(link)
                                .bind(day)
                                .bind(visitor)
                                .execute(&mut *tx)
                                .await?;
                            count(link, old, bot, -1);
                            count(link, first, bot, 1);
                        }
                        Some(_) => {}
                    }
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
            qb.build().execute(&mut *tx).await?;
        }
        let new_visitors: Vec<_> = new_visitors.into_iter().filter(|(_, n)| *n != 0).collect();
        for chunk in new_visitors.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO rollup_visitors (link_id, res, bucket, bot, visitors) ",
            );
            qb.push_values(chunk, |mut b, ((link, res, bucket, bot), n)| {
                b.push_bind(*link)
                    .push_bind(*res)
                    .push_bind(*bucket)
                    .push_bind(*bot)
                    .push_bind(*n);
            });
            qb.push(" ON CONFLICT DO UPDATE SET visitors = visitors + excluded.visitors");
            qb.build().execute(&mut *tx).await?;
        }

        tx.commit().await?;
        Ok(new)
    }

    async fn series(
        &self,
        link: LinkId,
        res: Resolution,
        range: TimeRange,
        include_bots: bool,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        let rows: Vec<(i64, i64)> = match res {
            Resolution::Raw => {
                sqlx::query_as(
                    "SELECT (at / 60000) * 60000 AS m, COUNT(*) FROM clicks
                     WHERE link_id = ? AND at >= ? AND at < ? AND bot <= ? GROUP BY m ORDER BY m",
                )
                .bind(link.0)
                .bind(range.from)
                .bind(range.to)
                .bind(max_bot(include_bots))
                .fetch_all(&self.readers)
                .await?
            }
            Resolution::Minute | Resolution::QuarterHour => {
                sqlx::query_as(
                    "SELECT bucket, SUM(clicks) FROM rollup_series
                     WHERE link_id = ? AND res = ? AND bucket >= ? AND bucket < ? AND bot <= ?
                     GROUP BY bucket ORDER BY bucket",
                )
                .bind(link.0)
                .bind(res_code(res))
                .bind(range.from)
                .bind(range.to)
                .bind(max_bot(include_bots))
                .fetch_all(&self.readers)
                .await?
            }
            _ => return Err(StoreError::Unsupported("series at this resolution")),
        };
        Ok(rows.into_iter().map(|(b, n)| (b, n as u64)).collect())
    }

    async fn dimensions(
        &self,
        link: LinkId,
        res: Resolution,
        range: TimeRange,
        include_bots: bool,
    ) -> Result<Vec<DimCount>, StoreError> {
        match res {
            Resolution::Raw => {
                let rows: Vec<(i64, String, i64)> = sqlx::query_as(RAW_DIMENSIONS)
                    .bind(link.0)
                    .bind(range.from)
                    .bind(range.to)
                    .bind(max_bot(include_bots))
                    .fetch_all(&self.readers)
                    .await?;
                dim_counts(rows)
            }
            Resolution::Hour | Resolution::Day | Resolution::Week => {
                let rows: Vec<(i64, String, i64)> = sqlx::query_as(
                    "SELECT dim, value, SUM(clicks) FROM rollup_dims
                     WHERE link_id = ? AND res = ? AND bucket >= ? AND bucket < ? AND bot <= ?
                     GROUP BY dim, value",
                )
                .bind(link.0)
                .bind(res_code(res))
                .bind(range.from)
                .bind(range.to)
                .bind(max_bot(include_bots))
                .fetch_all(&self.readers)
                .await?;
                dim_counts(rows)
            }
            _ => Err(StoreError::Unsupported("dimensions at this resolution")),
        }
    }

    async fn visitors(
        &self,
        link: LinkId,
        res: Resolution,
        range: TimeRange,
        include_bots: bool,
    ) -> Result<u64, StoreError> {
        let n: Option<i64> = match res {
            Resolution::Raw => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM visitors
                     WHERE link_id = ? AND first_at >= ? AND first_at < ? AND bot <= ?",
                )
                .bind(link.0)
                .bind(range.from)
                .bind(range.to)
                .bind(max_bot(include_bots))
                .fetch_one(&self.readers)
                .await?
            }
            Resolution::Hour | Resolution::Day => {
                sqlx::query_scalar(
                    "SELECT SUM(visitors) FROM rollup_visitors
                     WHERE link_id = ? AND res = ? AND bucket >= ? AND bucket < ? AND bot <= ?",
                )
                .bind(link.0)
                .bind(res_code(res))
                .bind(range.from)
                .bind(range.to)
                .bind(max_bot(include_bots))
                .fetch_one(&self.readers)
                .await?
            }
            _ => return Err(StoreError::Unsupported("visitors at this resolution")),
        };
        Ok(n.unwrap_or(0) as u64)
    }

    async fn click_totals(
        &self,
        links: &[LinkId],
        include_bots: bool,
    ) -> Result<HashMap<LinkId, u64>, StoreError> {
        let mut out: HashMap<LinkId, u64> = links.iter().map(|l| (*l, 0)).collect();
        for chunk in links.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT link_id, SUM(clicks) FROM rollup_series WHERE res = 15 AND bot <= ",
            );
            qb.push_bind(max_bot(include_bots));
            qb.push(" AND link_id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.0);
            }
            qb.push(") GROUP BY link_id");
            let rows: Vec<(i64, i64)> = qb.build_query_as().fetch_all(&self.readers).await?;
            for (id, n) in rows {
                out.insert(LinkId(id), n as u64);
            }
        }
        Ok(out)
    }

    async fn delete_raw_clicks_before(&self, before: i64) -> Result<u64, StoreError> {
        // Link by link, so each delete is a range of the clustered key.
        let links: Vec<i64> = sqlx::query_scalar("SELECT id FROM links")
            .fetch_all(&self.readers)
            .await?;
        let mut n = 0;
        for link in links {
            n += sqlx::query("DELETE FROM clicks WHERE link_id = ? AND at < ?")
                .bind(link)
                .bind(before)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    async fn purge_clicks(&self, link: LinkId) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("DELETE FROM clicks WHERE link_id = ?")
            .bind(link.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for statement in [
            "DELETE FROM rollup_series WHERE link_id = ?",
            "DELETE FROM rollup_dims WHERE link_id = ?",
            "DELETE FROM visitors WHERE link_id = ?",
            "DELETE FROM rollup_visitors WHERE link_id = ?",
        ] {
            sqlx::query(statement)
                .bind(link.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn export_clicks(
        &self,
        link: LinkId,
        range: TimeRange,
        include_bots: bool,
        after: Option<ExportCursor>,
        limit: usize,
    ) -> Result<Vec<EnrichedClick>, StoreError> {
        let (after_at, after_id) = match after {
            Some((at, id)) => (at, id.as_bytes().to_vec()),
            None => (i64::MIN, Vec::new()),
        };
        let rows = sqlx::query(
            "SELECT * FROM clicks WHERE link_id = ? AND at >= ? AND at < ? AND bot <= ?
               AND (at > ? OR (at = ? AND event_id > ?))
             ORDER BY at, event_id LIMIT ?",
        )
        .bind(link.0)
        .bind(range.from)
        .bind(range.to)
        .bind(max_bot(include_bots))
        .bind(after_at)
        .bind(after_at)
        .bind(after_id)
        .bind(limit as i64)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(Self::click_from_row).collect()
    }
}
