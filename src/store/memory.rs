//! `MemoryStore`: everything in process memory, for tests and throwaway runs
//! (`--database-url memory://`). It keeps raw clicks only and answers every
//! resolution from them, which makes it the reference the conformance suite
//! holds the rollup-based stores to.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::Utc;
use parking_lot::Mutex;
use uuid::Uuid;

use super::{
    ApiKey, ClickStore, Conflict, CountedClicks, DimCount, ExportCursor, ImportMarks, KeyStore,
    LinkQuery, LinkStore, Report, ReportStore, Resolution, SessionRecords, StatsReads, StatsRows,
    StoreError, Takedown, TimeRange, host_in_domain, rollup_keys,
};
use crate::domain::{Dimension, EnrichedClick, KeyId, Link, LinkId, Slug};

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    links: BTreeMap<LinkId, Link>,
    slugs: HashMap<Slug, LinkId>,
    served: HashMap<LinkId, u64>,
    keys: Vec<ApiKey>,
    event_ids: HashSet<Uuid>,
    clicks: HashMap<LinkId, Vec<EnrichedClick>>,
    /// Each link's variant segments, whose copies of its clicks are kept
    /// in `clicks` under the segment's id.
    segments: HashMap<LinkId, HashSet<LinkId>>,
    sessions: HashMap<[u8; 32], (String, i64)>,
    import_marks: HashMap<String, String>,
    /// Clicks sources counted (imports), by link.
    counted: HashMap<LinkId, Vec<CountedClicks>>,
    reports: Vec<Report>,
    takedowns: BTreeMap<String, Takedown>,
}

impl Inner {
    /// Forgets the clicks of `link` and of its segments; returns how many
    /// of the link's own there were.
    fn remove_clicks(&mut self, link: LinkId) -> u64 {
        self.counted.remove(&link);
        let segments = self.segments.remove(&link).unwrap_or_default();
        let mut own = 0;
        for id in std::iter::once(link).chain(segments) {
            if let Some(clicks) = self.clicks.remove(&id) {
                if id == link {
                    own = clicks.len() as u64;
                }
                for c in clicks {
                    self.event_ids.remove(&c.event_id);
                }
            }
        }
        own
    }

    /// Clicks per minute (`Raw`, `Minute`) or quarter hour.
    fn series(
        &self,
        link: LinkId,
        res: Resolution,
        range: TimeRange,
        include_bots: bool,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        let bucket = match res {
            Resolution::Raw | Resolution::Minute => Resolution::Minute,
            Resolution::QuarterHour => Resolution::QuarterHour,
            _ => return Err(StoreError::Unsupported("series at this resolution")),
        };
        let mut out: BTreeMap<i64, u64> = BTreeMap::new();
        for c in self.clicks_in(link, range, include_bots) {
            *out.entry(bucket.floor(c.at)).or_default() += 1;
        }
        for c in self.counted_in(link, range, include_bots) {
            *out.entry(bucket.floor(c.at)).or_default() += c.clicks;
        }
        out.retain(|_, n| *n > 0);
        Ok(out.into_iter().collect())
    }

    /// Counted clicks (imports) whose minute is in `range`, as the SQL
    /// stores' rollups count them.
    fn counted_in(
        &self,
        link: LinkId,
        range: TimeRange,
        include_bots: bool,
    ) -> impl Iterator<Item = &CountedClicks> {
        self.counted
            .get(&link)
            .into_iter()
            .flatten()
            .filter(move |c| {
                let minute = Resolution::Minute.floor(c.at);
                minute >= range.from && minute < range.to && (include_bots || !c.bot)
            })
    }

    fn clicks_in(
        &self,
        link: LinkId,
        range: TimeRange,
        include_bots: bool,
    ) -> impl Iterator<Item = &EnrichedClick> {
        self.clicks
            .get(&link)
            .into_iter()
            .flatten()
            .filter(move |c| c.at >= range.from && c.at < range.to && (include_bots || !c.bot))
    }
}

#[async_trait]
impl LinkStore for MemoryStore {
    async fn insert_link(&self, link: &Link) -> Result<Result<(), Conflict>, StoreError> {
        let mut inner = self.inner.lock();
        if inner.slugs.contains_key(&link.slug) {
            return Ok(Err(Conflict::SlugTaken));
        }
        if inner.links.contains_key(&link.id) {
            return Ok(Err(Conflict::IdTaken));
        }
        inner.slugs.insert(link.slug.clone(), link.id);
        inner.links.insert(link.id, link.clone());
        Ok(Ok(()))
    }

