//! `DynamoStore`: hop on one DynamoDB table (`dynamodb://TABLE?region=…`),
//! built to run as a Global Table in several regions at once.
//!
//! Every item has a single writer region, so the Global Table's per-item
//! last-writer-wins never discards a write (see docs/multi-region.md):
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | link | `S#{slug}` | `S` | the link; GSI `links` (`gl`="L", `gs`=id) and `owner` (`go`, `gs`) |
//! | link id | `I#{id}` | `I` | its slug, and `served` for click limits; a variant segment's (negative id) has its `owner` link |
//! | segment of a link | `G#{link}` | segment id | that the link's variant clicks are counted under that segment too |
//! | head | `H#{link}` | region | the region's last committed click batch (`seq`), its totals (`hc` humans, `ac` all) and days (`dd`) |
//! | raw click | `C#{link}#{shard}` | `{at}#{event id}` | one click; the key is its idempotency |
//! | visitor | `V#{link}#{day}` | `{region}#{hash}` | first click of a visitor that day in the region, and whether the region counts it (`yielded`) |
//! | delta | `D#{link}` | `{day}#{region}#d#{seq}` | one batch's counts for one day, minute grain |
//! | pack | `D#{link}` | `{day}#{region}#p#{upto}#{part}` | the sealed sum of a day's deltas up to `upto` |
//! | to seal | `DIRTY#{link mod 16}` | `{link}#{day}#{region}` | deltas since the day was sealed (`rows`), click batches ever (`b`), the last visitor reconciliation (`vr…`) |
//! | keys, reports, takedowns, sessions | `KEYS`, `REPORTS`, `TAKEDOWNS`, `SESSIONS` | their id | |
//! | webhook endpoints, outbox, messages, attempts | `WH`, `WO#…`, `WM#…`, `WA#…` | see `webhooks.rs` | |
//!
//! A click batch is written per link as transactions of at most 100
//! actions: the head's `seq` moves from n−1 to n (so one region's batches
//! of a link commit one after another), each raw click is put only if absent
//! (a replay is dropped by its cancellation reason and the rest retried),
//! the new visitors are put, and one delta item per day carries the batch's
//! counts. Deltas are immutable; readers read the heads first and ignore
//! deltas of later batches, which makes every stats answer one snapshot
//! although DynamoDB's queries are not.

mod clicks;
mod copy;
mod feed;
mod items;
mod model;
mod seal;
mod visitors;
mod webhooks;
mod write;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use chrono::{DateTime, TimeZone, Utc};

use super::{
    ApiKey, Conflict, KeyStore, LinkQuery, LinkStore, Report, ReportStore, SessionRecords,
    StoreError, Takedown, host_in_domain,
};
use crate::domain::webhook::{EventType, LinkEvent};
use crate::domain::{KeyId, Link, LinkId, RedirectStatus, Slug, TargetUrl, slug_rules};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// The SDK, for tests that look at the table itself.
pub use aws_sdk_dynamodb as sdk;

pub use super::DynamoConfig;

pub struct DynamoStore {
    client: Client,
    /// DynamoDB Streams of this region's replica (the link feed).
    streams: aws_sdk_dynamodbstreams::Client,
    /// The claims region's replica (`claims=`): slugs and click limits are
    /// decided there, so two regions never both win one. `None`: here.
    claims: Option<Client>,
    /// This region's part of the random slug space (`slot=`).
    slot: Option<u8>,
    table: String,
    /// This node's region: the writer of its heads, deltas and visitors.
    region: String,
    /// How long after sealing a day the deltas it covers are deleted (a
    /// read that began before the seal may still need them).
    seal_grace_ms: i64,
    /// How long the sealer waits between two reconciliations of a day's
    /// visitors with other regions' (`visitors.rs`).
    visitor_settle_ms: i64,
    /// Variant segments known to exist (their id item written), so each is
    /// set up once per process.
    segments: moka::sync::Cache<LinkId, ()>,
    /// What the click writer last read of whether endpoints want clicks.
    wants: webhooks::WantsCache,
    /// `hop copy` out of this store: the ids clicks are kept under, read
    /// once.
    copy_ids: std::sync::Mutex<Option<std::sync::Arc<copy::CopyIds>>>,
}

/// Errors of the SDK: throttling, network and server errors are the
/// store being unavailable (503, retried by the click pipeline).
pub(crate) fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

