//! The SQL core shared by the SQLite and PostgreSQL stores: error
//! conversion, row decoding, and every query that reads the same in both
//! dialects, written once.
//!
//! The shared trait impls (`LinkStore`, `KeyStore`, `ReportStore`,
//! `SessionRecords`, `ClickStore`) are expanded for each backend by
//! `sql_store!`; a backend supplies only what truly
//! differs through [`SqlDialect`]: its pools, the queries whose text differs
//! (`ILIKE`, row values, casts), the tag write and the batched click write
//! (multi-row `VALUES` in SQLite, bound arrays and `UNNEST` in PostgreSQL).
//!
//! Why a macro over concrete types rather than generic functions over
//! `DB: sqlx::Database`: each generic query needs higher-ranked bounds for
//! every bound and decoded type (`for<'q> i64: Encode<'q, DB>`, executors,
//! column indexes), which Rust does not imply from a trait and which
//! `async_trait`'s `Send` futures trip over; the expanded code is exactly the
//! monomorphic code written by hand before, so no query costs more. Queries
//! use `$n` placeholders, which SQLite reads as numbered parameters too, so
//! one `&'static str` serves both dialects with no rewriting at run time.

#[macro_use]
mod webhooks;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_clicks;

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};

use super::rollup::{BucketKey, res_code};
use super::{DimCount, Resolution, StoreError};
use crate::domain::{Dimension, EnrichedClick, Link};

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

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Sets an import mark (key, value, updated_at): read the same by
/// SQLite (rusqlite, in a click write's transaction) and PostgreSQL.
pub const UPSERT_MARK: &str =
    "INSERT INTO import_marks (key, value, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";

/// Whether any webhook endpoint wants clicks: read by each click batch in
/// its transaction, which then writes its new clicks into the outbox.
pub(crate) const WANTS_CLICKS: &str =
    "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE wants_clicks)";

/// What a SQL backend supplies beyond the shared core: the parts that differ
/// between dialects. Used by the impls `sql_store!`
/// expands, never as `dyn`.
pub(crate) trait SqlDialect: Sync {
    type Db: sqlx::Database;
    /// `list_links`: `LIKE` is case-insensitive in SQLite, PostgreSQL needs
    /// `ILIKE` and typed NULL checks. Binds: owner, before, tag, pattern, limit.
    const LIST_LINKS: &'static str;
    /// `export_clicks`: the keyset condition on (at, event_id). Binds: link,
    /// from, to, include_bots, after_at, after_id, limit.
    const EXPORT_CLICKS: &'static str;

    /// Run first in a stats read transaction so that all its statements see
    /// one snapshot (PostgreSQL's default isolation takes one per statement;
    /// a SQLite read transaction in WAL mode is a snapshot already).
    const READ_SNAPSHOT: Option<&'static str>;

    /// Begins a write transaction. SQLite: `BEGIN IMMEDIATE`, taking the
    /// write lock (waiting for it) before the first read, since another
    /// connection writes clicks: a deferred transaction that read first
    /// would fail at its first write if that one had committed meanwhile.
    const BEGIN_WRITE: &'static str;
    /// What makes a `SELECT` in a write transaction skip rows another
    /// transaction holds (PostgreSQL's ` FOR UPDATE SKIP LOCKED`; empty for
    /// SQLite, which writes one transaction at a time).
    const SKIP_LOCKED: &'static str;
    /// Locks a link's row (bind: its id) before its clicks are purged, so
    /// that a purge and a click batch (which holds its links' rows shared)
    /// take their locks in one order and never deadlock; `None` where the
    /// database has one writer at a time anyway (SQLite).
    const LOCK_LINK: Option<&'static str>;

    /// [`top_dims_sql`] in this dialect (built once): cut to the top N per
    /// dimension (`limited`) or every value, as JSON.
    fn top_dims(limited: bool) -> &'static str;
    /// [`packs_sql`] in this dialect (built once).
    fn packs() -> &'static str;

    /// Pool for reads (SQLite: read-only connections).
    fn readers(&self) -> &sqlx::Pool<Self::Db>;
    /// Pool for writes (SQLite: its single writer connection).
    fn writer(&self) -> &sqlx::Pool<Self::Db>;

    /// Adds the link's rows to `link_tags` (an update deletes the old ones
    /// first).
    async fn insert_tags(
        tx: &mut <Self::Db as sqlx::Database>::Connection,
        link: &Link,
    ) -> Result<(), StoreError>;
    /// `ClickStore::record_clicks` for a non-empty batch: each backend
    /// writes clicks its own fastest way (PostgreSQL: multi-row statements
    /// through sqlx; SQLite: rusqlite on the caller's thread).
    async fn record_batch(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError>;
    /// `ClickStore::record_counts`, in one transaction.
    async fn record_counted(
        &self,
        counts: &[crate::store::CountedClicks],
        mark: Option<(&str, &str)>,
    ) -> Result<(), StoreError>;
    /// `ClickStore::click_totals`, batched as the dialect binds best.
    async fn totals(
        &self,
        links: &[crate::domain::LinkId],
        include_bots: bool,
    ) -> Result<HashMap<crate::domain::LinkId, u64>, StoreError>;
    /// `ClickStore::delete_raw_clicks_before`, batched as the dialect deletes best.
    async fn delete_raw_before(&self, before: i64) -> Result<u64, StoreError>;

    /// A copy writes the ids of tables whose ids the database generates
    /// (PostgreSQL: `OVERRIDING SYSTEM VALUE`, as they are `GENERATED
    /// ALWAYS`; SQLite takes them as they are).
    const OVERRIDING_GENERATED: &'static str;
    /// After a copy, the statement that makes the generator of `table`'s
    /// ids continue past the copied ones (`None`: it does by itself).
    fn after_copy(table: &str) -> Option<String>;
}

/// Deletes every rolled-up count of link `$1` and of its segments (the
/// variants' stats, see [`crate::domain::LinkId::variant_segment`]), then
/// the list of its segments; in this order, as the segment rows are found
/// through that list.
pub(crate) static ROLLUPS_OF_LINK: LazyLock<Vec<String>> = LazyLock::new(|| {
    let tables = [
        "rollup_series",
        "rollup_dims",
        "visitors",
        "rollup_visitors",
        "link_totals",
        "rollup_packs",
        "rollup_dirty",
    ];
    let mut out = Vec::new();
    for t in tables {
        out.push(format!("DELETE FROM {t} WHERE link_id = $1"));
        out.push(format!(
            "DELETE FROM {t} WHERE link_id IN \
             (SELECT segment_id FROM link_segments WHERE link_id = $1)"
        ));
    }
    out.push("DELETE FROM link_segments WHERE link_id = $1".into());
    out
});

/// How raw clicks count towards each breakdown, in SQL: mirrors
/// [`Dimension::value_of`] (the conformance suite checks that raw and rollup
/// answers agree). The value expression and an extra condition (`None`
/// counts every click). Adding a `Dimension` adds its arm here.
fn raw_dimension(dim: Dimension) -> (&'static str, Option<&'static str>) {
    match dim {
        Dimension::Country => ("COALESCE(country, 'unknown')", None),
        Dimension::City => (
            "CASE WHEN city IS NULL THEN 'unknown'
                  WHEN country IS NULL THEN city
                  ELSE city || ', ' || country END",
            None,
        ),
        Dimension::Referrer => ("COALESCE(referrer_host, 'direct')", None),
        Dimension::Browser => ("browser", None),
        Dimension::Os => ("os", None),
        Dimension::Device => ("device", None),
        Dimension::UtmSource => ("utm_source", Some("utm_source IS NOT NULL")),
        Dimension::UtmMedium => ("utm_medium", Some("utm_medium IS NOT NULL")),
        Dimension::UtmCampaign => ("utm_campaign", Some("utm_campaign IS NOT NULL")),
        Dimension::Rule => ("route_rule", Some("route_rule IS NOT NULL")),
        Dimension::Variant => ("route_variant", Some("route_variant IS NOT NULL")),
    }
}

/// Raw clicks per breakdown value, counted in SQL so that only one row per
/// value comes back; built once from [`raw_dimension`]. Binds: link, from,
/// to, include_bots. Rows: (dim, value, clicks).
pub(crate) static RAW_DIMENSIONS: LazyLock<String> = LazyLock::new(|| {
    let mut sql = String::from(
        "WITH c AS (SELECT * FROM clicks
             WHERE link_id = $1 AND at >= $2 AND at < $3 AND (NOT bot OR $4))",
    );
    for (i, dim) in Dimension::ALL.into_iter().enumerate() {
        let (value, filter) = raw_dimension(dim);
        let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
        sql.push_str(if i == 0 {
            "\n SELECT "
        } else {
            "\n UNION ALL SELECT "
        });
        sql.push_str(&format!(
            "CAST({} AS SMALLINT), {value}, COUNT(*) FROM c{filter} GROUP BY 2",
            dim as i64
        ));
    }
    sql
});

