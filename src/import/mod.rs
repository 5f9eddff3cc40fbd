//! `hop import`: links and their click history from another shortener.
//!
//! A [`Source`] hands over links and then clicks, in its own order; the
//! engine here ([`run`]) makes hop links of them (a slug already taken is
//! skipped, suffixed or overwritten, as asked) and hop clicks at their
//! original times, enriched like live ones: the user agent gives browser,
//! OS, device and bot, the referrer its host, and the address (when the
//! source kept one) the country and city and that day's visitor hash; the
//! address itself is never stored.
//!
//! Running an import again adds nothing: every click's event id is derived
//! from the source's own id for it, and the store keeps import marks
//! ([`crate::store::ImportMarks`]): which hop link each source link became,
//! and how far the clicks went. So a second run finds every link and starts
//! after the last click, and an interrupted run goes on where it stopped,
//! also once retention has deleted the raw clicks (imports are mostly
//! older than the raw retention).

mod api;
pub mod bitly;
pub mod csv;
pub mod dub;
pub mod kutt;
pub mod shlink;
pub mod sqldump;
pub mod yourls;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clicks::enrich::{Enricher, referrer_host, visitor_hash};
use crate::domain::{
    EnrichedClick, KeyId, Link, LinkId, MAX_TAG_LEN, MAX_TAGS, MAX_TITLE_LEN, RedirectStatus,
    Route, Slug, TargetUrl, Utm,
};
use crate::store::{Conflict, Store, StoreError};

/// A link as the source has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceLink {
    /// The source's own name for it (YOURLS's keyword, Shlink's short
    /// code): what its clicks name it by, and its import mark's key.
    pub key: String,
    /// The slug asked for; `None`: a random one.
    pub slug: Option<String>,
    pub url: String,
    pub title: Option<String>,
    pub tags: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The source's own click count for it, when it keeps one.
    pub clicks: Option<u64>,
}

/// A click as the source logged it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceClick {
    /// [`SourceLink::key`] of its link.
    pub link: String,
    /// The source's id for this click, unique in the source: the hop
    /// event id is derived from it.
    pub id: String,
    /// Where the click is in the source's order (YOURLS's `click_id`):
    /// clicks come in ascending order of it, and an import goes on after
    /// the last one it wrote.
    pub pos: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// The visitor's address: only for the country and city (when the
    /// source gives none) and the day's visitor hash; never stored.
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The referrer URL (`None`: direct).
    pub referrer: Option<String>,
    /// Two-letter country code, when the source located the click.
    pub country: Option<String>,
    pub city: Option<String>,
    /// The source's own verdict, when it gives one (hop's user agent
    /// check flags bots as well).
    pub bot: Option<bool>,
}

/// A source of links and clicks.
#[async_trait]
pub trait Source: Send {
    /// Every link, in a stable order.
    async fn links(&mut self) -> anyhow::Result<Vec<SourceLink>>;
    /// The next clicks after position `after` (`None`: from the first),
    /// in ascending [`SourceClick::pos`], at most about `limit`; none at
    /// the end. A source without click history answers none.
    async fn clicks(
        &mut self,
        after: Option<i64>,
        limit: usize,
    ) -> anyhow::Result<Vec<SourceClick>> {
        let _ = (after, limit);
        Ok(Vec::new())
    }

    /// Whether clicks come per link ([`Source::link_clicks`]), as an API
    /// lists them, rather than in one sequence ([`Source::clicks`]).
    fn per_link(&self) -> bool {
        false
    }

    /// Page `page` (from 0) of `link`'s clicks in the window (`after`,
    /// `until`] (ms); empty past the last page. The same window gives the
    /// same pages, so a page's clicks may be named by (window, page,
    /// place).
    async fn link_clicks(
        &mut self,
        link: &SourceLink,
        after: Option<i64>,
        until: i64,
        page: u32,
    ) -> anyhow::Result<Vec<SourceClick>> {
        let _ = (link, after, until, page);
        Ok(Vec::new())
    }

