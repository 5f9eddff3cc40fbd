//! `hop copy` into DynamoDB: the SQL tables' rows ([`crate::store::copy`])
//! as this table's items.
//!
//! Keys, links, segments, sessions, reports, takedowns and webhooks map
//! item for item. Clicks become raw items and rollups become deltas, each
//! page of a link published as one batch of the link's head (so totals and
//! every stats answer include it at once): series from the minute rows
//! (kept for ever); breakdowns and new visitors from the minute rows from
//! the quarter hour before the minute window on (pruning has not reached
//! them), and from the quarter-hour rows before it (where minute rows may
//! be gone), exactly the split [`super::model::Counts`] keeps after
//! coarsening. Coarser rows and the sealer's to-do list are left: this
//! store sums them from those. Published batches are not idempotent, so a
//! copy into DynamoDB cannot be resumed (start again on an empty table).
//!
//! Out of DynamoDB, the other way: items as rows, and each link's
//! published counts as the SQL grains (minutes up to weeks, unsealed),
//! made from its minutes and, before the prune horizon, quarter hours.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::items::raw_item;
use super::model::Counts;
use super::webhooks::{endpoint_item, message_item};
use super::write::{FirstClick, visitor_item};
use super::{DynamoStore, Item, n, ord_key, s, unavailable};
use crate::domain::KeyId;
use crate::domain::webhook::EventType;
use crate::domain::{DeviceType, EnrichedClick, LinkId, Route, Utm};
use crate::store::copy::{Cell, CopyRows, Table};
use crate::store::webhooks::{Endpoint, MessageState, NewMessage};
use crate::store::{Resolution, StoreError, TimeRange};

/// One row, read by column name.
pub(super) struct Row<'a> {
    pub table: &'a Table,
    pub cells: &'a [Cell],
}

