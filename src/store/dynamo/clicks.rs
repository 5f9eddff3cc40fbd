//! Clicks on DynamoDB: the batch write (transactions of at most 100
//! actions, replays dropped by their cancellation reasons) and every read
//! (stats from the deltas, in one snapshot; raw clicks for edges, the
//! recent list and exports).

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;

use super::items::{RAW_SHARDS, click_from_item, day_key, dirty_key, raw_pk};
use super::model::{Counts, dim_counts};
use super::seal::DayItems;
use super::write::{Head, visitor_state};
use super::{DynamoStore, Item, get_n, get_s, n, opt_s, ord_key, s, unavailable};
use crate::domain::{EnrichedClick, LinkId};
use crate::store::{
    ClickStore, ExportCursor, Resolution, StatsReads, StatsRows, StoreError, TimeRange,
};
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem};

impl DynamoStore {
    /// The heads of a link: region → its last published batch and totals.
    pub(super) async fn heads(&self, link: LinkId) -> Result<HashMap<String, Head>, StoreError> {
        let mut out = HashMap::new();
        for item in self.query_all(format!("H#{}", link.0), None, true).await? {
            out.insert(get_s(&item, "sk")?.to_owned(), Head::from_item(&item)?);
        }
        Ok(out)
    }

    /// Committed counts of the days `[first, last]`, each region's read up
    /// to its head as read first: one snapshot (see the module docs).
    pub(super) async fn counts(
        &self,
        link: LinkId,
        first: i64,
        last: i64,
    ) -> Result<(Counts, HashMap<String, Head>), StoreError> {
        let heads = self.heads(link).await?;
        let items = self
            .query_all(
                format!("D#{}", link.0),
                Some((day_key(first), format!("{}~", day_key(last)))),
                true,
            )
            .await?;
        let mut total = Counts::default();
        for ((_, region), day) in DayItems::from_items(&items)? {
            total.add(&day.counts(heads.get(&region).map_or(0, |h| h.seq))?);
        }
        total.coarsen(self.prune_horizon().await?);
        Ok((total, heads))
    }

    /// Raw clicks of a link in `[from, to)` from every shard, committed
    /// within `heads` (when given), in time order.
    pub(super) async fn raw_in(
        &self,
        link: LinkId,
        range: TimeRange,
        heads: &HashMap<String, Head>,
    ) -> Result<Vec<EnrichedClick>, StoreError> {
        let mut out = Vec::new();
        if range.from >= range.to {
            return Ok(out);
        }
        for shard in 0..RAW_SHARDS {
            let items = self
                .query_all(
                    raw_pk(link, shard),
                    Some((ord_key(range.from), format!("{}~", ord_key(range.to - 1)))),
                    true,
                )
                .await?;
            for item in &items {
                if published(item, heads)? {
                    out.push(click_from_item(item)?);
                }
            }
        }
        out.sort_by_key(|c| (c.at, c.event_id));
        Ok(out)
    }

    /// Visitors whose first click of the day lies in `[from, to)` (an
    /// unaligned edge of a visitors read).
    async fn raw_visitors(
        &self,
        link: LinkId,
        range: TimeRange,
        include_bots: bool,
        heads: &HashMap<String, Head>,
    ) -> Result<i64, StoreError> {
        let mut count = 0;
        let mut day = Resolution::Day.floor(range.from);
        while day < range.to {
            for item in self
                .query_all(format!("V#{}#{}", link.0, day_key(day)), None, true)
                .await?
            {
                let region = get_s(&item, "sk")?.split('#').next().unwrap_or_default();
                let Some(head) = heads.get(region) else {
                    continue;
                };
                if let Some(f) = visitor_state(&item, head, None)?
                    && f.counted
                    && f.at >= range.from
                    && f.at < range.to
                    && (include_bots || !f.bot)
                {
                    count += 1;
                }
            }
            day += Resolution::Day.grain_ms();
        }
        Ok(count)
    }