/// Deletes one link's breakdown rows of a grain before a bucket: binds link,
/// res, bucket. Every dimension is named so that each delete is a range of
/// the key (link, res, dim, bucket).
pub(crate) static PRUNE_DIMS: LazyLock<String> = LazyLock::new(|| {
    let dims: Vec<String> = Dimension::ALL
        .iter()
        .map(|d| (*d as i64).to_string())
        .collect();
    format!(
        "DELETE FROM rollup_dims WHERE link_id = $1 AND res = $2 AND dim IN ({}) AND bucket < $3",
        dims.join(", ")
    )
});

/// Most breakdown pieces one statement reads ([`top_dims_sql`]); a split of
/// [week, day, hour, quarter hour, five minutes, minute] has at most eleven.
pub(crate) const TOP_DIMS_PIECES: usize = 11;

/// Breakdowns over up to [`TOP_DIMS_PIECES`] rollup pieces, summed and cut
/// to the top N per dimension in SQL, so that a link with thousands of
/// cities returns tens of rows, not every value of every bucket. Ties go by
/// value in byte order (`collate`), as `stats::link_stats` orders them.
/// Binds: link, include_bots, top, then (res, from, to) per piece (unused
/// pieces have an empty range).
///
/// One grouped, bounded top-N per dimension: the key starts (link, res,
/// dim, bucket), so each reads only its own dimension's rows and groups
/// only them. Grouping every dimension's rows at once and then picking each
/// dimension's top from the result read that result nine times (measured
/// on a day of 16 000 cities: 21 ms for all nine lists, 7 ms this way; a
/// window function over all rows was slower still).
///
/// `lateral`: join each piece to its rows with `CROSS JOIN LATERAL`, so that
/// PostgreSQL reads each piece by the primary key whatever its statistics
/// say (a plan made while the table looked small could scan it whole).
/// SQLite has no `LATERAL`; its `CROSS JOIN` fixes the loop order instead
/// (pieces outside, so each is a range of the key): left to itself, SQLite
/// 3.51 scanned every row of the link and probed the pieces (8 → 140 ms on
/// a day of 16 000 cities).
///
/// With `all_as_json`: every value of each dimension, summed (binds the
/// same; the top is unused), to be added to sealed packs and cut in Rust.
/// They come back as one JSON array per dimension (`all_as_json` is the
/// dialect's aggregate of `[value, n]` pairs, `'[]'` when none): fetching
/// thousands of rows one by one cost about 3 µs a row in sqlx; one JSON
/// text per dimension costs a fraction of that.
pub(crate) fn top_dims_sql(collate: &str, lateral: bool, all_as_json: Option<&str>) -> String {
    let tops: Vec<String> = Dimension::ALL
        .iter()
        .map(|dim| {
            let dim = *dim as i64;
            let rows = format!(
                "d.link_id = $1 AND d.res = p.res AND d.dim = {dim}
                 AND d.bucket >= p.lo AND d.bucket < p.hi AND (NOT d.bot OR $2)"
            );
            let from = if lateral {
                format!(
                    "p CROSS JOIN LATERAL (SELECT d.value, d.clicks FROM rollup_dims d
                         WHERE {rows}) AS r"
                )
            } else {
                format!("p CROSS JOIN rollup_dims d ON {rows}")
            };
            let sums = format!(
                "SELECT value, CAST(SUM(clicks) AS BIGINT) AS n
                   FROM {from} WHERE p.lo < p.hi GROUP BY value"
            );
            match all_as_json {
                None => format!(
                    "SELECT * FROM (SELECT CAST({dim} AS SMALLINT) AS dim, value, n
                       FROM ({sums}) AS s ORDER BY n DESC, value {collate} LIMIT $3) AS t{dim}"
                ),
                Some(json_agg) => format!(
                    "SELECT CAST({dim} AS SMALLINT) AS dim, {json_agg} AS vs FROM ({sums}) AS t{dim}"
                ),
            }
        })
        .collect();
    format!("{} {}", pieces_cte(4), tops.join("\n UNION ALL "))
}

/// `WITH p (res, lo, hi)`: [`TOP_DIMS_PIECES`] pieces bound from `$first`
/// on, as (res, from, to) each; unused pieces have an empty range.
fn pieces_cte(first: usize) -> String {
    let pieces: Vec<String> = (0..TOP_DIMS_PIECES)
        .map(|i| {
            let n = first + 3 * i;
            format!(
                "(CAST(${n} AS INTEGER), CAST(${} AS BIGINT), CAST(${} AS BIGINT))",
                n + 1,
                n + 2
            )
        })
        .collect();
    format!("WITH p (res, lo, hi) AS (VALUES {})", pieces.join(", "))
}