impl Row<'_> {
    fn cell(&self, name: &str) -> &Cell {
        let i = self
            .table
            .columns
            .iter()
            .position(|(c, _)| *c == name)
            .unwrap_or_else(|| panic!("{} has no column {name}", self.table.name));
        self.cells.get(i).unwrap_or(&Cell::Null)
    }

    pub(super) fn int(&self, name: &str) -> Option<i64> {
        match self.cell(name) {
            Cell::Int(v) => Some(*v),
            Cell::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    pub(super) fn need_int(&self, name: &str) -> Result<i64, StoreError> {
        self.int(name)
            .ok_or_else(|| StoreError::Corrupt(format!("{} row without {name}", self.table.name)))
    }

    pub(super) fn text(&self, name: &str) -> Option<String> {
        match self.cell(name) {
            Cell::Text(v) => Some(v.clone()),
            _ => None,
        }
    }

    pub(super) fn need_text(&self, name: &str) -> Result<String, StoreError> {
        self.text(name)
            .ok_or_else(|| StoreError::Corrupt(format!("{} row without {name}", self.table.name)))
    }

    pub(super) fn flag(&self, name: &str) -> bool {
        matches!(self.cell(name), Cell::Bool(true) | Cell::Int(1))
    }

    pub(super) fn blob(&self, name: &str) -> Option<Vec<u8>> {
        match self.cell(name) {
            Cell::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}

/// Puts `(attribute, value)` pairs whose value is there.
fn put_some(
    item: &mut Item,
    pairs: impl IntoIterator<Item = (&'static str, Option<AttributeValue>)>,
) {
    for (k, v) in pairs {
        if let Some(v) = v {
            item.insert(k.into(), v);
        }
    }
}

fn click_of(r: &Row<'_>) -> Result<EnrichedClick, StoreError> {
    let id = r
        .blob("event_id")
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| StoreError::Corrupt("click row without event id".into()))?;
    Ok(EnrichedClick {
        event_id: id,
        link_id: LinkId(r.need_int("link_id")?),
        at: r.need_int("at")?,
        bot: r.flag("bot"),
        country: r.text("country"),
        city: r.text("city"),
        browser: r.need_text("browser")?,
        os: r.need_text("os")?,
        device: DeviceType::parse(&r.need_text("device")?),
        referrer_host: r.text("referrer_host"),
        utm: Utm {
            source: r.text("utm_source"),
            medium: r.text("utm_medium"),
            campaign: r.text("utm_campaign"),
        },
        visitor: r.need_int("visitor")?,
        region: r.need_text("region")?,
        route: Route {
            rule: r.text("route_rule"),
            variant: r.text("route_variant"),
        },
    })
}

/// A copied `webhook_endpoints` row as its item (`hop copy`).
fn copied_endpoint(r: &Row<'_>) -> Result<Item, StoreError> {
    let e = Endpoint {
        id: r.need_text("id")?,
        owner: r.int("owner_key").map(KeyId),
        instance_wide: r.flag("instance_wide"),
        url: r.need_text("url")?,
        description: r.text("description"),
        events: serde_json::from_str(&r.need_text("events")?)
            .map_err(|e| StoreError::Corrupt(format!("webhook events: {e}")))?,
        scope_tag: r.text("scope_tag"),
        scope_links: r
            .text("scope_links")
            .map(|l| serde_json::from_str(&l))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("webhook scope: {e}")))?,
        secret: r.need_text("secret")?,
        previous_secret: r.text("previous_secret"),
        previous_until: r.int("previous_until"),
        enabled: r.flag("enabled"),
        disabled_reason: r.text("disabled_reason"),
        failing_since: r.int("failing_since"),
        created_at: r.int("created_at").unwrap_or(0),
        updated_at: r.int("updated_at").unwrap_or(0),
    };
    Ok(endpoint_item(&e))
}

/// A copied outbox, message or attempt row as its item (`hop copy`).
fn copied_item(store: &DynamoStore, r: &Row<'_>) -> Result<Item, StoreError> {
    match r.table.name {
        "webhook_outbox" => {
            let id = r.need_int("id")?;
            let mut item = store.outbox_item(
                id,
                &r.need_text("kind")?,
                r.blob("body").unwrap_or_default(),
            );
            // Its key keeps the source's order.
            item.insert(
                "sk".into(),
                s(format!(
                    "{}#{}",
                    ord_key(r.need_int("created_at")?),
                    ord_key(id)
                )),
            );
            Ok(item)
        }
        "webhook_messages" => {
            let m = NewMessage {
                endpoint_id: r.need_text("endpoint_id")?,
                id: r.need_text("id")?,
                event_type: EventType::parse(&r.need_text("event_type")?)
                    .ok_or_else(|| StoreError::Corrupt("webhook event type".into()))?,
                at: r.need_int("at")?,
                events: r.need_int("events")? as u32,
                body: r.need_text("body")?,
                created_at: r.need_int("created_at")?,
                retry_until: r.need_int("retry_until")?,
            };
            let mut item = message_item(&m, &store.region);
            let state = r.need_text("state")?;
            let next_at = r.need_int("next_at")?;
            item.insert("state".into(), s(state.clone()));
            item.insert("attempts".into(), n(r.need_int("attempts")?));
            item.insert("next_at".into(), n(next_at));
            item.insert("wd".into(), s(ord_key(next_at)));
            if state != MessageState::Pending.as_str() {
                item.remove("wq");
                item.remove("wd");
            }
            for (k, v) in [
                ("last_status", r.int("last_status")),
                ("finished_at", r.int("finished_at")),
            ] {
                if let Some(v) = v {
                    item.insert(k.into(), n(v));
                }
            }
            if let Some(e) = r.text("last_error") {
                item.insert("last_error".into(), s(e));
            }
            Ok(item)
        }
        _ => {
            // Attempts: the source's ids are in its own order; keep them
            // apart from this store's (time-based) ids by their time.
            let at = r.need_int("at")?;
            let id = at * 1_000_000 + r.need_int("id")?.rem_euclid(1_000_000);
            let endpoint = r.need_text("endpoint_id")?;
            let mut item = Item::from([
                ("pk".into(), s(format!("WA#{endpoint}"))),
                ("sk".into(), s(ord_key(id))),
                ("id".into(), n(id)),
                ("endpoint".into(), s(endpoint)),
                ("message".into(), s(r.need_text("message_id")?)),
                ("at".into(), n(at)),
                ("attempt".into(), n(r.need_int("attempt")?)),
                ("latency_ms".into(), n(r.need_int("latency_ms")?)),
            ]);
            if let Some(st) = r.int("status") {
                item.insert("status".into(), n(st));
            }
            for (k, v) in [("error", r.text("error")), ("response", r.text("response"))] {
                if let Some(v) = v {
                    item.insert(k.into(), s(v));
                }
            }
            Ok(item)
        }
    }
}

/// What one page of one link publishes.
#[derive(Default)]
struct Part {
    counts: Counts,
    humans: i64,
    all: i64,
    /// Raw click and visitor items, written under the batch's seq.
    clicks: Vec<EnrichedClick>,
    visitors: Vec<((i64, i64), FirstClick)>,
}

impl DynamoStore {
    /// `ClickStore::record_counts` without the mark: each link's counts
    /// published as batches of its head, as a copy's rollups are (minutes
    /// in the minute window, quarter hours before it).
    pub(super) async fn record_counted(
        &self,
        counts: &[crate::store::CountedClicks],
    ) -> Result<(), StoreError> {
        let cut = Resolution::QuarterHour
            .floor(chrono::Utc::now().timestamp_millis() - crate::store::rollup::MINUTE_WINDOW_MS);
        let mut parts: BTreeMap<LinkId, Part> = BTreeMap::new();
        for c in counts {
            let part = parts.entry(c.link).or_default();
            let slot = usize::from(c.bot);
            let n = c.clicks as i64;
            let minute = Resolution::Minute.floor(c.at);
            if n > 0 {
                part.counts.series.entry(minute).or_default()[slot] += n;
            }
            part.all += n;
            if !c.bot {
                part.humans += n;
            }
            for (dim, value, k) in &c.dims {
                let key = if minute >= cut {
                    (minute, *dim as u8, value.clone())
                } else {
                    (
                        Resolution::QuarterHour.floor(minute),
                        *dim as u8,
                        value.clone(),
                    )
                };
                let map = if minute >= cut {
                    &mut part.counts.dims
                } else {
                    &mut part.counts.qdims
                };
                map.entry(key).or_default()[slot] += *k as i64;
            }
        }
        for (link, part) in parts {
            // A link deleted meanwhile: its counts go with it.
            self.publish_part(link, part).await?;
        }
        Ok(())
    }

    /// Puts items one by one, each only if absent; returns how many were.
    async fn put_new(&self, items: Vec<Item>) -> Result<u64, StoreError> {
        use futures::StreamExt;
        let puts: Vec<_> = items
            .into_iter()
            .map(|item| {
                self.client
                    .put_item()
                    .table_name(self.table())
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
            })
            .collect();
        let mut puts = futures::stream::iter(puts).buffer_unordered(16);
        let mut new = 0;
        while let Some(out) = puts.next().await {
            new += u64::from(super::condition_held(out)?);
        }
        Ok(new)
    }

    /// Publishes one link's part as batches of the link's head (at most
    /// 45 days of deltas each, as the click write does); false when the
    /// link is not there.
    async fn publish_part(&self, link: LinkId, mut part: Part) -> Result<bool, StoreError> {
        // Every day with raw clicks or visitor items gets a delta (of zeros
        // if need be), so the head lists the day for purging; a batch has
        // at least one day.
        let minutes: Vec<i64> = part
            .clicks
            .iter()
            .map(|c| c.at)
            .chain(part.visitors.iter().map(|(_, f)| f.at))
            .chain(
                part.counts
                    .series
                    .is_empty()
                    .then(|| chrono::Utc::now().timestamp_millis()),
            )
            .map(|at| Resolution::Minute.floor(at))
            .collect();
        for m in minutes {
            part.counts.series.entry(m).or_default();
        }
        let by_day: Vec<(i64, Counts)> = part.counts.by_day().into_iter().collect();
        let groups: Vec<Counts> = by_day
            .chunks(40)
            .map(|days| {
                let mut c = Counts::default();
                for (_, d) in days {
                    c.add(d);
                }
                c
            })
            .collect();
        let mut extra = Some((part.humans, part.all, part.clicks, part.visitors));
        for counts in groups {
            let me = Uuid::new_v4().simple().to_string();
            let (_, seq) = self.acquire(link, &me).await?;
            let (humans, all, clicks, visitors) = extra.take().unwrap_or_default();
            let mut items: Vec<Item> = clicks
                .iter()
                .map(|c| {
                    let mut item = raw_item(c, &self.region, seq);
                    item.insert("nonce".into(), s(me.clone()));
                    item
                })
                .collect();
            items.extend(
                visitors
                    .iter()
                    .map(|(key, f)| visitor_item(link, *key, &self.region, *f, None, seq, &me)),
            );
            let written = self.put_all(items).await;
            if let Err(e) = written {
                let _ = self.release(link, &me, seq, true).await;
                return Err(e);
            }
            if !self
                .publish(
                    link,
                    &me,
                    seq,
                    &counts,
                    humans as usize,
                    all as usize,
                    false,
                    None,
                )
                .await?
            {
                self.release(link, &me, seq, true).await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// [`Self::publish_part`] of a copy, whose links come first.
    async fn copy_part(&self, link: LinkId, part: Part) -> Result<(), StoreError> {
        if !self.publish_part(link, part).await? {
            return Err(StoreError::Corrupt(format!(
                "rows of link {} copied before the link",
                link.0
            )));
        }
        Ok(())
    }

    /// Puts items, 25 per request.
    async fn put_all(&self, items: Vec<Item>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        self.batch_write(items.into_iter().map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(i))
                        .build()
                        .expect("complete"),
                )
                .build()
        }))
        .await
    }

    /// Rollup rows into parts per link. `cut`: the first quarter hour whose
    /// breakdown and visitor minutes are copied (quarter-hour rows before).
    fn rollup_parts(
        table: &Table,
        rows: &[Vec<Cell>],
        cut: i64,
    ) -> Result<BTreeMap<LinkId, Part>, StoreError> {
        let minute = crate::store::rollup::res_code(Resolution::Minute);
        let quarter = crate::store::rollup::res_code(Resolution::QuarterHour);
        let mut parts: BTreeMap<LinkId, Part> = BTreeMap::new();
        for cells in rows {
            let r = Row { table, cells };
            let link = LinkId(r.need_int("link_id")?);
            let slot = usize::from(r.flag("bot"));
            let part = parts.entry(link).or_default();
            match table.name {
                "rollup_series" => {
                    if r.need_int("res")? == minute {
                        part.counts.series.entry(r.need_int("bucket")?).or_default()[slot] +=
                            r.need_int("clicks")?;
                    }
                }
                "rollup_dims" | "rollup_packs" | "rollup_visitors" => {
                    let res = r.need_int("res")?;
                    let bucket = r.need_int("bucket")?;
                    let fine = res == minute && bucket >= cut;
                    let coarse = res == quarter && bucket < cut;
                    if !fine && !coarse {
                        continue;
                    }
                    let values: Vec<(u8, String, i64)> = match table.name {
                        "rollup_dims" => vec![(
                            r.need_int("dim")? as u8,
                            r.need_text("value")?,
                            r.need_int("clicks")?,
                        )],
                        "rollup_packs" => {
                            let dim = r.need_int("dim")? as u8;
                            crate::store::pack::decode(&r.blob("pack").unwrap_or_default())?
                                .into_iter()
                                .map(|(v, c)| (dim, v.to_owned(), c as i64))
                                .collect()
                        }
                        _ => {
                            let map = if fine {
                                &mut part.counts.visitors
                            } else {
                                &mut part.counts.qvisitors
                            };
                            map.entry(bucket).or_default()[slot] += r.need_int("visitors")?;
                            continue;
                        }
                    };
                    let map = if fine {
                        &mut part.counts.dims
                    } else {
                        &mut part.counts.qdims
                    };
                    for (dim, value, clicks) in values {
                        map.entry((bucket, dim, value)).or_default()[slot] += clicks;
                    }
                }
                _ => unreachable!("rollup tables only"),
            }
        }
        Ok(parts)
    }
}