/// Whether DynamoDB refused for now (throttling, a conflicting
/// transaction): worth trying again after a pause.
fn retryable<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| {
            matches!(
                c,
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "TransactionInProgressException"
                    | "TransactionConflictException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
            )
        })
}

/// A conditional write's outcome: `Ok(true)` written, `Ok(false)` its
/// condition did not hold, `Err` anything else.
pub(crate) fn condition_held<T, E, R>(out: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match out {
        Ok(_) => Ok(true),
        Err(e) if condition_failed(&e) => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

/// A table setting's change: done, or refused as already so (DynamoDB
/// answers a `ValidationException` to turning on what is on).
fn done_or_already<T, E, R>(out: Result<T, SdkError<E, R>>) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match out {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.code() == Some("ValidationException")) =>
        {
            Ok(())
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// Whether an SDK error is a failed condition expression.
fn condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, k: &str) -> Result<&'a str, StoreError> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!("item without string {k}"))),
    }
}

pub(crate) fn opt_s(item: &Item, k: &str) -> Option<String> {
    match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub(crate) fn get_n(item: &Item, k: &str) -> Result<i64, StoreError> {
    opt_n(item, k)?.ok_or_else(|| StoreError::Corrupt(format!("item without number {k}")))
}

pub(crate) fn opt_n(item: &Item, k: &str) -> Result<Option<i64>, StoreError> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("{k} = {v:?}"))),
        _ => Ok(None),
    }
}

fn get_b<'a>(item: &'a Item, k: &str) -> Option<&'a [u8]> {
    match item.get(k) {
        Some(AttributeValue::B(v)) => Some(v.as_ref()),
        _ => None,
    }
}

