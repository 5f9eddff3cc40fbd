//! Cluster mode over Redis (`--redis-url`): what lets many stateless nodes
//! and `hop worker` processes act as one.
//!
//! - **Shared link cache.** Behind each node's in-process cache, a Redis tier
//!   (`hop:link:{slug}`, with TTLs, negative entries too). Edits and deletes
//!   delete the key and publish the slug on `hop:invalidate`; every node drops
//!   it from its in-process cache. A node that lost its subscription clears
//!   its whole in-process cache when it resubscribes (it may have missed
//!   messages).
//! - **Click stream.** Nodes append click events to the `hop:clicks` stream
//!   (pipelined `XADD`, `MAXLEN ~` bound) from the same bounded in-process
//!   queue as embedded mode ([`crate::clicks::ClickQueue`]):
//!   while Redis is down, clicks wait there and are flushed when it returns;
//!   a full buffer drops (and counts) clicks rather than slowing redirects.
//! - **Workers** read the stream in the `hop-workers` consumer group, enrich,
//!   store (idempotent by event id), then `XACK` and `XDEL` (so raw IPs do not
//!   linger in Redis). Entries left pending by a dead worker are claimed with
//!   `XAUTOCLAIM` once idle. A click is stored exactly once whatever crashes:
//!   at-least-once delivery, exactly-once counting.
//! - **Shared visitor salts** (`hop:salt:{day}`, set once with `NX`, expiring
//!   after three days), so every worker hashes a visitor alike.
//! - **Takedowns.** A node that records a domain takedown (or lifts one)
//!   publishes on `hop:takedowns`; every node re-reads the set from the
//!   store (and does on resubscribing, and every few seconds anyway).
//! - **Live feed.** Workers publish stored clicks on `hop:live`; every node
//!   relays them to its dashboards' SSE streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::{CachedLink, LinkCache};
use crate::clicks::{BatchWriter, LiveFeed};
use crate::domain::{ClickEvent, EnrichedClick, Link, TargetUrl};
use crate::metrics::names;
use crate::seal::Sealer;
use crate::store::Resolution;
use crate::takedown::Takedowns;

pub const STREAM: &str = "hop:clicks";
pub const GROUP: &str = "hop-workers";
pub const INVALIDATE: &str = "hop:invalidate";
pub const LIVE: &str = "hop:live";
pub const TAKEDOWNS: &str = "hop:takedowns";
const LINK_PREFIX: &str = "hop:link:";
const MISSING: &str = "-";
/// Marks a slug just invalidated, so a load that raced the edit does not
/// put the old link back into the shared tier.
const TOMBSTONE_PREFIX: &str = "hop:inval:";
const TOMBSTONE_SECS: u64 = 10;
/// Longest a redirect waits on the shared cache before asking the store.
const CACHE_WAIT: Duration = Duration::from_millis(100);

/// A Redis connection shared by a node's tasks, and whether it works.
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
    up: AtomicBool,
    /// Signs and checks everything hop writes to Redis and reads back
    /// (see [`crate::seal`]).
    seal: Sealer,
    /// Slugs edited while Redis was away, whose invalidation is still to be
    /// sent.
    unsent: parking_lot::Mutex<std::collections::HashSet<String>>,
}

impl Redis {
    /// Connects to `url` (`redis://` or `rediss://`; user and password
    /// for Redis AUTH/ACL in the URL), trusting `ca_file` for TLS if given.
    pub async fn connect(
        url: &str,
        seal: Sealer,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Arc<Redis>> {
        let client = match ca_file {
            Some(path) => {
                crate::tls::install_crypto();
                let root_cert = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )?
            }
            None => {
                if url.starts_with("rediss://") {
                    crate::tls::install_crypto();
                }
                redis::Client::open(url)?
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Arc::new(Redis {
            client,
            conn,
            up: AtomicBool::new(true),
            seal,
            unsent: Default::default(),
        }))
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn mark<T>(&self, r: redis::RedisResult<T>) -> redis::RedisResult<T> {
        let up = match &r {
            Ok(_) => true,
            Err(e) => !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()),
        };
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!("redis reachable again");
            } else {
                tracing::warn!("redis unreachable");
            }
        }
        r
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    // ---------------------------------------------------------- link cache

