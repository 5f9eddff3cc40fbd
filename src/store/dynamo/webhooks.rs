//! `WebhookStore` on DynamoDB (see [`crate::store::webhooks`] for what each
//! call promises, and docs/architecture.md, "Webhooks on DynamoDB").
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | endpoint | `WH` | its id | the endpoint |
//! | wants clicks | `WH` | `#wants` | whether some endpoint wants clicks (`wants`), and a version (`v`) every endpoint write moves |
//! | outbox | `WO#{region}#{shard}` | `{created}#{uuid}` | a link event, or the keys of one published click batch |
//! | message | `WM#{endpoint}` | its id | the message; GSI `webhook-list` (`wl`, `wt` = `{at}#{id}`) and, while pending, `webhook-due` (`wq` = `{endpoint}#{region}`, `wd` = when it may next be claimed) |
//! | attempt | `WA#{endpoint}` | its id | one delivery attempt |
//!
//! Endpoints and the `#wants` item are written in the claims region (like
//! slugs), so they have one writer region. Outbox items are written in the
//! transaction of what they describe: a link's put or delete, the
//! click-limit claim that reaches the limit, and the publishing
//! transaction of a click batch (while `#wants` says so; otherwise that
//! transaction checks `#wants` still says no, so an endpoint registered
//! meanwhile is never missed). Each region fans out and delivers its own
//! outbox. A fan-out writes a group of outbox items' messages and deletes
//! the items in one transaction when they fit (100 actions, 4 MB); an item
//! whose messages alone do not fit gets message ids derived from the
//! item's key, so a fan-out that dies halfway and is redone writes the
//! same messages again, not new ones.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, Select, TransactWriteItem,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::items::{cancelled, click_from_item, raw_pk, raw_sk, shard_of};
use super::{
    DynamoStore, Item, condition_failed, condition_held, get_n, get_s, link_from_item, n, opt_n,
    opt_s, ord_key, s, unavailable,
};
use crate::domain::webhook::{EventType, LinkEvent, OUTBOX_CLICKS, OUTBOX_LINK};
use crate::domain::{EnrichedClick, KeyId, LinkId};
use crate::store::StoreError;
use crate::store::webhooks::{
    Attempt, ClickKey, Endpoint, FanOut, LinkFacts, Message, MessageState, NewMessage, OutboxEntry,
    Outcome, Planner, ReplaySelection, WebhookStore, click_keys_blob, click_keys_of,
};

pub(super) const LIST_INDEX: &str = "webhook-list";
pub(super) const DUE_INDEX: &str = "webhook-due";
const ENDPOINTS: &str = "WH";
const WANTS: &str = "#wants";
/// Partitions of a region's outbox, so a busy click pipeline's outbox
/// writes are not bound by one partition's.
const OUTBOX_SHARDS: i64 = 16;
/// How long a fan-out holds the outbox items it took.
const FAN_OUT_CLAIM_MS: i64 = 10_000;
/// About how many clicks one fan-out reads and plans.
const FAN_OUT_CLICKS: usize = 20_000;
/// What one transaction may carry: 100 actions, 4 MB (kept under).
const TX_ACTIONS: usize = 100;
const TX_BYTES: usize = 3_000_000;
/// Bodies longer than this are kept gzipped (an item holds 400 KB; a
/// message of 1 000 clicks is about 700 KB of JSON).
const GZIP_OVER: usize = 16 * 1024;
/// How long the click writer trusts what it read of `#wants` when it says
/// yes (a no is checked inside every publishing transaction).
const WANTS_FRESH: Duration = Duration::from_secs(1);

/// How often a fan-out looks at the outbox while no endpoint exists.
const IDLE_DRAIN: Duration = Duration::from_secs(10);

/// What the click writer last read of `#wants`; and when a fan-out last
/// drained the outbox while no endpoint existed.
#[derive(Default)]
pub(super) struct WantsCache(
    std::sync::Mutex<Option<(bool, Instant)>>,
    std::sync::Mutex<Option<Instant>>,
);

fn bool_attr(item: &Item, k: &str) -> bool {
    matches!(item.get(k), Some(AttributeValue::Bool(true)))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn endpoint_item(e: &Endpoint) -> Item {
    let mut item = Item::from([
        ("pk".into(), s(ENDPOINTS)),
        ("sk".into(), s(e.id.clone())),
        (
            "instance_wide".into(),
            AttributeValue::Bool(e.instance_wide),
        ),
        ("url".into(), s(e.url.clone())),
        (
            "events".into(),
            s(serde_json::to_string(&e.events).expect("events as JSON")),
        ),
        ("secret".into(), s(e.secret.clone())),
        ("enabled".into(), AttributeValue::Bool(e.enabled)),
        ("created_at".into(), n(e.created_at)),
        ("updated_at".into(), n(e.updated_at)),
    ]);
    if let Some(o) = e.owner {
        item.insert("owner".into(), n(o.0));
    }
    if let Some(links) = &e.scope_links {
        item.insert(
            "scope_links".into(),
            s(serde_json::to_string(links).expect("slugs as JSON")),
        );
    }
    for (k, v) in [
        ("description", &e.description),
        ("scope_tag", &e.scope_tag),
        ("previous_secret", &e.previous_secret),
        ("disabled_reason", &e.disabled_reason),
    ] {
        if let Some(v) = v {
            item.insert(k.into(), s(v.clone()));
        }
    }
    for (k, v) in [
        ("previous_until", e.previous_until),
        ("failing_since", e.failing_since),
    ] {
        if let Some(v) = v {
            item.insert(k.into(), n(v));
        }
    }
    item
}

fn endpoint_from_item(item: &Item) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: get_s(item, "sk")?.to_owned(),
        owner: opt_n(item, "owner")?.map(KeyId),
        instance_wide: bool_attr(item, "instance_wide"),
        url: get_s(item, "url")?.to_owned(),
        description: opt_s(item, "description"),
        events: serde_json::from_str(get_s(item, "events")?)
            .map_err(|e| corrupt("webhook events", e))?,
        scope_tag: opt_s(item, "scope_tag"),
        scope_links: opt_s(item, "scope_links")
            .map(|l| serde_json::from_str(&l))
            .transpose()
            .map_err(|e| corrupt("webhook scope", e))?,
        secret: get_s(item, "secret")?.to_owned(),
        previous_secret: opt_s(item, "previous_secret"),
        previous_until: opt_n(item, "previous_until")?,
        enabled: bool_attr(item, "enabled"),
        disabled_reason: opt_s(item, "disabled_reason"),
        failing_since: opt_n(item, "failing_since")?,
        created_at: get_n(item, "created_at")?,
        updated_at: get_n(item, "updated_at")?,
    })
}