fn hash32(bytes: Option<&[u8]>) -> Option<[u8; 32]> {
    bytes.and_then(|b| b.try_into().ok())
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A sort key that orders like the number: `i64` to 16 hex digits with
/// the sign bit flipped.
pub(crate) fn ord_key(v: i64) -> String {
    format!("{:016x}", (v as u64) ^ (1 << 63))
}

fn attr(name: &str, t: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(t)
        .build()
        .expect("complete")
}

fn key(name: &str, t: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(t)
        .build()
        .expect("complete")
}

/// A global secondary index projecting whole items.
fn gsi(name: &str, pk: &str, sk: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .key_schema(key(sk, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("complete")
}

/// The webhook messages' two indexes (`webhooks.rs`): by endpoint and
/// time, and the due queue.
fn webhook_indexes() -> [GlobalSecondaryIndex; 2] {
    [
        gsi(webhooks::LIST_INDEX, "wl", "wt"),
        gsi(webhooks::DUE_INDEX, "wq", "wd"),
    ]
}

fn webhook_attributes() -> [AttributeDefinition; 4] {
    ["wl", "wt", "wq", "wd"].map(|a| attr(a, ScalarAttributeType::S))
}

const LINKS_INDEX: &str = "links";
const OWNER_INDEX: &str = "owner";

/// The table's stream: both images, as Global Tables require.
fn stream() -> aws_sdk_dynamodb::types::StreamSpecification {
    aws_sdk_dynamodb::types::StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
        .build()
        .expect("complete")
}

impl DynamoStore {
    pub async fn open(config: &DynamoConfig, migrate: bool) -> Result<DynamoStore, StoreError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (id, secret) = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => (id, secret),
            // A local server takes any credentials.
            _ if config.endpoint.is_some() => ("hop".into(), "hop".into()),
            _ => {
                return Err(StoreError::Unavailable(
                    "DynamoDB needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                     (and AWS_SESSION_TOKEN for temporary credentials)"
                        .into(),
                ));
            }
        };
        let credentials = Credentials::new(id, secret, env("AWS_SESSION_TOKEN"), None, "hop");
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let client = |region: &str| {
            let mut builder = aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.to_owned()))
                .credentials_provider(credentials.clone())
                .http_client(http.clone());
            if let Some(endpoint) = &config.endpoint {
                builder = builder.endpoint_url(endpoint);
            }
            Client::from_conf(builder.build())
        };
        let streams = {
            let mut builder = aws_sdk_dynamodbstreams::Config::builder()
                .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodbstreams::config::Region::new(
                    config.region.clone(),
                ))
                .credentials_provider(credentials.clone())
                .http_client(http.clone());
            if let Some(endpoint) = &config.endpoint {
                builder = builder.endpoint_url(endpoint);
            }
            aws_sdk_dynamodbstreams::Client::from_conf(builder.build())
        };
        let store = DynamoStore {
            client: client(&config.region),
            streams,
            claims: config.claims.as_deref().map(client),
            slot: config.slot,
            table: config.table.clone(),
            region: config.region.clone(),
            seal_grace_ms: 60_000,
            visitor_settle_ms: 60_000,
            segments: moka::sync::Cache::new(100_000),
            wants: webhooks::WantsCache::default(),
            copy_ids: std::sync::Mutex::new(None),
        };
        if migrate {
            store.create_table().await?;
        }
        Ok(store)
    }

    /// Sets how long sealed deltas are kept for reads already running
    /// (default 60 s).
    pub fn with_seal_grace(mut self, ms: i64) -> DynamoStore {
        self.seal_grace_ms = ms;
        self
    }

    /// Sets the settle period of visitor reconciliations across regions
    /// (default 60 s): the least time between two of one day, and how long
    /// after its last batch a day is reconciled once more.
    pub fn with_visitor_settle(mut self, ms: i64) -> DynamoStore {
        self.visitor_settle_ms = ms;
        self
    }

    /// Where slug and click-limit claims are decided.
    fn claims(&self) -> &Client {
        self.claims.as_ref().unwrap_or(&self.client)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// `hop migrate`: creates the table, its indexes (links, owners, and
    /// the two of webhook messages) and TTL on `ttl` (sessions) unless they
    /// exist. Idempotent.
    async fn create_table(&self) -> Result<(), StoreError> {
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(unavailable(e)),
        };
        if !exists {
            let index = |name: &str, pk: &str| gsi(name, pk, "gs");
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .billing_mode(BillingMode::PayPerRequest)
                .set_attribute_definitions(Some(
                    [
                        attr("pk", ScalarAttributeType::S),
                        attr("sk", ScalarAttributeType::S),
                        attr("gl", ScalarAttributeType::S),
                        attr("go", ScalarAttributeType::N),
                        attr("gs", ScalarAttributeType::N),
                    ]
                    .into_iter()
                    .chain(webhook_attributes())
                    .collect(),
                ))
                .key_schema(key("pk", KeyType::Hash))
                .key_schema(key("sk", KeyType::Range))
                .set_global_secondary_indexes(Some(
                    [index(LINKS_INDEX, "gl"), index(OWNER_INDEX, "go")]
                        .into_iter()
                        .chain(webhook_indexes())
                        .collect(),
                ))
                .stream_specification(stream())
                .send()
                .await;
            match created {
                Ok(_) => {}
                // Another node created it meanwhile.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_resource_in_use_exception()) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        // Wait until the table is ACTIVE (real AWS takes seconds).
        for _ in 0..120 {
            let t = self.describe().await?;
            let active =
                t.table().and_then(|t| t.table_status()).map(|s| s.as_str()) == Some("ACTIVE");
            if active {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.enable_stream().await?;
        self.add_webhook_indexes().await?;
        let ttl = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .expect("complete"),
            )
            .send()
            .await;
        // Already enabled: AWS refuses to enable it twice.
        done_or_already(ttl)
    }

    /// The table as DynamoDB describes it now.
    async fn describe(
        &self,
    ) -> Result<aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput, StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(unavailable)
    }

    /// Turns the table's stream on if it is off (a table made before the
    /// link feed). Global Tables need it too, with both images.
    async fn enable_stream(&self) -> Result<(), StoreError> {
        let t = self.describe().await?;
        let on = t
            .table()
            .and_then(|t| t.stream_specification())
            .is_some_and(|s| s.stream_enabled());
        if on {
            return Ok(());
        }
        let out = self
            .client
            .update_table()
            .table_name(&self.table)
            .stream_specification(stream())
            .send()
            .await;
        // Another node turned it on meanwhile.
        done_or_already(out)
    }

    /// Adds the webhook indexes to a table made before them, one at a
    /// time (DynamoDB builds one index per update), waiting for each.
    async fn add_webhook_indexes(&self) -> Result<(), StoreError> {
        for index in webhook_indexes() {
            let mut created = false;
            for _ in 0..240 {
                let t = self.describe().await?;
                let status = t
                    .table()
                    .map(|t| t.global_secondary_indexes())
                    .unwrap_or_default()
                    .iter()
                    .find(|g| g.index_name() == Some(index.index_name()))
                    .map(|g| g.index_status().map(|s| s.as_str().to_owned()));
                match status {
                    Some(None) => break,
                    Some(Some(s)) if s == "ACTIVE" => break,
                    Some(Some(_)) => {}
                    None if !created => {
                        let update = aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                            .create(
                                aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder(
                                )
                                .index_name(index.index_name())
                                .set_key_schema(Some(index.key_schema().to_vec()))
                                .set_projection(index.projection().cloned())
                                .build()
                                .expect("complete"),
                            )
                            .build();
                        let out = self
                            .client
                            .update_table()
                            .table_name(&self.table)
                            .set_attribute_definitions(Some(webhook_attributes().to_vec()))
                            .global_secondary_index_updates(update)
                            .send()
                            .await;
                        // Another node asked for it meanwhile.
                        match out {
                            Ok(_) => {}
                            Err(e)
                                if e.as_service_error().is_some_and(|se| {
                                    se.is_resource_in_use_exception()
                                        || se.is_limit_exceeded_exception()
                                }) => {}
                            Err(e) => return Err(unavailable(e)),
                        }
                        created = true;
                    }
                    None => {}
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    pub(crate) async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?
            .item)
    }

    /// The items a query finds, page after page, up to `limit`.
    pub(crate) async fn query_items(
        &self,
        q: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = q
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items.unwrap_or_default() {
                out.push(item);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Every item of a partition (optionally a sort-key range), in order.
    pub(crate) async fn query_all(
        &self,
        pk: String,
        range: Option<(String, String)>,
        forward: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .scan_index_forward(forward)
            .expression_attribute_values(":pk", s(pk));
        let q = match range {
            Some((lo, hi)) => q
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi)),
            None => q.key_condition_expression("pk = :pk"),
        };
        self.query_items(q, usize::MAX).await
    }

    /// Reads items by key (consistently), 100 per request, retrying what
    /// is unprocessed; those that exist, in no particular order.
    pub(crate) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut keys = chunk.to_vec();
            let mut backoff = Duration::from_millis(20);
            while !keys.is_empty() {
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(
                        &self.table,
                        KeysAndAttributes::builder()
                            .set_keys(Some(keys))
                            .consistent_read(true)
                            .build()
                            .expect("complete"),
                    )
                    .send()
                    .await
                    .map_err(unavailable)?;
                out.extend(
                    got.responses
                        .and_then(|mut r| r.remove(&self.table))
                        .unwrap_or_default(),
                );
                keys = got
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        Ok(out)
    }

    /// Deletes items by key, 25 per request, retrying what is unprocessed.
    pub(crate) async fn delete_keys(&self, keys: Vec<(String, String)>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        self.batch_write(keys.iter().map(|(pk, sk)| {
            WriteRequest::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .key("pk", s(pk.clone()))
                        .key("sk", s(sk.clone()))
                        .build()
                        .expect("complete"),
                )
                .build()
        }))
        .await
    }

    /// Sends write requests (puts or deletes), 25 per request, retrying
    /// what is unprocessed.
    pub(crate) async fn batch_write(
        &self,
        requests: impl IntoIterator<Item = aws_sdk_dynamodb::types::WriteRequest>,
    ) -> Result<(), StoreError> {
        let requests: Vec<_> = requests.into_iter().collect();
        for chunk in requests.chunks(25) {
            let mut requests = chunk.to_vec();
            let mut backoff = Duration::from_millis(20);
            while !requests.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(unavailable)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        Ok(())
    }

    /// The next number of a sequence (key and report ids).
    async fn next_id(&self, name: &str) -> Result<i64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("SEQ"))
            .key("sk", s(name))
            .update_expression("ADD v :one")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        get_n(&out.attributes.unwrap_or_default(), "v")
    }

    /// Every link, newest first, from the `links` index (or one owner's).
    async fn links_page(
        &self,
        owner: Option<KeyId>,
        before: Option<LinkId>,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .set_exclusive_start_key(start);
        let cond = match owner {
            Some(owner) => {
                // GO is one of DynamoDB's reserved words.
                q = q
                    .index_name(OWNER_INDEX)
                    .expression_attribute_names("#go", "go")
                    .expression_attribute_values(":p", n(owner.0));
                "#go = :p"
            }
            None => {
                q = q
                    .index_name(LINKS_INDEX)
                    .expression_attribute_values(":p", s("L"));
                "gl = :p"
            }
        };
        q = match before {
            Some(b) => q
                .key_condition_expression(format!("{cond} AND gs < :b"))
                .expression_attribute_values(":b", n(b.0)),
            None => q.key_condition_expression(cond),
        };
        let page = q.send().await.map_err(unavailable)?;
        Ok((
            page.items.unwrap_or_default(),
            page.last_evaluated_key.filter(|k| !k.is_empty()),
        ))
    }
}

fn link_item(link: &Link) -> Item {
    let mut item = Item::from([
        ("pk".into(), s(format!("S#{}", link.slug.as_str()))),
        ("sk".into(), s("S")),
        ("gl".into(), s("L")),
        ("gs".into(), n(link.id.0)),
        ("id".into(), n(link.id.0)),
        ("slug".into(), s(link.slug.as_str())),
        ("target".into(), s(link.target.as_str())),
        (
            "tags".into(),
            s(serde_json::to_string(&link.tags).expect("strings")),
        ),
        ("created_at".into(), n(link.created_at.timestamp_millis())),
        ("updated_at".into(), n(link.updated_at.timestamp_millis())),
        ("status".into(), n(link.redirect_status.code())),
        ("disabled".into(), AttributeValue::Bool(link.disabled)),
    ]);
    if let Some(t) = &link.title {
        item.insert("title".into(), s(t.clone()));
    }
    if let Some(t) = link.expires_at {
        item.insert("expires_at".into(), n(t.timestamp_millis()));
    }
    if let Some(m) = link.max_clicks {
        item.insert("max_clicks".into(), n(m));
    }
    if let Some(o) = link.owner {
        item.insert("go".into(), n(o.0));
    }
    if let Some(h) = link.secret_hash {
        item.insert("secret_hash".into(), AttributeValue::B(h.to_vec().into()));
    }
    if !link.rules.is_empty() {
        item.insert(
            "rules".into(),
            s(serde_json::to_string(&link.rules).expect("rules as JSON")),
        );
    }
    if let Some(f) = &link.fallback_url {
        item.insert("fallback_url".into(), s(f.as_str()));
    }
    if let Some(p) = &link.password_hash {
        item.insert("password_hash".into(), s(p.as_str()));
    }
    if let Some(p) = &link.preview {
        item.insert(
            "preview".into(),
            s(serde_json::to_string(p).expect("a preview as JSON")),
        );
    }
    item
}

fn link_from_item(item: &Item) -> Result<Link, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let status = get_n(item, "status")?;
    Ok(Link {
        id: LinkId(get_n(item, "id")?),
        slug: Slug::parse_path(get_s(item, "slug")?).map_err(|e| corrupt(&e))?,
        target: TargetUrl::from_stored(get_s(item, "target")?).map_err(|e| corrupt(&e))?,
        title: opt_s(item, "title"),
        tags: serde_json::from_str(get_s(item, "tags")?).map_err(|e| corrupt(&e))?,
        created_at: from_ms(get_n(item, "created_at")?),
        updated_at: from_ms(get_n(item, "updated_at")?),
        expires_at: opt_n(item, "expires_at")?.map(from_ms),
        max_clicks: opt_n(item, "max_clicks")?.map(|m| m as u64),
        redirect_status: RedirectStatus::from_code(status as u16)
            .ok_or_else(|| StoreError::Corrupt(format!("redirect status {status}")))?,
        disabled: matches!(item.get("disabled"), Some(AttributeValue::Bool(true))),
        owner: opt_n(item, "go")?.map(KeyId),
        secret_hash: hash32(get_b(item, "secret_hash")),
        rules: opt_s(item, "rules")
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| corrupt(&e))?
            .unwrap_or_default(),
        fallback_url: opt_s(item, "fallback_url")
            .map(|f| TargetUrl::from_stored(&f))
            .transpose()
            .map_err(|e| corrupt(&e))?,
        password_hash: opt_s(item, "password_hash"),
        preview: opt_s(item, "preview")
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| corrupt(&e))?,
    })
}

