//! Storage: the traits every backend implements ([`LinkStore`], [`KeyStore`],
//! [`ClickStore`], [`ReportStore`], [`SessionRecords`], gathered as
//! [`Store`]), the values they exchange, and backend selection from a URL
//! ([`StoreConfig`]), which is the only place that knows which backends exist.
//!
//! Backends: [`memory`] (the reference, and the store of tests), and the SQL
//! stores `sqlite` (embedded default) and `postgres` (cluster), which share
//! one SQL core (`sql`) and keep apart only what their dialects do
//! differently. Each SQL backend sits behind the cargo feature of its name.
//! The conformance suite every backend passes is [`crate::testing`] (behind
//! the `testing` feature).
//!
//! Stats are answered from rollups at several resolutions. A store only
//! answers questions over grain-aligned ranges (see [`Resolution`]); the
//! generic code in [`crate::stats`] splits any range into aligned middles and
//! raw edges, so every backend stays simple and exact.

pub mod copy;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod memory;
pub mod pack;
pub mod rollup;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
pub mod webhooks;

#[cfg(feature = "postgres")]
pub use sql::postgres;
#[cfg(feature = "sqlite")]
pub use sql::sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Dimension, EnrichedClick, KeyId, Link, LinkId, Slug};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or timed out: callers answer 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Data in the store could not be understood.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("operation not supported by this store: {0}")]
    Unsupported(&'static str),
}

/// An expected conflict on insert: a value, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    SlugTaken,
    /// The generated id was already used; the caller retries with a new one.
    IdTaken,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: KeyId,
    pub name: String,
    /// SHA-256 of the secret key; the key itself is never stored.
    pub hash: [u8; 32],
    pub admin: bool,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("hash", &"<redacted>")
            .field("admin", &self.admin)
            .finish()
    }
}

/// Which links to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct LinkQuery {
    /// Only links of this owner; `None` lists every link (admin).
    pub owner: Option<KeyId>,
    pub tag: Option<String>,
    /// Case-insensitive substring of slug, target or title.
    pub text: Option<String>,
    /// Keyset cursor: only links with a smaller id.
    pub before: Option<LinkId>,
    pub limit: usize,
}

impl LinkQuery {
    /// Whether `link` is one this query lists (owner, cursor, tag and
    /// text), for stores that filter in memory.
    pub fn matches(&self, link: &Link) -> bool {
        if self.owner.is_some() && link.owner != self.owner {
            return false;
        }
        if self.before.is_some_and(|b| link.id >= b) {
            return false;
        }
        if let Some(tag) = &self.tag
            && !link.tags.iter().any(|t| t == tag)
        {
            return false;
        }
        if let Some(text) = &self.text {
            let text = text.to_lowercase();
            let hay = [
                Some(link.slug.as_str()),
                Some(link.target.as_str()),
                link.title.as_deref(),
            ];
            return hay
                .iter()
                .flatten()
                .any(|h| h.to_lowercase().contains(&text));
        }
        true
    }
}

/// A half-open range of milliseconds since the epoch: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: i64,
    pub to: i64,
}

/// The granularity a store answers at. Rollup resolutions must be asked for
/// ranges aligned to their grain; `Raw` accepts any range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Raw,
    Minute,
    /// Five minutes: breakdowns and visitors only, kept with the minutes, so
    /// that a range's minute edge reads at most 4 minutes and 2 of these.
    FiveMinutes,
    QuarterHour,
    Hour,
    Day,
    /// Seven days, aligned to the Unix epoch (a Thursday): only a coarser
    /// level for breakdowns, so long ranges read a dozen buckets, not ninety.
    Week,
}

impl Resolution {
    pub const fn grain_ms(self) -> i64 {
        match self {
            Resolution::Raw => 1,
            Resolution::Minute => 60_000,
            Resolution::FiveMinutes => 300_000,
            Resolution::QuarterHour => 900_000,
            Resolution::Hour => 3_600_000,
            Resolution::Day => 86_400_000,
            Resolution::Week => 7 * 86_400_000,
        }
    }

