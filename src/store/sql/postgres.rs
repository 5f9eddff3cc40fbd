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

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres};
use uuid::Uuid;

use super::{FirstClick, SqlDialect, VisitorDeltas, visitors_by_day};
use crate::domain::webhook::OUTBOX_CLICKS;
use crate::domain::{EnrichedClick, Link, LinkId};
use crate::store::StoreError;
use crate::store::rollup::BatchRollup;
use crate::store::webhooks::{ClickKey, click_keys_blob};

pub struct PgStore {
    pool: PgPool,
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
            // No JIT: hop's statements are short, and once the planner has
            // statistics their estimated cost passes `jit_above_cost`, so
            // PostgreSQL compiled each stats read before running it (42 ms
            // of a 1 ms query on a 300 000-click link, 700 ms at 2 000 000).
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("SET jit = off").execute(conn).await?;
                    Ok(())
                })
            })
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

    /// The store's connection pool, for tools and tests that check what
    /// hop's own sessions see.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

super::sql_store!(PgStore);

impl SqlDialect for PgStore {
    type Db = Postgres;

    const OVERRIDING_GENERATED: &'static str = "OVERRIDING SYSTEM VALUE";
    fn after_copy(table: &str) -> Option<String> {
        Some(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {table}"
        ))
    }

    const LIST_LINKS: &'static str = "SELECT * FROM links
         WHERE ($1::bigint IS NULL OR owner_key = $1)
           AND ($2::bigint IS NULL OR id < $2)
           AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM link_tags t WHERE t.tag = $3 AND t.link_id = links.id))
           AND ($4::text IS NULL OR slug ILIKE $4 ESCAPE '\\' OR target ILIKE $4 ESCAPE '\\' OR title ILIKE $4 ESCAPE '\\')
         ORDER BY id DESC LIMIT $5";

    const EXPORT_CLICKS: &'static str = "SELECT * FROM clicks
         WHERE link_id = $1 AND at >= $2 AND at < $3 AND (NOT bot OR $4)
           AND (at, event_id) > ($5, $6)
         ORDER BY at, event_id LIMIT $7";

    const BEGIN_WRITE: &'static str = "BEGIN";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const LOCK_LINK: Option<&'static str> = Some("SELECT 1 FROM links WHERE id = $1 FOR UPDATE");
    const READ_SNAPSHOT: Option<&'static str> =
        Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");

    fn top_dims(limited: bool) -> &'static str {
        static TOP: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| super::top_dims_sql(r#"COLLATE "C""#, true, None));
        static ALL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            super::top_dims_sql(
                r#"COLLATE "C""#,
                true,
                Some("COALESCE(json_agg(json_build_array(value, n)), '[]')::text"),
            )
        });
        if limited { TOP.as_str() } else { ALL.as_str() }
    }

    fn packs() -> &'static str {
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| super::packs_sql(true));
        SQL.as_str()
    }

    fn readers(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn insert_tags(tx: &mut sqlx::PgConnection, link: &Link) -> Result<(), StoreError> {
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

    async fn record_batch(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError> {
        let mut tx = self.writer().begin().await?;
        let live = Self::live_links(&mut tx, clicks).await?;
        let candidates: Vec<&EnrichedClick> = clicks
            .iter()
            .filter(|c| live.contains(&c.link_id.0))
            .collect();
        let mut rollup = BatchRollup::default();
        let mut new = 0u64;
        // Webhooks: see `sqlite_clicks::insert_clicks`.
        let mut outbox: Option<Vec<ClickKey>> = sqlx::query_scalar::<_, bool>(super::WANTS_CLICKS)
            .fetch_one(&mut *tx)
            .await?
            .then(Vec::new);
        for chunk in candidates.chunks(CHUNK) {
            // Replays are rare: insert the whole chunk, and only
            // when some rows were already there, undo and insert
            // just the missing ones.
            sqlx::query("SAVEPOINT chunk").execute(&mut *tx).await?;
            let n = Self::insert_clicks(&mut tx, chunk).await?;
            let fresh: Vec<&EnrichedClick> = if n == chunk.len() as u64 {
                sqlx::query("RELEASE SAVEPOINT chunk")
                    .execute(&mut *tx)
                    .await?;
                chunk.to_vec()
            } else {
                sqlx::query("ROLLBACK TO SAVEPOINT chunk")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("RELEASE SAVEPOINT chunk")
                    .execute(&mut *tx)
                    .await?;
                // Stored before, or twice in this chunk (an
                // append retried after Redis died mid-answer):
                // either way counted once.
                let mut seen = Self::stored_event_ids(&mut tx, chunk).await?;
                let fresh: Vec<&EnrichedClick> = chunk
                    .iter()
                    .copied()
                    .filter(|c| seen.insert(c.event_id))
                    .collect();
                Self::insert_clicks(&mut tx, &fresh).await?;
                fresh
            };
            for c in fresh {
                rollup.add(c);
                new += 1;
                if let Some(keys) = &mut outbox {
                    keys.push((c.link_id, c.at, c.event_id));
                }
            }
        }
        if let Some(keys) = outbox.filter(|k| !k.is_empty()) {
            sqlx::query("INSERT INTO webhook_outbox (kind, created_at, body) VALUES ($1, $2, $3)")
                .bind(OUTBOX_CLICKS)
                .bind(chrono::Utc::now().timestamp_millis())
                .bind(click_keys_blob(&keys))
                .execute(&mut *tx)
                .await?;
        }
        Self::write_rollups(&mut tx, rollup).await?;
        tx.commit().await?;
        Ok(new)
    }

    async fn record_counted(
        &self,
        counts: &[crate::store::CountedClicks],
        mark: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        let mut ids: Vec<i64> = counts.iter().map(|c| c.link.0).collect();
        ids.sort_unstable();
        ids.dedup();
        // Locked as a click batch locks them (see `live_links`).
        let live: HashSet<i64> =
            sqlx::query_scalar("SELECT id FROM links WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        let mut rollup = BatchRollup::default();
        for c in counts.iter().filter(|c| live.contains(&c.link.0)) {
            rollup.add_counted(c);
        }
        Self::write_rollups(&mut tx, rollup).await?;
        if let Some((key, value)) = mark {
            sqlx::query(super::UPSERT_MARK)
                .bind(key)
                .bind(value)
                .bind(chrono::Utc::now().timestamp_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn totals(
        &self,
        links: &[LinkId],
        include_bots: bool,
    ) -> Result<HashMap<LinkId, u64>, StoreError> {
        let mut out: HashMap<LinkId, u64> = links.iter().map(|l| (*l, 0)).collect();
        let ids: Vec<i64> = links.iter().map(|l| l.0).collect();
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT link_id, SUM(clicks)::bigint FROM link_totals
             WHERE (NOT bot OR $1) AND link_id = ANY($2) GROUP BY link_id",
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

    async fn delete_raw_before(&self, before: i64) -> Result<u64, StoreError> {
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
}

/// The click write's steps, in the order `record_batch` takes them.
impl PgStore {
    async fn live_links(
        conn: &mut sqlx::PgConnection,
        clicks: &[EnrichedClick],
    ) -> Result<HashSet<i64>, StoreError> {
        let link_ids: Vec<i64> = clicks
            .iter()
            .map(|c| c.link_id.0)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        Ok(
            // Held until the batch commits: deleting a link (or purging
            // its clicks) locks its row first and so waits for the batch,
            // or the batch for it, instead of the two taking rollup rows in
            // opposite orders (a deadlock, answered as a 503). KEY SHARE:
            // edits and click-limit claims (no key change) still pass.
            sqlx::query_scalar("SELECT id FROM links WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
                .bind(&link_ids)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect(),
        )
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
                 referrer_host, utm_source, utm_medium, utm_campaign, visitor, region, route_rule,
                 route_variant)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bool[], $5::text[],
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                 $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[])
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
        .bind(col(|c| c.route.rule.clone()))
        .bind(col(|c| c.route.variant.clone()))
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
        event_ids(ids)
    }

    async fn write_rollups(
        conn: &mut sqlx::PgConnection,
        mut rollup: BatchRollup,
    ) -> Result<(), StoreError> {
        // The sealer's to-do list first, locking its rows (sorted): a
        // sealer claims a bucket by deleting its row, so it waits for this
        // batch to commit and then sees its breakdown rows. Taken after the
        // breakdown rows, a claim in between could miss rows inserted by
        // this batch (they would stay rows: slower, never wrong).
        if !rollup.segments.is_empty() {
            let (links, segs): (Vec<i64>, Vec<i64>) = rollup.segments.keys().copied().unzip();
            sqlx::query(
                "INSERT INTO link_segments (link_id, segment_id)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[])
                 ON CONFLICT DO NOTHING",
            )
            .bind(links)
            .bind(segs)
            .execute(&mut *conn)
            .await?;
        }
        let touched = rollup.touched();
        if !touched.is_empty() {
            sqlx::query(
                "INSERT INTO rollup_dirty (closes_at, link_id, res, bucket, pending)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::int[], $4::bigint[], $5::bigint[])
                 ON CONFLICT (closes_at, link_id, res, bucket)
                 DO UPDATE SET pending = rollup_dirty.pending + excluded.pending",
            )
            .bind(touched.iter().map(|t| t.0).collect::<Vec<_>>())
            .bind(touched.iter().map(|t| t.1).collect::<Vec<_>>())
            .bind(touched.iter().map(|t| t.2 as i32).collect::<Vec<_>>())
            .bind(touched.iter().map(|t| t.3).collect::<Vec<_>>())
            .bind(touched.iter().map(|t| t.4).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        // Series and breakdowns: one upsert each, keys sorted (lock order).
        let series: Vec<_> = std::mem::take(&mut rollup.series).into_iter().collect();
        add_counts(&mut *conn, ADD_SERIES, series).await?;
        let mut totals: Vec<_> = std::mem::take(&mut rollup.totals).into_iter().collect();
        totals.sort_unstable_by_key(|(k, _)| *k);
        if !totals.is_empty() {
            sqlx::query(
                "INSERT INTO link_totals (link_id, bot, clicks)
                 SELECT * FROM UNNEST($1::bigint[], $2::bool[], $3::bigint[])
                 ON CONFLICT (link_id, bot)
                 DO UPDATE SET clicks = link_totals.clicks + excluded.clicks",
            )
            .bind(totals.iter().map(|((l, _), _)| *l).collect::<Vec<_>>())
            .bind(totals.iter().map(|((_, b), _)| *b).collect::<Vec<_>>())
            .bind(totals.iter().map(|(_, n)| *n).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let mut dims: Vec<_> = rollup.take_dims().into_iter().collect();
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
            .execute(&mut *conn)
            .await?;
        }

        // Visitors, per (link, day), under that pair's advisory lock.
        let mut deltas = VisitorDeltas::default();
        for ((link, day), seen) in visitors_by_day(rollup.visitors) {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(visitor_lock(link, day))
                .execute(&mut *conn)
                .await?;
            let ids: Vec<i64> = seen.iter().map(|(v, ..)| *v).collect();
            // One primary-key lookup per visitor, whatever the plan cache
            // holds: `visitor = ANY($3)` as a filter let a generic plan made
            // before the table had statistics scan the whole (link, day),
            // 2.5 s per batch at 340 000 visitors a day.
            let stored: HashMap<i64, i64> = sqlx::query_as::<_, (i64, Option<i64>)>(
                "SELECT q.visitor, (SELECT v.first_at FROM visitors v
                     WHERE v.link_id = $1 AND v.day = $2 AND v.visitor = q.visitor)
                 FROM UNNEST($3::bigint[]) AS q (visitor)",
            )
            .bind(link)
            .bind(day)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .filter_map(|(visitor, first)| Some((visitor, first?)))
            .collect();
            let mut fresh: Vec<(i64, i64, bool)> = Vec::new();
            let mut moved: Vec<(i64, i64)> = Vec::new();
            for (visitor, bot, first) in seen {
                match deltas.see(link, stored.get(&visitor).copied(), first, bot) {
                    FirstClick::New => fresh.push((visitor, first, bot)),
                    FirstClick::Earlier => moved.push((visitor, first)),
                    FirstClick::Known => {}
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
                .execute(&mut *conn)
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
                .execute(&mut *conn)
                .await?;
            }
        }
        add_counts(&mut *conn, ADD_VISITORS, deltas.into_rows()).await?;
        Ok(())
    }
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
    mut rows: Vec<(crate::store::rollup::BucketKey, i64)>,
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

/// Stored event ids (16 bytes each) as UUIDs.
fn event_ids(rows: Vec<Vec<u8>>) -> Result<HashSet<uuid::Uuid>, StoreError> {
    rows.into_iter()
        .map(|b| uuid::Uuid::from_slice(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}
