//! Sealing on DynamoDB: a day's deltas of one region are summed into a
//! pack, so a read of the day meets one item (or a few, for a big day)
//! instead of one per batch. Only speed depends on it.
//!
//! Every publish marks the (link, day, region) it touched in a `DIRTY#{n}`
//! partition (`rows` counts the deltas since the last seal). A sealer of
//! that region reads the head, sums the newest pack and the deltas after it
//! up to the head into a new pack version, and writes it beside the old
//! one. Readers take the newest complete pack within their snapshot, so the
//! deltas and the older pack are deleted only a grace period later, when no
//! read that began before the new pack can still be running.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;

use super::items::{DIRTY_SHARDS, day_key, dirty_key};
use super::model::Counts;
use super::visitors::{Progress, batch_counts};
use super::{DynamoStore, Item, condition_held, get_n, get_s, n, opt_n, ord_key, s, unavailable};
use crate::domain::LinkId;
use crate::store::{Resolution, StoreError};

/// An open day is sealed once it has this many deltas (or the caller's
/// `open_rows`, if fewer).
const OPEN_DELTAS: u64 = 50;

/// Largest pack item written (DynamoDB's limit is 400 KB).
const PACK_PART_BYTES: usize = 300_000;

/// An item's counts blob and its key.
pub(super) type Blob = (Vec<u8>, (String, String));

/// A pack version: (parts expected, each part's blob and key, sealed at).
pub(super) type Pack = (i64, Vec<Blob>, i64);

/// The delta and pack items of one (day, region), as read.
#[derive(Default)]
pub(super) struct DayItems {
    pub deltas: Vec<(i64, Vec<u8>, (String, String))>,
    /// (upto, version) → (parts expected, (part blob, key), sealed at).
    /// A day is sealed again as batches come, and rewritten when pruned:
    /// every version of the same `upto` holds the same clicks.
    pub packs: BTreeMap<(i64, String), Pack>,
}

impl DayItems {
    pub fn from_items(items: &[Item]) -> Result<BTreeMap<(String, String), DayItems>, StoreError> {
        let mut days: BTreeMap<(String, String), DayItems> = BTreeMap::new();
        for item in items {
            let pk = get_s(item, "pk")?;
            let sk = get_s(item, "sk")?;
            let mut parts = sk.split('#');
            let (Some(day), Some(region), Some(kind)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(StoreError::Corrupt(format!("delta key {sk}")));
            };
            let Some(AttributeValue::B(blob)) = item.get("c") else {
                return Err(StoreError::Corrupt(format!("delta {sk} without counts")));
            };
            let key = (pk.to_owned(), sk.to_owned());
            let entry = days.entry((day.to_owned(), region.to_owned())).or_default();
            match kind {
                "d" => entry
                    .deltas
                    .push((get_n(item, "seq")?, blob.as_ref().to_vec(), key)),
                "p" => {
                    let version = parts.nth(1).unwrap_or_default().to_owned();
                    let pack = entry
                        .packs
                        .entry((get_n(item, "upto")?, version))
                        .or_insert((
                            get_n(item, "parts")?,
                            Vec::new(),
                            opt_n(item, "sealed_at")?.unwrap_or(0),
                        ));
                    pack.1.push((blob.as_ref().to_vec(), key));
                }
                _ => return Err(StoreError::Corrupt(format!("delta key {sk}"))),
            }
        }
        Ok(days)
    }

    /// The newest complete pack with `upto` at most `head` (and sealed at
    /// or before `sealed_by`).
    pub fn pack(&self, head: i64, sealed_by: i64) -> Option<(i64, &[Blob])> {
        self.packs
            .iter()
            .rev()
            .find(|((upto, _), (parts, blobs, at))| {
                *upto <= head && blobs.len() as i64 == *parts && *at <= sealed_by
            })
            .map(|((upto, _), (_, blobs, _))| (*upto, blobs.as_slice()))
    }