    pub fn floor(self, ms: i64) -> i64 {
        ms.div_euclid(self.grain_ms()) * self.grain_ms()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimCount {
    pub dim: Dimension,
    pub value: String,
    pub clicks: u64,
}

/// A link's all-time clicks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClickTotals {
    pub humans: u64,
    pub with_bots: u64,
}

/// The reads one stats answer needs: grain-aligned pieces of the series,
/// the breakdowns and the new visitors (see [`ClickStore::stats_rows`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsReads {
    pub series: Vec<(Resolution, TimeRange)>,
    pub dims: Vec<(Resolution, TimeRange)>,
    pub visitors: Vec<(Resolution, TimeRange)>,
}

/// What a store answers to [`StatsReads`]: the pieces' rows, not yet merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsRows {
    /// (bucket start, clicks) of every series piece; empty buckets omitted.
    pub series: Vec<(i64, u64)>,
    /// (dimension, value, clicks) of every breakdown piece.
    pub dims: Vec<DimCount>,
    /// New visitors over the visitor pieces.
    pub visitors: u64,
}

/// Where an export continues: after this (time, event id).
pub type ExportCursor = (i64, uuid::Uuid);

#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Inserts a link unless its slug (or id) is taken. Conditional, so two
    /// nodes racing for one slug cannot both win.
    async fn insert_link(&self, link: &Link) -> Result<Result<(), Conflict>, StoreError>;
    /// A fresh random slug. A store shared by several regions draws each
    /// region's from a part of the slug space of its own, so that no two
    /// regions ever draw the same one.
    fn random_slug(&self, rng: &mut dyn rand::RngCore) -> Slug {
        Slug::random(rng)
    }
    /// [`LinkStore::insert_link`] of a link whose slug came from
    /// [`LinkStore::random_slug`], which a store whose regions draw from
    /// parts of their own may decide in this region alone.
    async fn insert_random_link(&self, link: &Link) -> Result<Result<(), Conflict>, StoreError> {
        self.insert_link(link).await
    }
    async fn link_by_slug(&self, slug: &Slug) -> Result<Option<Link>, StoreError>;
    async fn list_links(&self, query: &LinkQuery) -> Result<Vec<Link>, StoreError>;
    /// Replaces the mutable fields of the link with this id; false if gone.
    async fn update_link(&self, link: &Link) -> Result<bool, StoreError>;
    /// Deletes the link and all its clicks and rollups; false if it was not there.
    async fn delete_link(&self, slug: &Slug) -> Result<bool, StoreError>;
    /// Counts one click against `max_clicks`; false once the limit is reached.
    async fn claim_click(&self, link: LinkId, max_clicks: u64) -> Result<bool, StoreError>;
    /// Cheap round trip for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The links changed by writes this process hears of in no other way:
    /// another region's, replicated into this region's replica of a
    /// Global Table. `None`: every write is this deployment's own (the
    /// node that makes it invalidates the caches).
    fn link_feed(&self) -> Option<Box<dyn LinkFeed>> {
        None
    }
}

/// See [`LinkStore::link_feed`].
#[async_trait]
pub trait LinkFeed: Send + Sync {
    /// The slugs written (created, edited, deleted) since the last call,
    /// as the feed learns of them; empty when there are none yet. The
    /// first call starts from now.
    async fn changed(&mut self) -> Result<Vec<Slug>, StoreError>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_key(
        &self,
        name: &str,
        hash: [u8; 32],
        admin: bool,
    ) -> Result<ApiKey, StoreError>;
    async fn key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError>;
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes a key; false if there is no such (unrevoked) key.
    async fn revoke_key(&self, id: KeyId) -> Result<bool, StoreError>;
}

/// Clicks a source counted without logging each one (an import's
/// aggregates): `clicks` in the source's bucket starting at `at`, with
/// breakdowns. Stored as rollups only: no raw clicks, no visitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedClicks {
    pub link: LinkId,
    /// The bucket's start (ms); rollups count the clicks at its minute.
    pub at: i64,
    pub bot: bool,
    pub clicks: u64,
    /// (dimension, value, clicks). After [`CountedClicks::complete`], each
    /// dimension every click has (country, city, referrer, browser, OS,
    /// device) sums to at least `clicks`.
    pub dims: Vec<(Dimension, String, u64)>,
}

