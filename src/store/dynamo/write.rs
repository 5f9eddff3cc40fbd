//! The click batch write on DynamoDB.
//!
//! One writer at a time per (link, region) holds a lease on the link's head
//! item (`p_nonce`, `p_exp`). It stages the batch in transactions of at most
//! 100 actions (raw clicks put only if absent, visitors), each renewing the
//! lease, then publishes it in one last transaction: the head's `seq` moves
//! from n−1 to n, the totals grow, and one delta item per day carries the
//! whole batch's counts. Stats read deltas only up to the heads' `seq`, so
//! a batch is in every number or in none.
//!
//! Staged items carry (seq, nonce). A writer that dies leaves them behind
//! unpublished; the next writer takes the expired lease over, reuses seq n,
//! and records the dead nonce in the head (`x{n}`), so that readers and
//! writers treat those items as never written: a raw click of a dead nonce
//! is overwritten when its click comes again (nothing is lost), and a
//! visitor item keeps its last published state beside (`p_at`, `p_bot`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use chrono::Utc;
use uuid::Uuid;

use super::items::{cancelled, day_key, dirty_key, raw_item, visitor_key};
use super::model::Counts;
use super::{DynamoStore, Item, condition_held, get_n, n, opt_n, opt_s, ord_key, s, unavailable};
use crate::domain::{EnrichedClick, LinkId};
use crate::store::webhooks::ClickKey;
use crate::store::{Resolution, StoreError};

/// How long a writer's lease on a link's head lasts without renewal.
const LEASE_MS: i64 = 30_000;

/// Actions of one transaction (DynamoDB's limit is 100).
const MAX_ACTIONS: usize = 100;

/// Clicks one published batch may hold (its outbox item has 32 bytes of
/// each, and an item at most 400 KB).
const MAX_BATCH: usize = 10_000;

/// Days one published batch may span (a delta item and a to-seal mark per
/// day, in the publishing transaction with the link check and the head).
const MAX_DAYS: usize = 45;

/// A region's head of a link: its last published batch and who writes now.
#[derive(Debug, Clone, Default)]
pub(super) struct Head {
    pub seq: i64,
    pub humans: i64,
    pub all: i64,
    /// Day keys with visitor items (for purging).
    pub days: HashSet<String>,
    lease: Option<(String, i64)>,
    /// Nonces of writers that died while staging batch n.
    dead: HashMap<i64, HashSet<String>>,
}

impl Head {
    pub fn from_item(item: &Item) -> Result<Head, StoreError> {
        let mut head = Head {
            seq: opt_n(item, "seq")?.unwrap_or(0),
            humans: opt_n(item, "hc")?.unwrap_or(0),
            all: opt_n(item, "ac")?.unwrap_or(0),
            ..Head::default()
        };
        if let (Some(nonce), Some(exp)) = (opt_s(item, "p_nonce"), opt_n(item, "p_exp")?) {
            head.lease = Some((nonce, exp));
        }
        for (k, v) in item {
            match (k.as_str(), v) {
                ("dd", AttributeValue::Ss(days)) => head.days.extend(days.iter().cloned()),
                (k, AttributeValue::Ss(nonces)) if k.starts_with('x') => {
                    if let Ok(seq) = k[1..].parse() {
                        head.dead.insert(seq, nonces.iter().cloned().collect());
                    }
                }
                _ => {}
            }
        }
        Ok(head)
    }

    /// Whether items staged as (seq, nonce) belong to a published batch.
    pub fn published(&self, seq: i64, nonce: &str) -> bool {
        seq <= self.seq && !self.dead.get(&seq).is_some_and(|d| d.contains(nonce))
    }
}

/// A visitor's first click of a day in this region (its bucket for unique
/// visitors), and whether this region counts it: a visitor seen in several
/// regions is counted by the one with the earliest first click
/// (`visitors.rs`), the others yield it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FirstClick {
    pub at: i64,
    pub bot: bool,
    pub counted: bool,
}