    /// Deletes a link's raw clicks, deltas, visitors, to-seal marks and
    /// heads; returns how many (published) raw clicks went.
    pub(super) async fn delete_clicks_of(&self, link: LinkId) -> Result<u64, StoreError> {
        let mut raw = 0;
        let key = |i: &Item| -> Result<(String, String), StoreError> {
            Ok((get_s(i, "pk")?.to_owned(), get_s(i, "sk")?.to_owned()))
        };
        let head_items = self.heads(link).await?;
        for shard in 0..RAW_SHARDS {
            let items = self.query_all(raw_pk(link, shard), None, true).await?;
            for item in &items {
                raw += u64::from(published(item, &head_items)?);
            }
            self.delete_keys(items.iter().map(key).collect::<Result<_, _>>()?)
                .await?;
        }
        let mut days = HashSet::new();
        let mut marks = Vec::new();
        for (region, head) in &head_items {
            days.extend(head.days.iter().cloned());
            for day in &head.days {
                marks.push(dirty_key(link, day, region));
            }
        }
        self.delete_keys(marks).await?;
        for day in days {
            let items = self
                .query_all(format!("V#{}#{day}", link.0), None, true)
                .await?;
            self.delete_keys(items.iter().map(key).collect::<Result<_, _>>()?)
                .await?;
        }
        let items = self.query_all(format!("D#{}", link.0), None, true).await?;
        self.delete_keys(items.iter().map(key).collect::<Result<_, _>>()?)
            .await?;
        self.delete_keys(
            head_items
                .keys()
                .map(|r| (format!("H#{}", link.0), r.clone()))
                .collect(),
        )
        .await?;
        Ok(raw)
    }
}

/// Whether a raw click item belongs to a published batch.
fn published(item: &Item, heads: &HashMap<String, Head>) -> Result<bool, StoreError> {
    let Some(head) = heads.get(get_s(item, "w")?) else {
        return Ok(false);
    };
    Ok(head.published(
        get_n(item, "seq")?,
        &opt_s(item, "nonce").unwrap_or_default(),
    ))
}

fn aligned(r: TimeRange) -> bool {
    r.from.rem_euclid(60_000) == 0 && r.to.rem_euclid(60_000) == 0
}

/// A range cut into its minute-aligned middle and the raw edges around it.
fn cut(r: TimeRange) -> (Option<TimeRange>, Vec<TimeRange>) {
    if aligned(r) {
        return (Some(r), Vec::new());
    }
    let g = Resolution::Minute.grain_ms();
    let start = Resolution::Minute.floor(r.from + g - 1);
    let end = Resolution::Minute.floor(r.to);
    if start >= end {
        return (None, vec![r]);
    }
    let edges = [
        TimeRange {
            from: r.from,
            to: start,
        },
        TimeRange {
            from: end,
            to: r.to,
        },
    ]
    .into_iter()
    .filter(|e| e.from < e.to)
    .collect();
    (
        Some(TimeRange {
            from: start,
            to: end,
        }),
        edges,
    )
}

impl DynamoStore {
    /// Up to `limit` raw clicks that `keep` accepts, from every shard,
    /// between two sort keys, in time order (`forward`) or newest first.
    async fn raw_page(
        &self,
        link: LinkId,
        (lo, hi): (String, String),
        forward: bool,
        limit: usize,
        keep: impl Fn(&EnrichedClick) -> bool,
    ) -> Result<Vec<EnrichedClick>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..RAW_SHARDS {
            let mut kept = 0;
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(self.table())
                    .consistent_read(true)
                    .scan_index_forward(forward)
                    .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                    .expression_attribute_values(":pk", s(raw_pk(link, shard)))
                    .expression_attribute_values(":lo", s(lo.clone()))
                    .expression_attribute_values(":hi", s(hi.clone()))
                    .limit(limit.clamp(1, 1000) as i32)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in page.items() {
                    let c = click_from_item(item)?;
                    if keep(&c) {
                        out.push(c);
                        kept += 1;
                    }
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() && kept < limit => start = Some(k),
                    _ => break,
                }
            }
        }
        if forward {
            out.sort_by_key(|c| (c.at, c.event_id));
        } else {
            out.sort_by_key(|c| std::cmp::Reverse((c.at, c.event_id)));
        }
        out.truncate(limit);
        Ok(out)
    }
}

