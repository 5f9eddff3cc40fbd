//! Redis streams, both ends. The appender drains a node's click queue into
//! the `hop:clicks` stream (pipelined `XADD`, `MAXLEN ~` bound; the loop is
//! the embedded writer's, [`crate::clicks::drain`]): while Redis is down,
//! clicks wait in the queue and are flushed when it returns. The
//! [`GroupReader`] reads any stream in a consumer group and hands entries to
//! an [`EntryHandler`]; entries left pending by a dead consumer are claimed
//! with `XAUTOCLAIM` once idle; handled entries are acknowledged and deleted
//! (`XACK`, `XDEL`: so raw IPs do not linger in Redis).
//!
//! Entries are encrypted with the cluster key, bound to their stream's name:
//! an event holds the client's raw address, which must not sit in Redis's
//! memory or append-only file, and entries not written by a node of this
//! cluster are dropped (forged clicks).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::STREAM;
use super::redis::Redis;
use crate::clicks::drain::{BatchDestination, ClickSource, DrainPace, drain};
use crate::domain::ClickEvent;
use crate::retry::{Backoff, until_ok};
use crate::seal::Sealer;

/// The field of a stream entry that holds its sealed payload.
const FIELD: &str = "e";

/// Appends buffered clicks to the stream in pipelined batches, retrying
/// while Redis is away. On shutdown, closes the buffer and flushes it.
pub async fn run_appender(
    redis: Arc<Redis>,
    rx: impl ClickSource,
    maxlen: usize,
    shutdown: CancellationToken,
) {
    let pace = DrainPace {
        batch_size: 1000,
        max_wait: Duration::ZERO,
        target_write: Duration::ZERO,
        // 100 ms doubling to 1.6 s.
        backoff: Backoff::doubling(Duration::from_millis(100), Duration::from_millis(1600)),
    };
    let appender = Appender {
        redis,
        stream: STREAM,
        maxlen,
    };
    drain(rx, pace, shutdown, &appender).await;
}

/// A stream that drained batches are appended to.
struct Appender {
    redis: Arc<Redis>,
    stream: &'static str,
    /// Roughly the most entries the stream keeps (`MAXLEN ~`).
    maxlen: usize,
}

impl BatchDestination for Appender {
    type Error = redis::RedisError;

    async fn write(&self, batch: &[ClickEvent]) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for ev in batch {
            pipe.cmd("XADD")
                .arg(self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.maxlen)
                .arg("*")
                .arg(FIELD)
                .arg(seal_entry(&self.redis.seal, self.stream, ev))
                .ignore();
        }
        let mut conn = self.redis.conn();
        self.redis.mark(pipe.query_async::<()>(&mut conn).await)
    }

    fn failed(&self, error: &redis::RedisError, attempt: u32, clicks: usize) {
        if attempt == 1 {
            tracing::warn!(error = %error, clicks, "appending clicks to redis failed; holding them");
        }
    }
}

fn seal_entry(seal: &Sealer, stream: &str, entry: &impl Serialize) -> String {
    seal.encrypt(stream, &serde_json::to_string(entry).unwrap_or_default())
}

/// What a [`GroupReader`] hands its entries to.
pub trait EntryHandler: Send + Sync {
    type Entry: DeserializeOwned + Send;
    /// Handles one batch (read, or claimed from a dead consumer). Answers
    /// whether the entries may be acknowledged; unacknowledged ones stay
    /// pending and are claimed again later. Commands added to `ack` go to
    /// Redis after the acknowledgement, in the same round trip.
    fn handle(
        &self,
        entries: Vec<Self::Entry>,
        ack: &mut redis::Pipeline,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = bool> + Send;
}

/// Reads one stream as one consumer of a group.
pub struct GroupReader {
    /// A connection of its own: blocking stream reads hold it.
    pub redis: Arc<Redis>,
    pub stream: &'static str,
    pub group: &'static str,
    /// Consumer name in the group; unique per process.
    pub consumer: String,
    /// Entries pending this long with another consumer are claimed.
    pub claim_idle: Duration,
    /// Most entries handled at once.
    pub batch_size: usize,
}

/// Waits between attempts to reach Redis: 100 ms doubling to 2 s.
const GROUP_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(100), Duration::from_secs(2));