/// The state of a visitor item that counts: its current value if that
/// is published (or staged by `me`), else the published one kept beside.
pub(super) fn visitor_state(
    item: &Item,
    head: &Head,
    me: Option<&str>,
) -> Result<Option<FirstClick>, StoreError> {
    let nonce = opt_s(item, "nonce").unwrap_or_default();
    let seq = opt_n(item, "seq")?.unwrap_or(0);
    let flag = |k: &str| matches!(item.get(k), Some(AttributeValue::Bool(true)));
    if me == Some(nonce.as_str()) || head.published(seq, &nonce) {
        return Ok(Some(FirstClick {
            at: get_n(item, "first_at")?,
            bot: flag("bot"),
            counted: !flag("yielded"),
        }));
    }
    Ok(opt_n(item, "p_at")?.map(|at| FirstClick {
        at,
        bot: flag("p_bot"),
        counted: !flag("p_yielded"),
    }))
}

/// A visitor item of batch (`seq`, `me`) in `region`: its state `f`, and
/// the published state kept beside for readers until the batch is.
#[allow(clippy::too_many_arguments)]
pub(super) fn visitor_item(
    link: LinkId,
    (day, visitor): (i64, i64),
    region: &str,
    f: FirstClick,
    published: Option<FirstClick>,
    seq: i64,
    me: &str,
) -> Item {
    let mut item = visitor_key(link, day, region, visitor);
    item.extend([
        ("day".into(), n(day)),
        ("visitor".into(), n(visitor)),
        ("first_at".into(), n(f.at)),
        ("bot".into(), AttributeValue::Bool(f.bot)),
        ("yielded".into(), AttributeValue::Bool(!f.counted)),
        ("seq".into(), n(seq)),
        ("nonce".into(), s(me)),
    ]);
    if let Some(p) = published {
        item.insert("p_at".into(), n(p.at));
        item.insert("p_bot".into(), AttributeValue::Bool(p.bot));
        item.insert("p_yielded".into(), AttributeValue::Bool(!p.counted));
    }
    item
}

/// What became of one staging transaction.
enum Staged {
    Done,
    /// Clicks (indexes into the chunk) already stored by a published batch.
    Stored(Vec<usize>),
    /// Raw items left by dead writers: (index, their seq and nonce).
    Orphans(Vec<(usize, i64, String)>),
    LeaseLost,
    Busy,
}

impl DynamoStore {
    pub(super) fn tx_put(&self, item: Item) -> Put {
        Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .build()
            .expect("complete")
    }