impl DynamoStore {
    /// Puts the link and its id item only if absent, decided in `decider`'s
    /// replica; then here too, if that is another region's.
    async fn insert_in(
        &self,
        decider: &Client,
        link: &Link,
    ) -> Result<Result<(), Conflict>, StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let put = |item: Item| {
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .expect("complete"),
                )
                .build()
        };
        let id_item = Item::from([
            ("pk".into(), s(format!("I#{}", link.id.0))),
            ("sk".into(), s("I")),
            ("slug".into(), s(link.slug.as_str())),
        ]);
        let out = decider
            .transact_write_items()
            .transact_items(put(link_item(link)))
            .transact_items(put(id_item.clone()))
            .transact_items(self.outbox_link_event(&LinkEvent::new(EventType::LinkCreated, link)))
            .send()
            .await;
        match out {
            Ok(_) if !std::ptr::eq(decider, &self.client) => {
                // Won in the claims region; here at once too (the same
                // items replication brings, so last-writer-wins is moot).
                for item in [link_item(link), id_item] {
                    self.client
                        .put_item()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .send()
                        .await
                        .map_err(unavailable)?;
                }
                Ok(Ok(()))
            }
            Ok(_) => Ok(Ok(())),
            Err(e) => match items::cancelled(&e) {
                Some(reasons) if reasons.first().is_some_and(|r| r.failed()) => {
                    Ok(Err(Conflict::SlugTaken))
                }
                Some(reasons) if reasons.get(1).is_some_and(|r| r.failed()) => {
                    Ok(Err(Conflict::IdTaken))
                }
                _ => Err(unavailable(e)),
            },
        }
    }
}