fn is_endpoint(item: &Item) -> bool {
    opt_s(item, "sk").is_some_and(|k| k != WANTS)
}

fn message_pk(endpoint: &str) -> String {
    format!("WM#{endpoint}")
}

fn list_key(at: i64, id: &str) -> String {
    format!("{}#{id}", ord_key(at))
}

pub(super) fn message_item(m: &NewMessage, region: &str) -> Item {
    let mut item = Item::from([
        ("pk".into(), s(message_pk(&m.endpoint_id))),
        ("sk".into(), s(m.id.clone())),
        ("endpoint".into(), s(m.endpoint_id.clone())),
        ("event_type".into(), s(m.event_type.as_str())),
        ("at".into(), n(m.at)),
        ("events".into(), n(m.events)),
        ("state".into(), s(MessageState::Pending.as_str())),
        ("attempts".into(), n(0)),
        ("retry_until".into(), n(m.retry_until)),
        ("next_at".into(), n(m.created_at)),
        ("created_at".into(), n(m.created_at)),
        ("region".into(), s(region)),
        ("wl".into(), s(m.endpoint_id.clone())),
        ("wt".into(), s(list_key(m.at, &m.id))),
        ("wq".into(), s(format!("{}#{region}", m.endpoint_id))),
        ("wd".into(), s(ord_key(m.created_at))),
    ]);
    if m.body.len() > GZIP_OVER {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(m.body.as_bytes()).expect("to memory");
        item.insert(
            "bz".into(),
            AttributeValue::B(z.finish().expect("to memory").into()),
        );
    } else {
        item.insert("body".into(), s(m.body.clone()));
    }
    item
}

fn item_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    _ => 16,
                }
        })
        .sum()
}

fn message_from_item(item: &Item) -> Result<Message, StoreError> {
    let kind = get_s(item, "event_type")?;
    let state = get_s(item, "state")?;
    let body = match (opt_s(item, "body"), item.get("bz")) {
        (Some(b), _) => b,
        (None, Some(AttributeValue::B(z))) => {
            let mut out = String::new();
            flate2::read::GzDecoder::new(z.as_ref())
                .read_to_string(&mut out)
                .map_err(|e| corrupt("webhook body", e))?;
            out
        }
        _ => return Err(StoreError::Corrupt("webhook message without body".into())),
    };
    Ok(Message {
        endpoint_id: get_s(item, "endpoint")?.to_owned(),
        id: get_s(item, "sk")?.to_owned(),
        event_type: EventType::parse(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("webhook event type {kind}")))?,
        at: get_n(item, "at")?,
        events: get_n(item, "events")? as u32,
        body,
        state: MessageState::parse(state)
            .ok_or_else(|| StoreError::Corrupt(format!("webhook state {state}")))?,
        attempts: get_n(item, "attempts")? as u32,
        retry_until: get_n(item, "retry_until")?,
        next_at: get_n(item, "next_at")?,
        last_status: opt_n(item, "last_status")?.map(|s| s as u16),
        last_error: opt_s(item, "last_error"),
        created_at: get_n(item, "created_at")?,
        finished_at: opt_n(item, "finished_at")?,
    })
}

fn attempt_from_item(item: &Item) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        id: get_n(item, "id")?,
        endpoint_id: get_s(item, "endpoint")?.to_owned(),
        message_id: get_s(item, "message")?.to_owned(),
        at: get_n(item, "at")?,
        attempt: get_n(item, "attempt")? as u32,
        status: opt_n(item, "status")?.map(|s| s as u16),
        latency_ms: get_n(item, "latency_ms")? as u64,
        error: opt_s(item, "error"),
        response: opt_s(item, "response"),
    })
}

/// A batch message's id for an outbox item fanned out on its own: the
/// same for the same item, endpoint and position, in UUIDv7's layout
/// (the first event's time, then hash bits).
fn derived_id(item_key: &str, endpoint: &str, nth: usize, at: i64) -> String {
    let mut h = Sha256::new();
    h.update(item_key.as_bytes());
    h.update([0]);
    h.update(endpoint.as_bytes());
    h.update(nth.to_be_bytes());
    let bits = h.finalize();
    uuid::Builder::from_unix_timestamp_millis(at.max(0) as u64, bits[..10].try_into().expect("10"))
        .into_uuid()
        .to_string()
}

/// One taken outbox item.
struct Taken {
    pk: String,
    sk: String,
    kind: String,
    body: Vec<u8>,
}