/// The dimensions every click has a value in.
pub const EVERY_CLICK_DIMS: [Dimension; 6] = [
    Dimension::Country,
    Dimension::City,
    Dimension::Referrer,
    Dimension::Browser,
    Dimension::Os,
    Dimension::Device,
];

impl CountedClicks {
    /// The value of clicks a source did not break down.
    pub const UNKNOWN: &'static str = "unknown";

    /// Puts what each of [`EVERY_CLICK_DIMS`] leaves of `clicks` under
    /// [`Self::UNKNOWN`], so that every breakdown adds up to the series as
    /// a live click's do; drops zero counts and merges repeated values.
    pub fn complete(self) -> CountedClicks {
        let clicks = self.clicks;
        self.complete_to(clicks)
    }

    /// [`Self::complete`] to `total` clicks rather than this row's own: a
    /// source's breakdown of a whole period, kept apart from its series.
    pub fn complete_to(mut self, total: u64) -> CountedClicks {
        let mut merged: std::collections::BTreeMap<(Dimension, String), u64> = Default::default();
        for (d, v, n) in self.dims.drain(..) {
            if n > 0 {
                *merged.entry((d, v)).or_default() += n;
            }
        }
        for d in EVERY_CLICK_DIMS {
            let given: u64 = merged
                .iter()
                .filter(|((dim, _), _)| *dim == d)
                .map(|(_, n)| *n)
                .sum();
            if given < total {
                *merged.entry((d, Self::UNKNOWN.to_owned())).or_default() += total - given;
            }
        }
        self.dims = merged.into_iter().map(|((d, v), n)| (d, v, n)).collect();
        self
    }
}