impl GroupReader {
    async fn ensure_group(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.stream)
            .arg(self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// The payloads of stream entries (entries not sealed by a node of this
    /// cluster for this stream are dropped), and every entry's id.
    fn open_entries<T: DeserializeOwned>(&self, ids: &[StreamId]) -> (Vec<T>, Vec<String>) {
        let mut entries = Vec::with_capacity(ids.len());
        let mut all = Vec::with_capacity(ids.len());
        for entry in ids {
            all.push(entry.id.clone());
            match entry.get::<String>(FIELD).and_then(|sealed| {
                let json = self.redis.seal.decrypt(self.stream, &sealed)?;
                serde_json::from_str::<T>(&json).ok()
            }) {
                Some(e) => entries.push(e),
                None => tracing::error!(
                    stream = self.stream,
                    stream.id = %entry.id,
                    "unreadable or unsigned entry; dropping it"
                ),
            }
        }
        (entries, all)
    }

    /// Hands one batch of entries to `handler`, then acknowledges and
    /// deletes them if it handled them.
    async fn process<H: EntryHandler>(
        &self,
        ids: &[StreamId],
        handler: &H,
        shutdown: &CancellationToken,
    ) -> bool {
        if ids.is_empty() {
            return true;
        }
        let (entries, all) = self.open_entries::<H::Entry>(ids);
        let mut ack = redis::pipe();
        ack.cmd("XACK")
            .arg(self.stream)
            .arg(self.group)
            .arg(&all)
            .ignore()
            .cmd("XDEL")
            .arg(self.stream)
            .arg(&all)
            .ignore();
        if !handler.handle(entries, &mut ack, shutdown).await {
            return false;
        }
        let mut conn = self.redis.conn();
        let r = ack.query_async::<()>(&mut conn).await;
        // Unacknowledged entries are claimed again later (the handler must
        // take them twice without harm).
        self.redis.mark(r).is_ok()
    }

    /// Claims the entries a dead (or stuck) consumer left pending, and
    /// handles them.
    async fn claim_pending<H: EntryHandler>(&self, handler: &H, shutdown: &CancellationToken) {
        let mut cursor = "0-0".to_owned();
        loop {
            let mut conn = self.redis.conn();
            let reply: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                .arg(self.stream)
                .arg(self.group)
                .arg(&self.consumer)
                .arg(self.claim_idle.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(self.batch_size)
                .query_async(&mut conn)
                .await;
            let Ok(reply) = self.redis.mark(reply) else {
                break;
            };
            if !reply.claimed.is_empty() {
                tracing::info!(
                    stream = self.stream,
                    entries = reply.claimed.len(),
                    "claimed entries left pending by another consumer"
                );
                self.process(&reply.claimed, handler, shutdown).await;
            }
            cursor = reply.next_stream_id;
            if cursor == "0-0" {
                break;
            }
        }
    }

    /// Reads and handles entries until `shutdown`; finishes the batch in
    /// hand (unfinished entries stay pending for others).
    pub async fn run<H: EntryHandler>(&self, handler: &H, shutdown: &CancellationToken) {
        let mut last_claim = tokio::time::Instant::now() - self.claim_idle;
        while !shutdown.is_cancelled() {
            let failed = |e: &redis::RedisError, _| {
                tracing::warn!(error = %e, stream = self.stream, "redis unavailable to the worker; retrying");
            };
            if until_ok(GROUP_BACKOFF, shutdown, || self.ensure_group(), failed)
                .await
                .is_none()
            {
                break;
            }
            if last_claim.elapsed() >= self.claim_idle / 2 {
                last_claim = tokio::time::Instant::now();
                self.claim_pending(handler, shutdown).await;
            }
            let mut conn = self.redis.conn();
            let opts = redis::streams::StreamReadOptions::default()
                .group(self.group, &self.consumer)
                .count(self.batch_size)
                .block(1000);
            let streams = [self.stream];
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = conn.xread_options::<_, _, Option<StreamReadReply>>(&streams, &[">"], &opts) => r,
            };
            match self.redis.mark(read) {
                Ok(Some(reply)) => {
                    for key in reply.keys {
                        self.process(&key.ids, handler, shutdown).await;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if e.code() == Some("NOGROUP") {
                        continue; // Redis restarted empty: recreate the group.
                    }
                    tracing::warn!(error = %e, stream = self.stream, "reading the stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
