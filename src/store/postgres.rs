//! `PgStore`: the cluster backend, shared by every node and worker.
//!
//! Writes are batched: a worker writes a whole batch of clicks in one
//! transaction, with one upsert per rollup key per batch (arrays bound once
//! and `UNNEST`-ed, so every statement is prepared once and reused). Upserts
//! go in key order, so two workers touching the same keys lock them in the
//! same order and cannot deadlock. A hot link therefore costs one row update
//! per bucket per batch, not per click. Visitor bookkeeping for a (link, UTC
//! day) is serialised between workers by a transaction-scoped advisory lock.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Row};
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

pub struct PgStore {
    pool: PgPool,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Rows per raw-click insert.
const CHUNK: usize = 2000;

impl PgStore {
    /// Connects (failing fast when the server is down) and applies
    /// migrations when `migrate` is set.
    pub async fn open(url: &str, migrate: bool) -> Result<PgStore, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        let options = options
            .application_name("hop")
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            // A request waits at most this long for a connection: when the
            // database is down, creates fail fast with store_unavailable.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        if migrate {
            sqlx::migrate!("migrations/postgres")
                .run(&pool)
                .await
                .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        }
        Ok(PgStore { pool })
    }

    fn link_from_row(row: &PgRow) -> Result<Link, StoreError> {
        let slug: String = row.try_get("slug")?;
        let target: String = row.try_get("target")?;
        let tags: String = row.try_get("tags")?;
        let status: i16 = row.try_get("redirect_status")?;
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

    fn click_from_row(row: &PgRow) -> Result<EnrichedClick, StoreError> {
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

    async fn write_tags(tx: &mut sqlx::PgConnection, link: &Link) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM link_tags WHERE link_id = $1")
            .bind(link.id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO link_tags (tag, link_id) SELECT t, $2 FROM UNNEST($1::text[]) AS t
             ON CONFLICT DO NOTHING",
        )
        .bind(&link.tags)
        .bind(link.id.0)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl LinkStore for PgStore {
    async fn insert_link(&self, link: &Link) -> Result<Result<(), Conflict>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO links (id, slug, target, title, tags, created_at, updated_at, expires_at,
                 max_clicks, redirect_status, disabled, owner_key, secret_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
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
        .bind(link.redirect_status.code() as i16)
        .bind(link.disabled)
        .bind(link.owner.map(|k| k.0))
        .bind(link.secret_hash.map(|h| h.to_vec()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let slug_taken = sqlx::query("SELECT 1 FROM links WHERE slug = $1")
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
        let row = sqlx::query("SELECT * FROM links WHERE slug = $1")
            .bind(slug.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::link_from_row).transpose()
    }

    async fn list_links(&self, q: &LinkQuery) -> Result<Vec<Link>, StoreError> {
        let pattern = q.text.as_deref().map(like_containing);
        let rows = sqlx::query(
            "SELECT * FROM links
             WHERE ($1::bigint IS NULL OR owner_key = $1)
               AND ($2::bigint IS NULL OR id < $2)
               AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM link_tags t WHERE t.tag = $3 AND t.link_id = links.id))
               AND ($4::text IS NULL OR slug ILIKE $4 ESCAPE '\\' OR target ILIKE $4 ESCAPE '\\' OR title ILIKE $4 ESCAPE '\\')
             ORDER BY id DESC LIMIT $5",
        )
        .bind(q.owner.map(|k| k.0))
        .bind(q.before.map(|b| b.0))
        .bind(&q.tag)
        .bind(pattern)
        .bind(q.limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::link_from_row).collect()
    }

    async fn update_link(&self, link: &Link) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE links SET target = $1, title = $2, tags = $3, updated_at = $4, expires_at = $5,
                 max_clicks = $6, redirect_status = $7, disabled = $8 WHERE id = $9",
        )
        .bind(link.target.as_str())
        .bind(&link.title)
        .bind(serde_json::to_string(&link.tags).unwrap_or_else(|_| "[]".into()))
        .bind(ms(link.updated_at))
        .bind(link.expires_at.map(ms))
        .bind(link.max_clicks.map(|n| n as i64))
        .bind(link.redirect_status.code() as i16)
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
        let mut tx = self.pool.begin().await?;
        let Some(id) =
            sqlx::query_scalar::<_, i64>("DELETE FROM links WHERE slug = $1 RETURNING id")
                .bind(slug.as_str())
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        for statement in [
            "DELETE FROM link_tags WHERE link_id = $1",
            "DELETE FROM clicks WHERE link_id = $1",
            "DELETE FROM rollup_series WHERE link_id = $1",
            "DELETE FROM rollup_dims WHERE link_id = $1",
            "DELETE FROM visitors WHERE link_id = $1",
            "DELETE FROM rollup_visitors WHERE link_id = $1",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_click(&self, link: LinkId, max_clicks: u64) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE links SET served = served + 1 WHERE id = $1 AND served < $2")
            .bind(link.0)
            .bind(max_clicks as i64)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn key_from_row(row: &PgRow) -> Result<ApiKey, StoreError> {
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
impl KeyStore for PgStore {
    async fn insert_key(
        &self,
        name: &str,
        hash: [u8; 32],
        admin: bool,
    ) -> Result<ApiKey, StoreError> {
        let row = sqlx::query(
            "INSERT INTO api_keys (name, hash, admin, created_at) VALUES ($1, $2, $3, $4) RETURNING *",
        )
        .bind(name)
        .bind(hash.to_vec())
        .bind(admin)
        .bind(ms(Utc::now()))
        .fetch_one(&self.pool)
        .await?;
        key_from_row(&row)
    }

    async fn key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE hash = $1")
            .bind(hash.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id: KeyId) -> Result<bool, StoreError> {
        let n =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(ms(Utc::now()))
                .bind(id.0)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(n == 1)
    }
}

fn report_from_row(row: &PgRow) -> Result<Report, StoreError> {
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
impl ReportStore for PgStore {
    async fn insert_report(
        &self,
        slug: &str,
        link: Option<LinkId>,
        reason: &str,
        details: Option<&str>,
    ) -> Result<Report, StoreError> {
        let row = sqlx::query(
            "INSERT INTO reports (slug, link_id, reason, details, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING *",
        )
        .bind(slug)
        .bind(link.map(|l| l.0))
        .bind(reason)
        .bind(details)
        .bind(ms(Utc::now()))
        .fetch_one(&self.pool)
        .await?;
        report_from_row(&row)
    }

    async fn list_reports(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Report>, StoreError> {
        let rows = sqlx::query("SELECT * FROM reports WHERE id < $1 ORDER BY id DESC LIMIT $2")
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(report_from_row).collect()
    }

    async fn links_to_domain(&self, domain: &str) -> Result<Vec<Link>, StoreError> {
        // Narrowed in SQL by the domain's text, decided on the parsed host.
        let pattern = like_containing(&domain.to_ascii_lowercase());
        let rows = sqlx::query("SELECT * FROM links WHERE lower(target) LIKE $1 ESCAPE '\\'")
            .bind(pattern)
            .fetch_all(&self.pool)
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
            "INSERT INTO takedowns (domain, reason, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (domain) DO NOTHING",
        )
        .bind(domain)
        .bind(reason)
        .bind(ms(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_takedown(&self, domain: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM takedowns WHERE domain = $1")
            .bind(domain)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_takedowns(&self) -> Result<Vec<Takedown>, StoreError> {
        let rows = sqlx::query("SELECT domain, reason, created_at FROM takedowns ORDER BY domain")
            .fetch_all(&self.pool)
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
impl SessionRecords for PgStore {
    async fn load_session(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT data, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash.as_slice())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn save_session(
        &self,
        id_hash: &[u8; 32],
        data: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, data, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (id_hash) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(id_hash.as_slice())
        .bind(data)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

/// Inserts raw clicks, skipping stored ones; returns rows inserted.
async fn insert_clicks(
    conn: &mut sqlx::PgConnection,
    clicks: &[&EnrichedClick],
) -> Result<u64, StoreError> {
    if clicks.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&EnrichedClick) -> Option<String>| -> Vec<Option<String>> {
        clicks.iter().map(|c| f(c)).collect()
    };
    Ok(sqlx::query(
        "INSERT INTO clicks (link_id, at, event_id, bot, country, city, browser, os, device,
             referrer_host, utm_source, utm_medium, utm_campaign, visitor, region)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bool[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
             $13::text[], $14::bigint[], $15::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(clicks.iter().map(|c| c.link_id.0).collect::<Vec<_>>())
    .bind(clicks.iter().map(|c| c.at).collect::<Vec<_>>())
    .bind(
        clicks
            .iter()
            .map(|c| c.event_id.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
    .bind(clicks.iter().map(|c| c.bot).collect::<Vec<_>>())
    .bind(col(|c| c.country.clone()))
    .bind(col(|c| c.city.clone()))
    .bind(col(|c| Some(c.browser.clone())))
    .bind(col(|c| Some(c.os.clone())))
    .bind(col(|c| Some(c.device.as_str().to_owned())))
    .bind(col(|c| c.referrer_host.clone()))
    .bind(col(|c| c.utm.source.clone()))
    .bind(col(|c| c.utm.medium.clone()))
    .bind(col(|c| c.utm.campaign.clone()))
    .bind(clicks.iter().map(|c| c.visitor).collect::<Vec<_>>())
    .bind(col(|c| Some(c.region.clone())))
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

async fn stored_event_ids(
    conn: &mut sqlx::PgConnection,
    clicks: &[&EnrichedClick],
) -> Result<HashSet<Uuid>, StoreError> {
    let ids: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT c.event_id FROM clicks c
         JOIN UNNEST($1::bigint[], $2::bigint[], $3::bytea[]) AS k(link_id, at, event_id)
           ON c.link_id = k.link_id AND c.at = k.at AND c.event_id = k.event_id",
    )
    .bind(clicks.iter().map(|c| c.link_id.0).collect::<Vec<_>>())
    .bind(clicks.iter().map(|c| c.at).collect::<Vec<_>>())
    .bind(
        clicks
            .iter()
            .map(|c| c.event_id.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await?;
    ids.into_iter()
        .map(|b| Uuid::from_slice(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

const ADD_SERIES: &str = "INSERT INTO rollup_series (link_id, res, bucket, bot, clicks)
     SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bigint[], $4::bool[], $5::bigint[])
     ON CONFLICT (link_id, res, bucket, bot)
     DO UPDATE SET clicks = rollup_series.clicks + excluded.clicks";

const ADD_VISITORS: &str = "INSERT INTO rollup_visitors (link_id, res, bucket, bot, visitors)
     SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bigint[], $4::bool[], $5::bigint[])
     ON CONFLICT (link_id, res, bucket, bot)
     DO UPDATE SET visitors = rollup_visitors.visitors + excluded.visitors";

/// Adds counts to a (link, res, bucket, bot)-keyed rollup table in one
/// statement, in key order (so concurrent workers lock rows alike).
/// `upsert` is [`ADD_SERIES`] or [`ADD_VISITORS`].
async fn add_counts(
    conn: &mut sqlx::PgConnection,
    upsert: &'static str,
    mut rows: Vec<((i64, i64, i64, bool), i64)>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_unstable_by_key(|(k, _)| *k);
    sqlx::query(upsert)
        .bind(rows.iter().map(|((l, ..), _)| *l).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|((_, r, ..), _)| *r as i32)
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|((_, _, b, _), _)| *b).collect::<Vec<_>>())
        .bind(rows.iter().map(|((.., bot), _)| *bot).collect::<Vec<_>>())
        .bind(rows.iter().map(|(_, n)| *n).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Key of the advisory lock that serialises visitor bookkeeping of one
/// (link, UTC day) between workers.
fn visitor_lock(link: i64, day: i64) -> i64 {
    link.wrapping_mul(31).wrapping_add(day / 86_400_000)
}

const RAW_DIMENSIONS: &str = "
    WITH c AS (SELECT * FROM clicks WHERE link_id = $1 AND at >= $2 AND at < $3 AND (NOT bot OR $4))
    SELECT 1::smallint, COALESCE(country, 'unknown'), COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 2::smallint, CASE WHEN city IS NULL THEN 'unknown'
                             WHEN country IS NULL THEN city
                             ELSE city || ', ' || country END, COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 3::smallint, COALESCE(referrer_host, 'direct'), COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 4::smallint, browser, COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 5::smallint, os, COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 6::smallint, device, COUNT(*) FROM c GROUP BY 2
    UNION ALL SELECT 7::smallint, utm_source, COUNT(*) FROM c WHERE utm_source IS NOT NULL GROUP BY 2
    UNION ALL SELECT 8::smallint, utm_medium, COUNT(*) FROM c WHERE utm_medium IS NOT NULL GROUP BY 2
    UNION ALL SELECT 9::smallint, utm_campaign, COUNT(*) FROM c WHERE utm_campaign IS NOT NULL GROUP BY 2";

fn dim_counts(rows: Vec<(i16, String, i64)>) -> Result<Vec<DimCount>, StoreError> {
    rows.into_iter()
        .map(|(dim, value, clicks)| {
            Ok(DimCount {
                dim: Dimension::from_code(i64::from(dim))
                    .ok_or_else(|| StoreError::Corrupt(format!("dimension {dim}")))?,
                value,
                clicks: clicks as u64,
            })
        })
        .collect()
}

#[async_trait]
impl ClickStore for PgStore {
    async fn record_clicks(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError> {
        if clicks.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let link_ids: Vec<i64> = clicks
            .iter()
            .map(|c| c.link_id.0)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let live: HashSet<i64> = sqlx::query_scalar("SELECT id FROM links WHERE id = ANY($1)")
            .bind(&link_ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();

        let mut rollup = BatchRollup::default();
        let mut new = 0u64;
        let candidates: Vec<&EnrichedClick> = clicks
            .iter()
            .filter(|c| live.contains(&c.link_id.0))
            .collect();
        for chunk in candidates.chunks(CHUNK) {
            // Replays are rare: insert the chunk, and only when some rows
            // were already there, undo and insert just the missing ones.
            sqlx::query("SAVEPOINT chunk").execute(&mut *tx).await?;
            let n = insert_clicks(&mut tx, chunk).await?;
            let fresh: Vec<&EnrichedClick> = if n == chunk.len() as u64 {
                sqlx::query("RELEASE SAVEPOINT chunk")
                    .execute(&mut *tx)
                    .await?;
                chunk.to_vec()
            } else {
                sqlx::query("ROLLBACK TO SAVEPOINT chunk")
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

        // Series and breakdowns: one upsert each, keys sorted (lock order).
        let series: Vec<_> = rollup.series.into_iter().collect();
        add_counts(&mut tx, ADD_SERIES, series).await?;
        let mut dims: Vec<_> = rollup.dims.into_iter().collect();
        dims.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        if !dims.is_empty() {
            sqlx::query(
                "INSERT INTO rollup_dims (link_id, res, bucket, bot, dim, value, clicks)
                 SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bigint[], $4::bool[],
                     $5::smallint[], $6::text[], $7::bigint[])
                 ON CONFLICT (link_id, res, bucket, bot, dim, value)
                 DO UPDATE SET clicks = rollup_dims.clicks + excluded.clicks",
            )
            .bind(dims.iter().map(|((l, ..), _)| *l).collect::<Vec<_>>())
            .bind(
                dims.iter()
                    .map(|((_, r, ..), _)| *r as i32)
                    .collect::<Vec<_>>(),
            )
            .bind(dims.iter().map(|((_, _, b, ..), _)| *b).collect::<Vec<_>>())
            .bind(
                dims.iter()
                    .map(|((_, _, _, bot, ..), _)| *bot)
                    .collect::<Vec<_>>(),
            )
            .bind(
                dims.iter()
                    .map(|((_, _, _, _, d, _), _)| *d as i16)
                    .collect::<Vec<_>>(),
            )
            .bind(
                dims.iter()
                    .map(|((.., v), _)| v.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(dims.iter().map(|(_, n)| *n).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }

        // Visitors, per (link, day), under that pair's advisory lock.
        let mut by_day: HashMap<(i64, i64), Vec<(i64, bool, i64)>> = HashMap::new();
        for ((link, day, visitor), (bot, first)) in rollup.visitors {
            by_day
                .entry((link, day))
                .or_default()
                .push((visitor, bot, first));
        }
        let mut days: Vec<_> = by_day.into_iter().collect();
        days.sort_unstable_by_key(|(k, _)| *k);
        let mut new_visitors: HashMap<(i64, i64, i64, bool), i64> = HashMap::new();
        let mut count = |link: i64, at: i64, bot: bool, delta: i64| {
            for res in [Resolution::Hour, Resolution::Day] {
                *new_visitors
                    .entry((link, res_code(res), res.floor(at), bot))
                    .or_default() += delta;
            }
        };
        for ((link, day), seen) in days {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(visitor_lock(link, day))
                .execute(&mut *tx)
                .await?;
            let ids: Vec<i64> = seen.iter().map(|(v, ..)| *v).collect();
            let stored: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(
                "SELECT visitor, first_at FROM visitors
                 WHERE link_id = $1 AND day = $2 AND visitor = ANY($3)",
            )
            .bind(link)
            .bind(day)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            let mut fresh: Vec<(i64, i64, bool)> = Vec::new();
            let mut moved: Vec<(i64, i64)> = Vec::new();
            for (visitor, bot, first) in seen {
                match stored.get(&visitor) {
                    None => {
                        fresh.push((visitor, first, bot));
                        count(link, first, bot, 1);
                    }
                    Some(&old) if first < old => {
                        moved.push((visitor, first));
                        count(link, old, bot, -1);
                        count(link, first, bot, 1);
                    }
                    Some(_) => {}
                }
            }
            if !fresh.is_empty() {
                sqlx::query(
                    "INSERT INTO visitors (link_id, day, visitor, first_at, bot)
                     SELECT $1, $2, * FROM UNNEST($3::bigint[], $4::bigint[], $5::bool[])",
                )
                .bind(link)
                .bind(day)
                .bind(fresh.iter().map(|f| f.0).collect::<Vec<_>>())
                .bind(fresh.iter().map(|f| f.1).collect::<Vec<_>>())
                .bind(fresh.iter().map(|f| f.2).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
            }
            if !moved.is_empty() {
                sqlx::query(
                    "UPDATE visitors v SET first_at = m.first_at
                     FROM UNNEST($3::bigint[], $4::bigint[]) AS m(visitor, first_at)
                     WHERE v.link_id = $1 AND v.day = $2 AND v.visitor = m.visitor",
                )
                .bind(link)
                .bind(day)
                .bind(moved.iter().map(|m| m.0).collect::<Vec<_>>())
                .bind(moved.iter().map(|m| m.1).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
            }
        }
        let new_visitors: Vec<_> = new_visitors.into_iter().filter(|(_, n)| *n != 0).collect();
        add_counts(&mut tx, ADD_VISITORS, new_visitors).await?;
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
                     WHERE link_id = $1 AND at >= $2 AND at < $3 AND (NOT bot OR $4)
                     GROUP BY m ORDER BY m",
                )
                .bind(link.0)
                .bind(range.from)
                .bind(range.to)
                .bind(include_bots)
                .fetch_all(&self.pool)
                .await?
            }
            Resolution::Minute | Resolution::QuarterHour => {
                sqlx::query_as(
                    "SELECT bucket, SUM(clicks)::bigint FROM rollup_series
                     WHERE link_id = $1 AND res = $2 AND bucket >= $3 AND bucket < $4
                       AND (NOT bot OR $5)
                     GROUP BY bucket ORDER BY bucket",
                )
                .bind(link.0)
                .bind(res_code(res) as i32)
                .bind(range.from)
                .bind(range.to)
                .bind(include_bots)
                .fetch_all(&self.pool)
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
        let rows: Vec<(i16, String, i64)> = match res {
            Resolution::Raw => {
                sqlx::query_as(RAW_DIMENSIONS)
                    .bind(link.0)
                    .bind(range.from)
                    .bind(range.to)
                    .bind(include_bots)
                    .fetch_all(&self.pool)
                    .await?
            }
            Resolution::Hour | Resolution::Day | Resolution::Week => {
                sqlx::query_as(
                    "SELECT dim, value, SUM(clicks)::bigint FROM rollup_dims
                     WHERE link_id = $1 AND res = $2 AND bucket >= $3 AND bucket < $4
                       AND (NOT bot OR $5)
                     GROUP BY dim, value",
                )
                .bind(link.0)
                .bind(res_code(res) as i32)
                .bind(range.from)
                .bind(range.to)
                .bind(include_bots)
                .fetch_all(&self.pool)
                .await?
            }
            _ => return Err(StoreError::Unsupported("dimensions at this resolution")),
        };
        dim_counts(rows)
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
                     WHERE link_id = $1 AND first_at >= $2 AND first_at < $3 AND (NOT bot OR $4)",
                )
                .bind(link.0)
                .bind(range.from)
                .bind(range.to)
                .bind(include_bots)
                .fetch_one(&self.pool)
                .await?
            }
            Resolution::Hour | Resolution::Day => {
                sqlx::query_scalar(
                    "SELECT SUM(visitors)::bigint FROM rollup_visitors
                     WHERE link_id = $1 AND res = $2 AND bucket >= $3 AND bucket < $4
                       AND (NOT bot OR $5)",
                )
                .bind(link.0)
                .bind(res_code(res) as i32)
                .bind(range.from)
                .bind(range.to)
                .bind(include_bots)
                .fetch_one(&self.pool)
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
        let ids: Vec<i64> = links.iter().map(|l| l.0).collect();
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT link_id, SUM(clicks)::bigint FROM rollup_series
             WHERE res = 15 AND (NOT bot OR $1) AND link_id = ANY($2) GROUP BY link_id",
        )
        .bind(include_bots)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        for (id, n) in rows {
            out.insert(LinkId(id), n as u64);
        }
        Ok(out)
    }

    async fn delete_raw_clicks_before(&self, before: i64) -> Result<u64, StoreError> {
        // Links in chunks, so each delete is ranges of the clicks' key.
        let links: Vec<i64> = sqlx::query_scalar("SELECT id FROM links")
            .fetch_all(&self.pool)
            .await?;
        let mut n = 0;
        for chunk in links.chunks(1000) {
            n += sqlx::query("DELETE FROM clicks WHERE link_id = ANY($1) AND at < $2")
                .bind(chunk)
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }

    async fn purge_clicks(&self, link: LinkId) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM clicks WHERE link_id = $1")
            .bind(link.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for statement in [
            "DELETE FROM rollup_series WHERE link_id = $1",
            "DELETE FROM rollup_dims WHERE link_id = $1",
            "DELETE FROM visitors WHERE link_id = $1",
            "DELETE FROM rollup_visitors WHERE link_id = $1",
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
            "SELECT * FROM clicks WHERE link_id = $1 AND at >= $2 AND at < $3 AND (NOT bot OR $4)
               AND (at, event_id) > ($5, $6)
             ORDER BY at, event_id LIMIT $7",
        )
        .bind(link.0)
        .bind(range.from)
        .bind(range.to)
        .bind(include_bots)
        .bind(after_at)
        .bind(after_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::click_from_row).collect()
    }
}