    /// The first action of every staging transaction: renews the lease,
    /// and fails the transaction if `me` no longer holds it.
    pub(super) fn lease_renewal(&self, link: LinkId, me: &str) -> TransactWriteItem {
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(self.table())
                    .key("pk", s(format!("H#{}", link.0)))
                    .key("sk", s(self.region.clone()))
                    .update_expression("SET p_exp = :exp")
                    .condition_expression("p_nonce = :me")
                    .expression_attribute_values(":me", s(me))
                    .expression_attribute_values(
                        ":exp",
                        n(Utc::now().timestamp_millis() + LEASE_MS),
                    )
                    .build()
                    .expect("complete"),
            )
            .build()
    }

    /// An UpdateItem of this region's head of `link`.
    fn head_update(&self, link: LinkId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(self.table())
            .key("pk", s(format!("H#{}", link.0)))
            .key("sk", s(self.region.clone()))
    }

    pub(super) async fn head(&self, link: LinkId) -> Result<Head, StoreError> {
        match self.get(format!("H#{}", link.0), &self.region).await? {
            Some(item) => Head::from_item(&item),
            None => Ok(Head::default()),
        }
    }

    /// Takes the link's lease in this region; returns the head as it was
    /// (with the dead writer it replaced, if any) and the batch number.
    pub(super) async fn acquire(&self, link: LinkId, me: &str) -> Result<(Head, i64), StoreError> {
        let deadline = Utc::now().timestamp_millis() + 2 * LEASE_MS;
        let mut backoff = Duration::from_millis(5);
        loop {
            let mut head = self.head(link).await?;
            let now = Utc::now().timestamp_millis();
            if let Some((_, exp)) = &head.lease
                && *exp > now
            {
                if now > deadline {
                    return Err(StoreError::Unavailable(
                        "another writer holds this link's click lease".into(),
                    ));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
                continue;
            }
            let next = head.seq + 1;
            let mut req = self
                .head_update(link)
                .expression_attribute_values(":me", s(me))
                .expression_attribute_values(":exp", n(now + LEASE_MS));
            let mut cond = vec![if head.seq == 0 {
                "attribute_not_exists(seq)"
            } else {
                req = req.expression_attribute_values(":h", n(head.seq));
                "seq = :h"
            }];
            match &head.lease {
                Some((old, _)) => {
                    // A writer died staging batch `next`: its items are void.
                    req = req
                        .update_expression("SET p_nonce = :me, p_exp = :exp ADD #x :old")
                        .expression_attribute_names("#x", format!("x{next}"))
                        .expression_attribute_values(":old", AttributeValue::Ss(vec![old.clone()]))
                        .expression_attribute_values(":was", s(old.clone()));
                    cond.push("p_nonce = :was");
                    head.dead.entry(next).or_default().insert(old.clone());
                }
                None => {
                    req = req.update_expression("SET p_nonce = :me, p_exp = :exp");
                    cond.push("attribute_not_exists(p_nonce)");
                }
            }
            let out = req.condition_expression(cond.join(" AND ")).send().await;
            if condition_held(out)? {
                head.lease = Some((me.to_owned(), now + LEASE_MS));
                return Ok((head, next));
            }
        }
    }

    /// Gives the lease back; `staged`: items of batch `seq` were written,
    /// which become void.
    pub(super) async fn release(
        &self,
        link: LinkId,
        me: &str,
        seq: i64,
        staged: bool,
    ) -> Result<(), StoreError> {
        let mut req = self
            .head_update(link)
            .condition_expression("p_nonce = :me")
            .expression_attribute_values(":me", s(me));
        req = if staged {
            req.update_expression("REMOVE p_nonce, p_exp ADD #x :dead")
                .expression_attribute_names("#x", format!("x{seq}"))
                .expression_attribute_values(":dead", AttributeValue::Ss(vec![me.to_owned()]))
        } else {
            req.update_expression("REMOVE p_nonce, p_exp")
        };
        // Not held: taken over meanwhile, nothing to give back.
        condition_held(req.send().await)?;
        Ok(())
    }

    /// The visitor items of these (day, visitor) pairs in `region`.
    async fn visitor_items(
        &self,
        link: LinkId,
        region: &str,
        wanted: &[(i64, i64)],
    ) -> Result<HashMap<(i64, i64), Item>, StoreError> {
        let mut out = HashMap::new();
        let keys: Vec<Item> = wanted
            .iter()
            .map(|(day, visitor)| visitor_key(link, *day, region, *visitor))
            .collect();
        for item in self.batch_get(keys).await? {
            out.insert((get_n(&item, "day")?, get_n(&item, "visitor")?), item);
        }
        Ok(out)
    }

    /// The earliest published first click in another region (and which)
    /// of each of these (day, visitor) pairs that has one; `others`: the
    /// other regions' heads of the link.
    async fn firsts_elsewhere(
        &self,
        link: LinkId,
        others: &HashMap<String, Head>,
        wanted: &[(i64, i64)],
    ) -> Result<HashMap<(i64, i64), (i64, String)>, StoreError> {
        let mut out: HashMap<(i64, i64), (i64, String)> = HashMap::new();
        if wanted.is_empty() {
            return Ok(out);
        }
        for (region, head) in others {
            for (key, item) in self.visitor_items(link, region, wanted).await? {
                if let Some(f) = visitor_state(&item, head, None)? {
                    let theirs = (f.at, region.clone());
                    match out.get(&key) {
                        Some(known) if *known <= theirs => {}
                        _ => {
                            out.insert(key, theirs);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Stages one chunk: its raw clicks and visitors, renewing the lease.
    /// On success adds the chunk's counts to `counts`. A visitor new here
    /// whose first click another region already has earlier is yielded at
    /// once (the sealer's reconciliation settles the races).
    #[allow(clippy::too_many_arguments)]
    async fn stage(
        &self,
        link: LinkId,
        me: &str,
        seq: i64,
        head: &Head,
        others: &HashMap<String, Head>,
        chunk: &[&EnrichedClick],
        orphans: &HashMap<Uuid, (i64, String)>,
        counts: &mut Counts,
    ) -> Result<Staged, StoreError> {
        let mut wanted: Vec<(i64, i64)> = chunk
            .iter()
            .map(|c| (Resolution::Day.floor(c.at), c.visitor))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let items = self.visitor_items(link, &self.region, &wanted).await?;
        let new_here: Vec<(i64, i64)> = wanted
            .iter()
            .filter(|k| !items.contains_key(k))
            .copied()
            .collect();
        let elsewhere = self.firsts_elsewhere(link, others, &new_here).await?;
        let mut mine = Counts::default();
        // Per visitor: its counting state now, and the published one.
        let mut firsts: BTreeMap<(i64, i64), (FirstClick, Option<FirstClick>)> = BTreeMap::new();
        for c in chunk {
            mine.click(c);
            let key = (Resolution::Day.floor(c.at), c.visitor);
            let known = match firsts.get(&key) {
                Some((f, _)) => Some(*f),
                None => match items.get(&key) {
                    Some(item) => visitor_state(item, head, Some(me))?,
                    None => None,
                },
            };
            let published = match firsts.get(&key) {
                Some((_, p)) => *p,
                None => match items.get(&key) {
                    Some(item) => visitor_state(item, head, None)?,
                    None => None,
                },
            };
            match known {
                Some(f) if f.at <= c.at => {}
                Some(f) => {
                    // An earlier first click: it moves, counted or yielded
                    // as before (the next reconciliation decides anew).
                    if f.counted {
                        mine.visitor(f.at, f.bot, -1);
                        mine.visitor(c.at, c.bot, 1);
                    }
                    let first = FirstClick {
                        at: c.at,
                        bot: c.bot,
                        counted: f.counted,
                    };
                    firsts.insert(key, (first, published));
                }
                None => {
                    let counted = elsewhere
                        .get(&key)
                        .is_none_or(|(at, r)| (c.at, self.region.as_str()) < (*at, r.as_str()));
                    if counted {
                        mine.visitor(c.at, c.bot, 1);
                    }
                    let first = FirstClick {
                        at: c.at,
                        bot: c.bot,
                        counted,
                    };
                    firsts.insert(key, (first, published));
                }
            }
        }
        let mut actions = vec![self.lease_renewal(link, me)];
        for c in chunk {
            let mut item = raw_item(c, &self.region, seq);
            item.insert("nonce".into(), s(me));
            let put = Put::builder()
                .table_name(self.table())
                .set_item(Some(item))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let put = match orphans.get(&c.event_id) {
                Some((oseq, once)) => put
                    .condition_expression("#seq = :oseq AND nonce = :once")
                    .expression_attribute_names("#seq", "seq")
                    .expression_attribute_values(":oseq", n(*oseq))
                    .expression_attribute_values(":once", s(once.clone())),
                None => put.condition_expression("attribute_not_exists(pk)"),
            };
            actions.push(
                TransactWriteItem::builder()
                    .put(put.build().expect("complete"))
                    .build(),
            );
        }
        for (key, (f, published)) in &firsts {
            let item = visitor_item(link, *key, &self.region, *f, *published, seq, me);
            actions.push(TransactWriteItem::builder().put(self.tx_put(item)).build());
        }
        debug_assert!(actions.len() <= MAX_ACTIONS);
        let out = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        let e = match out {
            Ok(_) => {
                counts.add(&mine);
                return Ok(Staged::Done);
            }
            Err(e) => e,
        };
        let Some(reasons) = cancelled(&e) else {
            return if super::retryable(&e) {
                Ok(Staged::Busy)
            } else {
                Err(unavailable(e))
            };
        };
        if reasons.first().is_some_and(|r| r.failed()) {
            return Ok(Staged::LeaseLost);
        }
        let mut stored = Vec::new();
        let mut void = Vec::new();
        for (i, c) in chunk.iter().enumerate() {
            let Some(r) = reasons.get(1 + i).filter(|r| r.failed()) else {
                continue;
            };
            let old = r.item.as_ref();
            let oseq = old
                .and_then(|o| opt_n(o, "seq").ok().flatten())
                .unwrap_or(0);
            let once = old.and_then(|o| opt_s(o, "nonce")).unwrap_or_default();
            if old.is_none() || head.published(oseq, &once) || once == me {
                stored.push(i);
            } else if orphans.get(&c.event_id) != Some(&(oseq, once.clone())) {
                void.push((i, oseq, once));
            } else {
                // Changed again since read: read again.
                return Ok(Staged::Busy);
            }
        }
        if !stored.is_empty() {
            return Ok(Staged::Stored(stored));
        }
        if !void.is_empty() {
            return Ok(Staged::Orphans(void));
        }
        Ok(Staged::Busy)
    }

    /// Publishes batch `seq`: the head moves to it, with the totals and one
    /// delta item per day. `clicks`: a batch of clicks, counted in the
    /// to-seal marks' `b` (other regions reconcile visitors when it moves),
    /// not a reconciliation's corrections. `outbox`: the keys of the clicks
    /// for the webhook outbox (none for a variant's copies). `Ok(false)`:
    /// the link is gone.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn publish(
        &self,
        link: LinkId,
        me: &str,
        seq: i64,
        counts: &Counts,
        humans: usize,
        all: usize,
        clicks: bool,
        outbox: Option<&[ClickKey]>,
    ) -> Result<bool, StoreError> {
        // A batch of clicks goes to the webhook outbox in this transaction
        // while some endpoint wants clicks; otherwise the transaction
        // checks that none does (one registered since the last read makes
        // it fail, and it is sent again with the outbox item).
        let mut wants = match outbox {
            Some(_) => self.wants_clicks().await?,
            None => false,
        };
        for _ in 0..3 {
            let mut actions = self.publish_actions(link, me, seq, counts, humans, all, clicks);
            if let Some(keys) = outbox {
                actions.push(if wants {
                    self.outbox_clicks(link, keys)
                } else {
                    self.no_click_endpoints()
                });
            }
            match self.transact(actions, "to publish the click batch").await? {
                Ok(()) => return Ok(true),
                Err(r) if r.first().is_some_and(|r| r.failed()) => return Ok(false),
                Err(r) if outbox.is_some() && !wants && r.last().is_some_and(|r| r.failed()) => {
                    wants = self.refresh_wants().await?;
                }
                Err(_) => break,
            }
        }
        Err(StoreError::Unavailable(
            "lost this link's click lease while publishing".into(),
        ))
    }

    /// The publishing transaction's actions but the outbox's.
    #[allow(clippy::too_many_arguments)]
    fn publish_actions(
        &self,
        link: LinkId,
        me: &str,
        seq: i64,
        counts: &Counts,
        humans: usize,
        all: usize,
        clicks: bool,
    ) -> Vec<TransactWriteItem> {
        let by_day = counts.by_day();
        let days: Vec<String> = by_day.keys().map(|d| day_key(*d)).collect();
        let mut actions = vec![
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(self.table())
                        .key("pk", s(format!("I#{}", link.0)))
                        .key("sk", s("I"))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .expect("complete"),
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(self.table())
                        .key("pk", s(format!("H#{}", link.0)))
                        .key("sk", s(self.region.clone()))
                        .update_expression(
                            "SET seq = :seq REMOVE p_nonce, p_exp ADD hc :h, ac :a, dd :days",
                        )
                        .condition_expression("p_nonce = :me")
                        .expression_attribute_values(":me", s(me))
                        .expression_attribute_values(":seq", n(seq))
                        .expression_attribute_values(":h", n(humans))
                        .expression_attribute_values(":a", n(all))
                        .expression_attribute_values(":days", AttributeValue::Ss(days))
                        .build()
                        .expect("complete"),
                )
                .build(),
        ];
        for (day, part) in &by_day {
            let (pk, sk) = dirty_key(link, &day_key(*day), &self.region);
            actions.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(self.table())
                            .key("pk", s(pk))
                            .key("sk", s(sk))
                            .update_expression(
                                "ADD #rows :one, #b :b SET #l = :l, #d = :d, #r = :r",
                            )
                            .expression_attribute_names("#rows", "rows")
                            .expression_attribute_names("#b", "b")
                            .expression_attribute_values(":b", n(i64::from(clicks)))
                            .expression_attribute_names("#l", "link")
                            .expression_attribute_names("#d", "day")
                            .expression_attribute_names("#r", "region")
                            .expression_attribute_values(":one", n(1))
                            .expression_attribute_values(":l", n(link.0))
                            .expression_attribute_values(":d", n(*day))
                            .expression_attribute_values(":r", s(self.region.clone()))
                            .build()
                            .expect("complete"),
                    )
                    .build(),
            );
            actions.push(
                TransactWriteItem::builder()
                    .put(self.tx_put(Item::from([
                        ("pk".into(), s(format!("D#{}", link.0))),
                        (
                            "sk".into(),
                            s(format!(
                                "{}#{}#d#{}",
                                day_key(*day),
                                self.region,
                                ord_key(seq)
                            )),
                        ),
                        ("seq".into(), n(seq)),
                        ("c".into(), AttributeValue::B(part.encode().into())),
                    ])))
                    .build(),
            );
        }
        actions
    }

    /// Sends a transaction, and again after a pause while DynamoDB refuses
    /// it for now (throttling, a conflicting transaction, a cancellation
    /// naming no failed condition), up to ten times. `Ok(Err(reasons))`: a
    /// condition failed; `what` names the transaction in errors.
    pub(super) async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
        what: &str,
    ) -> Result<Result<(), Vec<super::items::Reason>>, StoreError> {
        let mut busy = 0;
        loop {
            let out = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .send()
                .await;
            let e = match out {
                Ok(_) => return Ok(Ok(())),
                Err(e) => e,
            };
            match cancelled(&e) {
                Some(r) if r.iter().any(|r| r.failed()) => return Ok(Err(r)),
                Some(_) => {}
                None if super::retryable(&e) => {}
                None => return Err(unavailable(e)),
            }
            busy += 1;
            if busy > 10 {
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB kept refusing {what}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10 << busy.min(6))).await;
        }
    }

    /// Stores one link's clicks (see the module docs); returns how many
    /// were new.
    pub(super) async fn record_link(
        &self,
        link: LinkId,
        clicks: Vec<&EnrichedClick>,
        outbox: bool,
    ) -> Result<u64, StoreError> {
        // A batch spanning many days (an import) is published in parts.
        let mut groups: Vec<Vec<&EnrichedClick>> = Vec::new();
        let mut by_day: BTreeMap<i64, Vec<&EnrichedClick>> = BTreeMap::new();
        for c in clicks {
            by_day
                .entry(Resolution::Day.floor(c.at))
                .or_default()
                .push(c);
        }
        let days: Vec<Vec<&EnrichedClick>> = by_day.into_values().collect();
        for part in days.chunks(MAX_DAYS) {
            let part: Vec<&EnrichedClick> = part.iter().flatten().copied().collect();
            // An outbox item holds the keys of at most this many clicks.
            for group in part.chunks(MAX_BATCH) {
                groups.push(group.to_vec());
            }
        }
        let mut new = 0;
        for group in groups {
            let me = Uuid::new_v4().simple().to_string();
            let (head, seq) = self.acquire(link, &me).await?;
            let mut staged = false;
            let result = self
                .write_batch(link, &me, seq, &head, group, outbox, &mut staged)
                .await;
            match result {
                Ok(Some(0)) => self.release(link, &me, seq, staged).await?,
                Ok(Some(n)) => new += n,
                Ok(None) => {
                    self.release(link, &me, seq, staged).await?;
                    return Ok(new);
                }
                Err(e) => {
                    // Best effort: the next writer would wait out the lease.
                    let _ = self.release(link, &me, seq, staged).await;
                    return Err(e);
                }
            }
        }
        Ok(new)
    }

    /// Stages and publishes one batch under the lease. `Ok(None)`: the link
    /// is gone (the lease is still held).
    #[allow(clippy::too_many_arguments)]
    async fn write_batch(
        &self,
        link: LinkId,
        me: &str,
        seq: i64,
        head: &Head,
        clicks: Vec<&EnrichedClick>,
        outbox: bool,
        staged: &mut bool,
    ) -> Result<Option<u64>, StoreError> {
        let mut counts = Counts::default();
        // The keys of the clicks this batch stores (not those already
        // stored by an earlier one).
        let mut keys: Vec<ClickKey> = Vec::new();
        let (mut humans, mut all) = (0, 0);
        let mut orphans: HashMap<Uuid, (i64, String)> = HashMap::new();
        let mut others = self.heads(link).await?;
        others.remove(&self.region);
        // Each click costs its raw item and at most one visitor item, plus
        // the lease renewal.
        let per_chunk = (MAX_ACTIONS - 1) / 2;
        for chunk in clicks.chunks(per_chunk) {
            let mut chunk: Vec<&EnrichedClick> = chunk.to_vec();
            let mut busy = 0;
            while !chunk.is_empty() {
                match self
                    .stage(link, me, seq, head, &others, &chunk, &orphans, &mut counts)
                    .await?
                {
                    Staged::Done => {
                        *staged = true;
                        keys.extend(chunk.iter().map(|c| (link, c.at, c.event_id)));
                        all += chunk.len();
                        humans += chunk.iter().filter(|c| !c.bot).count();
                        break;
                    }
                    Staged::Stored(done) => {
                        let done: HashSet<usize> = done.into_iter().collect();
                        chunk = chunk
                            .into_iter()
                            .enumerate()
                            .filter(|(i, _)| !done.contains(i))
                            .map(|(_, c)| c)
                            .collect();
                    }
                    Staged::Orphans(void) => {
                        for (i, oseq, once) in void {
                            orphans.insert(chunk[i].event_id, (oseq, once));
                        }
                    }
                    Staged::LeaseLost => {
                        return Err(StoreError::Unavailable(
                            "lost this link's click lease while staging".into(),
                        ));
                    }
                    Staged::Busy => {
                        busy += 1;
                        if busy > 10 {
                            return Err(StoreError::Unavailable(
                                "DynamoDB kept refusing the click batch".into(),
                            ));
                        }
                        tokio::time::sleep(Duration::from_millis(5 << busy.min(7))).await;
                    }
                }
            }
        }
        if all == 0 {
            return Ok(Some(0));
        }
        if !self
            .publish(
                link,
                me,
                seq,
                &counts,
                humans,
                all,
                true,
                outbox.then_some(&keys),
            )
            .await?
        {
            return Ok(None);
        }
        Ok(Some(all as u64))
    }
}

#[cfg(feature = "testing")]
impl DynamoStore {
    /// Tests only: stages `clicks` as a writer that dies before publishing
    /// (its lease left behind, already expired).
    pub async fn stage_and_die(&self, clicks: &[EnrichedClick]) -> Result<(), StoreError> {
        let mut by_link: BTreeMap<LinkId, Vec<&EnrichedClick>> = BTreeMap::new();
        for c in clicks {
            by_link.entry(c.link_id).or_default().push(c);
        }
        for (link, clicks) in by_link {
            let me = Uuid::new_v4().simple().to_string();
            let (head, seq) = self.acquire(link, &me).await?;
            let mut counts = Counts::default();
            for chunk in clicks.chunks((MAX_ACTIONS - 1) / 2) {
                match self
                    .stage(
                        link,
                        &me,
                        seq,
                        &head,
                        &HashMap::new(),
                        chunk,
                        &HashMap::new(),
                        &mut counts,
                    )
                    .await?
                {
                    Staged::Done => {}
                    _ => return Err(StoreError::Unsupported("stage_and_die: a clean table")),
                }
            }
            self.head_update(link)
                .update_expression("SET p_exp = :gone")
                .expression_attribute_values(":gone", n(0))
                .send()
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}
