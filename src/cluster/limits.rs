//! Rate limits shared by every node: the same GCRA as the in-process
//! limiters ([`crate::ratelimit`]), run in Redis (a Lua script on Redis's
//! clock) so that a client cannot multiply its allowance by spreading
//! requests over nodes. Counters are named by a keyed hash of the client,
//! so Redis never holds a raw IP. If Redis does not answer, requests are let
//! through (fail open).

use std::sync::Arc;

use async_trait::async_trait;

use super::redis::{CACHE_WAIT, Redis};
use crate::ratelimit::{Bucket, Decision, Limiter, Limits};

impl Redis {
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
}

/// Counters in Redis, shared by every node (cluster mode).
pub struct SharedLimiter {
    limits: Limits,
    redis: Arc<Redis>,
    secret: tokio::sync::OnceCell<[u8; 32]>,
}

impl SharedLimiter {
    pub fn new(limits: Limits, redis: Arc<Redis>) -> SharedLimiter {
        SharedLimiter {
            limits,
            redis,
            secret: tokio::sync::OnceCell::new(),
        }
    }

    /// The counter's name for a client: a keyed hash of its IP address (or
    /// key id) under the cluster's secret, so Redis never holds a raw IP.
    /// None while Redis cannot be reached (the limit is not applied then).
    async fn opaque(&self, key: &str) -> Option<String> {
        use sha2::{Digest, Sha256};
        let secret = self
            .secret
            .get_or_try_init(|| self.redis.shared_secret())
            .await
            .ok()?;
        let digest = Sha256::new()
            .chain_update(secret)
            .chain_update(key.as_bytes())
            .finalize();
        Some(hex::encode(&digest[..16]))
    }

    /// What the `RateLimit-*` headers say after a GCRA step that left
    /// `used_ms` of the allowance in use (or, refused, `used_ms` until one is
    /// back).
    fn decision(limit: u32, period_ms: u64, allowed: bool, used_ms: u64) -> Decision {
        let emission = (period_ms / u64::from(limit.max(1))).max(1);
        let secs = |ms: u64| ms.div_ceil(1000).max(1);
        if allowed {
            Decision {
                allowed,
                limit,
                remaining: (period_ms.saturating_sub(used_ms) / emission).min(u64::from(limit))
                    as u32,
                reset_secs: secs(used_ms),
            }
        } else {
            Decision {
                allowed,
                limit,
                remaining: 0,
                reset_secs: secs(used_ms),
            }
        }
    }
}

#[async_trait]
impl Limiter for SharedLimiter {
    async fn take(&self, bucket: Bucket, key: &str) -> Decision {
        let rate = self.limits.rate(bucket);
        if rate.count == 0 {
            return Decision::unlimited();
        }
        let period_ms = rate.period.as_millis().max(1) as u64;
        let Some(key) = self.opaque(key).await else {
            return Decision::unlimited();
        };
        let rkey = format!("hop:rl:{}:{}:{period_ms}:{key}", bucket.name(), rate.count);
        match self.redis.gcra(&rkey, rate.count, period_ms, true).await {
            Some((allowed, ms)) => Self::decision(rate.count, period_ms, allowed, ms),
            None => Decision::unlimited(),
        }
    }

    async fn refused(&self, bucket: Bucket, key: &str) -> Option<Decision> {
        let rate = self.limits.rate(bucket);
        if rate.count == 0 {
            return None;
        }
        let period_ms = rate.period.as_millis().max(1) as u64;
        let key = self.opaque(key).await?;
        let rkey = format!("hop:rl:{}:{}:{period_ms}:{key}", bucket.name(), rate.count);
        let (allowed, ms) = self.redis.gcra(&rkey, rate.count, period_ms, false).await?;
        (!allowed).then(|| Self::decision(rate.count, period_ms, false, ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_decisions_report_what_is_left() {
        // 10 an hour: one back every 6 minutes.
        let hour = 3_600_000;
        let d = SharedLimiter::decision(10, hour, true, 360_000);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 9, 360));
        let d = SharedLimiter::decision(10, hour, true, hour);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 0, 3_600));
        let d = SharedLimiter::decision(10, hour, false, 359_001);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (false, 0, 360));
        assert_eq!(SharedLimiter::decision(10, hour, false, 1).reset_secs, 1);
    }
}