impl DynamoStore {
    /// Sets up `segment` of `owner` once (its id item, so click batches
    /// may publish to it, and its entry under the owner, so deleting the
    /// owner finds it), if the owner still exists; whether it does.
    async fn segment_exists(&self, owner: LinkId, segment: LinkId) -> Result<bool, StoreError> {
        if self.segments.contains_key(&segment) {
            return Ok(true);
        }
        let check = ConditionCheck::builder()
            .table_name(self.table())
            .key("pk", s(format!("I#{}", owner.0)))
            .key("sk", s("I"))
            .condition_expression("attribute_exists(pk)")
            .build()
            .expect("complete");
        let id_item = Put::builder()
            .table_name(self.table())
            .item("pk", s(format!("I#{}", segment.0)))
            .item("sk", s("I"))
            .item("owner", n(owner.0))
            .build()
            .expect("complete");
        let entry = Put::builder()
            .table_name(self.table())
            .item("pk", s(format!("G#{}", owner.0)))
            .item("sk", s(segment.0.to_string()))
            .build()
            .expect("complete");
        let actions = vec![
            TransactWriteItem::builder().condition_check(check).build(),
            TransactWriteItem::builder().put(id_item).build(),
            TransactWriteItem::builder().put(entry).build(),
        ];
        match self
            .transact(actions, "setting up a variant segment")
            .await?
        {
            Ok(()) => {
                self.segments.insert(segment, ());
                Ok(true)
            }
            // The owner is gone: its variants' clicks go with it.
            Err(_) => Ok(false),
        }
    }

    /// The variant segments of `link`.
    pub(super) async fn segments_of(&self, link: LinkId) -> Result<Vec<LinkId>, StoreError> {
        let mut out = Vec::new();
        for item in self.query_all(format!("G#{}", link.0), None, true).await? {
            if let Ok(id) = get_s(&item, "sk")?.parse::<i64>() {
                out.push(LinkId(id));
            }
        }
        Ok(out)
    }