#[async_trait]
impl LinkStore for DynamoStore {
    async fn insert_link(&self, link: &Link) -> Result<Result<(), Conflict>, StoreError> {
        self.insert_in(self.claims(), link).await
    }

    fn random_slug(&self, rng: &mut dyn rand::RngCore) -> Slug {
        match self.slot {
            Some(slot) => Slug::random_in(rng, slot),
            None => Slug::random(rng),
        }
    }

    async fn insert_random_link(&self, link: &Link) -> Result<Result<(), Conflict>, StoreError> {
        // A slug of this region's slot: no other region draws it.
        let own = self.slot.is_some_and(|slot| {
            link.slug.as_str().as_bytes().last() == slug_rules::ALPHABET.get(usize::from(slot))
        });
        if own {
            self.insert_in(&self.client, link).await
        } else {
            self.insert_link(link).await
        }
    }

    async fn link_by_slug(&self, slug: &Slug) -> Result<Option<Link>, StoreError> {
        self.get(format!("S#{}", slug.as_str()), "S")
            .await?
            .map(|i| link_from_item(&i))
            .transpose()
    }

    async fn list_links(&self, q: &LinkQuery) -> Result<Vec<Link>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let (items, next) = self.links_page(q.owner, q.before, start).await?;
            for item in &items {
                let link = link_from_item(item)?;
                if q.matches(&link) {
                    out.push(link);
                    if out.len() >= q.limit {
                        return Ok(out);
                    }
                }
            }
            match next {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    async fn update_link(&self, link: &Link) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(link_item(link)))
            .condition_expression("id = :id")
            .expression_attribute_values(":id", n(link.id.0))
            .build()
            .expect("complete");
        let actions = vec![
            TransactWriteItem::builder().put(put).build(),
            self.outbox_link_event(&LinkEvent::new(EventType::LinkUpdated, link)),
        ];
        Ok(self.transact(actions, "to update the link").await?.is_ok())
    }

    async fn delete_link(&self, slug: &Slug) -> Result<bool, StoreError> {
        let Some(link) = self.link_by_slug(slug).await? else {
            return Ok(false);
        };
        use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(format!("S#{}", slug.as_str())))
            .key("sk", s("S"))
            .condition_expression("id = :id")
            .expression_attribute_values(":id", n(link.id.0))
            .build()
            .expect("complete");
        let actions = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.outbox_link_event(&LinkEvent::new(EventType::LinkDeleted, &link)),
        ];
        if self.transact(actions, "to delete the link").await?.is_err() {
            return Ok(false);
        }
        // Without its id item, no batch can add clicks to the link (each
        // checks it), so what follows deletes everything for good.
        self.delete_keys(vec![(format!("I#{}", link.id.0), "I".into())])
            .await?;
        self.delete_clicks_of(link.id).await?;
        self.delete_segments_of(link.id).await?;
        Ok(true)
    }

    async fn claim_click(&self, link: LinkId, max_clicks: u64) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
        if max_clicks == 0 {
            return Ok(false);
        }
        // Every claim but the last: one conditional update (with a limit
        // of one, the first claim is the last).
        if max_clicks > 1 {
            let out = self
                .claims()
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("I#{}", link.0)))
                .key("sk", s("I"))
                .update_expression("ADD served :one")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(served) OR served < :last)",
                )
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":last", n(max_clicks - 1))
                .send()
                .await;
            if condition_held(out)? {
                return Ok(true);
            }
        }
        // Perhaps the last: the claim and link.exhausted together.
        let Some(id_item) = self.get(format!("I#{}", link.0), "I").await? else {
            return Ok(false);
        };
        // Served out already (every click of an exhausted link comes here):
        // no transaction to try.
        if opt_n(&id_item, "served")?.unwrap_or(0) >= max_clicks as i64 {
            return Ok(false);
        }
        let Some(current) = self
            .link_by_slug(
                &Slug::parse_path(get_s(&id_item, "slug")?)
                    .map_err(|e| StoreError::Corrupt(format!("slug of link {}: {e}", link.0)))?,
            )
            .await?
            .filter(|l| l.id == link)
        else {
            return Ok(false);
        };
        let last = max_clicks as i64 - 1;
        let claim = Update::builder()
            .table_name(&self.table)
            .key("pk", s(format!("I#{}", link.0)))
            .key("sk", s("I"))
            .update_expression("ADD served :one")
            .expression_attribute_values(":one", n(1));
        let claim = if last == 0 {
            claim.condition_expression("attribute_exists(pk) AND attribute_not_exists(served)")
        } else {
            claim
                .condition_expression("served = :last")
                .expression_attribute_values(":last", n(last))
        };
        let out = self
            .claims()
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(claim.build().expect("complete"))
                    .build(),
            )
            .transact_items(
                self.outbox_link_event(&LinkEvent::new(EventType::LinkExhausted, &current)),
            )
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if items::cancelled(&e).is_some_and(|r| r.iter().any(|r| r.failed())) => {
                // Served out (or another click took the last one).
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn link_feed(&self) -> Option<Box<dyn super::LinkFeed>> {
        Some(Box::new(feed::StreamFeed::new(
            self.client.clone(),
            self.streams.clone(),
            self.table.clone(),
        )))
    }
}