    /// Clicks the source counted for `link` without logging each one
    /// (imported as counted clicks, see [`crate::store::CountedClicks`]).
    async fn link_counts(&mut self, link: &SourceLink) -> anyhow::Result<Vec<SourceCount>> {
        let _ = link;
        Ok(Vec::new())
    }
}

/// A source's series of counts (no breakdowns of their own) and its
/// breakdowns of the whole period they cover: the breakdowns go on the
/// first bucket with clicks, filled with "unknown" up to the series' total,
/// so every breakdown adds up over any range that holds the whole period.
pub fn with_breakdowns(
    mut series: Vec<SourceCount>,
    dims: Vec<(crate::domain::Dimension, String, u64)>,
) -> Vec<SourceCount> {
    let Some(first) = series.iter().map(|c| c.at).min() else {
        return series;
    };
    let total = series.iter().map(|c| c.clicks).sum();
    series.push(SourceCount {
        at: first,
        clicks: 0,
        bot: false,
        dims,
        complete_to: Some(total),
    });
    series
}

/// Clicks a source counted in a bucket starting at `at`, with breakdowns
/// (by hop's dimensions) where it gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceCount {
    pub at: i64,
    pub clicks: u64,
    pub bot: bool,
    pub dims: Vec<(crate::domain::Dimension, String, u64)>,
    /// Fill every dimension a click always has up to this many clicks
    /// with "unknown" ([`crate::store::CountedClicks::complete_to`]); `None`
    /// leaves the breakdowns as given (a series row whose breakdowns come
    /// in a row of their own).
    pub complete_to: Option<u64>,
}

/// What to do with a source link whose slug hop already has (or keeps
/// for its own routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Leave hop's link alone and import neither the link nor its clicks.
    #[default]
    Skip,
    /// Import it under the first free `slug-2`, `slug-3`, ….
    Suffix,
    /// Point hop's link at the source's URL (title, tags, expiry too) and
    /// add the source's clicks to it.
    Overwrite,
}

impl std::str::FromStr for OnConflict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(OnConflict::Skip),
            "suffix" => Ok(OnConflict::Suffix),
            "overwrite" => Ok(OnConflict::Overwrite),
            other => Err(format!(
                "unknown --on-conflict {other:?}: skip, suffix or overwrite"
            )),
        }
    }
}

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Names this source among others of its kind (two YOURLS installs
    /// imported into one hop): its import marks and event ids are apart.
    pub source: String,
    pub on_conflict: OnConflict,
    /// The API key that owns the new links (`None`: no owner; admins
    /// see and manage them).
    pub owner: Option<KeyId>,
    /// Hosts hop answers on: a target there would loop.
    pub own_hosts: Vec<String>,
    /// Region recorded with the imported clicks.
    pub region: String,
    /// Clicks per write.
    pub batch: usize,
    /// How far before now a per-link source's window ends (ms): a visit
    /// the source stores this late still lands in the next window.
    pub settle_ms: i64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            source: "import".into(),
            on_conflict: OnConflict::Skip,
            owner: None,
            own_hosts: Vec::new(),
            region: "import".into(),
            batch: 2_000,
            settle_ms: 60_000,
        }
    }
}

/// Where an import is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Links { done: u64, of: u64 },
    Clicks { read: u64 },
}

/// A source link that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Skipped {
    pub key: String,
    pub reason: String,
}

/// A link whose source count and hop count differ after the import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mismatch {
    pub key: String,
    pub slug: String,
    pub source: u64,
    pub hop: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub links_read: u64,
    pub links_created: u64,
    /// Imported by an earlier run (found by their import marks).
    pub links_existing: u64,
    /// Slugs taken that were given a suffix.
    pub links_renamed: u64,
    pub links_overwritten: u64,
    pub skipped: Vec<Skipped>,
    pub clicks_read: u64,
    /// Clicks stored by this run (the others were there already).
    pub clicks_new: u64,
    /// Clicks of links not imported (skipped, or gone from the source).
    pub clicks_skipped: u64,
    /// Clicks the source only counted (no time or detail of each), stored
    /// as counted clicks by this run.
    pub clicks_counted: u64,
    /// The source's own counts, summed over the imported links that have
    /// one.
    pub source_clicks: Option<u64>,
    /// hop's counts (bots included, as sources count them) of the same
    /// links after the import.
    pub hop_clicks: u64,
    /// Links whose counts differ (at most 20 listed).
    pub mismatches: Vec<Mismatch>,
    pub mismatched_links: u64,
}