    /// The shared cache's entry for a slug; `None` on a miss or when Redis
    /// does not answer in time (the store is asked instead).
    pub async fn cached_link(&self, slug: &str) -> Option<CachedLink> {
        let mut conn = self.conn();
        let key = format!("{LINK_PREFIX}{slug}");
        let got = tokio::time::timeout(CACHE_WAIT, conn.get::<_, Option<String>>(&key)).await;
        let value = match got {
            Ok(r) => self.mark(r).ok().flatten()?,
            Err(_) => return None,
        };
        let entry = self.open_link_entry(&key, slug, &value);
        if entry.is_none() {
            // Not written by a node of this cluster: a forgery, a value moved
            // from another key, or a stale one. The store decides instead.
            tracing::warn!(
                link.slug = slug,
                "refused a shared cache entry that does not verify"
            );
        }
        entry
    }

    /// A shared cache entry: sealed for its key, not past the expiry it was
    /// sealed with (so an old entry cannot be replayed for longer than its
    /// TTL), for this slug, with a target that passes the same checks as a
    /// new one.
    fn open_link_entry(&self, key: &str, slug: &str, value: &str) -> Option<CachedLink> {
        let payload = self.seal.open(key, value)?;
        let (expires, body) = payload.split_once(':')?;
        if expires.parse::<i64>().ok()? < chrono::Utc::now().timestamp_millis() {
            return None;
        }
        if body == MISSING {
            return Some(CachedLink::Missing);
        }
        let link = serde_json::from_str::<Link>(body).ok()?;
        let target = TargetUrl::parse(link.target.as_str(), &[]).ok()?;
        (link.slug.as_str() == slug && target == link.target)
            .then(|| CachedLink::Found(Arc::new(link)))
    }