#[async_trait]
pub trait ClickStore: Send + Sync {
    /// Stores clicks and updates rollups in one transaction. A click whose
    /// event id is already stored is skipped (so replays count once), and so
    /// is a click of a link that no longer exists. Returns how many were new.
    async fn record_clicks(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError>;

    /// Adds clicks a source counted ([`CountedClicks`]) to the rollups and
    /// totals (no raw clicks, no visitors), and sets the import mark `mark`
    /// (key, value) in the same write where the store can, so that an
    /// import adds each count once. Counts of links that are gone are
    /// skipped.
    async fn record_counts(
        &self,
        counts: &[CountedClicks],
        mark: Option<(&str, &str)>,
    ) -> Result<(), StoreError>;

    /// Answers every read of one stats answer from **one snapshot**: a batch
    /// committing meanwhile is in all of the numbers or in none. A store may
    /// cut each breakdown to its `top` values (most clicks first, ties by
    /// value in byte order); it must return at least those.
    async fn stats_rows(
        &self,
        link: LinkId,
        reads: &StatsReads,
        include_bots: bool,
        top: usize,
    ) -> Result<StatsRows, StoreError>;

    /// Clicks per bucket. `Raw` and `Minute` give minute buckets,
    /// `QuarterHour` quarter-hour buckets. Buckets without clicks are omitted.
    async fn series(
        &self,
        link: LinkId,
        res: Resolution,
        range: TimeRange,
        include_bots: bool,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        let reads = StatsReads {
            series: vec![(res, range)],
            ..StatsReads::default()
        };
        Ok(self
            .stats_rows(link, &reads, include_bots, usize::MAX)
            .await?
            .series)
    }

    /// Clicks per (dimension, value) at `Raw`, `Minute`, `FiveMinutes`,
    /// `QuarterHour`, `Hour`, `Day` or `Week` resolution.
    async fn dimensions(
        &self,
        link: LinkId,
        res: Resolution,
        range: TimeRange,
        include_bots: bool,
    ) -> Result<Vec<DimCount>, StoreError> {
        let reads = StatsReads {
            dims: vec![(res, range)],
            ..StatsReads::default()
        };
        Ok(self
            .stats_rows(link, &reads, include_bots, usize::MAX)
            .await?
            .dims)
    }

    /// Unique visitors at `Raw`, `Minute`, `FiveMinutes`, `QuarterHour`,
    /// `Hour` or `Day` resolution. A visitor is a (UTC day, visitor hash) pair (hashes are
    /// salted per day) and counts in the bucket of its first click that day,
    /// so buckets add up exactly.
    async fn visitors(
        &self,
        link: LinkId,
        res: Resolution,
        range: TimeRange,
        include_bots: bool,
    ) -> Result<u64, StoreError> {
        let reads = StatsReads {
            visitors: vec![(res, range)],
            ..StatsReads::default()
        };
        Ok(self
            .stats_rows(link, &reads, include_bots, usize::MAX)
            .await?
            .visitors)
    }

    /// One link's all-time totals, humans and with bots, in one read.
    async fn link_totals(&self, link: LinkId) -> Result<ClickTotals, StoreError> {
        let humans = self.click_totals(&[link], false).await?;
        let all = self.click_totals(&[link], true).await?;
        Ok(ClickTotals {
            humans: humans.get(&link).copied().unwrap_or(0),
            with_bots: all.get(&link).copied().unwrap_or(0),
        })
    }

    /// Deletes minute and five-minute breakdown and visitor rollups older
    /// than `before` (ms): they serve minute-precise range edges of the
    /// recent window only; coarser grains keep every count. Returns rows
    /// deleted.
    async fn prune_minute_rollups(&self, before: i64) -> Result<u64, StoreError>;

    /// Seals breakdown buckets ([`pack`]): the rows of up to `limit` buckets
    /// that closed at or before `horizon` (ms), or that are still open but
    /// had at least `open_rows` rows written since they were last sealed,
    /// are added into one packed row per dimension. Only speed depends on
    /// it: answers are the same before and after. Returns how many buckets
    /// were sealed (0: none waiting).
    async fn seal_rollups(
        &self,
        horizon: i64,
        open_rows: u64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let _ = (horizon, open_rows, limit);
        Ok(0)
    }

    /// All-time click totals for several links at once (for link listings).
    async fn click_totals(
        &self,
        links: &[LinkId],
        include_bots: bool,
    ) -> Result<HashMap<LinkId, u64>, StoreError>;

    /// Retention: deletes raw clicks older than `before` (ms), keeping the
    /// rollups built from them; returns how many raw clicks went.
    async fn delete_raw_clicks_before(&self, before: i64) -> Result<u64, StoreError>;

    /// Deletes every click of a link, raw and rolled up, and its visitors;
    /// the link itself stays. Returns how many raw clicks went.
    async fn purge_clicks(&self, link: LinkId) -> Result<u64, StoreError>;

    /// Whether rollups outlive the raw clicks (retention). False for the
    /// in-memory reference store, which answers everything from raw clicks.
    fn keeps_rollups(&self) -> bool {
        true
    }

    /// The link's latest raw clicks, newest first (at most `limit`).
    async fn recent_clicks(
        &self,
        link: LinkId,
        include_bots: bool,
        limit: usize,
    ) -> Result<Vec<EnrichedClick>, StoreError>;

    /// Raw clicks in time order, for export, resuming after `after`.
    async fn export_clicks(
        &self,
        link: LinkId,
        range: TimeRange,
        include_bots: bool,
        after: Option<ExportCursor>,
        limit: usize,
    ) -> Result<Vec<EnrichedClick>, StoreError>;
}

/// An abuse report about a short link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Report {
    pub id: i64,
    pub slug: String,
    /// Whether the slug named a link when reported.
    #[serde(skip)]
    pub link_id: Option<LinkId>,
    /// `phishing`, `malware`, `spam` or `other`.
    pub reason: String,
    pub details: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    async fn insert_report(
        &self,
        slug: &str,
        link: Option<LinkId>,
        reason: &str,
        details: Option<&str>,
    ) -> Result<Report, StoreError>;
    /// Newest first, before the report id `before` if given.
    async fn list_reports(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Report>, StoreError>;
    /// Every link whose target is on `domain` or a subdomain (id, slug,
    /// target), for admins acting on a domain.
    async fn links_to_domain(&self, domain: &str) -> Result<Vec<Link>, StoreError>;
    /// Takes `domain` (and its subdomains) down; false if it already was
    /// (the first reason is kept).
    async fn add_takedown(&self, domain: &str, reason: &str) -> Result<bool, StoreError>;
    /// Lifts a takedown; false if there was none.
    async fn remove_takedown(&self, domain: &str) -> Result<bool, StoreError>;
    /// Every domain taken down, by name.
    async fn list_takedowns(&self) -> Result<Vec<Takedown>, StoreError>;
}

/// A domain an admin has taken down (see [`crate::takedown`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takedown {
    pub domain: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// Web UI sessions (see [`crate::session`]): opaque data under the hash of
/// the session id, with an expiry time (ms).
/// Where imports stand (`hop import`): a value per key, kept until the
/// store is. The importer keys one per source link (which hop link it
/// became) and one per source's click cursor, so that running an import
/// again adds nothing and an interrupted one goes on, also after retention
/// deleted the raw clicks whose event ids would otherwise have said so.
#[async_trait]
pub trait ImportMarks: Send + Sync {
    async fn import_mark(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn set_import_mark(&self, key: &str, value: &str) -> Result<(), StoreError>;
}

#[async_trait]
pub trait SessionRecords: Send + Sync {
    /// The session's data and expiry, unless it expired before `now`.
    async fn load_session(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError>;
    /// Creates or replaces a session.
    async fn save_session(
        &self,
        id_hash: &[u8; 32],
        data: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    async fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError>;
    /// Removes a record and returns its data, unless it expired before
    /// `now`: at most one caller ever gets a record's data, however many
    /// take it at once (one-time tokens).
    async fn take_session(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<String>, StoreError>;
    /// Deletes sessions that expired before `now`; returns how many.
    async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError>;
}

/// Everything a node needs from its backend.
pub trait Store:
    LinkStore
    + KeyStore
    + ClickStore
    + SessionRecords
    + ReportStore
    + ImportMarks
    + copy::CopyRows
    + webhooks::WebhookStore
{
}
impl<
    T: LinkStore
        + KeyStore
        + ClickStore
        + SessionRecords
        + ReportStore
        + ImportMarks
        + copy::CopyRows
        + webhooks::WebhookStore,
> Store for T
{
}

/// A `LIKE … ESCAPE '\'` pattern matching any text that contains `text`.
pub fn like_containing(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Whether a target's host is `domain` or one of its subdomains.
pub fn host_in_domain(host: &str, domain: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// SQLite page cache per connection, in MiB, unless the URL says otherwise.
pub const DEFAULT_SQLITE_CACHE_MIB: u32 = 64;

/// Backend selection, parsed once from `--database-url`. Its `Debug` shows
/// no password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `cache_mib`: SQLite page cache per connection (`?cache_mib=` in the
    /// URL, default 64; five connections, so at most five times that).
    Sqlite {
        path: std::path::PathBuf,
        cache_mib: u32,
    },
    Postgres {
        url: String,
    },
    /// `dynamodb://TABLE?region=R[&endpoint=URL][&claims=R]`.
    Dynamo(DynamoConfig),
    Memory,
}

/// Where a DynamoDB store lives (`dynamodb://TABLE?region=R&…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoConfig {
    pub table: String,
    /// The AWS region this node writes in (its replica of a Global Table).
    pub region: String,
    /// A local server (moto, dynoxide) instead of AWS.
    pub endpoint: Option<String>,
    /// The region that decides slug and click-limit claims for every
    /// region (`claims=`); `None`: this one (a single-region table).
    pub claims: Option<String>,
    /// This region's part of the random slug space (`slot=0..63`, a
    /// different one per region): its random slugs end in the slot's
    /// character, so no other region can draw them, and they are decided
    /// here alone (also while the claims region is out of reach).
    pub slot: Option<u8>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Sqlite { path, cache_mib } => f
                .debug_struct("Sqlite")
                .field("path", path)
                .field("cache_mib", cache_mib)
                .finish(),
            StoreConfig::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .finish(),
            StoreConfig::Dynamo(c) => c.fmt(f),
            StoreConfig::Memory => f.write_str("Memory"),
        }
    }
}

impl StoreConfig {
    pub fn parse(url: &str) -> Result<StoreConfig, String> {
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            built_with("sqlite", cfg!(feature = "sqlite"))?;
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err("sqlite URL needs a file path, e.g. sqlite://data/hop.db".into());
            }
            // SQLite's in-memory databases are per connection, and hop's
            // store has several (readers, two writers): each would see a
            // database of its own.
            if path == ":memory:" || path.starts_with("file::memory:") {
                return Err(
                    "sqlite://:memory: would give each of hop's connections a database of its \
                     own: use memory:// for a store in memory"
                        .into(),
                );
            }
            let mut cache_mib = DEFAULT_SQLITE_CACHE_MIB;
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                if k == "cache_mib" {
                    cache_mib = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=4096).contains(n))
                        .ok_or_else(|| format!("cache_mib={v:?}: give 1 to 4096 (MiB)"))?;
                }
            }
            return Ok(StoreConfig::Sqlite {
                path: path.into(),
                cache_mib,
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            built_with("postgres", cfg!(feature = "postgres"))?;
            return Ok(StoreConfig::Postgres {
                url: url.to_owned(),
            });
        }
        if let Some(rest) = url.strip_prefix("dynamodb://") {
            built_with("dynamodb", cfg!(feature = "dynamodb"))?;
            return parse_dynamo(rest);
        }
        if url == "memory:" || url == "memory://" {
            return Ok(StoreConfig::Memory);
        }
        Err(format!(
            "unsupported database URL {:?}: use sqlite://PATH, postgres://…, dynamodb://TABLE?region=… \
             or memory://",
            redact_url(url)
        ))
    }