/// Stored per imported source link: the hop link it became, and the run
/// (epoch) that made it.
#[derive(Debug, Serialize, Deserialize)]
struct LinkMark {
    id: i64,
    slug: String,
    /// The links of one epoch (made by one run) share how far their
    /// clicks went ([`EpochMark`]): a link imported by a later run (one
    /// skipped before, say) gets its clicks from the first, the others
    /// from where they were.
    #[serde(default)]
    epoch: i64,
}

/// Stored per link of a per-link source: the end of the last window
/// whose clicks were all written, and the window under way.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LinkClicksMark {
    through: Option<i64>,
    /// (until, pages written) of a window not finished.
    window: Option<(i64, u32)>,
}

/// Stored per source and epoch: the position of the last click written
/// for the epoch's links.
#[derive(Debug, Serialize, Deserialize)]
struct EpochMark {
    through: i64,
}

async fn read_mark<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> anyhow::Result<Option<T>> {
    match store.import_mark(key).await? {
        None => Ok(None),
        Some(v) => Ok(Some(serde_json::from_str(&v).map_err(|e| {
            StoreError::Corrupt(format!("import mark {key}: {e}"))
        })?)),
    }
}

/// Imports everything `source` has into `store`.
pub async fn run(
    store: &dyn Store,
    enricher: &Enricher,
    source: &mut dyn Source,
    opts: &ImportOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let links = source.links().await?;
    summary.links_read = links.len() as u64;
    // This run's epoch: later than any before it.
    let epoch = Utc::now().timestamp_millis();
    let mut imported: HashMap<String, (LinkId, Slug, i64)> = HashMap::with_capacity(links.len());
    for (i, link) in links.iter().enumerate() {
        if let Some(found) = import_link(store, link, opts, epoch, &mut summary).await? {
            imported.insert(link.key.clone(), found);
        }
        progress(Progress::Links {
            done: i as u64 + 1,
            of: summary.links_read,
        });
    }

    if source.per_link() {
        per_link_clicks(
            store,
            enricher,
            source,
            opts,
            &links,
            &imported,
            &mut summary,
            &mut progress,
        )
        .await?;
    }
    counted(store, source, opts, &links, &imported, &mut summary).await?;

    // How far each epoch's clicks went (`None`: not started).
    let mut through: HashMap<i64, Option<i64>> = HashMap::new();
    for (_, _, e) in imported.values() {
        if !through.contains_key(e) {
            let mark: Option<EpochMark> = read_mark(store, &epoch_key(opts, *e)).await?;
            through.insert(*e, mark.map(|m| m.through));
        }
    }
    let mut after = through.values().copied().min().flatten();
    let mut salts = ImportSalts::default();
    while !through.is_empty() {
        let page = source.clicks(after, opts.batch).await?;
        let Some(last) = page.last().map(|c| c.pos) else {
            break;
        };
        summary.clicks_read += page.len() as u64;
        let mut batch = Vec::with_capacity(page.len());
        for c in &page {
            match imported.get(&c.link) {
                Some((id, _, e)) => {
                    // Written by an earlier run of this link's epoch.
                    if through[e].is_some_and(|t| c.pos <= t) {
                        continue;
                    }
                    batch.push(enrich(enricher, &mut salts, opts, *id, c));
                }
                None => summary.clicks_skipped += 1,
            }
        }
        summary.clicks_new += store.record_clicks(&batch).await?;
        for (e, t) in through.iter_mut() {
            if t.is_none_or(|t| t < last) {
                *t = Some(last);
                let mark = serde_json::to_string(&EpochMark { through: last })?;
                store.set_import_mark(&epoch_key(opts, *e), &mark).await?;
            }
        }
        after = Some(last);
        progress(Progress::Clicks {
            read: summary.clicks_read,
        });
    }

    // Totals: what the source counted against what hop now has.
    let ids: Vec<LinkId> = imported.values().map(|(id, _, _)| *id).collect();
    let mut totals = HashMap::new();
    for chunk in ids.chunks(500) {
        totals.extend(store.click_totals(chunk, true).await?);
    }
    summary.hop_clicks = totals.values().sum();
    for link in &links {
        let (Some((id, slug, _)), Some(source)) = (imported.get(&link.key), link.clicks) else {
            continue;
        };
        *summary.source_clicks.get_or_insert(0) += source;
        let hop = totals.get(id).copied().unwrap_or(0);
        if hop != source {
            summary.mismatched_links += 1;
            if summary.mismatches.len() < 20 {
                summary.mismatches.push(Mismatch {
                    key: link.key.clone(),
                    slug: slug.to_string(),
                    source,
                    hop,
                });
            }
        }
    }
    Ok(summary)
}