    pub async fn cache_link(&self, slug: &str, entry: &CachedLink, ttl: Duration) {
        let value = match entry {
            CachedLink::Found(link) => match serde_json::to_string(link.as_ref()) {
                Ok(v) => v,
                Err(_) => return,
            },
            CachedLink::Missing => MISSING.to_owned(),
        };
        let key = format!("{LINK_PREFIX}{slug}");
        let expires = chrono::Utc::now().timestamp_millis() + ttl.as_millis() as i64;
        let value = self.seal.seal(&key, &format!("{expires}:{value}"));
        // Not while a recent invalidation's tombstone stands: this value may
        // have been read from the store just before that edit.
        static SET_UNLESS_INVALIDATED: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| {
                redis::Script::new(
                    "if redis.call('EXISTS', KEYS[2]) == 0 then \
                       redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end \
                     return 0",
                )
            });
        let mut conn = self.conn();
        let r = SET_UNLESS_INVALIDATED
            .key(key)
            .key(format!("{TOMBSTONE_PREFIX}{slug}"))
            .arg(value)
            .arg(ttl.as_secs().max(1))
            .invoke_async::<i64>(&mut conn)
            .await;
        let _ = self.mark(r);
    }

    /// Drops a slug from the shared cache and tells every node to drop it.
    /// If Redis does not take it, the slug is kept and sent again when
    /// Redis is back ([`Redis::resend_invalidations`]): otherwise the shared
    /// tier would keep serving the old link until its TTL.
    pub async fn invalidate(&self, slug: &str) {
        if let Err(e) = self.send_invalidation(slug).await {
            tracing::warn!(error = %e, link.slug = slug, "cache invalidation not published; will resend");
            self.unsent.lock().insert(slug.to_owned());
        }
    }

    async fn send_invalidation(&self, slug: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn();
        let r = redis::pipe()
            .del(format!("{LINK_PREFIX}{slug}"))
            .ignore()
            .set_ex(format!("{TOMBSTONE_PREFIX}{slug}"), 1, TOMBSTONE_SECS)
            .ignore()
            .publish(INVALIDATE, self.seal.seal(INVALIDATE, slug))
            .ignore()
            .query_async::<()>(&mut conn)
            .await;
        self.mark(r)
    }

    /// Sends the invalidations Redis did not take while it was away; those
    /// that fail again stay for the next try.
    pub async fn resend_invalidations(&self) {
        let slugs: Vec<String> = self.unsent.lock().drain().collect();
        for slug in slugs {
            if self.send_invalidation(&slug).await.is_err() {
                self.unsent.lock().insert(slug);
            }
        }
    }

    /// Tells every node to re-read the domain takedowns.
    pub async fn announce_takedowns(&self) {
        let mut conn = self.conn();
        let r = conn
            .publish::<_, _, ()>(TAKEDOWNS, self.seal.seal(TAKEDOWNS, "changed"))
            .await;
        if let Err(e) = self.mark(r) {
            // Every node re-reads the set every few seconds anyway.
            tracing::warn!(error = %e, "takedown change not published");
        }
    }

    // ---------------------------------------------------------- counters

    /// One GCRA step (the algorithm governor runs in process) on the state
    /// at `key`, in Redis's own clock so every node agrees: `count` per
    /// `period_ms`, up to `count` at once. With `take`, uses one if it is
    /// there. Answers (allowed, ms of allowance in use after the step, or
    /// when refused ms until one is back); `None` if Redis does not answer.
    pub async fn gcra(
        &self,
        key: &str,
        count: u32,
        period_ms: u64,
        take: bool,
    ) -> Option<(bool, u64)> {
        static GCRA: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "local t = redis.call('TIME') \
                 local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
                 local emission = tonumber(ARGV[1]) \
                 local period = tonumber(ARGV[2]) \
                 local tat = tonumber(redis.call('GET', KEYS[1]) or now) \
                 if tat < now then tat = now end \
                 local after = tat + emission \
                 if after - now > period then return {0, after - now - period} end \
                 if ARGV[3] == '1' then \
                   redis.call('SET', KEYS[1], after, 'PX', after - now + 1000) \
                   return {1, after - now} \
                 end \
                 return {1, tat - now}",
            )
        });
        let emission = (period_ms / u64::from(count.max(1))).max(1);
        let mut conn = self.conn();
        let mut call = GCRA.key(key);
        call.arg(emission)
            .arg(period_ms)
            .arg(if take { "1" } else { "0" });
        let r = call.invoke_async::<(i64, i64)>(&mut conn);
        match tokio::time::timeout(CACHE_WAIT, r).await {
            Ok(r) => self
                .mark(r)
                .ok()
                .map(|(allowed, ms)| (allowed == 1, ms.max(0) as u64)),
            Err(_) => None,
        }
    }

    // ---------------------------------------------------------- salts

    /// The cluster's secret for pseudonymous keys (`hop:secret`, made once
    /// with `NX` by whichever node asks first, never expiring).
    pub async fn shared_secret(&self) -> redis::RedisResult<[u8; 32]> {
        let mut fresh = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
        let mut conn = self.conn();
        let (secret,): (String,) = self.mark(
            redis::pipe()
                .cmd("SET")
                .arg("hop:secret")
                .arg(hex::encode(fresh))
                .arg("NX")
                .ignore()
                .get("hop:secret")
                .query_async::<(String,)>(&mut conn)
                .await,
        )?;
        let bytes = hex::decode(secret).unwrap_or_default();
        if bytes.len() != 32 {
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "hop:secret is not 32 hex bytes",
            )));
        }
        // What Redis holds is not the secret: it is keyed with the cluster
        // key, so reading Redis does not give it away.
        Ok(self.seal.derive("hop:secret", &bytes))
    }

    /// Loads the cluster's salt for each UTC day these clicks fall on.
    pub async fn share_salts(
        &self,
        salts: &crate::clicks::enrich::DailySalts,
        events: &[ClickEvent],
    ) -> redis::RedisResult<()> {
        let mut days: Vec<i64> = events.iter().map(|e| Resolution::Day.floor(e.at)).collect();
        days.sort_unstable();
        days.dedup();
        for day in days {
            if salts.has(day) {
                continue;
            }
            let key = format!("hop:salt:{day}");
            let mut fresh = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
            let mut conn = self.conn();
            let (salt,): (String,) = self.mark(
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(hex::encode(fresh))
                    .arg("NX")
                    .arg("EX")
                    .arg(3 * 86_400)
                    .ignore()
                    .get(&key)
                    .query_async::<(String,)>(&mut conn)
                    .await,
            )?;
            let bytes = hex::decode(salt).unwrap_or_default();
            if bytes.len() == 32 {
                // Keyed with the cluster key: Redis alone does not give
                // away the salt (nor, so, let visitor hashes be reversed).
                salts.set(day, self.seal.derive(&key, &bytes));
            }
        }
        Ok(())
    }
}