/// The sealed packs (dim, pack) of up to [`TOP_DIMS_PIECES`] pieces. Binds:
/// link, include_bots, then (res, from, to) per piece. `lateral` as in
/// [`top_dims_sql`].
pub(crate) fn packs_sql(lateral: bool) -> String {
    let rows = "k.link_id = $1 AND k.res = p.res AND k.bucket >= p.lo AND k.bucket < p.hi
                AND (NOT k.bot OR $2)";
    let from = if lateral {
        format!("p CROSS JOIN LATERAL (SELECT k.dim, k.pack FROM rollup_packs k WHERE {rows}) AS k")
    } else {
        format!("p CROSS JOIN rollup_packs k ON {rows}")
    };
    format!(
        "{} SELECT k.dim, k.pack FROM {from} WHERE p.lo < p.hi",
        pieces_cte(3)
    )
}

/// Claims one bucket's breakdown rows for sealing: deletes them and returns
/// them. Binds link, res, bucket. Each dimension is named, as in
/// [`PRUNE_DIMS`], so the delete is a range of the key per dimension.
pub(crate) static SEAL_DIMS: LazyLock<String> = LazyLock::new(|| {
    let dims: Vec<String> = Dimension::ALL
        .iter()
        .map(|d| (*d as i64).to_string())
        .collect();
    format!(
        "DELETE FROM rollup_dims WHERE link_id = $1 AND res = $2 AND dim IN ({}) AND bucket = $3
         RETURNING dim, bot, value, clicks",
        dims.join(", ")
    )
});

/// Breakdown rows (dim, value, clicks) as the store answers them.
pub(crate) fn dim_counts(rows: Vec<(i16, String, i64)>) -> Result<Vec<DimCount>, StoreError> {
    rows.into_iter()
        .map(|(dim, value, clicks)| {
            Ok(DimCount {
                dim: super::pack::dimension(dim)?,
                value,
                clicks: clicks as u64,
            })
        })
        .collect()
}

/// The `res` column's value for a resolution, typed as the column is.
pub(crate) fn res_column(res: Resolution) -> i32 {
    res_code(res) as i32
}

/// Visitor-rollup deltas of one batch: a visitor counts in the hour and day
/// of its first click, so a new one adds there and one whose first click
/// moved earlier moves buckets.
#[derive(Default)]
pub(crate) struct VisitorDeltas(pub HashMap<BucketKey, i64>);

/// What a visitor's first click in a batch means for the stored row.
pub(crate) enum FirstClick {
    /// No row yet: insert one.
    New,
    /// Earlier than the stored first click: move the row's `first_at`.
    Earlier,
    /// Not earlier: nothing to write.
    Known,
}

impl VisitorDeltas {
    /// Counts a visitor's first click in this batch (`first`) against the
    /// stored one (`stored`), and says what the dialect must write.
    pub fn see(&mut self, link: i64, stored: Option<i64>, first: i64, bot: bool) -> FirstClick {
        match stored {
            None => {
                self.count(link, first, bot, 1);
                FirstClick::New
            }
            Some(old) if first < old => {
                self.count(link, old, bot, -1);
                self.count(link, first, bot, 1);
                FirstClick::Earlier
            }
            Some(_) => FirstClick::Known,
        }
    }

    fn count(&mut self, link: i64, at: i64, bot: bool, delta: i64) {
        for res in super::rollup::VISITOR_GRAINS {
            *self
                .0
                .entry((link, res_code(res), res.floor(at), bot))
                .or_default() += delta;
        }
    }

    /// The non-zero deltas, ready to upsert.
    pub fn into_rows(self) -> Vec<(BucketKey, i64)> {
        self.0.into_iter().filter(|(_, n)| *n != 0).collect()
    }
}

/// One (link, UTC day)'s visitors in a batch: (visitor, bot, first click).
pub(crate) type DayVisitors = Vec<(i64, bool, i64)>;

/// A batch's visitors grouped by (link, UTC day), in key order (so that
/// concurrent writers take locks alike).
pub(crate) fn visitors_by_day(
    visitors: super::rollup::Map<(i64, i64, i64), (bool, i64)>,
) -> Vec<((i64, i64), DayVisitors)> {
    let mut by_day: HashMap<(i64, i64), DayVisitors> = HashMap::new();
    for ((link, day, visitor), (bot, first)) in visitors {
        by_day
            .entry((link, day))
            .or_default()
            .push((visitor, bot, first));
    }
    let mut days: Vec<_> = by_day.into_iter().collect();
    days.sort_unstable_by_key(|(k, _)| *k);
    days
}