/// The clicks of a per-link source, link by link, window by window.
#[allow(clippy::too_many_arguments)]
async fn per_link_clicks(
    store: &dyn Store,
    enricher: &Enricher,
    source: &mut dyn Source,
    opts: &ImportOptions,
    links: &[SourceLink],
    imported: &HashMap<String, (LinkId, Slug, i64)>,
    summary: &mut Summary,
    progress: &mut (impl FnMut(Progress) + Send),
) -> anyhow::Result<()> {
    // A window ends a while ago (a minute), on a whole second: a visit
    // the source stores late still falls in the next window, not between
    // two.
    let now = (Utc::now().timestamp_millis() - opts.settle_ms).div_euclid(1000) * 1000;
    let mut salts = ImportSalts::default();
    for link in links {
        let Some((id, _, _)) = imported.get(&link.key) else {
            continue;
        };
        let key = format!("{}:visits:{}", opts.source, link.key);
        let mut mark: LinkClicksMark = read_mark(store, &key).await?.unwrap_or_default();
        let (until, mut page) = mark.window.unwrap_or((now, 0));
        if mark.through.is_some_and(|t| t >= until) {
            continue;
        }
        loop {
            let clicks = source.link_clicks(link, mark.through, until, page).await?;
            if clicks.is_empty() {
                break;
            }
            summary.clicks_read += clicks.len() as u64;
            let batch: Vec<EnrichedClick> = clicks
                .iter()
                .map(|c| enrich(enricher, &mut salts, opts, *id, c))
                .collect();
            summary.clicks_new += store.record_clicks(&batch).await?;
            page += 1;
            mark.window = Some((until, page));
            store
                .set_import_mark(&key, &serde_json::to_string(&mark)?)
                .await?;
            progress(Progress::Clicks {
                read: summary.clicks_read,
            });
        }
        mark.through = Some(until);
        mark.window = None;
        store
            .set_import_mark(&key, &serde_json::to_string(&mark)?)
            .await?;
    }
    Ok(())
}

/// The counted clicks of each link the source has them for: once per link
/// (the mark is written with them).
async fn counted(
    store: &dyn Store,
    source: &mut dyn Source,
    opts: &ImportOptions,
    links: &[SourceLink],
    imported: &HashMap<String, (LinkId, Slug, i64)>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    for link in links {
        let Some((id, _, _)) = imported.get(&link.key) else {
            continue;
        };
        let key = format!("{}:counts:{}", opts.source, link.key);
        if store.import_mark(&key).await?.is_some() {
            continue;
        }
        let counts = source.link_counts(link).await?;
        if counts.is_empty() {
            continue;
        }
        let total: u64 = counts.iter().map(|c| c.clicks).sum();
        let rows: Vec<crate::store::CountedClicks> = counts
            .into_iter()
            .map(|c| {
                let row = crate::store::CountedClicks {
                    link: *id,
                    at: c.at,
                    bot: c.bot,
                    clicks: c.clicks,
                    dims: c.dims,
                };
                match c.complete_to {
                    Some(total) => row.complete_to(total),
                    None => row,
                }
            })
            .collect();
        let mark = serde_json::json!({ "clicks": total }).to_string();
        store.record_counts(&rows, Some((&key, &mark))).await?;
        summary.clicks_counted += total;
        // What the dashboard says of the link (after the counts: a crash
        // in between leaves the note out, never a count).
        let link_key = counted_key(*id);
        let mut note: CountedNote = read_mark(store, &link_key).await?.unwrap_or_default();
        note.clicks += total;
        if !note.sources.contains(&opts.source) {
            note.sources.push(opts.source.clone());
        }
        store
            .set_import_mark(&link_key, &serde_json::to_string(&note)?)
            .await?;
    }
    Ok(())
}