impl DynamoStore {
    pub(super) fn outbox_item(&self, shard: i64, kind: &str, body: Vec<u8>) -> Item {
        let now = chrono::Utc::now().timestamp_millis();
        Item::from([
            (
                "pk".into(),
                s(format!(
                    "WO#{}#{}",
                    self.region,
                    shard.rem_euclid(OUTBOX_SHARDS)
                )),
            ),
            (
                "sk".into(),
                s(format!(
                    "{}#{}",
                    ord_key(now),
                    uuid::Uuid::now_v7().simple()
                )),
            ),
            ("kind".into(), s(kind)),
            ("body".into(), AttributeValue::B(body.into())),
        ])
    }

    /// A transaction action that puts a link event in the outbox.
    pub(super) fn outbox_link_event(&self, event: &LinkEvent) -> TransactWriteItem {
        let item = self.outbox_item(
            event.id.as_u128() as i64,
            OUTBOX_LINK,
            event.to_json().into_bytes(),
        );
        TransactWriteItem::builder().put(self.tx_put(item)).build()
    }

    /// A transaction action that puts one click batch's keys in the outbox.
    pub(super) fn outbox_clicks(&self, link: LinkId, keys: &[ClickKey]) -> TransactWriteItem {
        let item = self.outbox_item(link.0, OUTBOX_CLICKS, click_keys_blob(keys));
        TransactWriteItem::builder().put(self.tx_put(item)).build()
    }

    /// A transaction action that holds only while no endpoint wants clicks.
    pub(super) fn no_click_endpoints(&self) -> TransactWriteItem {
        TransactWriteItem::builder()
            .condition_check(
                ConditionCheck::builder()
                    .table_name(self.table())
                    .key("pk", s(ENDPOINTS))
                    .key("sk", s(WANTS))
                    .condition_expression("attribute_not_exists(wants) OR wants = :no")
                    .expression_attribute_values(":no", AttributeValue::Bool(false))
                    .build()
                    .expect("complete"),
            )
            .build()
    }

    /// Whether some endpoint wants clicks, as last read (at most a second
    /// ago when yes; a no is verified by [`Self::no_click_endpoints`]).
    pub(super) async fn wants_clicks(&self) -> Result<bool, StoreError> {
        if let Some((wants, at)) = *self.wants.0.lock().expect("not poisoned")
            && (!wants || at.elapsed() < WANTS_FRESH)
        {
            return Ok(wants);
        }
        self.refresh_wants().await
    }

    /// Reads `#wants` again.
    pub(super) async fn refresh_wants(&self) -> Result<bool, StoreError> {
        let wants = self
            .get(ENDPOINTS.into(), WANTS)
            .await?
            .is_some_and(|i| bool_attr(&i, "wants"));
        *self.wants.0.lock().expect("not poisoned") = Some((wants, Instant::now()));
        Ok(wants)
    }