// -------------------------------------------------------------- listener

/// Keeps a node's subscriptions: invalidations reach its in-process cache
/// and workers' stored clicks reach its live feed. Runs until `shutdown`.
pub async fn listen(
    redis: Arc<Redis>,
    cache: Arc<dyn LinkCache>,
    live: Arc<LiveFeed>,
    takedowns: Arc<Takedowns>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let subscribed = async {
            let mut pubsub = redis.client.get_async_pubsub().await?;
            pubsub.subscribe(INVALIDATE).await?;
            pubsub.subscribe(LIVE).await?;
            pubsub.subscribe(TAKEDOWNS).await?;
            redis::RedisResult::Ok(pubsub)
        };
        let mut pubsub = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = subscribed => match r {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "subscribing to redis failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        // Invalidations and takedowns may have been missed while
        // unsubscribed, and this node's own may not have been sent.
        redis.resend_invalidations().await;
        cache.clear();
        reload_takedowns(&takedowns);
        backoff = Duration::from_millis(100);
        tracing::info!("subscribed to cache invalidations and live clicks");
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                msg = messages.next() => {
                    let Some(msg) = msg else { break };
                    let Ok(sealed) = msg.get_payload::<String>() else { continue };
                    let channel = msg.get_channel_name();
                    let Some(payload) = redis.seal.open(channel, &sealed) else {
                        tracing::warn!(channel, "refused a message that does not verify");
                        continue;
                    };
                    match channel {
                        INVALIDATE => cache.invalidate(payload),
                        TAKEDOWNS => reload_takedowns(&takedowns),
                        LIVE => {
                            if let Ok(clicks) = serde_json::from_str::<Vec<EnrichedClick>>(payload) {
                                live.publish(clicks);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        tracing::warn!("lost the redis subscription; resubscribing");
    }
}

/// Re-reads the takedowns off the listener's path.
fn reload_takedowns(takedowns: &Arc<Takedowns>) {
    let takedowns = takedowns.clone();
    tokio::spawn(async move {
        if let Err(e) = takedowns.reload().await {
            tracing::warn!(error = %e, "reloading takedowns failed");
        }
    });
}

// -------------------------------------------------------------- stream sink

/// Appends buffered clicks to the stream in pipelined batches, retrying
/// while Redis is away. On shutdown, closes the buffer and flushes it.
pub async fn run_appender(
    redis: Arc<Redis>,
    mut rx: mpsc::Receiver<ClickEvent>,
    maxlen: usize,
    shutdown: CancellationToken,
) {
    let depth = metrics::gauge!(names::QUEUE_DEPTH);
    let mut batch: Vec<ClickEvent> = Vec::with_capacity(1000);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, 1000) => if n == 0 { break },
            _ = shutdown.cancelled(), if !closing => {
                rx.close();
                closing = true;
                continue;
            }
        }
        depth.set(rx.len() as f64);
        let mut attempt = 0u32;
        loop {
            let mut pipe = redis::pipe();
            for ev in &batch {
                // Encrypted: the event holds the client's raw address, which
                // must not sit in Redis's memory or append-only file.
                let json = redis
                    .seal
                    .encrypt(STREAM, &serde_json::to_string(ev).unwrap_or_default());
                pipe.cmd("XADD")
                    .arg(STREAM)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(maxlen)
                    .arg("*")
                    .arg("e")
                    .arg(json)
                    .ignore();
            }
            let mut conn = redis.conn();
            match redis.mark(pipe.query_async::<()>(&mut conn).await) {
                Ok(()) => break,
                Err(e) => {
                    attempt += 1;
                    if attempt == 1 {
                        tracing::warn!(error = %e, clicks = batch.len(), "appending clicks to redis failed; holding them");
                    }
                    if closing && attempt >= 20 {
                        metrics::counter!(names::CLICKS_LOST).increment(batch.len() as u64);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt.min(5)))).await;
                }
            }
        }
        batch.clear();
    }
    depth.set(0.0);
}

// -------------------------------------------------------------- worker

pub struct Worker {
    /// A connection of its own: blocking stream reads hold it.
    pub redis: Arc<Redis>,
    pub writer: BatchWriter,
    /// Consumer name in the group; unique per process.
    pub consumer: String,
    /// Entries pending this long with another consumer are claimed.
    pub claim_idle: Duration,
    pub batch_size: usize,
}