    /// Opens the store, applying migrations when `migrate` is set.
    pub async fn open(&self, migrate: bool) -> Result<Arc<dyn Store>, StoreError> {
        // (A build with no backend, the fuzz targets', has only memory://.)
        let _ = migrate;
        Ok(match self {
            #[cfg(feature = "sqlite")]
            StoreConfig::Sqlite { path, cache_mib } => {
                Arc::new(sqlite::SqliteStore::open(path, *cache_mib, migrate).await?)
            }
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres { url } => Arc::new(postgres::PgStore::open(url, migrate).await?),
            // `parse` refuses these URLs; a config built by hand gets the same words.
            #[cfg(not(feature = "sqlite"))]
            StoreConfig::Sqlite { .. } => {
                return Err(StoreError::Unavailable(without_feature("sqlite")));
            }
            #[cfg(not(feature = "postgres"))]
            StoreConfig::Postgres { .. } => {
                return Err(StoreError::Unavailable(without_feature("postgres")));
            }
            #[cfg(feature = "dynamodb")]
            StoreConfig::Dynamo(c) => Arc::new(dynamo::DynamoStore::open(c, migrate).await?),
            #[cfg(not(feature = "dynamodb"))]
            StoreConfig::Dynamo(_) => {
                return Err(StoreError::Unavailable(without_feature("dynamodb")));
            }
            StoreConfig::Memory => Arc::new(memory::MemoryStore::default()),
        })
    }
}