    /// Deletes every segment of `link`: their clicks, id items and
    /// entries (after the link's own id item, so none is set up again).
    pub(super) async fn delete_segments_of(&self, link: LinkId) -> Result<(), StoreError> {
        for segment in self.segments_of(link).await? {
            self.segments.invalidate(&segment);
            self.delete_keys(vec![(format!("I#{}", segment.0), "I".into())])
                .await?;
            self.delete_clicks_of(segment).await?;
            self.delete_keys(vec![(format!("G#{}", link.0), segment.0.to_string())])
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ClickStore for DynamoStore {
    async fn record_counts(
        &self,
        counts: &[crate::store::CountedClicks],
        mark: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        self.record_counted(counts).await?;
        // Not in the counts' transactions (a link's may be several): a
        // crash between them would count these once more on a rerun.
        if let Some((key, value)) = mark {
            crate::store::ImportMarks::set_import_mark(self, key, value).await?;
        }
        Ok(())
    }

    async fn record_clicks(&self, clicks: &[EnrichedClick]) -> Result<u64, StoreError> {
        // A click twice in one batch counts once; then per link.
        let mut seen = HashSet::new();
        let mut by_link: BTreeMap<LinkId, Vec<&EnrichedClick>> = BTreeMap::new();
        for c in clicks {
            if seen.insert(c.event_id) {
                by_link.entry(c.link_id).or_default().push(c);
            }
        }
        let mut new = 0;
        for (link, clicks) in &by_link {
            new += self.record_link(*link, clicks.clone(), true).await?;
        }
        // Then the variants' copies, under their segments (not counted in
        // what this returns: they are the same clicks).
        let copies: Vec<(LinkId, EnrichedClick)> = by_link
            .values()
            .flatten()
            .filter_map(|c| c.segment_copy().map(|copy| (c.link_id, copy)))
            .collect();
        let mut by_segment: BTreeMap<LinkId, (LinkId, Vec<&EnrichedClick>)> = BTreeMap::new();
        for (owner, copy) in &copies {
            by_segment
                .entry(copy.link_id)
                .or_insert_with(|| (*owner, Vec::new()))
                .1
                .push(copy);
        }
        for (segment, (owner, clicks)) in by_segment {
            if self.segment_exists(owner, segment).await? {
                // Copies: no webhook events of their own.
                self.record_link(segment, clicks, false).await?;
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
        let ranges = || {
            reads
                .series
                .iter()
                .chain(&reads.dims)
                .chain(&reads.visitors)
                .map(|p| p.1)
                .filter(|r| r.from < r.to)
        };
        let (Some(from), Some(to)) = (ranges().map(|r| r.from).min(), ranges().map(|r| r.to).max())
        else {
            return Ok(StatsRows::default());
        };
        let (counts, heads) = self
            .counts(
                link,
                Resolution::Day.floor(from),
                Resolution::Day.floor(to - 1),
            )
            .await?;
        let counted = |c: &EnrichedClick| include_bots || !c.bot;
        let mut rows = StatsRows::default();
        for (res, range) in &reads.series {
            let bucket = match res {
                Resolution::Raw | Resolution::Minute => Resolution::Minute,
                Resolution::QuarterHour => Resolution::QuarterHour,
                _ => return Err(StoreError::Unsupported("series at this resolution")),
            };
            let mut piece = BTreeMap::new();
            let (middle, edges) = cut(*range);
            if let Some(m) = middle {
                counts.series_in(bucket, m, include_bots, &mut piece);
            }
            for edge in edges {
                for c in self.raw_in(link, edge, &heads).await? {
                    if counted(&c) {
                        *piece.entry(bucket.floor(c.at)).or_default() += 1;
                    }
                }
            }
            rows.series.extend(
                piece
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(b, n)| (b, n as u64)),
            );
        }
        let mut dims = HashMap::new();
        for (res, range) in &reads.dims {
            let (middle, edges) = cut(*range);
            if let Some(m) = middle {
                counts.dims_in(*res, m, include_bots, &mut dims);
            }
            for edge in edges {
                for c in self.raw_in(link, edge, &heads).await? {
                    if counted(&c) {
                        for (dim, value) in crate::store::rollup_keys(&c) {
                            *dims.entry((dim as u8, value)).or_default() += 1;
                        }
                    }
                }
            }
        }
        rows.dims = dim_counts(dims)?;
        let mut visitors = 0;
        for (res, range) in &reads.visitors {
            let (middle, edges) = cut(*range);
            if let Some(m) = middle {
                visitors += counts.visitors_in(*res, m, include_bots);
            }
            for edge in edges {
                visitors += self.raw_visitors(link, edge, include_bots, &heads).await?;
            }
        }
        rows.visitors = visitors.max(0) as u64;
        Ok(rows)
    }

    async fn seal_rollups(
        &self,
        horizon: i64,
        open_rows: u64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        self.seal(horizon, open_rows, limit).await
    }

    async fn prune_minute_rollups(&self, before: i64) -> Result<u64, StoreError> {
        self.prune(before).await
    }

    async fn click_totals(
        &self,
        links: &[LinkId],
        include_bots: bool,
    ) -> Result<HashMap<LinkId, u64>, StoreError> {
        let mut out = HashMap::new();
        for link in links {
            let mut sum = 0;
            for head in self.heads(*link).await?.values() {
                sum += if include_bots { head.all } else { head.humans };
            }
            out.insert(*link, sum.max(0) as u64);
        }
        Ok(out)
    }

    async fn delete_raw_clicks_before(&self, before: i64) -> Result<u64, StoreError> {
        let mut gone = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(self.table())
                .consistent_read(true)
                .filter_expression("begins_with(pk, :c) AND #at < :b")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":c", s("C#"))
                .expression_attribute_values(":b", n(before))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            let keys = page
                .items()
                .iter()
                .map(|i| Ok((get_s(i, "pk")?.to_owned(), get_s(i, "sk")?.to_owned())))
                .collect::<Result<Vec<_>, StoreError>>()?;
            // Variant segments' copies go too, but are not counted: they
            // are the same clicks.
            gone += keys.iter().filter(|(pk, _)| !pk.starts_with("C#-")).count() as u64;
            self.delete_keys(keys).await?;
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(gone),
            }
        }
    }

    async fn purge_clicks(&self, link: LinkId) -> Result<u64, StoreError> {
        let n = self.delete_clicks_of(link).await?;
        for segment in self.segments_of(link).await? {
            self.delete_clicks_of(segment).await?;
        }
        Ok(n)
    }

    async fn recent_clicks(
        &self,
        link: LinkId,
        include_bots: bool,
        limit: usize,
    ) -> Result<Vec<EnrichedClick>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.raw_page(link, (ord_key(i64::MIN), "~".into()), false, limit, |c| {
            include_bots || !c.bot
        })
        .await
    }

    async fn export_clicks(
        &self,
        link: LinkId,
        range: TimeRange,
        include_bots: bool,
        after: Option<ExportCursor>,
        limit: usize,
    ) -> Result<Vec<EnrichedClick>, StoreError> {
        if limit == 0 || range.from >= range.to {
            return Ok(Vec::new());
        }
        let from = after.map_or(range.from, |(at, _)| at.max(range.from));
        self.raw_page(
            link,
            (ord_key(from), format!("{}~", ord_key(range.to - 1))),
            true,
            limit,
            |c| {
                c.at >= range.from
                    && c.at < range.to
                    && (include_bots || !c.bot)
                    && after.is_none_or(|a| (c.at, c.event_id) > a)
            },
        )
        .await
    }
}