    /// The endpoints, read in the claims region (where they are written).
    async fn endpoint_items(&self) -> Result<Vec<Item>, StoreError> {
        let q = self
            .claims()
            .query()
            .table_name(self.table())
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(ENDPOINTS));
        self.query_items(q, usize::MAX).await
    }

    /// Writes (puts or deletes) one endpoint together with `#wants`, which
    /// says afterwards whether any endpoint wants clicks. `condition` is
    /// the endpoint action's own; `Ok(false)`: it failed.
    async fn write_endpoint(
        &self,
        id: &str,
        new: Option<&Endpoint>,
        condition: &str,
    ) -> Result<bool, StoreError> {
        for _ in 0..20 {
            let items = self.endpoint_items().await?;
            let version = items
                .iter()
                .find(|i| !is_endpoint(i))
                .map(|i| opt_n(i, "v"))
                .transpose()?
                .flatten()
                .unwrap_or(0);
            let mut wants = new.is_some_and(|e| e.wants(EventType::Click));
            for item in items.iter().filter(|i| is_endpoint(i)) {
                let e = endpoint_from_item(item)?;
                wants |= e.id != id && e.wants(EventType::Click);
            }
            let endpoint = match new {
                Some(e) => TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(self.table())
                            .set_item(Some(endpoint_item(e)))
                            .condition_expression(condition)
                            .build()
                            .expect("complete"),
                    )
                    .build(),
                None => TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(self.table())
                            .key("pk", s(ENDPOINTS))
                            .key("sk", s(id))
                            .condition_expression(condition)
                            .build()
                            .expect("complete"),
                    )
                    .build(),
            };
            let marker = aws_sdk_dynamodb::types::Update::builder()
                .table_name(self.table())
                .key("pk", s(ENDPOINTS))
                .key("sk", s(WANTS))
                .update_expression("SET wants = :w, v = :next")
                .expression_attribute_values(":w", AttributeValue::Bool(wants))
                .expression_attribute_values(":next", n(version + 1));
            let marker = if version == 0 {
                marker.condition_expression("attribute_not_exists(v)")
            } else {
                marker
                    .condition_expression("v = :v")
                    .expression_attribute_values(":v", n(version))
            };
            let out = self
                .claims()
                .transact_write_items()
                .transact_items(endpoint)
                .transact_items(
                    TransactWriteItem::builder()
                        .update(marker.build().expect("complete"))
                        .build(),
                )
                .send()
                .await;
            let e = match out {
                Ok(_) => {
                    if wants {
                        *self.wants.0.lock().expect("not poisoned") = Some((true, Instant::now()));
                    }
                    return Ok(true);
                }
                Err(e) => e,
            };
            match cancelled(&e) {
                Some(r) if r.first().is_some_and(|r| r.failed()) => return Ok(false),
                // Another endpoint write came between: read again.
                Some(_) => {}
                None if super::retryable(&e) => {}
                None => return Err(unavailable(e)),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(StoreError::Unavailable(
            "webhook endpoints kept changing under this write".into(),
        ))
    }

    /// Outbox items nobody holds, oldest first, about `FAN_OUT_CLICKS`
    /// clicks' worth (at most `limit`), taken for `worker`.
    async fn take_outbox(
        &self,
        worker: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Taken>, StoreError> {
        let mut free: Vec<(String, String, usize)> = Vec::new();
        for shard in 0..OUTBOX_SHARDS {
            let page = self
                .client
                .query()
                .table_name(self.table())
                .consistent_read(true)
                .key_condition_expression("pk = :pk")
                .filter_expression("attribute_not_exists(claimed_until) OR claimed_until < :now")
                .expression_attribute_values(":pk", s(format!("WO#{}#{shard}", self.region)))
                .expression_attribute_values(":now", n(now))
                .projection_expression("pk, sk, #b")
                .expression_attribute_names("#b", "body")
                .limit(limit as i32)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items.unwrap_or_default() {
                let len = match item.get("body") {
                    Some(AttributeValue::B(b)) => b.as_ref().len(),
                    _ => 0,
                };
                free.push((
                    get_s(&item, "pk")?.to_owned(),
                    get_s(&item, "sk")?.to_owned(),
                    len,
                ));
            }
        }
        free.sort_by(|a, b| a.1.cmp(&b.1));
        let mut clicks = 0;
        let mut take = Vec::new();
        for (pk, sk, len) in free.into_iter().take(limit) {
            if !take.is_empty() && clicks + len / 32 > FAN_OUT_CLICKS {
                break;
            }
            clicks += len / 32;
            take.push((pk, sk));
        }
        let mut out = Vec::new();
        for (pk, sk) in take {
            let got = self
                .client
                .update_item()
                .table_name(self.table())
                .key("pk", s(pk.clone()))
                .key("sk", s(sk.clone()))
                .update_expression("SET claimed_by = :w, claimed_until = :until")
                .condition_expression(
                    "attribute_exists(pk) AND \
                     (attribute_not_exists(claimed_until) OR claimed_until < :now)",
                )
                .expression_attribute_values(":w", s(worker))
                .expression_attribute_values(":until", n(now + FAN_OUT_CLAIM_MS))
                .expression_attribute_values(":now", n(now))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match got {
                Ok(o) => {
                    let item = o.attributes.unwrap_or_default();
                    let body = match item.get("body") {
                        Some(AttributeValue::B(b)) => b.as_ref().to_vec(),
                        _ => Vec::new(),
                    };
                    out.push(Taken {
                        pk,
                        sk,
                        kind: get_s(&item, "kind")?.to_owned(),
                        body,
                    });
                }
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(out)
    }

    /// The stored clicks of these keys (those that still exist), each with
    /// its link (clicks of links since deleted are left out).
    async fn clicks_with_links(
        &self,
        keys: &[ClickKey],
        links: &mut HashMap<LinkId, Option<Arc<LinkFacts>>>,
    ) -> Result<Vec<(EnrichedClick, Arc<LinkFacts>)>, StoreError> {
        let mut found: HashMap<(String, String), Item> = HashMap::new();
        let want: Vec<Item> = keys
            .iter()
            .map(|(link, at, id)| {
                Item::from([
                    ("pk".into(), s(raw_pk(*link, shard_of(*id)))),
                    ("sk".into(), s(raw_sk(*at, *id))),
                ])
            })
            .collect();
        for item in self.batch_get(want).await? {
            found.insert(
                (
                    get_s(&item, "pk")?.to_owned(),
                    get_s(&item, "sk")?.to_owned(),
                ),
                item,
            );
        }
        let mut out = Vec::with_capacity(keys.len());
        for (link, at, id) in keys {
            let Some(item) = found.get(&(raw_pk(*link, shard_of(*id)), raw_sk(*at, *id))) else {
                continue;
            };
            let facts = match links.get(link) {
                Some(f) => f.clone(),
                None => {
                    let facts = match self.get(format!("I#{}", link.0), "I").await? {
                        Some(i) => {
                            match self.get(format!("S#{}", get_s(&i, "slug")?), "S").await? {
                                Some(l) => {
                                    let l = link_from_item(&l)?;
                                    (l.id == *link).then(|| {
                                        Arc::new(LinkFacts {
                                            slug: l.slug.to_string(),
                                            owner: l.owner,
                                            tags: l.tags,
                                        })
                                    })
                                }
                                None => None,
                            }
                        }
                        None => None,
                    };
                    links.insert(*link, facts.clone());
                    facts
                }
            };
            if let Some(facts) = facts {
                out.push((click_from_item(item)?, facts));
            }
        }
        Ok(out)
    }

    /// The endpoints fan-out serves: every one but those of revoked keys.
    async fn live_endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        use crate::store::KeyStore;
        let endpoints = self
            .endpoint_items()
            .await?
            .iter()
            .filter(|i| is_endpoint(i))
            .map(endpoint_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        // The keys are read only when some endpoint has an owner (an idle
        // deliverer polls this every tick).
        if endpoints.iter().all(|e| e.owner.is_none()) {
            return Ok(endpoints);
        }
        let revoked: Vec<KeyId> = self
            .list_keys()
            .await?
            .into_iter()
            .filter(|k| k.revoked_at.is_some())
            .map(|k| k.id)
            .collect();
        Ok(endpoints
            .into_iter()
            .filter(|e| e.owner.is_none_or(|o| !revoked.contains(&o)))
            .collect())
    }

    /// Stores the messages of `group` and deletes its outbox items in one
    /// transaction. `Ok(false)`: they do not fit in one; `Ok(true)` also
    /// when an item is no longer this worker's (its new holder redoes it).
    async fn commit_group(
        &self,
        worker: &str,
        group: &[&Taken],
        messages: &[NewMessage],
    ) -> Result<bool, StoreError> {
        let items: Vec<Item> = messages
            .iter()
            .map(|m| message_item(m, &self.region))
            .collect();
        let bytes: usize = items.iter().map(item_bytes).sum::<usize>() + 1024 * items.len();
        if items.len() + group.len() > TX_ACTIONS || bytes > TX_BYTES {
            return Ok(false);
        }
        let mut actions: Vec<TransactWriteItem> = group
            .iter()
            .map(|t| {
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(self.table())
                            .key("pk", s(t.pk.clone()))
                            .key("sk", s(t.sk.clone()))
                            .condition_expression("claimed_by = :w")
                            .expression_attribute_values(":w", s(worker))
                            .build()
                            .expect("complete"),
                    )
                    .build()
            })
            .collect();
        actions.extend(
            items
                .into_iter()
                .map(|i| TransactWriteItem::builder().put(self.tx_put(i)).build()),
        );
        self.transact(actions, "to store webhook messages")
            .await?
            .ok();
        Ok(true)
    }

    /// Stores one outbox item's messages one by one (each only if absent,
    /// batch ids derived from the item), then deletes the item.
    async fn commit_alone(
        &self,
        worker: &str,
        taken: &Taken,
        mut messages: Vec<NewMessage>,
    ) -> Result<(), StoreError> {
        let mut nth: HashMap<String, usize> = HashMap::new();
        for m in messages.iter_mut().filter(|m| m.events > 1) {
            let k = nth.entry(m.endpoint_id.clone()).or_default();
            m.id = derived_id(
                &format!("{}/{}", taken.pk, taken.sk),
                &m.endpoint_id,
                *k,
                m.at,
            );
            *k += 1;
        }
        let puts: Vec<_> = messages
            .iter()
            .map(|m| {
                self.client
                    .put_item()
                    .table_name(self.table())
                    .set_item(Some(message_item(m, &self.region)))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
            })
            .collect();
        let mut puts = futures::stream::iter(puts).buffer_unordered(16);
        while let Some(out) = puts.next().await {
            // Already there: stored by the fan-out that died.
            condition_held(out)?;
        }
        let out = self
            .client
            .delete_item()
            .table_name(self.table())
            .key("pk", s(taken.pk.clone()))
            .key("sk", s(taken.sk.clone()))
            .condition_expression("claimed_by = :w")
            .expression_attribute_values(":w", s(worker))
            .send()
            .await;
        condition_held(out).map(|_| ())
    }

    /// Plans `group` and commits it, halving it while its messages do not
    /// fit in one transaction.
    async fn fan_out_group(
        &self,
        worker: &str,
        endpoints: &[Endpoint],
        group: Vec<(&Taken, &OutboxEntry)>,
        plan: Planner<'_>,
    ) -> Result<(), StoreError> {
        let mut stack = vec![group];
        while let Some(group) = stack.pop() {
            let entries: Vec<OutboxEntry> = group.iter().map(|(_, e)| (*e).clone()).collect();
            let messages = plan(FanOut {
                endpoints,
                entries: &entries,
            });
            let taken: Vec<&Taken> = group.iter().map(|(t, _)| *t).collect();
            if self.commit_group(worker, &taken, &messages).await? {
                continue;
            }
            if group.len() == 1 {
                self.commit_alone(worker, taken[0], messages).await?;
                continue;
            }
            let mut first = group;
            let second = first.split_off(first.len() / 2);
            stack.push(second);
            stack.push(first);
        }
        Ok(())
    }

    /// Messages of an endpoint from the list index, newest first, below
    /// `below` (a `wt`), filtered by `filter` (an expression on `#st` and
    /// `:st`, or none).
    async fn list_page(
        &self,
        endpoint: &str,
        below: Option<String>,
        state: Option<MessageState>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(self.table())
            .index_name(LIST_INDEX)
            .scan_index_forward(false)
            .expression_attribute_values(":e", s(endpoint));
        let mut q = match below {
            Some(b) => q
                .key_condition_expression("wl = :e AND wt < :b")
                .expression_attribute_values(":b", s(b)),
            None => q.key_condition_expression("wl = :e"),
        };
        if let Some(st) = state {
            q = q
                .filter_expression("#st = :st")
                .expression_attribute_names("#st", "state")
                .expression_attribute_values(":st", s(st.as_str()));
        }
        self.query_items(q, limit).await
    }

    /// Every key of a partition.
    async fn keys_of(&self, pk: String) -> Result<Vec<(String, String)>, StoreError> {
        self.query_all(pk, None, true)
            .await?
            .iter()
            .map(|i| Ok((get_s(i, "pk")?.to_owned(), get_s(i, "sk")?.to_owned())))
            .collect()
    }

    /// How many items a query matches.
    async fn count(
        &self,
        q: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        let mut start: Option<Item> = None;
        loop {
            let page = q
                .clone()
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            total += page.count as u64;
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }

    /// Makes one message pending again, due now.
    async fn replay_one(
        &self,
        endpoint: &str,
        id: &str,
        now: i64,
        retry_until: i64,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(self.table())
            .key("pk", s(message_pk(endpoint)))
            .key("sk", s(id))
            .update_expression(
                "SET #st = :p, next_at = :now, retry_until = :until, wq = :q, wd = :due, \
                 #r = :region REMOVE finished_at, lease_until, leased_by",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#r", "region")
            .expression_attribute_values(":p", s(MessageState::Pending.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":until", n(retry_until))
            .expression_attribute_values(":q", s(format!("{endpoint}#{}", self.region)))
            .expression_attribute_values(":due", s(ord_key(now)))
            .expression_attribute_values(":region", s(self.region.clone()))
            .send()
            .await;
        condition_held(out)
    }
}

impl DynamoStore {
    /// Sets `#wants` from the endpoints there are (after a copy).
    pub(super) async fn settle_wants(&self) -> Result<(), StoreError> {
        let wants = self
            .list_endpoints(None)
            .await?
            .iter()
            .any(|e| e.wants(EventType::Click));
        self.claims()
            .update_item()
            .table_name(self.table())
            .key("pk", s(ENDPOINTS))
            .key("sk", s(WANTS))
            .update_expression("SET wants = :w ADD v :one")
            .expression_attribute_values(":w", AttributeValue::Bool(wants))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl WebhookStore for DynamoStore {
    fn has_webhooks(&self) -> bool {
        true
    }

    async fn insert_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        if self
            .write_endpoint(&e.id, Some(e), "attribute_not_exists(pk)")
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "webhook endpoint {} exists",
                e.id
            )))
        }
    }

    async fn list_endpoints(&self, owner: Option<KeyId>) -> Result<Vec<Endpoint>, StoreError> {
        let mut out: Vec<Endpoint> = self
            .endpoint_items()
            .await?
            .iter()
            .filter(|i| is_endpoint(i))
            .map(endpoint_from_item)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|e| owner.is_none() || e.owner == owner)
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn endpoint(&self, id: &str) -> Result<Option<Endpoint>, StoreError> {
        let item = self
            .claims()
            .get_item()
            .table_name(self.table())
            .key("pk", s(ENDPOINTS))
            .key("sk", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?
            .item;
        item.filter(is_endpoint)
            .as_ref()
            .map(endpoint_from_item)
            .transpose()
    }

    async fn update_endpoint(&self, e: &Endpoint) -> Result<bool, StoreError> {
        // The owner, scope kind and creation time stay as stored.
        let Some(old) = self.endpoint(&e.id).await? else {
            return Ok(false);
        };
        let new = Endpoint {
            owner: old.owner,
            instance_wide: old.instance_wide,
            created_at: old.created_at,
            ..e.clone()
        };
        self.write_endpoint(&e.id, Some(&new), "attribute_exists(pk)")
            .await
    }

    async fn delete_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        if !self
            .write_endpoint(id, None, "attribute_exists(pk)")
            .await?
        {
            return Ok(false);
        }
        let mut keys = self.keys_of(message_pk(id)).await?;
        keys.extend(self.keys_of(format!("WA#{id}")).await?);
        self.delete_keys(keys).await?;
        Ok(true)
    }

    async fn fan_out(
        &self,
        worker: &str,
        now: i64,
        limit: usize,
        plan: Planner<'_>,
    ) -> Result<usize, StoreError> {
        // With no endpoint, the outbox's events are nobody's (an endpoint
        // hears only of events after it was made): they are drained now and
        // then, not looked for on every tick in all sixteen partitions.
        if self.live_endpoints().await?.is_empty() {
            let mut drained = self.wants.1.lock().expect("not poisoned");
            if drained.is_some_and(|at| at.elapsed() < IDLE_DRAIN) {
                return Ok(0);
            }
            *drained = Some(Instant::now());
        }
        let taken = self.take_outbox(worker, now, limit).await?;
        if taken.is_empty() {
            return Ok(0);
        }
        // The endpoints are read again after the take, as the SQL stores
        // read them: an endpoint made before an event was written is then
        // always seen, even when it was made after the read above.
        let endpoints = self.live_endpoints().await?;
        let mut entries = Vec::with_capacity(taken.len());
        let mut links = HashMap::new();
        for t in &taken {
            let entry = if endpoints.is_empty() {
                // Nobody to tell: the items only go.
                OutboxEntry::Clicks(Vec::new())
            } else {
                match t.kind.as_str() {
                    OUTBOX_LINK => OutboxEntry::Link(
                        serde_json::from_slice(&t.body).map_err(|e| corrupt("link event", e))?,
                    ),
                    OUTBOX_CLICKS => OutboxEntry::Clicks(
                        self.clicks_with_links(&click_keys_of(&t.body)?, &mut links)
                            .await?,
                    ),
                    other => return Err(StoreError::Corrupt(format!("outbox kind {other}"))),
                }
            };
            entries.push(entry);
        }
        let group: Vec<(&Taken, &OutboxEntry)> = taken.iter().zip(&entries).collect();
        self.fan_out_group(worker, &endpoints, group, plan).await?;
        Ok(taken.len())
    }

    async fn claim_messages(
        &self,
        worker: &str,
        now: i64,
        lease_until: i64,
        busy: &[String],
        per_endpoint: usize,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let endpoints: Vec<Endpoint> = self
            .live_endpoints()
            .await?
            .into_iter()
            .filter(|e| e.enabled && !busy.contains(&e.id))
            .collect();
        let mut out = Vec::new();
        for e in endpoints {
            if out.len() >= limit {
                break;
            }
            let take = per_endpoint.min(limit - out.len());
            let due = self
                .client
                .query()
                .table_name(self.table())
                .index_name(DUE_INDEX)
                .key_condition_expression("wq = :q AND wd <= :now")
                .expression_attribute_values(":q", s(format!("{}#{}", e.id, self.region)))
                .expression_attribute_values(":now", s(ord_key(now)))
                .limit(take as i32)
                .send()
                .await
                .map_err(unavailable)?
                .items
                .unwrap_or_default();
            for item in due {
                let got = self
                    .client
                    .update_item()
                    .table_name(self.table())
                    .key("pk", s(get_s(&item, "pk")?))
                    .key("sk", s(get_s(&item, "sk")?))
                    .update_expression(
                        "SET lease_until = :lease, leased_by = :w, wd = :ld ADD attempts :one",
                    )
                    .condition_expression(
                        "#st = :p AND next_at <= :now AND \
                         (attribute_not_exists(lease_until) OR lease_until <= :now)",
                    )
                    .expression_attribute_names("#st", "state")
                    .expression_attribute_values(":p", s(MessageState::Pending.as_str()))
                    .expression_attribute_values(":now", n(now))
                    .expression_attribute_values(":lease", n(lease_until))
                    .expression_attribute_values(":ld", s(ord_key(lease_until)))
                    .expression_attribute_values(":w", s(worker))
                    .expression_attribute_values(":one", n(1))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await;
                match got {
                    Ok(o) => out.push(message_from_item(&o.attributes.unwrap_or_default())?),
                    // Another worker's, or settled since the index was read.
                    Err(e) if condition_failed(&e) => {}
                    Err(e) => return Err(unavailable(e)),
                }
            }
        }
        Ok(out)
    }

    async fn record_attempt(
        &self,
        a: &Attempt,
        outcome: Outcome,
        disable_after: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        // Ids order by time: the millisecond, then six random digits.
        let id = a.at * 1_000_000 + rand::random_range(0..1_000_000);
        let mut log = Item::from([
            ("pk".into(), s(format!("WA#{}", a.endpoint_id))),
            ("sk".into(), s(ord_key(id))),
            ("id".into(), n(id)),
            ("endpoint".into(), s(a.endpoint_id.clone())),
            ("message".into(), s(a.message_id.clone())),
            ("at".into(), n(a.at)),
            ("attempt".into(), n(a.attempt)),
            ("latency_ms".into(), n(a.latency_ms)),
        ]);
        if let Some(st) = a.status {
            log.insert("status".into(), n(st));
        }
        for (k, v) in [("error", &a.error), ("response", &a.response)] {
            if let Some(v) = v {
                log.insert(k.into(), s(v.clone()));
            }
        }
        self.client
            .put_item()
            .table_name(self.table())
            .set_item(Some(log))
            .send()
            .await
            .map_err(unavailable)?;
        let mut u = self
            .client
            .update_item()
            .table_name(self.table())
            .key("pk", s(message_pk(&a.endpoint_id)))
            .key("sk", s(a.message_id.clone()))
            .condition_expression("#st = :p")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":p", s(MessageState::Pending.as_str()));
        let mut set = vec!["#st = :state"];
        let mut remove = vec!["lease_until", "leased_by"];
        match outcome {
            Outcome::Retry(t) => {
                set.extend(["next_at = :t", "wd = :due"]);
                u = u
                    .expression_attribute_values(":state", s(MessageState::Pending.as_str()))
                    .expression_attribute_values(":t", n(t))
                    .expression_attribute_values(":due", s(ord_key(t)));
            }
            Outcome::Delivered | Outcome::Dead => {
                let state = if outcome == Outcome::Delivered {
                    MessageState::Delivered
                } else {
                    MessageState::Dead
                };
                set.push("finished_at = :at");
                remove.extend(["wq", "wd"]);
                u = u
                    .expression_attribute_values(":state", s(state.as_str()))
                    .expression_attribute_values(":at", n(a.at));
            }
        }
        match a.status {
            Some(st) => {
                set.push("last_status = :ls");
                u = u.expression_attribute_values(":ls", n(st));
            }
            None => remove.push("last_status"),
        }
        match &a.error {
            Some(err) => {
                set.push("last_error = :le");
                u = u.expression_attribute_values(":le", s(err.clone()));
            }
            None => remove.push("last_error"),
        }
        let out = u
            .update_expression(format!(
                "SET {} REMOVE {}",
                set.join(", "),
                remove.join(", ")
            ))
            .send()
            .await;
        condition_held(out)?;
        // The endpoint's failure, in the claims region (its writer).
        let endpoint = |expr: &str, cond: &str| {
            self.claims()
                .update_item()
                .table_name(self.table())
                .key("pk", s(ENDPOINTS))
                .key("sk", s(a.endpoint_id.clone()))
                .update_expression(expr)
                .condition_expression(cond)
        };
        if outcome == Outcome::Delivered {
            let out = endpoint("REMOVE failing_since", "attribute_exists(failing_since)")
                .send()
                .await;
            condition_held(out)?;
        } else {
            let out = endpoint(
                "SET failing_since = if_not_exists(failing_since, :at)",
                "attribute_exists(pk)",
            )
            .expression_attribute_values(":at", n(a.at))
            .send()
            .await;
            condition_held(out)?;
            let out = endpoint(
                "SET #en = :no, disabled_reason = :why, updated_at = :at",
                "#en = :yes AND failing_since <= :since",
            )
            .expression_attribute_names("#en", "enabled")
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":why", s(reason))
            .expression_attribute_values(":at", n(a.at))
            .expression_attribute_values(":since", n(a.at - disable_after))
            .send()
            .await;
            condition_held(out)?;
        }
        Ok(())
    }

    async fn list_messages(
        &self,
        endpoint: &str,
        state: Option<MessageState>,
        before: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.list_page(
            endpoint,
            before.map(|(at, id)| list_key(at, id)),
            state,
            limit,
        )
        .await?
        .iter()
        .map(message_from_item)
        .collect()
    }

    async fn list_attempts(
        &self,
        endpoint: &str,
        message: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Attempt>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(self.table())
            .consistent_read(true)
            .scan_index_forward(false)
            .expression_attribute_values(":pk", s(format!("WA#{endpoint}")));
        let mut q = match before {
            Some(b) => q
                .key_condition_expression("pk = :pk AND sk < :b")
                .expression_attribute_values(":b", s(ord_key(b))),
            None => q.key_condition_expression("pk = :pk"),
        };
        if let Some(m) = message {
            q = q
                .filter_expression("#m = :m")
                .expression_attribute_names("#m", "message")
                .expression_attribute_values(":m", s(m));
        }
        self.query_items(q, limit)
            .await?
            .iter()
            .map(attempt_from_item)
            .collect()
    }

    async fn replay_messages(
        &self,
        endpoint: &str,
        which: &ReplaySelection,
        now: i64,
        retry_until: i64,
    ) -> Result<u64, StoreError> {
        match which {
            ReplaySelection::One(id) => Ok(u64::from(
                self.replay_one(endpoint, id, now, retry_until).await?,
            )),
            ReplaySelection::Range { from, to } => {
                let q = self
                    .client
                    .query()
                    .table_name(self.table())
                    .index_name(LIST_INDEX)
                    .key_condition_expression("wl = :e AND wt BETWEEN :lo AND :hi")
                    .expression_attribute_values(":e", s(endpoint))
                    .expression_attribute_values(":lo", s(ord_key(*from)))
                    // Every id sorts before `~`; `to` itself is out.
                    .expression_attribute_values(":hi", s(format!("{}#~", ord_key(to - 1))));
                let ids = self
                    .query_items(q, usize::MAX)
                    .await?
                    .iter()
                    .map(|i| get_s(i, "sk").map(str::to_owned))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut n = 0;
                for id in ids {
                    n += u64::from(self.replay_one(endpoint, &id, now, retry_until).await?);
                }
                Ok(n)
            }
        }
    }

    async fn prune_webhooks(&self, before: i64) -> Result<u64, StoreError> {
        let mut keys = Vec::new();
        for e in self.list_endpoints(None).await? {
            for item in self.list_page(&e.id, None, None, usize::MAX).await? {
                let finished = opt_n(&item, "finished_at")?;
                if get_s(&item, "state")? != MessageState::Pending.as_str()
                    && finished.is_some_and(|f| f < before)
                {
                    keys.push((
                        get_s(&item, "pk")?.to_owned(),
                        get_s(&item, "sk")?.to_owned(),
                    ));
                }
            }
            let old = self
                .query_all(
                    format!("WA#{}", e.id),
                    Some((ord_key(i64::MIN), ord_key(before * 1_000_000 - 1))),
                    true,
                )
                .await?;
            for item in old {
                keys.push((
                    get_s(&item, "pk")?.to_owned(),
                    get_s(&item, "sk")?.to_owned(),
                ));
            }
        }
        let n = keys.len() as u64;
        self.delete_keys(keys).await?;
        Ok(n)
    }

    async fn webhook_backlog(&self) -> Result<(u64, u64, u64), StoreError> {
        let mut outbox = 0;
        for shard in 0..OUTBOX_SHARDS {
            outbox += self
                .count(
                    self.client
                        .query()
                        .table_name(self.table())
                        .key_condition_expression("pk = :pk")
                        .expression_attribute_values(
                            ":pk",
                            s(format!("WO#{}#{shard}", self.region)),
                        ),
                )
                .await?;
        }
        let (mut pending, mut dead) = (0, 0);
        for e in self.list_endpoints(None).await? {
            pending += self
                .count(
                    self.client
                        .query()
                        .table_name(self.table())
                        .index_name(DUE_INDEX)
                        .key_condition_expression("wq = :q")
                        .expression_attribute_values(":q", s(format!("{}#{}", e.id, self.region))),
                )
                .await?;
            dead += self
                .count(
                    self.client
                        .query()
                        .table_name(self.table())
                        .index_name(LIST_INDEX)
                        .key_condition_expression("wl = :e")
                        .filter_expression("#st = :d")
                        .expression_attribute_names("#st", "state")
                        .expression_attribute_values(":e", s(e.id.clone()))
                        .expression_attribute_values(":d", s(MessageState::Dead.as_str())),
                )
                .await?;
        }
        Ok((outbox, pending, dead))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_per_item_endpoint_and_position() {
        let a = derived_id("WO#r#1/k", "wh_a", 0, 1_700_000_000_000);
        assert_eq!(a, derived_id("WO#r#1/k", "wh_a", 0, 1_700_000_000_000));
        assert_ne!(a, derived_id("WO#r#1/k", "wh_a", 1, 1_700_000_000_000));
        assert_ne!(a, derived_id("WO#r#1/k", "wh_b", 0, 1_700_000_000_000));
        assert_ne!(a, derived_id("WO#r#1/j", "wh_a", 0, 1_700_000_000_000));
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 7);
    }

    #[test]
    fn long_bodies_are_kept_gzipped_and_read_back() {
        let m = NewMessage {
            endpoint_id: "wh_a".into(),
            id: "m".into(),
            event_type: EventType::Click,
            at: 5,
            events: 2,
            body: "x".repeat(GZIP_OVER * 4),
            created_at: 6,
            retry_until: 7,
        };
        let item = message_item(&m, "r");
        assert!(item.contains_key("bz") && !item.contains_key("body"));
        assert!(item_bytes(&item) < GZIP_OVER);
        assert_eq!(message_from_item(&item).unwrap().body, m.body);
        let short = NewMessage {
            body: "{}".into(),
            ..m
        };
        assert_eq!(
            message_from_item(&message_item(&short, "r")).unwrap().body,
            "{}"
        );
    }
}
