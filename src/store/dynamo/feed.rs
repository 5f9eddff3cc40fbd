//! The link feed on DynamoDB: this region's replica's stream. Global
//! Tables keep DynamoDB Streams on, and every write a replica takes, its
//! own region's and those replicated from the others, appears in that
//! replica's stream. A record of a link item (`S#{slug}`) names a slug
//! whose cached entries are stale.
//!
//! The feed starts at the newest records of the open shards (the caches
//! are new too, or have a TTL), follows each shard with its iterator, and
//! reads shards that open later (a shard closes after a few hours, and its
//! children carry on) from their first record, so nothing between two
//! reads is missed. An expired iterator is taken again after the last
//! record read.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodbstreams::Client as StreamsClient;
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};

use super::unavailable;
use crate::domain::Slug;
use crate::store::{LinkFeed, StoreError};

/// How often the stream's shards are listed again (new shards open every
/// few hours).
const DESCRIBE_EVERY: Duration = Duration::from_secs(10);

/// Records per `GetRecords` (DynamoDB's maximum).
const RECORDS: i32 = 1000;

/// Where the feed is in one shard.
struct Cursor {
    /// Where a new iterator starts when there is no last record.
    from: ShardIteratorType,
    iterator: Option<String>,
    /// The sequence number of the last record read.
    last: Option<String>,
}

pub(super) struct StreamFeed {
    client: Client,
    streams: StreamsClient,
    table: String,
    arn: Option<String>,
    open: HashMap<String, Cursor>,
    /// Shards read to their end, or before the feed started.
    done: HashSet<String>,
    described: Option<Instant>,
}

impl StreamFeed {
    pub fn new(client: Client, streams: StreamsClient, table: String) -> StreamFeed {
        StreamFeed {
            client,
            streams,
            table,
            arn: None,
            open: HashMap::new(),
            done: HashSet::new(),
            described: None,
        }
    }

    /// Finds the table's stream and the shards not yet followed.
    async fn describe(&mut self) -> Result<(), StoreError> {
        let first = self.described.is_none();
        let arn = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(unavailable)?
            .table
            .and_then(|t| t.latest_stream_arn);
        if arn != self.arn {
            self.open.clear();
            self.done.clear();
            self.arn = arn.clone();
        }
        self.described = Some(Instant::now());
        let Some(arn) = arn else {
            return Ok(());
        };
        let mut start = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .await
                .map_err(unavailable)?;
            let Some(desc) = out.stream_description else {
                return Ok(());
            };
            for shard in desc.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if self.open.contains_key(id) || self.done.contains(id) {
                    continue;
                }
                let closed = shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some();
                let from = match (first, closed) {
                    // History from before the feed started.
                    (true, true) => {
                        self.done.insert(id.to_owned());
                        continue;
                    }
                    (true, false) => ShardIteratorType::Latest,
                    (false, _) => ShardIteratorType::TrimHorizon,
                };
                self.open.insert(
                    id.to_owned(),
                    Cursor {
                        from,
                        iterator: None,
                        last: None,
                    },
                );
            }
            match desc.last_evaluated_shard_id {
                Some(id) => start = Some(id),
                None => return Ok(()),
            }
        }
    }

    /// Reads one shard's next records, adding the slugs they name.
    async fn read(&mut self, shard: &str, slugs: &mut Vec<Slug>) -> Result<(), StoreError> {
        let Some(arn) = self.arn.clone() else {
            return Ok(());
        };
        let Some(cursor) = self.open.get_mut(shard) else {
            return Ok(());
        };
        if cursor.iterator.is_none() {
            let req = self
                .streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard);
            let req = match &cursor.last {
                Some(seq) => req
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
                None => req.shard_iterator_type(cursor.from.clone()),
            };
            match req.send().await {
                Ok(out) => cursor.iterator = out.shard_iterator,
                Err(e) if e.code() == Some("ResourceNotFoundException") => cursor.iterator = None,
                Err(e) => return Err(unavailable(e)),
            }
            if cursor.iterator.is_none() {
                // The shard is gone (trimmed after 24 hours).
                self.open.remove(shard);
                self.done.insert(shard.to_owned());
                return Ok(());
            }
        }
        let iterator = cursor.iterator.take().expect("taken above");
        let out = match self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(RECORDS)
            .send()
            .await
        {
            Ok(out) => out,
            // Taken again from the last record at the next call.
            Err(e) if e.code() == Some("ExpiredIteratorException") => return Ok(()),
            Err(e) if e.code() == Some("TrimmedDataAccessException") => {
                cursor.last = None;
                cursor.from = ShardIteratorType::TrimHorizon;
                return Ok(());
            }
            Err(e) => return Err(unavailable(e)),
        };
        for record in out.records() {
            let Some(change) = record.dynamodb() else {
                continue;
            };
            if let Some(seq) = change.sequence_number() {
                cursor.last = Some(seq.to_owned());
            }
            let slug = change
                .keys()
                .and_then(|k| k.get("pk"))
                .and_then(|pk| match pk {
                    AttributeValue::S(pk) => pk.strip_prefix("S#"),
                    _ => None,
                })
                .and_then(|s| Slug::parse_path(s).ok());
            slugs.extend(slug);
        }
        match out.next_shard_iterator {
            Some(next) => cursor.iterator = Some(next),
            None => {
                // Closed and read to its end: its children carry on.
                self.open.remove(shard);
                self.done.insert(shard.to_owned());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl LinkFeed for StreamFeed {
    async fn changed(&mut self) -> Result<Vec<Slug>, StoreError> {
        if self.described.is_none_or(|t| t.elapsed() >= DESCRIBE_EVERY) {
            self.describe().await?;
        }
        let mut slugs = Vec::new();
        let shards: Vec<String> = self.open.keys().cloned().collect();
        for shard in shards {
            self.read(&shard, &mut slugs).await?;
        }
        slugs.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        slugs.dedup();
        Ok(slugs)
    }
}