    async fn link_by_slug(&self, slug: &Slug) -> Result<Option<Link>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .slugs
            .get(slug)
            .and_then(|id| inner.links.get(id))
            .cloned())
    }

    async fn list_links(&self, q: &LinkQuery) -> Result<Vec<Link>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .links
            .values()
            .rev()
            .filter(|l| q.matches(l))
            .take(q.limit)
            .cloned()
            .collect())
    }

    async fn update_link(&self, link: &Link) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        match inner.links.get_mut(&link.id) {
            Some(stored) => {
                *stored = link.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_link(&self, slug: &Slug) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        let Some(id) = inner.slugs.remove(slug) else {
            return Ok(false);
        };
        inner.links.remove(&id);
        inner.served.remove(&id);
        inner.remove_clicks(id);
        Ok(true)
    }

    async fn claim_click(&self, link: LinkId, max_clicks: u64) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        if !inner.links.contains_key(&link) {
            return Ok(false);
        }
        let served = inner.served.entry(link).or_default();
        if *served >= max_clicks {
            return Ok(false);
        }
        *served += 1;
        Ok(true)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn insert_key(
        &self,
        name: &str,
        hash: [u8; 32],
        admin: bool,
    ) -> Result<ApiKey, StoreError> {
        let mut inner = self.inner.lock();
        let key = ApiKey {
            id: KeyId(inner.keys.len() as i64 + 1),
            name: name.to_owned(),
            hash,
            admin,
            created_at: Utc::now(),
            revoked_at: None,
        };
        inner.keys.push(key.clone());
        Ok(key)
    }

    async fn key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        Ok(self
            .inner
            .lock()
            .keys
            .iter()
            .find(|k| &k.hash == hash)
            .cloned())
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self.inner.lock().keys.clone())
    }

    async fn revoke_key(&self, id: KeyId) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        match inner
            .keys
            .iter_mut()
            .find(|k| k.id == id && k.revoked_at.is_none())
        {
            Some(k) => {
                k.revoked_at = Some(Utc::now());
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[async_trait]
impl ReportStore for MemoryStore {
    async fn insert_report(
        &self,
        slug: &str,
        link: Option<LinkId>,
        reason: &str,
        details: Option<&str>,
    ) -> Result<Report, StoreError> {
        let mut inner = self.inner.lock();
        let report = Report {
            id: inner.reports.len() as i64 + 1,
            slug: slug.to_owned(),
            link_id: link,
            reason: reason.to_owned(),
            details: details.map(str::to_owned),
            created_at: Utc::now(),
        };
        inner.reports.push(report.clone());
        Ok(report)
    }

    async fn list_reports(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Report>, StoreError> {
        Ok(self
            .inner
            .lock()
            .reports
            .iter()
            .rev()
            .filter(|r| before.is_none_or(|b| r.id < b))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn links_to_domain(&self, domain: &str) -> Result<Vec<Link>, StoreError> {
        Ok(self
            .inner
            .lock()
            .links
            .values()
            .filter(|l| host_in_domain(l.target.host(), domain))
            .cloned()
            .collect())
    }

    async fn add_takedown(&self, domain: &str, reason: &str) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        if inner.takedowns.contains_key(domain) {
            return Ok(false);
        }
        inner.takedowns.insert(
            domain.to_owned(),
            Takedown {
                domain: domain.to_owned(),
                reason: reason.to_owned(),
                created_at: Utc::now(),
            },
        );
        Ok(true)
    }

    async fn remove_takedown(&self, domain: &str) -> Result<bool, StoreError> {
        Ok(self.inner.lock().takedowns.remove(domain).is_some())
    }

    async fn list_takedowns(&self) -> Result<Vec<Takedown>, StoreError> {
        Ok(self.inner.lock().takedowns.values().cloned().collect())
    }
}

#[async_trait]
impl ImportMarks for MemoryStore {
    async fn import_mark(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.inner.lock().import_marks.get(key).cloned())
    }

    async fn set_import_mark(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner
            .lock()
            .import_marks
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }
}

#[async_trait]
impl SessionRecords for MemoryStore {
    async fn load_session(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(self
            .inner
            .lock()
            .sessions
            .get(id_hash)
            .filter(|(_, exp)| *exp > now)
            .cloned())
    }

    async fn save_session(
        &self,
        id_hash: &[u8; 32],
        data: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.inner
            .lock()
            .sessions
            .insert(*id_hash, (data.to_owned(), expires_at));
        Ok(())
    }

    async fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.inner.lock().sessions.remove(id_hash);
        Ok(())
    }

    async fn take_session(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let taken = self.inner.lock().sessions.remove(id_hash);
        Ok(taken.filter(|(_, exp)| *exp > now).map(|(data, _)| data))
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock();
        let before = inner.sessions.len();
        inner.sessions.retain(|_, (_, exp)| *exp > now);
        Ok((before - inner.sessions.len()) as u64)
    }
}

#[async_trait]
impl ClickStore for MemoryStore {
    async fn delete_raw_clicks_before(&self, before: i64) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock();
        let mut n = 0;
        for (link, clicks) in inner.clicks.iter_mut() {
            let len = clicks.len();
            clicks.retain(|c| c.at >= before);
            // Variant segments' copies go too, but are the same clicks.
            if !link.is_segment() {
                n += (len - clicks.len()) as u64;
            }
        }
        Ok(n)
    }

    async fn purge_clicks(&self, link: LinkId) -> Result<u64, StoreError> {
        Ok(self.inner.lock().remove_clicks(link))
    }

    fn keeps_rollups(&self) -> bool {
        false
    }

    async fn record_counts(
        &self,
        counts: &[CountedClicks],
        mark: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        for c in counts {
            if inner.links.contains_key(&c.link) {
                inner.counted.entry(c.link).or_default().push(c.clone());
            }
        }
        if let Some((k, v)) = mark {
            inner.import_marks.insert(k.to_owned(), v.to_owned());
        }
        Ok(())
    }

    async fn record_clicks(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock();
        let mut new = 0;
        for c in clicks {
            if !inner.links.contains_key(&c.link_id) || !inner.event_ids.insert(c.event_id) {
                continue;
            }
            inner.clicks.entry(c.link_id).or_default().push(c.clone());
            new += 1;
            if let Some(copy) = c.segment_copy() {
                inner
                    .segments
                    .entry(c.link_id)
                    .or_default()
                    .insert(copy.link_id);
                inner.event_ids.insert(copy.event_id);
                inner.clicks.entry(copy.link_id).or_default().push(copy);
            }
        }
        Ok(new)
    }

    async fn stats_rows(
        &self,
        link: LinkId,
        reads: &StatsReads,
        include_bots: bool,
        _top: usize,
    ) -> Result<StatsRows, StoreError> {
        let inner = self.inner.lock();
        let mut rows = StatsRows::default();
        for (res, range) in &reads.series {
            rows.series
                .extend(inner.series(link, *res, *range, include_bots)?);
        }
        let mut dims: HashMap<(Dimension, String), u64> = HashMap::new();
        for (_, range) in &reads.dims {
            for c in inner.clicks_in(link, *range, include_bots) {
                for key in rollup_keys(c) {
                    *dims.entry(key).or_default() += 1;
                }
            }
            for c in inner.counted_in(link, *range, include_bots) {
                for (dim, value, n) in &c.dims {
                    *dims.entry((*dim, value.clone())).or_default() += n;
                }
            }
        }
        dims.retain(|_, n| *n > 0);
        rows.dims = dims
            .into_iter()
            .map(|((dim, value), clicks)| DimCount { dim, value, clicks })
            .collect();
        if !reads.visitors.is_empty() {
            // A visitor is a (UTC day, hash) pair counted at its first click.
            let all = TimeRange {
                from: i64::MIN,
                to: i64::MAX,
            };
            let mut first: HashMap<(i64, i64), i64> = HashMap::new();
            for c in inner.clicks_in(link, all, include_bots) {
                let at = first
                    .entry((Resolution::Day.floor(c.at), c.visitor))
                    .or_insert(c.at);
                *at = (*at).min(c.at);
            }
            rows.visitors = first
                .values()
                .filter(|at| {
                    reads
                        .visitors
                        .iter()
                        .any(|(_, r)| **at >= r.from && **at < r.to)
                })
                .count() as u64;
        }
        Ok(rows)
    }

    async fn prune_minute_rollups(&self, _before: i64) -> Result<u64, StoreError> {
        Ok(0) // no rollups: everything is answered from raw clicks
    }

    async fn click_totals(
        &self,
        links: &[LinkId],
        include_bots: bool,
    ) -> Result<HashMap<LinkId, u64>, StoreError> {
        let inner = self.inner.lock();
        let all = TimeRange {
            from: i64::MIN,
            to: i64::MAX,
        };
        Ok(links
            .iter()
            .map(|id| {
                let counted: u64 = inner
                    .counted_in(*id, all, include_bots)
                    .map(|c| c.clicks)
                    .sum();
                (
                    *id,
                    inner.clicks_in(*id, all, include_bots).count() as u64 + counted,
                )
            })
            .collect())
    }

    async fn recent_clicks(
        &self,
        link: LinkId,
        include_bots: bool,
        limit: usize,
    ) -> Result<Vec<EnrichedClick>, StoreError> {
        let inner = self.inner.lock();
        let all = TimeRange {
            from: i64::MIN,
            to: i64::MAX,
        };
        let mut rows: Vec<EnrichedClick> =
            inner.clicks_in(link, all, include_bots).cloned().collect();
        rows.sort_by_key(|c| std::cmp::Reverse((c.at, c.event_id)));
        rows.truncate(limit);
        Ok(rows)
    }

    async fn export_clicks(
        &self,
        link: LinkId,
        range: TimeRange,
        include_bots: bool,
        after: Option<ExportCursor>,
        limit: usize,
    ) -> Result<Vec<EnrichedClick>, StoreError> {
        let inner = self.inner.lock();
        let mut rows: Vec<EnrichedClick> = inner
            .clicks_in(link, range, include_bots)
            .filter(|c| after.is_none_or(|a| (c.at, c.event_id) > a))
            .cloned()
            .collect();
        rows.sort_by_key(|c| (c.at, c.event_id));
        rows.truncate(limit);
        Ok(rows)
    }
}

/// The reference store is not copied (its rollups are its raw clicks).
impl super::copy::CopyRows for MemoryStore {}
impl super::webhooks::WebhookStore for MemoryStore {}