/// The click events of stream entries (entries not encrypted by a node of
/// this cluster are dropped: forged clicks), and every entry's id.
fn parse_entries(seal: &Sealer, ids: &[StreamId]) -> (Vec<ClickEvent>, Vec<String>) {
    let mut events = Vec::with_capacity(ids.len());
    let mut all = Vec::with_capacity(ids.len());
    for entry in ids {
        all.push(entry.id.clone());
        match entry.get::<String>("e").and_then(|sealed| {
            let json = seal.decrypt(STREAM, &sealed)?;
            serde_json::from_str::<ClickEvent>(&json).ok()
        }) {
            Some(ev) => events.push(ev),
            None => tracing::error!(
                stream.id = %entry.id,
                "unreadable or unsigned click entry; dropping it"
            ),
        }
    }
    (events, all)
}

impl Worker {
    async fn ensure_group(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(STREAM)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Stores one batch of entries, then acknowledges and deletes them.
    /// Retries the store until it succeeds (the entries stay pending, so a
    /// crash here hands them to another worker).
    async fn process(&self, ids: &[StreamId], shutdown: &CancellationToken) -> bool {
        if ids.is_empty() {
            return true;
        }
        let (events, all) = parse_entries(&self.redis.seal, ids);
        if let Err(e) = self
            .redis
            .share_salts(self.writer.enricher.salts(), &events)
            .await
        {
            tracing::warn!(error = %e, "loading shared salts failed");
            return false;
        }
        let mut attempt = 0u32;
        let stored: Vec<EnrichedClick> = loop {
            match self.writer.store_batch(&events).await {
                Ok(clicks) => break clicks,
                Err(e) => {
                    attempt += 1;
                    tracing::error!(error = %e, attempt, "storing clicks failed; will retry");
                    if shutdown.is_cancelled() {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt.min(6)))).await;
                }
            }
        };
        let mut conn = self.redis.conn();
        let live = self
            .redis
            .seal
            .seal(LIVE, &serde_json::to_string(&stored).unwrap_or_default());
        let r = redis::pipe()
            .cmd("XACK")
            .arg(STREAM)
            .arg(GROUP)
            .arg(&all)
            .ignore()
            .cmd("XDEL")
            .arg(STREAM)
            .arg(&all)
            .ignore()
            .publish(LIVE, live)
            .ignore()
            .query_async::<()>(&mut conn)
            .await;
        // Unacknowledged entries are claimed again later and skipped by the
        // store as already counted.
        self.redis.mark(r).is_ok()
    }

    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(consumer = %self.consumer, "click worker started");
        let mut last_claim = tokio::time::Instant::now() - self.claim_idle;
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            if let Err(e) = self.ensure_group().await {
                tracing::warn!(error = %e, "redis unavailable to the worker; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            backoff = Duration::from_millis(100);
            // Entries a dead (or stuck) worker left pending.
            if last_claim.elapsed() >= self.claim_idle / 2 {
                last_claim = tokio::time::Instant::now();
                let mut cursor = "0-0".to_owned();
                loop {
                    let mut conn = self.redis.conn();
                    let reply: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                        .arg(STREAM)
                        .arg(GROUP)
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
                            entries = reply.claimed.len(),
                            "claimed clicks left pending by another worker"
                        );
                        self.process(&reply.claimed, &shutdown).await;
                    }
                    cursor = reply.next_stream_id;
                    if cursor == "0-0" {
                        break;
                    }
                }
            }
            let mut conn = self.redis.conn();
            let opts = redis::streams::StreamReadOptions::default()
                .group(GROUP, &self.consumer)
                .count(self.batch_size)
                .block(1000);
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = conn.xread_options::<_, _, Option<StreamReadReply>>(&[STREAM], &[">"], &opts) => r,
            };
            match self.redis.mark(read) {
                Ok(Some(reply)) => {
                    for key in reply.keys {
                        self.process(&key.ids, &shutdown).await;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if e.code() == Some("NOGROUP") {
                        continue; // Redis restarted empty: recreate the group.
                    }
                    tracing::warn!(error = %e, "reading the click stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        tracing::info!(consumer = %self.consumer, "click worker stopped");
    }
}
