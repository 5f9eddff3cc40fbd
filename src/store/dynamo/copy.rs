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

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::items::raw_item;
use super::model::Counts;
use super::write::{FirstClick, visitor_item};
use super::{DynamoStore, Item, n, ord_key, s, unavailable};
use crate::domain::{DeviceType, EnrichedClick, LinkId, Route, Utm};
use crate::store::copy::{Cell, CopyRows, Table};
use crate::store::{Resolution, StoreError};

/// One row, read by column name.
struct Row<'a> {
    table: &'a Table,
    cells: &'a [Cell],
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

    fn int(&self, name: &str) -> Option<i64> {
        match self.cell(name) {
            Cell::Int(v) => Some(*v),
            Cell::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    fn need_int(&self, name: &str) -> Result<i64, StoreError> {
        self.int(name)
            .ok_or_else(|| StoreError::Corrupt(format!("{} row without {name}", self.table.name)))
    }

    fn text(&self, name: &str) -> Option<String> {
        match self.cell(name) {
            Cell::Text(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn need_text(&self, name: &str) -> Result<String, StoreError> {
        self.text(name)
            .ok_or_else(|| StoreError::Corrupt(format!("{} row without {name}", self.table.name)))
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.cell(name), Cell::Bool(true) | Cell::Int(1))
    }

    fn blob(&self, name: &str) -> Option<Vec<u8>> {
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
    /// 45 days of deltas each, as the click write does).
    async fn publish_part(&self, link: LinkId, mut part: Part) -> Result<(), StoreError> {
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
                return Err(StoreError::Corrupt(format!(
                    "rows of link {} copied before the link",
                    link.0
                )));
            }
        }
        Ok(())
    }

    /// Puts items, 25 per request.
    async fn put_all(&self, items: Vec<Item>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in items.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|i| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(i.clone()))
                                .build()
                                .expect("complete"),
                        )
                        .build()
                })
                .collect();
            let mut backoff = std::time::Duration::from_millis(20);
            while !requests.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.table(), requests)
                    .send()
                    .await
                    .map_err(unavailable)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(self.table()))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
        Ok(())
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

#[async_trait]
impl CopyRows for DynamoStore {
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
            "webhook_endpoints" => {
                for r in &rows {
                    items.push(super::webhooks::copied_endpoint(r.table, r.cells)?);
                }
            }
            "webhook_outbox" | "webhook_messages" | "webhook_attempts" => {
                for r in &rows {
                    items.push(super::webhooks::copied_item(self, r.table, r.cells)?);
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
                    self.publish_part(link, part).await?;
                }
                return Ok(rows.len() as u64);
            }
            "rollup_series" | "rollup_dims" | "rollup_packs" | "rollup_visitors" => {
                let cut = Resolution::QuarterHour
                    .floor(chrono::Utc::now().timestamp_millis() - crate::stats::MINUTE_WINDOW_MS);
                let parts = Self::rollup_parts(table, cells, cut)?;
                for (link, part) in parts {
                    self.publish_part(link, part).await?;
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