/// (link, segment) pairs, and every id clicks are kept under, ascending.
pub(super) type CopyIds = (Vec<(i64, i64)>, Vec<i64>);

/// Orders rows' keys as the SQL stores do (NULL first, then by value).
fn cmp_cells(a: &[Cell], b: &[Cell]) -> std::cmp::Ordering {
    fn rank(c: &Cell) -> u8 {
        match c {
            Cell::Null => 0,
            Cell::Bool(_) => 1,
            Cell::Int(_) => 2,
            Cell::Text(_) => 3,
            Cell::Blob(_) => 4,
        }
    }
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Cell::Int(x), Cell::Int(y)) => x.cmp(y),
            (Cell::Bool(x), Cell::Bool(y)) => x.cmp(y),
            (Cell::Text(x), Cell::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Cell::Blob(x), Cell::Blob(y)) => x.cmp(y),
            _ => rank(x).cmp(&rank(y)),
        };
        if o.is_ne() {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

fn int(v: Option<i64>) -> Cell {
    v.map_or(Cell::Null, Cell::Int)
}

fn text(v: Option<String>) -> Cell {
    v.map_or(Cell::Null, Cell::Text)
}

fn attr_int(item: &Item, k: &str) -> Result<Cell, StoreError> {
    Ok(int(super::opt_n(item, k)?))
}

fn attr_text(item: &Item, k: &str) -> Cell {
    text(super::opt_s(item, k))
}

fn attr_bool(item: &Item, k: &str) -> Cell {
    Cell::Bool(matches!(item.get(k), Some(AttributeValue::Bool(true))))
}

fn attr_blob(item: &Item, k: &str) -> Cell {
    match item.get(k) {
        Some(AttributeValue::B(b)) => Cell::Blob(b.as_ref().to_vec()),
        _ => Cell::Null,
    }
}

/// SQL's breakdown and visitor grains made from minutes, and from quarter
/// hours (what DynamoDB keeps before its prune horizon).
const FROM_MINUTES: [Resolution; 6] = [
    Resolution::Minute,
    Resolution::FiveMinutes,
    Resolution::QuarterHour,
    Resolution::Hour,
    Resolution::Day,
    Resolution::Week,
];
const FROM_QUARTERS: [Resolution; 4] = [
    Resolution::QuarterHour,
    Resolution::Hour,
    Resolution::Day,
    Resolution::Week,
];

/// One link's rollup rows of `table`, as a SQL store would hold them
/// (unsealed: no packs), from its published counts.
fn rollup_rows(table: &str, link: LinkId, c: &Counts) -> Vec<Vec<Cell>> {
    use crate::store::rollup::res_code;
    let mut out = Vec::new();
    let grains = |fine: bool, visitors: bool| -> Vec<Resolution> {
        let all: &[Resolution] = if fine { &FROM_MINUTES } else { &FROM_QUARTERS };
        // New visitors stop at the day.
        all.iter()
            .copied()
            .filter(|r| !visitors || *r != Resolution::Week)
            .collect()
    };
    match table {
        "rollup_series" => {
            let mut rows: BTreeMap<(i64, i64, bool), i64> = BTreeMap::new();
            for (m, pair) in &c.series {
                for res in [Resolution::Minute, Resolution::QuarterHour] {
                    for (slot, n) in pair.iter().enumerate() {
                        *rows
                            .entry((res_code(res), res.floor(*m), slot == 1))
                            .or_default() += n;
                    }
                }
            }
            for ((res, bucket, bot), clicks) in rows.into_iter().filter(|r| r.1 != 0) {
                out.push(vec![
                    Cell::Int(link.0),
                    Cell::Int(res),
                    Cell::Int(bucket),
                    Cell::Bool(bot),
                    Cell::Int(clicks),
                ]);
            }
        }
        "rollup_dims" => {
            let mut rows: BTreeMap<(i64, i64, i64, bool, String), i64> = BTreeMap::new();
            for (map, fine) in [(&c.dims, true), (&c.qdims, false)] {
                for ((m, dim, value), pair) in map {
                    for res in grains(fine, false) {
                        for (slot, n) in pair.iter().enumerate() {
                            *rows
                                .entry((
                                    res_code(res),
                                    i64::from(*dim),
                                    res.floor(*m),
                                    slot == 1,
                                    value.clone(),
                                ))
                                .or_default() += n;
                        }
                    }
                }
            }
            for ((res, dim, bucket, bot, value), clicks) in rows.into_iter().filter(|r| r.1 != 0) {
                out.push(vec![
                    Cell::Int(link.0),
                    Cell::Int(res),
                    Cell::Int(dim),
                    Cell::Int(bucket),
                    Cell::Bool(bot),
                    Cell::Text(value),
                    Cell::Int(clicks),
                ]);
            }
        }
        "rollup_visitors" => {
            let mut rows: BTreeMap<(i64, i64, bool), i64> = BTreeMap::new();
            for (map, fine) in [(&c.visitors, true), (&c.qvisitors, false)] {
                for (m, pair) in map {
                    for res in grains(fine, true) {
                        for (slot, n) in pair.iter().enumerate() {
                            *rows
                                .entry((res_code(res), res.floor(*m), slot == 1))
                                .or_default() += n;
                        }
                    }
                }
            }
            for ((res, bucket, bot), visitors) in rows.into_iter().filter(|r| r.1 != 0) {
                out.push(vec![
                    Cell::Int(link.0),
                    Cell::Int(res),
                    Cell::Int(bucket),
                    Cell::Bool(bot),
                    Cell::Int(visitors),
                ]);
            }
        }
        _ => {}
    }
    out
}

impl DynamoStore {
    /// Every link item, by id.
    async fn all_link_items(&self) -> Result<Vec<Item>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(self.table())
            .index_name(super::LINKS_INDEX)
            .key_condition_expression("gl = :l")
            .expression_attribute_values(":l", s("L"));
        let mut out = self.query_items(q, usize::MAX).await?;
        out.sort_by_key(|i| super::opt_n(i, "id").ok().flatten().unwrap_or(0));
        Ok(out)
    }

    /// Every (link, segment) pair, and every id clicks are kept under
    /// (links and their variant segments), ascending; read once per copy.
    async fn copy_ids(&self) -> Result<std::sync::Arc<CopyIds>, StoreError> {
        if let Some(ids) = self.copy_ids.lock().expect("not poisoned").clone() {
            return Ok(ids);
        }
        let mut segments = Vec::new();
        let mut ids = Vec::new();
        for item in self.all_link_items().await? {
            let id = super::get_n(&item, "id")?;
            ids.push(id);
            for g in self.query_all(format!("G#{id}"), None, true).await? {
                let segment: i64 = super::get_s(&g, "sk")?
                    .parse()
                    .map_err(|_| StoreError::Corrupt("segment id".into()))?;
                segments.push((id, segment));
                ids.push(segment);
            }
        }
        segments.sort_unstable();
        ids.sort_unstable();
        ids.dedup();
        let ids = std::sync::Arc::new((segments, ids));
        *self.copy_ids.lock().expect("not poisoned") = Some(ids.clone());
        Ok(ids)
    }

    /// Rows of a table held in one partition or list, all at once.
    async fn small_table(&self, table: &Table) -> Result<Vec<Vec<Cell>>, StoreError> {
        use crate::store::webhooks::WebhookStore;
        use crate::store::{KeyStore, ReportStore};
        let mut rows = Vec::new();
        match table.name {
            "api_keys" => {
                for k in self.list_keys().await? {
                    rows.push(vec![
                        Cell::Int(k.id.0),
                        Cell::Text(k.name),
                        Cell::Blob(k.hash.to_vec()),
                        Cell::Bool(k.admin),
                        Cell::Int(k.created_at.timestamp_millis()),
                        int(k.revoked_at.map(|t| t.timestamp_millis())),
                    ]);
                }
            }
            "link_tags" => {
                for item in self.all_link_items().await? {
                    let id = super::get_n(&item, "id")?;
                    let tags: Vec<String> = serde_json::from_str(super::get_s(&item, "tags")?)
                        .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?;
                    for tag in tags {
                        rows.push(vec![Cell::Text(tag), Cell::Int(id)]);
                    }
                }
            }
            "link_segments" => {
                for (link, segment) in &self.copy_ids().await?.0 {
                    rows.push(vec![Cell::Int(*link), Cell::Int(*segment)]);
                }
            }
            "sessions" => {
                for item in self.query_all("SESSIONS".into(), None, true).await? {
                    let hash = hex::decode(super::get_s(&item, "sk")?)
                        .map_err(|_| StoreError::Corrupt("session key".into()))?;
                    rows.push(vec![
                        Cell::Blob(hash),
                        attr_text(&item, "data"),
                        attr_int(&item, "expires_at")?,
                    ]);
                }
            }
            "reports" => {
                for r in self.list_reports(None, usize::MAX).await? {
                    rows.push(vec![
                        Cell::Int(r.id),
                        Cell::Text(r.slug),
                        int(r.link_id.map(|l| l.0)),
                        Cell::Text(r.reason),
                        text(r.details),
                        Cell::Int(r.created_at.timestamp_millis()),
                    ]);
                }
            }
            "takedowns" => {
                for item in self.query_all("TAKEDOWNS".into(), None, true).await? {
                    rows.push(vec![
                        attr_text(&item, "sk"),
                        attr_text(&item, "reason"),
                        attr_int(&item, "created_at")?,
                    ]);
                }
            }
            "import_marks" => {
                for item in self.query_all("IMPORT".into(), None, true).await? {
                    rows.push(vec![
                        attr_text(&item, "sk"),
                        attr_text(&item, "v"),
                        attr_int(&item, "at")?,
                    ]);
                }
            }
            "webhook_endpoints" => {
                for e in self.list_endpoints(None).await? {
                    rows.push(vec![
                        Cell::Text(e.id.clone()),
                        int(e.owner.map(|k| k.0)),
                        Cell::Bool(e.instance_wide),
                        Cell::Text(e.url.clone()),
                        text(e.description.clone()),
                        Cell::Text(serde_json::to_string(&e.events).unwrap_or_default()),
                        Cell::Bool(e.wants(crate::domain::webhook::EventType::Click)),
                        text(e.scope_tag.clone()),
                        text(
                            e.scope_links
                                .as_ref()
                                .and_then(|l| serde_json::to_string(l).ok()),
                        ),
                        Cell::Text(e.secret.clone()),
                        text(e.previous_secret.clone()),
                        int(e.previous_until),
                        Cell::Bool(e.enabled),
                        text(e.disabled_reason.clone()),
                        int(e.failing_since),
                        Cell::Int(e.created_at),
                        Cell::Int(e.updated_at),
                    ]);
                }
            }
            "webhook_outbox" => {
                let mut items = Vec::new();
                for shard in 0..16 {
                    items.extend(
                        self.query_all(format!("WO#{}#{shard}", self.region), None, true)
                            .await?,
                    );
                }
                items.sort_by_key(|a| super::opt_s(a, "sk"));
                for (i, item) in items.iter().enumerate() {
                    let created = super::get_s(item, "sk")?
                        .split('#')
                        .next()
                        .and_then(|h| u64::from_str_radix(h, 16).ok())
                        .map(|v| (v ^ (1 << 63)) as i64)
                        .unwrap_or(0);
                    rows.push(vec![
                        Cell::Int(i as i64 + 1),
                        attr_text(item, "kind"),
                        Cell::Int(created),
                        attr_blob(item, "body"),
                        Cell::Null,
                        Cell::Null,
                    ]);
                }
            }
            "webhook_messages" => {
                for e in self.list_endpoints(None).await? {
                    for m in self.list_messages(&e.id, None, None, usize::MAX).await? {
                        let item = self
                            .get(format!("WM#{}", e.id), &m.id)
                            .await?
                            .unwrap_or_default();
                        rows.push(vec![
                            Cell::Text(m.endpoint_id),
                            Cell::Text(m.id),
                            Cell::Text(m.event_type.as_str().into()),
                            Cell::Int(m.at),
                            Cell::Int(i64::from(m.events)),
                            Cell::Text(m.body),
                            Cell::Text(m.state.as_str().into()),
                            Cell::Int(i64::from(m.attempts)),
                            Cell::Int(m.retry_until),
                            Cell::Int(m.next_at),
                            attr_int(&item, "lease_until")?,
                            attr_text(&item, "leased_by"),
                            int(m.last_status.map(i64::from)),
                            text(m.last_error),
                            Cell::Int(m.created_at),
                            int(m.finished_at),
                        ]);
                    }
                }
            }
            "webhook_attempts" => {
                for e in self.list_endpoints(None).await? {
                    for a in self.list_attempts(&e.id, None, None, usize::MAX).await? {
                        rows.push(vec![
                            Cell::Int(a.id),
                            Cell::Text(a.endpoint_id),
                            Cell::Text(a.message_id),
                            Cell::Int(a.at),
                            Cell::Int(i64::from(a.attempt)),
                            int(a.status.map(i64::from)),
                            Cell::Int(a.latency_ms as i64),
                            text(a.error),
                            text(a.response),
                        ]);
                    }
                }
            }
            _ => {}
        }
        Ok(rows)
    }

    /// One link's rows of a per-link table, from `after` (its key) on.
    async fn link_rows(
        &self,
        table: &Table,
        link: LinkId,
        after: Option<&[Cell]>,
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        let all = TimeRange {
            from: i64::MIN / 2,
            to: i64::MAX / 2,
        };
        let rows = match table.name {
            "clicks" => {
                let heads = self.heads(link).await?;
                // Resume at the last click's time, not the link's first.
                let from = match after {
                    Some([Cell::Int(l), Cell::Int(at), ..]) if *l == link.0 => *at,
                    _ => all.from,
                };
                self.raw_in(link, TimeRange { from, to: all.to }, &heads)
                    .await?
                    .iter()
                    .map(|c| {
                        vec![
                            Cell::Int(c.link_id.0),
                            Cell::Int(c.at),
                            Cell::Blob(c.event_id.as_bytes().to_vec()),
                            Cell::Bool(c.bot),
                            text(c.country.clone()),
                            text(c.city.clone()),
                            Cell::Text(c.browser.clone()),
                            Cell::Text(c.os.clone()),
                            Cell::Text(c.device.as_str().into()),
                            text(c.referrer_host.clone()),
                            text(c.utm.source.clone()),
                            text(c.utm.medium.clone()),
                            text(c.utm.campaign.clone()),
                            Cell::Int(c.visitor),
                            Cell::Text(c.region.clone()),
                            text(c.route.rule.clone()),
                            text(c.route.variant.clone()),
                        ]
                    })
                    .collect()
            }
            "link_totals" => {
                let heads = self.heads(link).await?;
                let humans: i64 = heads.values().map(|h| h.humans).sum();
                let all: i64 = heads.values().map(|h| h.all).sum();
                [(false, humans), (true, all - humans)]
                    .into_iter()
                    .filter(|(_, n)| *n != 0)
                    .map(|(bot, n)| vec![Cell::Int(link.0), Cell::Bool(bot), Cell::Int(n)])
                    .collect()
            }
            "visitors" => {
                let heads = self.heads(link).await?;
                let mut firsts: BTreeMap<(i64, i64), FirstClick> = BTreeMap::new();
                let mut days: Vec<&String> = heads.values().flat_map(|h| h.days.iter()).collect();
                days.sort();
                days.dedup();
                for day in days {
                    for item in self
                        .query_all(format!("V#{}#{day}", link.0), None, true)
                        .await?
                    {
                        let region = super::get_s(&item, "sk")?
                            .split('#')
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        let Some(head) = heads.get(&region) else {
                            continue;
                        };
                        let Some(f) = super::write::visitor_state(&item, head, None)? else {
                            continue;
                        };
                        let key = (super::get_n(&item, "day")?, super::get_n(&item, "visitor")?);
                        // Across regions, the one that counts it (else the
                        // earliest).
                        let better = match firsts.get(&key) {
                            None => true,
                            Some(old) => (f.counted, -f.at) > (old.counted, -old.at),
                        };
                        if better {
                            firsts.insert(key, f);
                        }
                    }
                }
                firsts
                    .into_iter()
                    .map(|((day, visitor), f)| {
                        vec![
                            Cell::Int(link.0),
                            Cell::Int(day),
                            Cell::Int(visitor),
                            Cell::Int(f.at),
                            Cell::Bool(f.bot),
                        ]
                    })
                    .collect()
            }
            "rollup_series" | "rollup_dims" | "rollup_visitors" => {
                let (counts, _) = self.counts(link, all.from, all.to).await?;
                rollup_rows(table.name, link, &counts)
            }
            // Unsealed: no packs; nothing waits to be sealed.
            _ => Vec::new(),
        };
        let mut rows = rows;
        rows.sort_by(|a, b| cmp_cells(&a[..table.key], &b[..table.key]));
        if let Some(after) = after {
            rows.retain(|r| cmp_cells(&r[..table.key], after).is_gt());
        }
        Ok(rows)
    }
}