/// Expands the shared trait impls for a SQL store type that implements
/// [`SqlDialect`]. Every query here reads the same in both dialects.
macro_rules! sql_store {
    ($store:ty) => {
        const _: () = {
            use std::collections::HashMap;

            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::Row;
            use uuid::Uuid;

            use $crate::domain::{
                DeviceType, EnrichedClick, KeyId, Link, LinkId, RedirectStatus, Slug, TargetUrl,
                Route, Utm,
            };
            use $crate::store::sql::{
                PRUNE_DIMS, RAW_DIMENSIONS, SEAL_DIMS, SqlDialect, TOP_DIMS_PIECES, dim_counts, from_ms,
                ms, res_column,
            };
            use $crate::store::copy::{Cell, CopyRows, Kind, TABLES, Table};
            use $crate::store::pack::{self, DimSums};
            use $crate::store::{
                ApiKey, ClickStore, ClickTotals, Conflict, DimCount, ExportCursor, KeyStore,
                ImportMarks, LinkQuery, LinkStore, Report, ReportStore, Resolution, SessionRecords, StatsReads,
                StatsRows, StoreError, Takedown, TimeRange, host_in_domain, like_containing,
            };

            type DbRow = <<$store as SqlDialect>::Db as sqlx::Database>::Row;

            fn link_from_row(row: &DbRow) -> Result<Link, StoreError> {
                let slug: String = row.try_get("slug")?;
                let target: String = row.try_get("target")?;
                let tags: String = row.try_get("tags")?;
                let status: i16 = row.try_get("redirect_status")?;
                let secret: Option<Vec<u8>> = row.try_get("secret_hash")?;
                let rules: Option<String> = row.try_get("rules")?;
                let fallback: Option<String> = row.try_get("fallback_url")?;
                Ok(Link {
                    id: LinkId(row.try_get("id")?),
                    slug: Slug::parse_path(&slug)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    target: TargetUrl::from_stored(&target)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    title: row.try_get("title")?,
                    tags: serde_json::from_str(&tags)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
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
                    rules: rules
                        .map(|r| serde_json::from_str(&r))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(format!("link rules: {e}")))?
                        .unwrap_or_default(),
                    fallback_url: fallback
                        .map(|f| TargetUrl::from_stored(&f))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    password_hash: row.try_get("password_hash")?,
                    preview: row
                        .try_get::<Option<String>, _>("preview")?
                        .map(|p| serde_json::from_str(&p))
                        .transpose()
                        .map_err(|e| StoreError::Corrupt(format!("link preview: {e}")))?,
                })
            }

            /// A link's preview as stored: JSON, or NULL for none.
            fn preview_json(link: &Link) -> Option<String> {
                link.preview
                    .as_ref()
                    .and_then(|p| serde_json::to_string(p).ok())
            }

            /// A link's rules as stored: the API's JSON, or NULL for none.
            fn rules_json(link: &Link) -> Option<String> {
                (!link.rules.is_empty()).then(|| {
                    serde_json::to_string(&link.rules).unwrap_or_else(|_| "[]".into())
                })
            }

            fn click_from_row(row: &DbRow) -> Result<EnrichedClick, StoreError> {
                let id: Vec<u8> = row.try_get("event_id")?;
                let device: String = row.try_get("device")?;
                Ok(EnrichedClick {
                    event_id: Uuid::from_slice(&id)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
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
                    route: Route {
                        rule: row.try_get("route_rule")?,
                        variant: row.try_get("route_variant")?,
                    },
                })
            }

            fn key_from_row(row: &DbRow) -> Result<ApiKey, StoreError> {
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

            fn report_from_row(row: &DbRow) -> Result<Report, StoreError> {
                Ok(Report {
                    id: row.try_get("id")?,
                    slug: row.try_get("slug")?,
                    link_id: row.try_get::<Option<i64>, _>("link_id")?.map(LinkId),
                    reason: row.try_get("reason")?,
                    details: row.try_get("details")?,
                    created_at: from_ms(row.try_get("created_at")?),
                })
            }

            sql_webhooks!($store);

            #[async_trait]
            impl LinkStore for $store {
                async fn insert_link(
                    &self,
                    link: &Link,
                ) -> Result<Result<(), Conflict>, StoreError> {
                    let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                    let inserted = sqlx::query(
                        "INSERT INTO links (id, slug, target, title, tags, created_at, updated_at,
                             expires_at, max_clicks, redirect_status, disabled, owner_key, secret_hash,
                             rules, fallback_url, password_hash, preview)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                             $16, $17)
                         ON CONFLICT DO NOTHING",
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
                    .bind(rules_json(link))
                    .bind(link.fallback_url.as_ref().map(|u| u.as_str().to_owned()))
                    .bind(&link.password_hash)
                    .bind(preview_json(link))
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
                    <$store>::insert_tags(&mut tx, link).await?;
                    outbox_link_event(&mut tx, &LinkEvent::new(EventType::LinkCreated, link))
                        .await?;
                    tx.commit().await?;
                    Ok(Ok(()))
                }

                async fn link_by_slug(&self, slug: &Slug) -> Result<Option<Link>, StoreError> {
                    let row = sqlx::query("SELECT * FROM links WHERE slug = $1")
                        .bind(slug.as_str())
                        .fetch_optional(self.readers())
                        .await?;
                    row.as_ref().map(link_from_row).transpose()
                }

                async fn list_links(&self, q: &LinkQuery) -> Result<Vec<Link>, StoreError> {
                    let pattern = q.text.as_deref().map(like_containing);
                    let rows = sqlx::query(<$store>::LIST_LINKS)
                        .bind(q.owner.map(|k| k.0))
                        .bind(q.before.map(|b| b.0))
                        .bind(&q.tag)
                        .bind(pattern)
                        .bind(q.limit as i64)
                        .fetch_all(self.readers())
                        .await?;
                    rows.iter().map(link_from_row).collect()
                }

                async fn update_link(&self, link: &Link) -> Result<bool, StoreError> {
                    let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                    let n = sqlx::query(
                        "UPDATE links SET target = $1, title = $2, tags = $3, updated_at = $4,
                             expires_at = $5, max_clicks = $6, redirect_status = $7, disabled = $8,
                             rules = $10, fallback_url = $11, password_hash = $12,
                             preview = $13
                         WHERE id = $9",
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
                    .bind(rules_json(link))
                    .bind(link.fallback_url.as_ref().map(|u| u.as_str().to_owned()))
                    .bind(&link.password_hash)
                    .bind(preview_json(link))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Ok(false);
                    }
                    sqlx::query("DELETE FROM link_tags WHERE link_id = $1")
                        .bind(link.id.0)
                        .execute(&mut *tx)
                        .await?;
                    <$store>::insert_tags(&mut tx, link).await?;
                    outbox_link_event(&mut tx, &LinkEvent::new(EventType::LinkUpdated, link))
                        .await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn delete_link(&self, slug: &Slug) -> Result<bool, StoreError> {
                    let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                    let Some(row) = sqlx::query("DELETE FROM links WHERE slug = $1 RETURNING *")
                        .bind(slug.as_str())
                        .fetch_optional(&mut *tx)
                        .await?
                    else {
                        return Ok(false);
                    };
                    let deleted = link_from_row(&row)?;
                    let id = deleted.id.0;
                    outbox_link_event(&mut tx, &LinkEvent::new(EventType::LinkDeleted, &deleted))
                        .await?;
                    for statement in [
                        "DELETE FROM link_tags WHERE link_id = $1",
                        "DELETE FROM clicks WHERE link_id = $1",
                    ]
                    .into_iter()
                    .chain($crate::store::sql::ROLLUPS_OF_LINK.iter().map(String::as_str))
                    {
                        sqlx::query(statement).bind(id).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(true)
                }

                async fn claim_click(
                    &self,
                    link: LinkId,
                    max_clicks: u64,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                    let served: Option<i64> = sqlx::query_scalar(
                        "UPDATE links SET served = served + 1 WHERE id = $1 AND served < $2
                         RETURNING served",
                    )
                    .bind(link.0)
                    .bind(max_clicks as i64)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if served == Some(max_clicks as i64) {
                        // This click reached the limit: link.exhausted.
                        let row = sqlx::query("SELECT * FROM links WHERE id = $1")
                            .bind(link.0)
                            .fetch_one(&mut *tx)
                            .await?;
                        let event = LinkEvent::new(EventType::LinkExhausted, &link_from_row(&row)?);
                        outbox_link_event(&mut tx, &event).await?;
                    }
                    tx.commit().await?;
                    Ok(served.is_some())
                }

                async fn ping(&self) -> Result<(), StoreError> {
                    sqlx::query("SELECT 1").execute(self.readers()).await?;
                    Ok(())
                }
            }

            #[async_trait]
            impl KeyStore for $store {
                async fn insert_key(
                    &self,
                    name: &str,
                    hash: [u8; 32],
                    admin: bool,
                ) -> Result<ApiKey, StoreError> {
                    let row = sqlx::query(
                        "INSERT INTO api_keys (name, hash, admin, created_at)
                         VALUES ($1, $2, $3, $4) RETURNING *",
                    )
                    .bind(name)
                    .bind(hash.to_vec())
                    .bind(admin)
                    .bind(ms(Utc::now()))
                    .fetch_one(self.writer())
                    .await?;
                    key_from_row(&row)
                }

                async fn key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
                    let row = sqlx::query("SELECT * FROM api_keys WHERE hash = $1")
                        .bind(hash.to_vec())
                        .fetch_optional(self.readers())
                        .await?;
                    row.as_ref().map(key_from_row).transpose()
                }

                async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
                    let rows = sqlx::query("SELECT * FROM api_keys ORDER BY id")
                        .fetch_all(self.readers())
                        .await?;
                    rows.iter().map(key_from_row).collect()
                }

                async fn revoke_key(&self, id: KeyId) -> Result<bool, StoreError> {
                    let n = sqlx::query(
                        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(ms(Utc::now()))
                    .bind(id.0)
                    .execute(self.writer())
                    .await?
                    .rows_affected();
                    Ok(n == 1)
                }
            }

            #[async_trait]
            impl ReportStore for $store {
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
                    .fetch_one(self.writer())
                    .await?;
                    report_from_row(&row)
                }

                async fn list_reports(
                    &self,
                    before: Option<i64>,
                    limit: usize,
                ) -> Result<Vec<Report>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT * FROM reports WHERE id < $1 ORDER BY id DESC LIMIT $2",
                    )
                    .bind(before.unwrap_or(i64::MAX))
                    .bind(limit as i64)
                    .fetch_all(self.readers())
                    .await?;
                    rows.iter().map(report_from_row).collect()
                }

                async fn links_to_domain(&self, domain: &str) -> Result<Vec<Link>, StoreError> {
                    // Narrowed in SQL by the domain's text, decided on the parsed host.
                    let pattern = like_containing(&domain.to_ascii_lowercase());
                    let rows =
                        sqlx::query("SELECT * FROM links WHERE lower(target) LIKE $1 ESCAPE '\\'")
                            .bind(pattern)
                            .fetch_all(self.readers())
                            .await?;
                    let mut links = Vec::new();
                    for row in &rows {
                        let link = link_from_row(row)?;
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
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn remove_takedown(&self, domain: &str) -> Result<bool, StoreError> {
                    let done = sqlx::query("DELETE FROM takedowns WHERE domain = $1")
                        .bind(domain)
                        .execute(self.writer())
                        .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn list_takedowns(&self) -> Result<Vec<Takedown>, StoreError> {
                    let rows = sqlx::query(
                        "SELECT domain, reason, created_at FROM takedowns ORDER BY domain",
                    )
                    .fetch_all(self.readers())
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(Takedown {
                                domain: row.try_get("domain")?,
                                reason: row.try_get("reason")?,
                                created_at: DateTime::from_timestamp_millis(
                                    row.try_get("created_at")?,
                                )
                                .unwrap_or_default(),
                            })
                        })
                        .collect()
                }
            }

            #[async_trait]
            impl ImportMarks for $store {
                async fn import_mark(&self, key: &str) -> Result<Option<String>, StoreError> {
                    Ok(sqlx::query_scalar("SELECT value FROM import_marks WHERE key = $1")
                        .bind(key)
                        .fetch_optional(self.writer())
                        .await?)
                }

                async fn set_import_mark(&self, key: &str, value: &str) -> Result<(), StoreError> {
                    sqlx::query($crate::store::sql::UPSERT_MARK)
                    .bind(key)
                    .bind(value)
                    .bind(Utc::now().timestamp_millis())
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }
            }

            #[async_trait]
            impl SessionRecords for $store {
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
                    .fetch_optional(self.readers())
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
                         ON CONFLICT (id_hash)
                         DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
                    )
                    .bind(id_hash.as_slice())
                    .bind(data)
                    .bind(expires_at)
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
                    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                        .bind(id_hash.as_slice())
                        .execute(self.writer())
                        .await?;
                    Ok(())
                }

                async fn take_session(
                    &self,
                    id_hash: &[u8; 32],
                    now: i64,
                ) -> Result<Option<String>, StoreError> {
                    let row: Option<(String, i64)> = sqlx::query_as(
                        "DELETE FROM sessions WHERE id_hash = $1 RETURNING data, expires_at",
                    )
                    .bind(id_hash.as_slice())
                    .fetch_optional(self.writer())
                    .await?;
                    Ok(row.filter(|(_, exp)| *exp > now).map(|(data, _)| data))
                }

                async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError> {
                    Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                        .bind(now)
                        .execute(self.writer())
                        .await?
                        .rows_affected())
                }
            }

            type Conn = <<$store as SqlDialect>::Db as sqlx::Database>::Connection;

            /// Clicks per minute (`Raw`, `Minute`) or quarter hour.
            async fn series_piece(
                conn: &mut Conn,
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
                        .fetch_all(&mut *conn)
                        .await?
                    }
                    Resolution::Minute | Resolution::QuarterHour => {
                        sqlx::query_as(
                            "SELECT bucket, CAST(SUM(clicks) AS BIGINT) FROM rollup_series
                             WHERE link_id = $1 AND res = $2 AND bucket >= $3 AND bucket < $4
                               AND (NOT bot OR $5)
                             GROUP BY bucket ORDER BY bucket",
                        )
                        .bind(link.0)
                        .bind(res_column(res))
                        .bind(range.from)
                        .bind(range.to)
                        .bind(include_bots)
                        .fetch_all(&mut *conn)
                        .await?
                    }
                    _ => return Err(StoreError::Unsupported("series at this resolution")),
                };
                Ok(rows.into_iter().map(|(b, n)| (b, n as u64)).collect())
            }

            /// The top `top` values per dimension over rollup pieces, in one
            /// statement.
            async fn top_dims(
                conn: &mut Conn,
                link: LinkId,
                pieces: &[(Resolution, TimeRange)],
                include_bots: bool,
                top: usize,
            ) -> Result<Vec<DimCount>, StoreError> {
                let q = sqlx::query_as::<_, (i16, String, i64)>(<$store>::top_dims(true))
                    .bind(link.0)
                    .bind(include_bots)
                    .bind(i64::try_from(top).unwrap_or(i64::MAX));
                dim_counts(bind_pieces(q, pieces).fetch_all(&mut *conn).await?)
            }

            /// Every value per dimension over rollup pieces, in one
            /// statement: (dimension code, JSON array of [value, clicks]).
            async fn all_dims(
                conn: &mut Conn,
                link: LinkId,
                pieces: &[(Resolution, TimeRange)],
                include_bots: bool,
            ) -> Result<Vec<(i16, String)>, StoreError> {
                let q = sqlx::query_as::<_, (i16, String)>(<$store>::top_dims(false))
                    .bind(link.0)
                    .bind(include_bots)
                    .bind(0i64);
                Ok(bind_pieces(q, pieces).fetch_all(&mut *conn).await?)
            }

            /// Binds (res, from, to) of each of [`TOP_DIMS_PIECES`] pieces;
            /// those past the end of `pieces` are empty.
            fn bind_pieces<'q, O>(
                mut q: sqlx::query::QueryAs<
                    'q,
                    <$store as SqlDialect>::Db,
                    O,
                    <<$store as SqlDialect>::Db as sqlx::Database>::Arguments,
                >,
                pieces: &[(Resolution, TimeRange)],
            ) -> sqlx::query::QueryAs<
                'q,
                <$store as SqlDialect>::Db,
                O,
                <<$store as SqlDialect>::Db as sqlx::Database>::Arguments,
            > {
                for i in 0..TOP_DIMS_PIECES {
                    let (res, range) = pieces
                        .get(i)
                        .copied()
                        .unwrap_or((Resolution::Minute, TimeRange { from: 0, to: 0 }));
                    q = q.bind(res_column(res)).bind(range.from).bind(range.to);
                }
                q
            }

            /// The sealed packs (dimension code, bytes) of rollup pieces, in
            /// one statement.
            async fn dim_packs(
                conn: &mut Conn,
                link: LinkId,
                pieces: &[(Resolution, TimeRange)],
                include_bots: bool,
            ) -> Result<Vec<(i16, Vec<u8>)>, StoreError> {
                let q = sqlx::query_as::<_, (i16, Vec<u8>)>(<$store>::packs())
                    .bind(link.0)
                    .bind(include_bots);
                Ok(bind_pieces(q, pieces).fetch_all(&mut *conn).await?)
            }

            /// Breakdowns over rollup pieces cut to the top `top` per
            /// dimension: in SQL when no bucket of them is sealed, else
            /// the rows' sums and the packs added up in Rust.
            async fn rolled_dims(
                conn: &mut Conn,
                link: LinkId,
                pieces: &[(Resolution, TimeRange)],
                include_bots: bool,
                top: usize,
            ) -> Result<Vec<DimCount>, StoreError> {
                let packs = dim_packs(&mut *conn, link, pieces, include_bots).await?;
                if packs.is_empty() {
                    return top_dims(conn, link, pieces, include_bots, top).await;
                }
                let loose = all_dims(&mut *conn, link, pieces, include_bots).await?;
                let loose: Vec<($crate::domain::Dimension, Vec<(String, u64)>)> = loose
                    .into_iter()
                    .map(|(dim, json)| {
                        let values = serde_json::from_str(&json)
                            .map_err(|e| StoreError::Corrupt(format!("breakdown rows: {e}")))?;
                        Ok((pack::dimension(dim)?, values))
                    })
                    .collect::<Result<_, StoreError>>()?;
                let mut sums = DimSums::default();
                for (dim, values) in &loose {
                    for (value, n) in values {
                        sums.add(*dim, value, *n);
                    }
                }
                for (dim, bytes) in &packs {
                    sums.add_pack(pack::dimension(*dim)?, bytes)?;
                }
                Ok(sums.top(top))
            }

            /// Clicks per (dimension, value).
            async fn dims_piece(
                conn: &mut Conn,
                link: LinkId,
                res: Resolution,
                range: TimeRange,
                include_bots: bool,
            ) -> Result<Vec<DimCount>, StoreError> {
                let rows: Vec<(i16, String, i64)> = match res {
                    Resolution::Raw => {
                        sqlx::query_as(RAW_DIMENSIONS.as_str())
                            .bind(link.0)
                            .bind(range.from)
                            .bind(range.to)
                            .bind(include_bots)
                            .fetch_all(&mut *conn)
                            .await?
                    }
                    Resolution::Minute
                    | Resolution::FiveMinutes
                    | Resolution::QuarterHour
                    | Resolution::Hour
                    | Resolution::Day
                    | Resolution::Week => {
                        let packs: Vec<(i16, Vec<u8>)> = sqlx::query_as(
                            "SELECT dim, pack FROM rollup_packs
                             WHERE link_id = $1 AND res = $2 AND bucket >= $3 AND bucket < $4
                               AND (NOT bot OR $5)",
                        )
                        .bind(link.0)
                        .bind(res_column(res))
                        .bind(range.from)
                        .bind(range.to)
                        .bind(include_bots)
                        .fetch_all(&mut *conn)
                        .await?;
                        let mut rows: Vec<(i16, String, i64)> = sqlx::query_as(
                            "SELECT dim, value, CAST(SUM(clicks) AS BIGINT) FROM rollup_dims
                             WHERE link_id = $1 AND res = $2 AND bucket >= $3 AND bucket < $4
                               AND (NOT bot OR $5)
                             GROUP BY dim, value",
                        )
                        .bind(link.0)
                        .bind(res_column(res))
                        .bind(range.from)
                        .bind(range.to)
                        .bind(include_bots)
                        .fetch_all(&mut *conn)
                        .await?;
                        // Sealed buckets: their values as rows too (the
                        // caller sums a piece's rows by value).
                        for d in pack::unpack(&packs)? {
                            rows.push((d.dim as i16, d.value, d.clicks as i64));
                        }
                        rows
                    }
                };
                dim_counts(rows)
            }

            /// New visitors (first click of their UTC day in the range).
            async fn visitors_piece(
                conn: &mut Conn,
                link: LinkId,
                res: Resolution,
                range: TimeRange,
                include_bots: bool,
            ) -> Result<u64, StoreError> {
                let n: Option<i64> = match res {
                    Resolution::Raw => {
                        sqlx::query_scalar(
                            "SELECT COUNT(*) FROM visitors
                             WHERE link_id = $1 AND first_at >= $2 AND first_at < $3
                               AND (NOT bot OR $4)",
                        )
                        .bind(link.0)
                        .bind(range.from)
                        .bind(range.to)
                        .bind(include_bots)
                        .fetch_one(&mut *conn)
                        .await?
                    }
                    Resolution::Minute
                    | Resolution::FiveMinutes
                    | Resolution::QuarterHour
                    | Resolution::Hour
                    | Resolution::Day => {
                        sqlx::query_scalar(
                            "SELECT CAST(SUM(visitors) AS BIGINT) FROM rollup_visitors
                             WHERE link_id = $1 AND res = $2 AND bucket >= $3 AND bucket < $4
                               AND (NOT bot OR $5)",
                        )
                        .bind(link.0)
                        .bind(res_column(res))
                        .bind(range.from)
                        .bind(range.to)
                        .bind(include_bots)
                        .fetch_one(&mut *conn)
                        .await?
                    }
                    _ => return Err(StoreError::Unsupported("visitors at this resolution")),
                };
                Ok(n.unwrap_or(0) as u64)
            }

            #[async_trait]
            impl ClickStore for $store {
                async fn record_clicks(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError> {
                    if clicks.is_empty() {
                        return Ok(0);
                    }
                    self.record_batch(clicks).await
                }

                async fn record_counts(
                    &self,
                    counts: &[$crate::store::CountedClicks],
                    mark: Option<(&str, &str)>,
                ) -> Result<(), StoreError> {
                    self.record_counted(counts, mark).await
                }

                async fn stats_rows(
                    &self,
                    link: LinkId,
                    reads: &StatsReads,
                    include_bots: bool,
                    top: usize,
                ) -> Result<StatsRows, StoreError> {
                    // One read transaction: every piece sees one snapshot.
                    let mut tx = self.readers().begin().await?;
                    if let Some(snapshot) = <$store>::READ_SNAPSHOT {
                        sqlx::query(snapshot).execute(&mut *tx).await?;
                    }
                    let mut rows = StatsRows::default();
                    for (res, range) in &reads.series {
                        rows.series
                            .extend(series_piece(&mut tx, link, *res, *range, include_bots).await?);
                    }
                    let rolled = reads.dims.iter().all(|(res, _)| *res != Resolution::Raw);
                    if rolled && reads.dims.len() <= TOP_DIMS_PIECES {
                        if !reads.dims.is_empty() {
                            rows.dims =
                                rolled_dims(&mut tx, link, &reads.dims, include_bots, top).await?;
                        }
                    } else {
                        for (res, range) in &reads.dims {
                            rows.dims.extend(
                                dims_piece(&mut tx, link, *res, *range, include_bots).await?,
                            );
                        }
                    }
                    for (res, range) in &reads.visitors {
                        rows.visitors +=
                            visitors_piece(&mut tx, link, *res, *range, include_bots).await?;
                    }
                    tx.commit().await?;
                    Ok(rows)
                }

                async fn link_totals(&self, link: LinkId) -> Result<ClickTotals, StoreError> {
                    let rows: Vec<(bool, i64)> =
                        sqlx::query_as("SELECT bot, clicks FROM link_totals WHERE link_id = $1")
                            .bind(link.0)
                            .fetch_all(self.readers())
                            .await?;
                    let mut totals = ClickTotals::default();
                    for (bot, n) in rows {
                        totals.with_bots += n as u64;
                        if !bot {
                            totals.humans += n as u64;
                        }
                    }
                    Ok(totals)
                }

                async fn prune_minute_rollups(&self, before: i64) -> Result<u64, StoreError> {
                    // Link by link, so each delete is a range of the key.
                    let links: Vec<i64> = sqlx::query_scalar(
                        "SELECT id FROM links UNION SELECT segment_id FROM link_segments",
                    )
                    .fetch_all(self.readers())
                    .await?;
                    let mut n = 0;
                    for link in links {
                        for res in $crate::store::rollup::WINDOW_GRAINS {
                            for statement in [
                                PRUNE_DIMS.as_str(),
                                "DELETE FROM rollup_packs WHERE link_id = $1 AND res = $2 AND bucket < $3",
                                "DELETE FROM rollup_visitors WHERE link_id = $1 AND res = $2 AND bucket < $3",
                            ] {
                                n += sqlx::query(statement)
                                    .bind(link)
                                    .bind(res_column(res))
                                    .bind(before)
                                    .execute(self.writer())
                                    .await?
                                    .rows_affected();
                            }
                        }
                    }
                    // Left unsealed that long only if no sealer ran: the
                    // rows are gone, so is the to-do.
                    for res in $crate::store::rollup::WINDOW_GRAINS {
                        sqlx::query("DELETE FROM rollup_dirty WHERE res = $1 AND bucket < $2")
                            .bind(res_column(res))
                            .bind(before)
                            .execute(self.writer())
                            .await?;
                    }
                    Ok(n)
                }

                async fn seal_rollups(
                    &self,
                    horizon: i64,
                    open_rows: u64,
                    limit: usize,
                ) -> Result<u64, StoreError> {
                    let due: Vec<(i64, i64, i32, i64)> = sqlx::query_as(
                        "SELECT closes_at, link_id, res, bucket FROM rollup_dirty
                         WHERE closes_at <= $1 OR pending >= $2 ORDER BY closes_at LIMIT $3",
                    )
                    .bind(horizon)
                    .bind(i64::try_from(open_rows).unwrap_or(i64::MAX))
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(self.writer())
                    .await?;
                    let mut sealed = 0;
                    for (closes_at, link, res, bucket) in due {
                        // One bucket per transaction. Deleting its to-do
                        // row claims it: a second sealer waits for this one
                        // and then finds nothing to claim, and a writer
                        // adding to the bucket meanwhile (PostgreSQL) waits
                        // on that row too, then makes a new one.
                        let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                        let claimed = sqlx::query(
                            "DELETE FROM rollup_dirty
                             WHERE closes_at = $1 AND link_id = $2 AND res = $3 AND bucket = $4",
                        )
                        .bind(closes_at)
                        .bind(link)
                        .bind(res)
                        .bind(bucket)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if claimed == 0 {
                            continue;
                        }
                        let rows: Vec<(i16, bool, String, i64)> = sqlx::query_as(SEAL_DIMS.as_str())
                            .bind(link)
                            .bind(res)
                            .bind(bucket)
                            .fetch_all(&mut *tx)
                            .await?;
                        if rows.is_empty() {
                            tx.commit().await?;
                            continue;
                        }
                        let old: Vec<(i16, bool, Vec<u8>)> = sqlx::query_as(
                            "SELECT dim, bot, pack FROM rollup_packs
                             WHERE link_id = $1 AND res = $2 AND bucket = $3",
                        )
                        .bind(link)
                        .bind(res)
                        .bind(bucket)
                        .fetch_all(&mut *tx)
                        .await?;
                        let mut groups: std::collections::BTreeMap<(i16, bool), HashMap<&str, u64>> =
                            Default::default();
                        for (dim, bot, bytes) in &old {
                            let sums = groups.entry((*dim, *bot)).or_default();
                            for (value, n) in pack::decode(bytes)? {
                                *sums.entry(value).or_default() += n;
                            }
                        }
                        for (dim, bot, value, n) in &rows {
                            *groups
                                .entry((*dim, *bot))
                                .or_default()
                                .entry(value.as_str())
                                .or_default() += *n as u64;
                        }
                        let mut qb = sqlx::QueryBuilder::<<$store as SqlDialect>::Db>::new(
                            "INSERT INTO rollup_packs (link_id, res, bucket, dim, bot, pack) ",
                        );
                        qb.push_values(groups, |mut b, ((dim, bot), sums)| {
                            b.push_bind(link)
                                .push_bind(res)
                                .push_bind(bucket)
                                .push_bind(dim)
                                .push_bind(bot)
                                .push_bind(pack::encode(sums));
                        });
                        qb.push(
                            " ON CONFLICT (link_id, res, bucket, dim, bot) DO UPDATE SET pack = excluded.pack",
                        );
                        qb.build().execute(&mut *tx).await?;
                        tx.commit().await?;
                        sealed += 1;
                    }
                    Ok(sealed)
                }

                async fn click_totals(
                    &self,
                    links: &[LinkId],
                    include_bots: bool,
                ) -> Result<HashMap<LinkId, u64>, StoreError> {
                    self.totals(links, include_bots).await
                }

                async fn delete_raw_clicks_before(&self, before: i64) -> Result<u64, StoreError> {
                    self.delete_raw_before(before).await
                }

                async fn purge_clicks(&self, link: LinkId) -> Result<u64, StoreError> {
                    let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                    if let Some(lock) = <$store>::LOCK_LINK {
                        sqlx::query(lock).bind(link.0).execute(&mut *tx).await?;
                    }
                    let n = sqlx::query("DELETE FROM clicks WHERE link_id = $1")
                        .bind(link.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    for statement in $crate::store::sql::ROLLUPS_OF_LINK.iter().map(String::as_str) {
                        sqlx::query(statement)
                            .bind(link.0)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(n)
                }

                async fn recent_clicks(
                    &self,
                    link: LinkId,
                    include_bots: bool,
                    limit: usize,
                ) -> Result<Vec<EnrichedClick>, StoreError> {
                    // Backwards along the clustered (link, at, event id) key.
                    let rows = sqlx::query(
                        "SELECT * FROM clicks WHERE link_id = $1 AND (NOT bot OR $2)
                         ORDER BY at DESC, event_id DESC LIMIT $3",
                    )
                    .bind(link.0)
                    .bind(include_bots)
                    .bind(limit as i64)
                    .fetch_all(self.readers())
                    .await?;
                    rows.iter().map(click_from_row).collect()
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
                    let rows = sqlx::query(<$store>::EXPORT_CLICKS)
                        .bind(link.0)
                        .bind(range.from)
                        .bind(range.to)
                        .bind(include_bots)
                        .bind(after_at)
                        .bind(after_id)
                        .bind(limit as i64)
                        .fetch_all(self.readers())
                        .await?;
                    rows.iter().map(click_from_row).collect()
                }
            }

            type DbQuery<'q> = sqlx::query::Query<
                'q,
                <$store as SqlDialect>::Db,
                <<$store as SqlDialect>::Db as sqlx::Database>::Arguments,
            >;

            /// Binds a cell as its column's type (a NULL too: the database
            /// is told its type).
            fn bind_cell<'q>(q: DbQuery<'q>, cell: &Cell, kind: Kind) -> DbQuery<'q> {
                match (cell, kind) {
                    (Cell::Int(v), _) => q.bind(*v),
                    (Cell::Bool(v), _) => q.bind(*v),
                    (Cell::Text(v), _) => q.bind(v.clone()),
                    (Cell::Blob(v), _) => q.bind(v.clone()),
                    (Cell::Null, Kind::Int) => q.bind(None::<i64>),
                    (Cell::Null, Kind::Bool) => q.bind(None::<bool>),
                    (Cell::Null, Kind::Text) => q.bind(None::<String>),
                    (Cell::Null, Kind::Blob) => q.bind(None::<Vec<u8>>),
                }
            }

            #[async_trait]
            impl CopyRows for $store {
                async fn read_rows(
                    &self,
                    table: &Table,
                    after: Option<&[Cell]>,
                    limit: usize,
                ) -> Result<Vec<Vec<Cell>>, StoreError> {
                    let sql = $crate::store::sql::copy_select(table, after.is_some());
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    if let Some(after) = after {
                        for (cell, (_, kind)) in after.iter().zip(table.columns) {
                            q = bind_cell(q, cell, *kind);
                        }
                    }
                    let rows = q.bind(limit as i64).fetch_all(self.readers()).await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let mut cells = Vec::with_capacity(table.columns.len());
                        for (i, (_, kind)) in table.columns.iter().enumerate() {
                            cells.push(match kind {
                                Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Cell::Int),
                                Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Cell::Bool),
                                Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Cell::Text),
                                Kind::Blob => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Cell::Blob),
                            }
                            .unwrap_or(Cell::Null));
                        }
                        out.push(cells);
                    }
                    Ok(out)
                }

                async fn write_rows(
                    &self,
                    table: &Table,
                    rows: &[Vec<Cell>],
                ) -> Result<u64, StoreError> {
                    let mut tx = self.writer().begin_with(<$store>::BEGIN_WRITE).await?;
                    let per_statement = (30_000 / table.columns.len()).min(500);
                    let mut written = 0;
                    for chunk in rows.chunks(per_statement) {
                        let sql = $crate::store::sql::copy_insert(
                            table,
                            chunk.len(),
                            if table.generated_id { <$store>::OVERRIDING_GENERATED } else { "" },
                        );
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                        for row in chunk {
                            if row.len() != table.columns.len() {
                                return Err(StoreError::Corrupt(format!(
                                    "a {} row of {} cells, not {}",
                                    table.name,
                                    row.len(),
                                    table.columns.len()
                                )));
                            }
                            for (cell, (_, kind)) in row.iter().zip(table.columns) {
                                q = bind_cell(q, cell, *kind);
                            }
                        }
                        written += q.execute(&mut *tx).await?.rows_affected();
                    }
                    tx.commit().await?;
                    Ok(written)
                }

                async fn finish_copy(&self) -> Result<(), StoreError> {
                    for table in TABLES.iter().filter(|t| t.generated_id) {
                        if let Some(sql) = <$store>::after_copy(table.name) {
                            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(self.writer()).await?;
                        }
                    }
                    Ok(())
                }
            }
        };
    };
}
pub(crate) use sql_store;