fn key_from_item(item: &Item) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: KeyId(get_n(item, "id")?),
        name: get_s(item, "name")?.to_owned(),
        hash: hash32(get_b(item, "hash")).ok_or(StoreError::Corrupt("key hash".into()))?,
        admin: matches!(item.get("admin"), Some(AttributeValue::Bool(true))),
        created_at: from_ms(get_n(item, "created_at")?),
        revoked_at: opt_n(item, "revoked_at")?.map(from_ms),
    })
}

#[async_trait]
impl KeyStore for DynamoStore {
    async fn insert_key(
        &self,
        name: &str,
        hash: [u8; 32],
        admin: bool,
    ) -> Result<ApiKey, StoreError> {
        let key = ApiKey {
            id: KeyId(self.next_id("keys").await?),
            name: name.to_owned(),
            hash,
            admin,
            created_at: from_ms(Utc::now().timestamp_millis()),
            revoked_at: None,
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("KEYS"))
            .item("sk", s(hex::encode(hash)))
            .item("id", n(key.id.0))
            .item("name", s(name))
            .item("hash", AttributeValue::B(hash.to_vec().into()))
            .item("admin", AttributeValue::Bool(admin))
            .item("created_at", n(key.created_at.timestamp_millis()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(key)
    }

    async fn key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.get("KEYS".into(), &hex::encode(hash))
            .await?
            .map(|i| key_from_item(&i))
            .transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys = self
            .query_all("KEYS".into(), None, true)
            .await?
            .iter()
            .map(key_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by_key(|k| k.id.0);
        Ok(keys)
    }

    async fn revoke_key(&self, id: KeyId) -> Result<bool, StoreError> {
        let Some(key) = self.list_keys().await?.into_iter().find(|k| k.id == id) else {
            return Ok(false);
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("KEYS"))
            .key("sk", s(hex::encode(key.hash)))
            .update_expression("SET revoked_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":now", n(Utc::now().timestamp_millis()))
            .send()
            .await;
        condition_held(out)
    }
}

fn report_from_item(item: &Item) -> Result<Report, StoreError> {
    Ok(Report {
        id: get_n(item, "id")?,
        slug: get_s(item, "slug")?.to_owned(),
        link_id: opt_n(item, "link_id")?.map(LinkId),
        reason: get_s(item, "reason")?.to_owned(),
        details: opt_s(item, "details"),
        created_at: from_ms(get_n(item, "created_at")?),
    })
}

#[async_trait]
impl ReportStore for DynamoStore {
    async fn insert_report(
        &self,
        slug: &str,
        link: Option<LinkId>,
        reason: &str,
        details: Option<&str>,
    ) -> Result<Report, StoreError> {
        let report = Report {
            id: self.next_id("reports").await?,
            slug: slug.to_owned(),
            link_id: link,
            reason: reason.to_owned(),
            details: details.map(str::to_owned),
            created_at: from_ms(Utc::now().timestamp_millis()),
        };
        let mut item = Item::from([
            ("pk".into(), s("REPORTS")),
            ("sk".into(), s(ord_key(report.id))),
            ("id".into(), n(report.id)),
            ("slug".into(), s(slug)),
            ("reason".into(), s(reason)),
            ("created_at".into(), n(report.created_at.timestamp_millis())),
        ]);
        if let Some(l) = link {
            item.insert("link_id".into(), n(l.0));
        }
        if let Some(d) = details {
            item.insert("details".into(), s(d));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(report)
    }

    async fn list_reports(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Report>, StoreError> {
        let hi = ord_key(before.map_or(i64::MAX, |b| b - 1));
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .scan_index_forward(false)
                .key_condition_expression("pk = :pk AND sk <= :hi")
                .expression_attribute_values(":pk", s("REPORTS"))
                .expression_attribute_values(":hi", s(hi.clone()))
                .limit(limit.clamp(1, 1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                out.push(report_from_item(item)?);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn links_to_domain(&self, domain: &str) -> Result<Vec<Link>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let (items, next) = self.links_page(None, None, start).await?;
            for item in &items {
                let link = link_from_item(item)?;
                if host_in_domain(link.target.host(), domain) {
                    out.push(link);
                }
            }
            match next {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    async fn add_takedown(&self, domain: &str, reason: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("TAKEDOWNS"))
            .item("sk", s(domain))
            .item("reason", s(reason))
            .item("created_at", n(Utc::now().timestamp_millis()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        condition_held(out)
    }

    async fn remove_takedown(&self, domain: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s("TAKEDOWNS"))
            .key("sk", s(domain))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn list_takedowns(&self) -> Result<Vec<Takedown>, StoreError> {
        self.query_all("TAKEDOWNS".into(), None, true)
            .await?
            .iter()
            .map(|i| {
                Ok(Takedown {
                    domain: get_s(i, "sk")?.to_owned(),
                    reason: get_s(i, "reason")?.to_owned(),
                    created_at: from_ms(get_n(i, "created_at")?),
                })
            })
            .collect()
    }
}

#[async_trait]
impl super::ImportMarks for DynamoStore {
    async fn import_mark(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some(item) = self.get("IMPORT".into(), key).await? else {
            return Ok(None);
        };
        Ok(Some(get_s(&item, "v")?.to_owned()))
    }

    async fn set_import_mark(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("IMPORT"))
            .item("sk", s(key))
            .item("v", s(value))
            .item("at", n(chrono::Utc::now().timestamp_millis()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl SessionRecords for DynamoStore {
    async fn load_session(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let Some(item) = self.get("SESSIONS".into(), &hex::encode(id_hash)).await? else {
            return Ok(None);
        };
        let expires = get_n(&item, "expires_at")?;
        if expires <= now {
            return Ok(None);
        }
        Ok(Some((get_s(&item, "data")?.to_owned(), expires)))
    }

    async fn save_session(
        &self,
        id_hash: &[u8; 32],
        data: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("SESSIONS"))
            .item("sk", s(hex::encode(id_hash)))
            .item("data", s(data))
            .item("expires_at", n(expires_at))
            // DynamoDB's TTL deletes it some time after expiry (seconds).
            .item("ttl", n(expires_at.div_euclid(1000) + 1))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn remove_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.delete_keys(vec![("SESSIONS".into(), hex::encode(id_hash))])
            .await
    }

    async fn take_session(
        &self,
        id_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        // The old item comes back only to the one delete that removed it.
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s("SESSIONS"))
            .key("sk", s(hex::encode(id_hash)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.attributes else {
            return Ok(None);
        };
        if get_n(&item, "expires_at")? <= now {
            return Ok(None);
        }
        Ok(Some(get_s(&item, "data")?.to_owned()))
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let mut expired = Vec::new();
        for item in self.query_all("SESSIONS".into(), None, true).await? {
            if get_n(&item, "expires_at")? <= now {
                expired.push(("SESSIONS".to_owned(), get_s(&item, "sk")?.to_owned()));
            }
        }
        let count = expired.len() as u64;
        self.delete_keys(expired).await?;
        Ok(count)
    }
}