/// What a link holds of counted clicks, for its dashboard.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CountedNote {
    pub clicks: u64,
    /// The sources they came from (`bitly:default`).
    pub sources: Vec<String>,
}

/// The import mark of a link's [`CountedNote`].
pub fn counted_key(link: LinkId) -> String {
    format!("counted:{}", link.0)
}

/// A link's [`CountedNote`], if it has counted clicks.
pub async fn counted_note(store: &dyn Store, link: LinkId) -> anyhow::Result<Option<CountedNote>> {
    read_mark(store, &counted_key(link)).await
}

fn epoch_key(opts: &ImportOptions, epoch: i64) -> String {
    format!("{}:clicks:{epoch}", opts.source)
}

/// Longest suffix tried (`slug-2` … `slug-100`) before giving up.
const MAX_SUFFIX: u32 = 100;

/// Makes (or finds) the hop link of one source link; `None`: skipped.
async fn import_link(
    store: &dyn Store,
    src: &SourceLink,
    opts: &ImportOptions,
    epoch: i64,
    summary: &mut Summary,
) -> anyhow::Result<Option<(LinkId, Slug, i64)>> {
    let mark_key = format!("{}:link:{}", opts.source, src.key);
    if let Some(mark) = read_mark::<LinkMark>(store, &mark_key).await? {
        let slug = Slug::parse_path(&mark.slug)
            .map_err(|e| StoreError::Corrupt(format!("import mark {mark_key}: {e}")))?;
        if let Some(found) = store.link_by_slug(&slug).await?
            && found.id.0 == mark.id
        {
            summary.links_existing += 1;
            return Ok(Some((found.id, slug, mark.epoch)));
        }
        // The link it became was deleted since: import it afresh.
    }
    let skip = |summary: &mut Summary, reason: String| {
        summary.skipped.push(Skipped {
            key: src.key.clone(),
            reason,
        });
        Ok(None)
    };
    let target = match TargetUrl::parse(src.url.trim(), &opts.own_hosts) {
        Ok(t) => t,
        Err(e) => return skip(summary, format!("URL {:?}: {e}", src.url)),
    };
    let now = Utc::now();
    let created = src.created_at.unwrap_or(now).min(now);
    let mut link = Link {
        id: LinkId::generate(created, &mut rand::rng()),
        slug: Slug::parse_path("x").expect("a valid slug"),
        target,
        title: clean_title(src.title.as_deref()),
        tags: clean_tags(&src.tags),
        created_at: created,
        updated_at: now,
        expires_at: src.expires_at,
        max_clicks: None,
        redirect_status: RedirectStatus::Found,
        disabled: false,
        owner: opts.owner,
        secret_hash: None,
        rules: Default::default(),
        fallback_url: None,
        password_hash: None,
        preview: None,
    };
    let wanted = match &src.slug {
        None => None,
        Some(s) => match Slug::parse_path(s) {
            Ok(slug) => Some(slug),
            Err(e) => return skip(summary, format!("slug {s:?}: {e}")),
        },
    };
    let (id, slug) = match wanted {
        None => {
            let mut attempt = 0;
            loop {
                attempt += 1;
                link.slug = store.random_slug(&mut rand::rng());
                match store.insert_random_link(&link).await? {
                    Ok(()) => break,
                    Err(Conflict::IdTaken) => link.id = LinkId::generate(created, &mut rand::rng()),
                    Err(Conflict::SlugTaken) if attempt < 10 => {}
                    Err(Conflict::SlugTaken) => {
                        anyhow::bail!("no free random slug after {attempt} attempts")
                    }
                }
            }
            summary.links_created += 1;
            (link.id, link.slug.clone())
        }
        Some(wanted) => {
            // A word hop keeps for a route of its own is a conflict too.
            let reserved = crate::domain::is_reserved(wanted.as_str());
            link.slug = wanted.clone();
            let first = if reserved {
                Err(Conflict::SlugTaken)
            } else {
                insert(store, &mut link, created).await?
            };
            match (first, opts.on_conflict) {
                (Ok(()), _) => {
                    summary.links_created += 1;
                    (link.id, wanted)
                }
                (Err(_), OnConflict::Skip) => {
                    let why = if reserved {
                        "kept by hop for a route"
                    } else {
                        "taken in hop"
                    };
                    return skip(
                        summary,
                        format!("slug {wanted} is {why} (--on-conflict skip)"),
                    );
                }
                (Err(_), OnConflict::Suffix) => {
                    let mut n = 2;
                    loop {
                        let candidate = format!("{wanted}-{n}");
                        let Ok(slug) = Slug::parse(&candidate) else {
                            return skip(
                                summary,
                                format!("slug {wanted} is taken and too long to suffix"),
                            );
                        };
                        link.slug = slug.clone();
                        if insert(store, &mut link, created).await?.is_ok() {
                            summary.links_renamed += 1;
                            break (link.id, slug);
                        }
                        n += 1;
                        if n > MAX_SUFFIX {
                            return skip(
                                summary,
                                format!("slug {wanted}-2 … -{MAX_SUFFIX} are all taken"),
                            );
                        }
                    }
                }
                (Err(_), OnConflict::Overwrite) => {
                    let Some(mut existing) = (if reserved {
                        None
                    } else {
                        store.link_by_slug(&wanted).await?
                    }) else {
                        return skip(summary, format!("slug {wanted} is kept by hop for a route"));
                    };
                    existing.target = link.target.clone();
                    existing.title = link.title.clone();
                    existing.tags = link.tags.clone();
                    existing.expires_at = link.expires_at;
                    existing.updated_at = now;
                    if !store.update_link(&existing).await? {
                        return skip(summary, format!("slug {wanted} was deleted meanwhile"));
                    }
                    summary.links_overwritten += 1;
                    (existing.id, wanted)
                }
            }
        }
    };
    let mark = serde_json::to_string(&LinkMark {
        id: id.0,
        slug: slug.to_string(),
        epoch,
    })?;
    store.set_import_mark(&mark_key, &mark).await?;
    Ok(Some((id, slug, epoch)))
}