/// `dynamodb://TABLE?region=R&endpoint=URL&claims=R` (the part after the scheme).
fn parse_dynamo(rest: &str) -> Result<StoreConfig, String> {
    let (table, query) = rest.split_once('?').unwrap_or((rest, ""));
    let table = table.trim_end_matches('/');
    let valid = (3..=255).contains(&table.len())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !valid {
        return Err(format!(
            "dynamodb://{table}: the table name must be 3 to 255 of a-z, A-Z, 0-9, _ - ."
        ));
    }
    let mut region = None;
    let mut endpoint = None;
    let mut claims = None;
    let mut slot = None;
    let region_name = |r: &str| {
        !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "region" => region = Some(v.into_owned()),
            "claims" => {
                if !region_name(&v) {
                    return Err(format!("claims={v:?}: give a region name, e.g. eu-west-1"));
                }
                claims = Some(v.into_owned());
            }
            "slot" => {
                let n = v
                    .parse::<u8>()
                    .ok()
                    .filter(|n| usize::from(*n) < crate::domain::slug_rules::ALPHABET.len())
                    .ok_or_else(|| format!("slot={v:?}: give a number from 0 to 63"))?;
                slot = Some(n);
            }
            "endpoint" => {
                url::Url::parse(&v)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| format!("endpoint={v:?}: give an http(s) URL"))?;
                endpoint = Some(v.into_owned());
            }
            other => return Err(format!("dynamodb URL: unknown parameter {other:?}")),
        }
    }
    let region = region
        .filter(|r| region_name(r))
        .ok_or("dynamodb URL needs ?region=, e.g. dynamodb://hop?region=eu-west-1")?;
    Ok(StoreConfig::Dynamo(DynamoConfig {
        table: table.to_owned(),
        claims: claims.filter(|c| *c != region),
        region,
        endpoint,
        slot,
    }))
}