    /// The counts within batch `head`: the newest pack and the deltas after.
    pub fn counts(&self, head: i64) -> Result<Counts, StoreError> {
        let mut total = Counts::default();
        let upto = match self.pack(head, i64::MAX) {
            Some((upto, blobs)) => {
                for (b, _) in blobs {
                    total.add(&Counts::decode(b)?);
                }
                upto
            }
            None => 0,
        };
        for (seq, blob, _) in &self.deltas {
            if *seq > upto && *seq <= head {
                total.add(&Counts::decode(blob)?);
            }
        }
        Ok(total)
    }
}

/// A pack's parts: the counts whole, or the breakdowns cut in pieces that
/// each fit an item.
fn parts(counts: Counts) -> Vec<Vec<u8>> {
    let whole = counts.encode();
    if whole.len() <= PACK_PART_BYTES {
        return vec![whole];
    }
    let pieces = whole.len().div_ceil(PACK_PART_BYTES) + 1;
    let mut out = vec![
        Counts {
            series: counts.series,
            visitors: counts.visitors,
            qvisitors: counts.qvisitors,
            ..Counts::default()
        }
        .encode(),
    ];
    // The breakdowns, minutes then quarter hours, in pieces of about
    // PACK_PART_BYTES each.
    for (map, quarters) in [(counts.dims, false), (counts.qdims, true)] {
        let entries: Vec<_> = map.into_iter().collect();
        for chunk in entries.chunks(entries.len().div_ceil(pieces).max(1)) {
            let piece = chunk.iter().cloned().collect();
            let part = if quarters {
                Counts {
                    qdims: piece,
                    ..Counts::default()
                }
            } else {
                Counts {
                    dims: piece,
                    ..Counts::default()
                }
            };
            out.push(part.encode());
        }
    }
    out
}

impl DynamoStore {
    async fn day_items(&self, link: LinkId, day: i64) -> Result<Option<DayItems>, StoreError> {
        let prefix = format!("{}#{}#", day_key(day), self.region);
        let items = self
            .query_all(
                format!("D#{}", link.0),
                Some((prefix.clone(), format!("{prefix}~"))),
                true,
            )
            .await?;
        Ok(DayItems::from_items(&items)?.into_values().next())
    }