/// Inserts `link` under its slug, drawing a new id when the first is
/// taken.
async fn insert(
    store: &dyn Store,
    link: &mut Link,
    created: DateTime<Utc>,
) -> Result<Result<(), Conflict>, StoreError> {
    loop {
        match store.insert_link(link).await? {
            Err(Conflict::IdTaken) => link.id = LinkId::generate(created, &mut rand::rng()),
            other => return Ok(other),
        }
    }
}

/// A source's title as hop keeps titles: control characters out, at most
/// [`MAX_TITLE_LEN`] characters.
fn clean_title(title: Option<&str>) -> Option<String> {
    let t: String = title?
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let t: String = t.trim().chars().take(MAX_TITLE_LEN).collect();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// A source's tags as hop keeps them: no commas or control characters,
/// de-duplicated, at most [`MAX_TAGS`] of at most [`MAX_TAG_LEN`].
fn clean_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let t: String = tag
            .chars()
            .filter(|c| !c.is_control() && *c != ',')
            .take(MAX_TAG_LEN)
            .collect();
        let t = t.trim();
        if !t.is_empty() && !out.iter().any(|o| o == t) && out.len() < MAX_TAGS {
            out.push(t.to_owned());
        }
    }
    out
}

/// The event id of a source's click: a UUIDv7 (so it sorts by time like
/// live ones) of the click's time and 74 bits of SHA-256 of (source,
/// click id), the same on every run.
pub fn event_id(source: &str, click: &str, at: i64) -> Uuid {
    let digest = Sha256::digest(format!("hop import\0{source}\0{click}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&(at.max(0) as u64).to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&digest[..10]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    Uuid::from_bytes(bytes)
}

/// Random salts per UTC day for one import run: visitor hashes count a
/// visitor once per day and link, as live ones do, and cannot be
/// recomputed (the salts are dropped with the run).
#[derive(Default)]
struct ImportSalts {
    by_day: HashMap<i64, [u8; 32]>,
}

impl ImportSalts {
    fn salt(&mut self, at: i64) -> [u8; 32] {
        *self
            .by_day
            .entry(at.div_euclid(86_400_000))
            .or_insert_with(|| {
                let mut s = [0u8; 32];
                rand::rng().fill_bytes(&mut s);
                s
            })
    }
}

fn enrich(
    enricher: &Enricher,
    salts: &mut ImportSalts,
    opts: &ImportOptions,
    link: LinkId,
    c: &SourceClick,
) -> EnrichedClick {
    let ua = enricher.user_agent(c.user_agent.as_deref());
    let located = c.ip.map(|ip| enricher.location(ip)).unwrap_or_default();
    let country = c
        .country
        .as_deref()
        .map(str::trim)
        .filter(|cc| cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_uppercase)
        .or(located.country);
    let city = c.city.clone().filter(|c| !c.is_empty()).or(located.city);
    let visitor = visitor_hash(
        &salts.salt(c.at),
        link,
        c.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        c.user_agent.as_deref().unwrap_or(""),
    );
    EnrichedClick {
        event_id: event_id(&opts.source, &c.id, c.at),
        link_id: link,
        at: c.at,
        bot: ua.bot || c.bot == Some(true),
        country,
        city,
        browser: ua.browser.clone(),
        os: ua.os.clone(),
        device: if c.bot == Some(true) {
            crate::domain::DeviceType::Bot
        } else {
            ua.device
        },
        referrer_host: c.referrer.as_deref().and_then(referrer_host),
        utm: Utm::default(),
        visitor,
        region: opts.region.clone(),
        route: Route::default(),
    }
}

/// `YYYY-MM-DD HH:MM:SS` (MySQL's DATETIME text), read as UTC; `None`
/// for MySQL's zero date and anything else that is no time.
pub fn parse_sql_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let s = s.split('.').next().unwrap_or(s);
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_fixed_by_source_and_id_and_sort_by_time() {
        let a = event_id("yourls", "17", 1_600_000_000_000);
        assert_eq!(a, event_id("yourls", "17", 1_600_000_000_000));
        assert_ne!(a, event_id("yourls", "18", 1_600_000_000_000));
        assert_ne!(a, event_id("other", "17", 1_600_000_000_000));
        assert_eq!(a.get_version_num(), 7);
        assert!(event_id("yourls", "1", 1_600_000_000_001) > a);
        let (secs, _) = a.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, 1_600_000_000);
    }

    #[test]
    fn titles_and_tags_are_made_acceptable() {
        assert_eq!(clean_title(Some(" a\tb \n")).as_deref(), Some("a b"));
        assert_eq!(clean_title(Some("  ")), None);
        assert_eq!(
            clean_title(Some(&"é".repeat(600))).unwrap().chars().count(),
            MAX_TITLE_LEN
        );
        let tags: Vec<String> = ["a,b", "ab", " c ", "", "c"].map(String::from).to_vec();
        assert_eq!(clean_tags(&tags), ["ab", "c"]);
    }

    #[test]
    fn sql_times() {
        assert_eq!(
            parse_sql_time("2020-01-02 03:04:05").unwrap().timestamp(),
            1_577_934_245
        );
        assert_eq!(
            parse_sql_time("2020-01-02 03:04:05.000000")
                .unwrap()
                .timestamp(),
            1_577_934_245
        );
        assert_eq!(parse_sql_time("0000-00-00 00:00:00"), None);
        assert_eq!(parse_sql_time("yesterday"), None);
    }
}