#[async_trait]
impl CopyRows for DynamoStore {
    async fn read_rows(
        &self,
        table: &Table,
        after: Option<&[Cell]>,
        limit: usize,
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        let per_link = matches!(
            table.name,
            "clicks"
                | "rollup_series"
                | "rollup_dims"
                | "rollup_packs"
                | "rollup_visitors"
                | "visitors"
                | "link_totals"
        );
        if table.name == "links" {
            let mut rows = Vec::new();
            for item in self.all_link_items().await? {
                let id = super::get_n(&item, "id")?;
                if let Some([Cell::Int(a), ..]) = after
                    && id <= *a
                {
                    continue;
                }
                let served = match self.get(format!("I#{id}"), "I").await? {
                    Some(i) => super::opt_n(&i, "served")?.unwrap_or(0),
                    None => 0,
                };
                rows.push(vec![
                    Cell::Int(id),
                    attr_text(&item, "slug"),
                    attr_text(&item, "target"),
                    attr_text(&item, "title"),
                    attr_text(&item, "tags"),
                    attr_int(&item, "created_at")?,
                    attr_int(&item, "updated_at")?,
                    attr_int(&item, "expires_at")?,
                    attr_int(&item, "max_clicks")?,
                    Cell::Int(served),
                    attr_int(&item, "status")?,
                    attr_bool(&item, "disabled"),
                    attr_int(&item, "go")?,
                    attr_blob(&item, "secret_hash"),
                    attr_text(&item, "rules"),
                    attr_text(&item, "fallback_url"),
                    attr_text(&item, "password_hash"),
                    attr_text(&item, "preview"),
                ]);
                if rows.len() >= limit {
                    break;
                }
            }
            return Ok(rows);
        }
        if !per_link {
            let mut rows = self.small_table(table).await?;
            rows.sort_by(|a, b| cmp_cells(&a[..table.key], &b[..table.key]));
            if let Some(after) = after {
                rows.retain(|r| cmp_cells(&r[..table.key], after).is_gt());
            }
            rows.truncate(limit);
            return Ok(rows);
        }
        let ids = self.copy_ids().await?;
        let first = match after {
            Some([Cell::Int(l), ..]) => *l,
            _ => i64::MIN,
        };
        let mut out = Vec::new();
        for id in ids.1.iter().filter(|id| **id >= first) {
            let from = after.filter(|_| *id == first);
            out.extend(self.link_rows(table, LinkId(*id), from).await?);
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
        Ok(out)
    }

    fn copy_resumable(&self) -> bool {
        false
    }

    async fn copy_is_empty(&self) -> Result<bool, StoreError> {
        let page = self
            .client
            .scan()
            .table_name(self.table())
            .limit(50)
            .send()
            .await
            .map_err(unavailable)?;
        // Only the sequence and webhook marker items of a fresh table.
        Ok(page.items.unwrap_or_default().iter().all(
            |i| matches!(i.get("pk"), Some(AttributeValue::S(pk)) if pk == "SEQ" || pk == "WH"),
        ))
    }

    async fn write_rows(&self, table: &Table, cells: &[Vec<Cell>]) -> Result<u64, StoreError> {
        let rows: Vec<Row<'_>> = cells.iter().map(|cells| Row { table, cells }).collect();
        let mut items = Vec::new();
        match table.name {
            "api_keys" => {
                for r in &rows {
                    let hash = r.blob("hash").unwrap_or_default();
                    let mut item = Item::from([
                        ("pk".into(), s("KEYS")),
                        ("sk".into(), s(hex::encode(&hash))),
                        ("id".into(), n(r.need_int("id")?)),
                        ("name".into(), s(r.need_text("name")?)),
                        ("hash".into(), AttributeValue::B(hash.into())),
                        ("admin".into(), AttributeValue::Bool(r.flag("admin"))),
                        ("created_at".into(), n(r.need_int("created_at")?)),
                    ]);
                    put_some(&mut item, [("revoked_at", r.int("revoked_at").map(n))]);
                    items.push(item);
                }
            }
            "links" => {
                for r in &rows {
                    let id = r.need_int("id")?;
                    let slug = r.need_text("slug")?;
                    let mut item = Item::from([
                        ("pk".into(), s(format!("S#{slug}"))),
                        ("sk".into(), s("S")),
                        ("gl".into(), s("L")),
                        ("gs".into(), n(id)),
                        ("id".into(), n(id)),
                        ("slug".into(), s(slug.clone())),
                        ("target".into(), s(r.need_text("target")?)),
                        ("tags".into(), s(r.need_text("tags")?)),
                        ("created_at".into(), n(r.need_int("created_at")?)),
                        ("updated_at".into(), n(r.need_int("updated_at")?)),
                        ("status".into(), n(r.need_int("redirect_status")?)),
                        ("disabled".into(), AttributeValue::Bool(r.flag("disabled"))),
                    ]);
                    put_some(
                        &mut item,
                        [
                            ("title", r.text("title").map(s)),
                            ("expires_at", r.int("expires_at").map(n)),
                            ("max_clicks", r.int("max_clicks").map(n)),
                            ("go", r.int("owner_key").map(n)),
                            (
                                "secret_hash",
                                r.blob("secret_hash").map(|b| AttributeValue::B(b.into())),
                            ),
                            ("rules", r.text("rules").map(s)),
                            ("fallback_url", r.text("fallback_url").map(s)),
                            ("password_hash", r.text("password_hash").map(s)),
                            ("preview", r.text("preview").map(s)),
                        ],
                    );
                    items.push(item);
                    let mut id_item = Item::from([
                        ("pk".into(), s(format!("I#{id}"))),
                        ("sk".into(), s("I")),
                        ("slug".into(), s(slug)),
                    ]);
                    put_some(
                        &mut id_item,
                        [("served", r.int("served").filter(|v| *v > 0).map(n))],
                    );
                    self.put_all(vec![id_item]).await?;
                }
            }
            // Tags live in the link item.
            "link_tags" | "rollup_dirty" => return Ok(0),
            "link_segments" => {
                for r in &rows {
                    let (owner, segment) = (r.need_int("link_id")?, r.need_int("segment_id")?);
                    items.push(Item::from([
                        ("pk".into(), s(format!("G#{owner}"))),
                        ("sk".into(), s(segment.to_string())),
                    ]));
                    self.put_all(vec![Item::from([
                        ("pk".into(), s(format!("I#{segment}"))),
                        ("sk".into(), s("I")),
                        ("owner".into(), n(owner)),
                    ])])
                    .await?;
                }
            }
            "sessions" => {
                for r in &rows {
                    let expires = r.need_int("expires_at")?;
                    items.push(Item::from([
                        ("pk".into(), s("SESSIONS")),
                        (
                            "sk".into(),
                            s(hex::encode(r.blob("id_hash").unwrap_or_default())),
                        ),
                        ("data".into(), s(r.need_text("data")?)),
                        ("expires_at".into(), n(expires)),
                        ("ttl".into(), n(expires.div_euclid(1000) + 1)),
                    ]));
                }
            }
            "reports" => {
                for r in &rows {
                    let id = r.need_int("id")?;
                    let mut item = Item::from([
                        ("pk".into(), s("REPORTS")),
                        ("sk".into(), s(ord_key(id))),
                        ("id".into(), n(id)),
                        ("slug".into(), s(r.need_text("slug")?)),
                        ("reason".into(), s(r.need_text("reason")?)),
                        ("created_at".into(), n(r.need_int("created_at")?)),
                    ]);
                    put_some(
                        &mut item,
                        [
                            ("link_id", r.int("link_id").map(n)),
                            ("details", r.text("details").map(s)),
                        ],
                    );
                    items.push(item);
                }
            }
            "takedowns" => {
                for r in &rows {
                    items.push(Item::from([
                        ("pk".into(), s("TAKEDOWNS")),
                        ("sk".into(), s(r.need_text("domain")?)),
                        ("reason".into(), s(r.need_text("reason")?)),
                        ("created_at".into(), n(r.need_int("created_at")?)),
                    ]));
                }
            }
            "import_marks" => {
                for r in &rows {
                    items.push(Item::from([
                        ("pk".into(), s("IMPORT")),
                        ("sk".into(), s(r.need_text("key")?)),
                        ("v".into(), s(r.need_text("value")?)),
                        ("at".into(), n(r.need_int("updated_at")?)),
                    ]));
                }
            }
            "webhook_endpoints" => {
                for r in &rows {
                    items.push(copied_endpoint(r)?);
                }
            }
            "webhook_outbox" | "webhook_messages" | "webhook_attempts" => {
                for r in &rows {
                    items.push(copied_item(self, r)?);
                }
            }
            "clicks" | "visitors" | "link_totals" => {
                let mut parts: BTreeMap<LinkId, Part> = BTreeMap::new();
                for r in &rows {
                    let link = LinkId(r.need_int("link_id")?);
                    let part = parts.entry(link).or_default();
                    match table.name {
                        "clicks" => part.clicks.push(click_of(r)?),
                        "visitors" => {
                            let day = r.need_int("day")?;
                            part.visitors.push((
                                (day, r.need_int("visitor")?),
                                FirstClick {
                                    at: r.need_int("first_at")?,
                                    bot: r.flag("bot"),
                                    counted: true,
                                },
                            ));
                        }
                        _ => {
                            let clicks = r.need_int("clicks")?;
                            part.all += clicks;
                            if !r.flag("bot") {
                                part.humans += clicks;
                            }
                        }
                    }
                }
                for (link, part) in parts {
                    self.copy_part(link, part).await?;
                }
                return Ok(rows.len() as u64);
            }
            "rollup_series" | "rollup_dims" | "rollup_packs" | "rollup_visitors" => {
                let cut = Resolution::QuarterHour.floor(
                    chrono::Utc::now().timestamp_millis() - crate::store::rollup::MINUTE_WINDOW_MS,
                );
                let parts = Self::rollup_parts(table, cells, cut)?;
                for (link, part) in parts {
                    self.copy_part(link, part).await?;
                }
                return Ok(rows.len() as u64);
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "no such table to copy: {other}"
                )));
            }
        }
        self.put_new(items).await
    }

    async fn finish_copy(&self) -> Result<(), StoreError> {
        // Key and report ids continue past the copied ones, and the
        // webhook marker says whether endpoints want clicks.
        use crate::store::{KeyStore, ReportStore};
        let keys = self.list_keys().await?.iter().map(|k| k.id.0).max();
        let reports = self
            .list_reports(None, usize::MAX)
            .await?
            .iter()
            .map(|r| r.id)
            .max();
        for (name, max) in [("keys", keys), ("reports", reports)] {
            if let Some(max) = max {
                self.client
                    .update_item()
                    .table_name(self.table())
                    .key("pk", s("SEQ"))
                    .key("sk", s(name))
                    .update_expression("SET v = :max")
                    .condition_expression("attribute_not_exists(v) OR v < :max")
                    .expression_attribute_values(":max", n(max))
                    .send()
                    .await
                    .map(|_| ())
                    .or_else(|e| {
                        if super::condition_failed(&e) {
                            Ok(())
                        } else {
                            Err(unavailable(e))
                        }
                    })?;
            }
        }
        self.settle_wants().await
    }
}