/// `read_rows`: a page of a table in key order, every integer column read
/// as BIGINT (PostgreSQL's INTEGER and SMALLINT columns decode as i64 only
/// so). Binds: the key to start after (with `after`), then the limit.
pub(crate) fn copy_select(table: &super::copy::Table, after: bool) -> String {
    use super::copy::Kind;
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|(name, kind)| match kind {
            Kind::Int => format!("CAST({name} AS BIGINT)"),
            _ => (*name).to_owned(),
        })
        .collect();
    let key: Vec<&str> = table.columns[..table.key].iter().map(|c| c.0).collect();
    let mut sql = format!("SELECT {} FROM {}", columns.join(", "), table.name);
    let mut n = 0;
    if after {
        let params: Vec<String> = (1..=table.key).map(|i| format!("${i}")).collect();
        n = table.key;
        sql += &format!(" WHERE ({}) > ({})", key.join(", "), params.join(", "));
    }
    sql += &format!(" ORDER BY {} LIMIT ${}", key.join(", "), n + 1);
    sql
}

/// `write_rows`: `rows` rows in one statement, those whose key is there
/// already skipped.
pub(crate) fn copy_insert(table: &super::copy::Table, rows: usize, overriding: &str) -> String {
    let names: Vec<&str> = table.columns.iter().map(|c| c.0).collect();
    let width = names.len();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) {overriding} VALUES {} ON CONFLICT DO NOTHING",
        table.name,
        names.join(", "),
        values.join(", ")
    )
}