/// Refuses a URL of a backend this binary was built without, in words that
/// say how to get it.
fn built_with(backend: &str, compiled: bool) -> Result<(), String> {
    if compiled {
        Ok(())
    } else {
        Err(without_feature(backend))
    }
}

fn without_feature(backend: &str) -> String {
    format!("this hop was built without the {backend} feature (cargo build --features {backend})")
}

/// A database or Redis URL fit for logs and errors: the password, and any
/// query parameter that names a secret (`password`, `sslpassword`, `token`,
/// …), replaced by `***`. A string that does not parse as a URL keeps only
/// what cannot be a credential: whatever sits between `://` and `@` goes.
pub fn redact_url(url: &str) -> String {
    const SECRET_PARAMS: [&str; 4] = ["pass", "secret", "token", "key"];
    match url::Url::parse(url) {
        Ok(mut u) if u.has_host() || u.password().is_some() || u.query().is_some() => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = SECRET_PARAMS
                            .iter()
                            .any(|s| k.to_ascii_lowercase().contains(s));
                        (
                            k.into_owned(),
                            if secret { "***".into() } else { v.into_owned() },
                        )
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        _ => match url.split_once("://") {
            Some((scheme, rest)) => match rest.rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_owned(),
            },
            None if url.contains('@') => "***".to_owned(),
            None => url.to_owned(),
        },
    }
}