    /// Sums the day's deltas up to the head into a new pack version, its
    /// breakdown and visitor minutes before `horizon` coarsened. With
    /// `rewrite`, writes one even without new deltas if that coarsens
    /// something. Returns the minute entries coarsened.
    async fn seal_day(
        &self,
        link: LinkId,
        day: i64,
        now: i64,
        horizon: i64,
        rewrite: bool,
    ) -> Result<u64, StoreError> {
        let head = self.head(link).await?.seq;
        let Some(items) = self.day_items(link, day).await? else {
            return Ok(0);
        };
        let base = items.pack(head, i64::MAX).map_or(0, |(upto, _)| upto);
        let newest = items
            .deltas
            .iter()
            .map(|d| d.0)
            .filter(|seq| *seq > base && *seq <= head)
            .max();
        let upto = match newest {
            Some(upto) => upto,
            None if rewrite && base > 0 => base,
            None => return Ok(0),
        };
        let mut counts = items.counts(upto)?;
        let coarsened = counts.coarsen(horizon);
        if newest.is_none() && coarsened == 0 {
            return Ok(0);
        }
        let pieces = parts(counts);
        let count = pieces.len();
        let version = format!(
            "{}{}",
            ord_key(now),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        for (i, blob) in pieces.into_iter().enumerate() {
            self.client
                .put_item()
                .table_name(self.table())
                .item("pk", s(format!("D#{}", link.0)))
                .item(
                    "sk",
                    s(format!(
                        "{}#{}#p#{}#{version}#{i}",
                        day_key(day),
                        self.region,
                        ord_key(upto)
                    )),
                )
                .item("upto", n(upto))
                .item("parts", n(count))
                .item("sealed_at", n(now))
                .item("c", AttributeValue::B(blob.into()))
                .send()
                .await
                .map_err(unavailable)?;
        }
        Ok(coarsened)
    }

    /// The minute window's start as pruned so far (the largest of every
    /// region's): minutes before it are read at quarter-hour grain.
    pub(super) async fn prune_horizon(&self) -> Result<i64, StoreError> {
        let mut horizon = i64::MIN;
        for item in self.query_all("PRUNE".into(), None, true).await? {
            horizon = horizon.max(get_n(&item, "before")?);
        }
        Ok(horizon)
    }

    /// [`crate::store::ClickStore::prune_minute_rollups`] for DynamoDB:
    /// raises this region's horizon (reads coarsen at once) and rewrites
    /// the packs of the days before it.
    pub(super) async fn prune(&self, before: i64) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(self.table())
            .key("pk", s("PRUNE"))
            .key("sk", s(self.region.clone()))
            .update_expression("SET #b = :b")
            .condition_expression("attribute_not_exists(#b) OR #b < :b")
            .expression_attribute_names("#b", "before")
            .expression_attribute_values(":b", n(before))
            .send()
            .await;
        condition_held(out)?;
        let horizon = self.prune_horizon().await?;
        let now = Utc::now().timestamp_millis();
        let mut coarsened = 0;
        for marker in self.markers().await? {
            let (link, day) = (LinkId(get_n(&marker, "link")?), get_n(&marker, "day")?);
            if day >= horizon || opt_n(&marker, "pruned")?.is_some_and(|p| p >= horizon) {
                continue;
            }
            let n_day = self.seal_day(link, day, now, horizon, true).await?;
            coarsened += n_day;
            let out = self
                .mark_update(link, day)
                .update_expression("SET pruned = :h, gc_after = :gc")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":h", n(horizon))
                .expression_attribute_values(":gc", n(now + self.seal_grace_ms))
                .send()
                .await;
            condition_held(out)?;
        }
        Ok(coarsened)
    }
    /// An UpdateItem of this region's to-seal mark of (`link`, `day`).
    fn mark_update(&self, link: LinkId, day: i64) -> UpdateItemFluentBuilder {
        let (pk, sk) = dirty_key(link, &day_key(day), &self.region);
        self.client
            .update_item()
            .table_name(self.table())
            .key("pk", s(pk))
            .key("sk", s(sk))
    }

    /// This region's to-seal marks.
    async fn markers(&self) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        for marker in self.all_markers().await? {
            if get_s(&marker, "region")? == self.region {
                out.push(marker);
            }
        }
        Ok(out)
    }

    /// Every region's to-seal marks (other regions' as replicated).
    async fn all_markers(&self) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..DIRTY_SHARDS {
            out.extend(self.query_all(format!("DIRTY#{shard}"), None, true).await?);
        }
        Ok(out)
    }

    /// Reconciles the visitors of `mark`'s (link, day) with the other
    /// regions' when due (`visitors.rs`); `others`: their marks of it.
    async fn reconcile_if_due(
        &self,
        mark: &Item,
        others: &[&Item],
        now: i64,
    ) -> Result<(), StoreError> {
        let (link, day) = (LinkId(get_n(mark, "link")?), get_n(mark, "day")?);
        let mut marks = others.to_vec();
        marks.push(mark);
        let counts = batch_counts(&marks)?;
        let progress = Progress::from_mark(mark)?;
        if !progress.due(&counts, now, self.visitor_settle_ms) {
            return Ok(());
        }
        if !self.reconcile_visitors(link, day).await? {
            return Ok(());
        }
        let next = progress.next(&counts, now);
        let out = self
            .mark_update(link, day)
            .update_expression("SET vr = :vr, vr_at = :at, vr_done = :done")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":vr", s(counts))
            .expression_attribute_values(":at", n(next.at))
            .expression_attribute_values(":done", AttributeValue::Bool(next.settled))
            .send()
            .await;
        condition_held(out)?;
        Ok(())
    }

    /// Deletes what a pack sealed more than the grace period ago covers.
    /// Returns whether something covered is left for a later pass.
    async fn collect_day(&self, link: LinkId, day: i64, now: i64) -> Result<bool, StoreError> {
        let Some(items) = self.day_items(link, day).await? else {
            return Ok(false);
        };
        // The newest complete version sealed before the grace period.
        let safe = items
            .packs
            .iter()
            .rev()
            .find(|(_, (parts, blobs, at))| {
                blobs.len() as i64 == *parts && *at <= now - self.seal_grace_ms
            })
            .map(|(k, _)| k.clone());
        let Some(safe) = safe else {
            return Ok(!items.packs.is_empty());
        };
        let mut gone = Vec::new();
        for (seq, _, key) in &items.deltas {
            if *seq <= safe.0 {
                gone.push(key.clone());
            }
        }
        for (_, (_, blobs, _)) in items.packs.range(..safe.clone()) {
            gone.extend(blobs.iter().map(|(_, k)| k.clone()));
        }
        self.delete_keys(gone).await?;
        Ok(items.packs.keys().next_back() != Some(&safe))
    }

    /// [`crate::store::ClickStore::seal_rollups`] for DynamoDB.
    pub(super) async fn seal(
        &self,
        horizon: i64,
        open_rows: u64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let now = Utc::now().timestamp_millis();
        let pruned = self.prune_horizon().await?;
        let mut sealed = 0u64;
        let marks = self.all_markers().await?;
        // Other regions' marks by (link, day).
        let mut others: HashMap<(i64, i64), Vec<&Item>> = HashMap::new();
        for mark in &marks {
            if get_s(mark, "region")? != self.region {
                let key = (get_n(mark, "link")?, get_n(mark, "day")?);
                others.entry(key).or_default().push(mark);
            }
        }
        {
            for marker in &marks {
                if get_s(marker, "region")? != self.region {
                    continue;
                }
                if sealed as usize >= limit {
                    return Ok(sealed);
                }
                let marker = marker.clone();
                let link = LinkId(get_n(&marker, "link")?);
                let day = get_n(&marker, "day")?;
                if let Some(others) = others.get(&(link.0, day)) {
                    self.reconcile_if_due(&marker, others, now).await?;
                }
                let rows = opt_n(&marker, "rows")?.unwrap_or(0);
                let gc_after = opt_n(&marker, "gc_after")?;
                let closed = day + Resolution::Day.grain_ms() <= horizon;
                let due = rows > 0 && (closed || rows as u64 >= open_rows.min(OPEN_DELTAS));
                if due {
                    self.seal_day(link, day, now, pruned, false).await?;
                    sealed += 1;
                    self.mark_update(link, day)
                        .update_expression("ADD #rows :sealed SET gc_after = :gc")
                        .expression_attribute_names("#rows", "rows")
                        .expression_attribute_values(":sealed", n(-rows))
                        .expression_attribute_values(":gc", n(now + self.seal_grace_ms))
                        .send()
                        .await
                        .map_err(unavailable)?;
                } else if gc_after.is_some_and(|g| g <= now) {
                    if self.collect_day(link, day, now).await? {
                        self.mark_update(link, day)
                            .update_expression("SET gc_after = :gc")
                            .expression_attribute_values(":gc", n(now + self.seal_grace_ms))
                            .send()
                            .await
                            .map_err(unavailable)?;
                        continue;
                    }
                    if day + Resolution::Day.grain_ms() > pruned {
                        // Kept for pruning, which finds days by their marks.
                        self.mark_update(link, day)
                            .update_expression("REMOVE gc_after")
                            .send()
                            .await
                            .map_err(unavailable)?;
                        continue;
                    }
                    // Done, unless a batch came meanwhile.
                    let (pk, sk) = dirty_key(link, &day_key(day), &self.region);
                    let out = self
                        .client
                        .delete_item()
                        .table_name(self.table())
                        .key("pk", s(pk))
                        .key("sk", s(sk))
                        .condition_expression("#rows = :zero")
                        .expression_attribute_names("#rows", "rows")
                        .expression_attribute_values(":zero", n(0))
                        .send()
                        .await;
                    condition_held(out)?;
                }
            }
        }
        Ok(sealed)
    }
}