/// Applies one click to in-memory rollup maps; shared by the stores that
/// aggregate a batch before writing it.
pub fn rollup_keys(click: &EnrichedClick) -> impl Iterator<Item = (Dimension, String)> + '_ {
    Dimension::ALL
        .into_iter()
        .filter_map(move |d| d.value_of(click).map(|v| (d, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build without a backend's feature names the feature it lacks.
    #[test]
    #[cfg(not(all(feature = "sqlite", feature = "postgres")))]
    fn urls_of_a_backend_left_out_are_refused_by_name() {
        for (url, feature, built) in [
            ("sqlite://data/hop.db", "sqlite", cfg!(feature = "sqlite")),
            (
                "postgres://hop@db/hop",
                "postgres",
                cfg!(feature = "postgres"),
            ),
        ] {
            match StoreConfig::parse(url) {
                Ok(_) => assert!(built, "{url} accepted without {feature}"),
                Err(e) => {
                    assert!(!built, "{url}: {e}");
                    assert!(e.contains(&format!("the {feature} feature")), "{e}");
                }
            }
        }
        assert_eq!(StoreConfig::parse("memory://"), Ok(StoreConfig::Memory));
    }

    /// `dynamodb://TABLE?region=R&endpoint=URL`: parsed when built with
    /// the feature, refused by name without it.
    #[test]
    fn dynamodb_urls() {
        let url = "dynamodb://hop-links?region=eu-west-1&endpoint=http://127.0.0.1:8000";
        if !cfg!(feature = "dynamodb") {
            let e = StoreConfig::parse(url).unwrap_err();
            assert!(e.contains("the dynamodb feature"), "{e}");
            return;
        }
        assert_eq!(
            StoreConfig::parse(url).unwrap(),
            StoreConfig::Dynamo(DynamoConfig {
                table: "hop-links".into(),
                region: "eu-west-1".into(),
                endpoint: Some("http://127.0.0.1:8000".into()),
                claims: None,
                slot: None,
            })
        );
        assert_eq!(
            StoreConfig::parse("dynamodb://hop?region=us-east-1&claims=eu-west-1&slot=63").unwrap(),
            StoreConfig::Dynamo(DynamoConfig {
                table: "hop".into(),
                region: "us-east-1".into(),
                endpoint: None,
                claims: Some("eu-west-1".into()),
                slot: Some(63),
            })
        );
        // The claims region itself decides locally.
        assert_eq!(
            StoreConfig::parse("dynamodb://hop?region=eu-west-1&claims=eu-west-1").unwrap(),
            StoreConfig::Dynamo(DynamoConfig {
                table: "hop".into(),
                region: "eu-west-1".into(),
                endpoint: None,
                claims: None,
                slot: None,
            })
        );
        for (bad, says) in [
            ("dynamodb://hop", "needs ?region="),
            ("dynamodb://hop?region=", "needs ?region="),
            ("dynamodb://hop?region=EU_WEST", "needs ?region="),
            ("dynamodb://h?region=eu-west-1", "table name"),
            ("dynamodb://a/b?region=eu-west-1", "table name"),
            (
                "dynamodb://hop?region=eu-west-1&endpoint=ftp://x",
                "http(s) URL",
            ),
            (
                "dynamodb://hop?region=eu-west-1&consistent=no",
                "unknown parameter",
            ),
            ("dynamodb://hop?region=eu-west-1&claims=Home", "claims="),
            ("dynamodb://hop?region=eu-west-1&slot=64", "slot="),
            ("dynamodb://hop?region=eu-west-1&slot=x", "slot="),
        ] {
            let e = StoreConfig::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    #[cfg(feature = "sqlite")]
    fn sqlite_in_memory_is_refused_for_memory_scheme() {
        for url in [
            "sqlite://:memory:",
            "sqlite::memory:",
            "sqlite://file::memory:?cache=shared",
        ] {
            let e = StoreConfig::parse(url).unwrap_err();
            assert!(e.contains("use memory://"), "{url}: {e}");
        }
    }

    #[test]
    #[cfg(all(feature = "sqlite", feature = "postgres"))]
    fn store_config_from_url() {
        assert_eq!(
            StoreConfig::parse("sqlite://data/hop.db").unwrap(),
            StoreConfig::Sqlite {
                path: "data/hop.db".into(),
                cache_mib: DEFAULT_SQLITE_CACHE_MIB,
            }
        );
        assert_eq!(
            StoreConfig::parse("sqlite://data/hop.db?cache_mib=8").unwrap(),
            StoreConfig::Sqlite {
                path: "data/hop.db".into(),
                cache_mib: 8,
            }
        );
        assert!(StoreConfig::parse("sqlite://data/hop.db?cache_mib=0").is_err());
        assert_eq!(
            StoreConfig::parse("sqlite:///tmp/x.db?mode=rwc").unwrap(),
            StoreConfig::Sqlite {
                path: "/tmp/x.db".into(),
                cache_mib: DEFAULT_SQLITE_CACHE_MIB,
            }
        );
        assert_eq!(
            StoreConfig::parse("memory://").unwrap(),
            StoreConfig::Memory
        );
        assert_eq!(
            StoreConfig::parse("postgres://hop:pw@db:5432/hop").unwrap(),
            StoreConfig::Postgres {
                url: "postgres://hop:pw@db:5432/hop".into()
            }
        );
        assert_eq!(
            redact_url("postgres://hop:pw@db:5432/hop"),
            "postgres://hop:***@db:5432/hop"
        );
        assert_eq!(redact_url("sqlite://data/hop.db"), "sqlite://data/hop.db");
        assert!(StoreConfig::parse("mysql://x").is_err());
        let err = StoreConfig::parse("pgsql://hop:S3cretPW@db/hop").unwrap_err();
        assert!(!err.contains("S3cretPW"), "{err}");
        assert!(err.contains("pgsql://hop:***@db/hop"), "{err}");
        let pg = StoreConfig::parse("postgres://hop:S3cretPW@db/hop").unwrap();
        assert!(!format!("{pg:?}").contains("S3cretPW"));
        for (raw, shown) in [
            (
                "redis://:S3cretPW@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "rediss://hop:S3cretPW@cache:6380",
                "rediss://hop:***@cache:6380",
            ),
            (
                "postgres://db/hop?user=hop&password=S3cretPW&sslmode=require",
                "postgres://db/hop?user=hop&password=***&sslmode=require",
            ),
            ("pg sql://hop:S3cretPW@db/hop", "pg sql://***@db/hop"),
            ("hop:S3cretPW@db", "***"),
        ] {
            assert_eq!(redact_url(raw), shown);
        }
        assert!(StoreConfig::parse("sqlite://").is_err());
    }

    #[test]
    fn resolution_floor() {
        assert_eq!(Resolution::Hour.floor(3_600_001), 3_600_000);
        assert_eq!(Resolution::Day.floor(-1), -86_400_000);
    }
}
