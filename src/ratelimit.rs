//! Rate limits: link creation and failed authentication per client IP, API
//! calls per API key. In process they are GCRA limiters (governor); in
//! cluster mode they are counters in Redis shared by every node (fixed
//! one-minute windows), so a client cannot multiply its allowance by
//! spreading requests over nodes. If Redis does not answer, requests are let
//! through (fail open) rather than refused.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::cluster::Redis;

/// A rate: so many per minute (0: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `30/min`, `5/s`, `1000/h`, or `0` for no limit.
    fn from_str(s: &str) -> Result<Rate, String> {
        if s.trim() == "0" {
            return Ok(Rate { per_minute: 0 });
        }
        let bad = || format!("{s:?}: give a rate like 30/min, 5/s or 1000/h (0: no limit)");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let per_minute = match unit.trim() {
            "s" | "sec" | "second" => n.checked_mul(60).ok_or_else(bad)?,
            "m" | "min" | "minute" => n,
            "h" | "hour" => n.div_ceil(60).max(u32::from(n > 0)),
            _ => return Err(bad()),
        };
        Ok(Rate { per_minute })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Links created without an API key, per client IP.
    Create,
    /// Failed authentications, per client IP.
    AuthFailure,
    /// API calls, per API key.
    Api,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::Create => "create",
            Bucket::AuthFailure => "authfail",
            Bucket::Api => "api",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub create: Rate,
    pub auth_failures: Rate,
    pub api: Rate,
}

impl Limits {
    fn rate(&self, bucket: Bucket) -> Rate {
        match bucket {
            Bucket::Create => self.create,
            Bucket::AuthFailure => self.auth_failures,
            Bucket::Api => self.api,
        }
    }
}

/// The outcome of taking from an allowance, with what the `RateLimit-*`
/// headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the allowance is whole again (or, refused, until the
    /// next request may pass: `Retry-After`).
    pub reset_secs: u64,
}

impl Decision {
    fn unlimited() -> Decision {
        Decision {
            allowed: true,
            limit: 0,
            remaining: 0,
            reset_secs: 0,
        }
    }
}

#[async_trait]
pub trait Limiter: Send + Sync {
    /// Takes one from `key`'s allowance in `bucket`.
    async fn take(&self, bucket: Bucket, key: &str) -> Decision;
    /// Whether `key` has no allowance left, without taking any.
    async fn refused(&self, bucket: Bucket, key: &str) -> Option<Decision>;
}

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// In-process limiters (embedded mode).
pub struct LocalLimiter {
    limits: Limits,
    create: Option<Keyed>,
    auth_failures: Option<Keyed>,
    api: Option<Keyed>,
    clock: DefaultClock,
    /// Keys refused until a moment: governor cannot look without taking, so
    /// a refusal is remembered for [`Limiter::refused`].
    refused_until: moka::sync::Cache<(Bucket, String), std::time::Instant>,
}

fn keyed(rate: Rate) -> Option<Keyed> {
    let n = NonZeroU32::new(rate.per_minute)?;
    Some(RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>())
}

impl LocalLimiter {
    pub fn new(limits: Limits) -> LocalLimiter {
        LocalLimiter {
            create: keyed(limits.create),
            auth_failures: keyed(limits.auth_failures),
            api: keyed(limits.api),
            limits,
            clock: DefaultClock::default(),
            refused_until: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    fn limiter(&self, bucket: Bucket) -> Option<&Keyed> {
        match bucket {
            Bucket::Create => self.create.as_ref(),
            Bucket::AuthFailure => self.auth_failures.as_ref(),
            Bucket::Api => self.api.as_ref(),
        }
    }

    fn decide(&self, bucket: Bucket, key: &str) -> Decision {
        let Some(limiter) = self.limiter(bucket) else {
            return Decision::unlimited();
        };
        let limit = self.limits.rate(bucket).per_minute;
        let period = 60.0 / f64::from(limit.max(1));
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset_secs: (f64::from(limit - remaining.min(limit)) * period).ceil() as u64,
                }
            }
            Err(not_until) => Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_secs: not_until
                    .wait_time_from(self.clock.now())
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64,
            },
        }
    }
}

#[async_trait]
impl Limiter for LocalLimiter {
    async fn take(&self, bucket: Bucket, key: &str) -> Decision {
        let d = self.decide(bucket, key);
        // Refused from now: past the allowance, or (failures) at its end, so
        // that N failures are allowed and the next attempt is refused, as
        // with the shared counters.
        let wait = if !d.allowed {
            Some(d.reset_secs)
        } else if bucket == Bucket::AuthFailure && d.limit > 0 && d.remaining == 0 {
            Some((60 / u64::from(d.limit.max(1))).max(1))
        } else {
            None
        };
        if let Some(secs) = wait {
            self.refused_until.insert(
                (bucket, key.to_owned()),
                std::time::Instant::now() + Duration::from_secs(secs),
            );
        }
        // Idle keys are forgotten now and then.
        if rand::random_ratio(1, 1000) {
            for l in [&self.create, &self.auth_failures, &self.api]
                .into_iter()
                .flatten()
            {
                l.retain_recent();
            }
        }
        d
    }

    async fn refused(&self, bucket: Bucket, key: &str) -> Option<Decision> {
        let until = self.refused_until.get(&(bucket, key.to_owned()))?;
        let left = until.checked_duration_since(std::time::Instant::now())?;
        Some(Decision {
            allowed: false,
            limit: self.limits.rate(bucket).per_minute,
            remaining: 0,
            reset_secs: left.as_secs_f64().ceil().max(1.0) as u64,
        })
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

    fn window() -> (u64, u64) {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        (now / 60, 60 - now % 60)
    }

    fn decision(limit: u32, count: u64, reset: u64) -> Decision {
        Decision {
            allowed: count <= u64::from(limit),
            limit,
            remaining: u64::from(limit).saturating_sub(count) as u32,
            reset_secs: reset,
        }
    }
}

#[async_trait]
impl Limiter for SharedLimiter {
    async fn take(&self, bucket: Bucket, key: &str) -> Decision {
        let limit = self.limits.rate(bucket).per_minute;
        if limit == 0 {
            return Decision::unlimited();
        }
        let (window, reset) = Self::window();
        let Some(key) = self.opaque(key).await else {
            return Decision::unlimited();
        };
        let rkey = format!("hop:rl:{}:{key}:{window}", bucket.name());
        match self
            .redis
            .incr_with_expiry(&rkey, Duration::from_secs(120))
            .await
        {
            Some(count) => Self::decision(limit, count, reset),
            None => Decision::unlimited(),
        }
    }

    async fn refused(&self, bucket: Bucket, key: &str) -> Option<Decision> {
        let limit = self.limits.rate(bucket).per_minute;
        if limit == 0 {
            return None;
        }
        let (window, reset) = Self::window();
        let key = self.opaque(key).await?;
        let rkey = format!("hop:rl:{}:{key}:{window}", bucket.name());
        let count = self.redis.counter(&rkey).await?;
        let d = Self::decision(limit, count, reset);
        (count >= u64::from(limit)).then_some(Decision {
            allowed: false,
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("30/min".parse::<Rate>().unwrap().per_minute, 30);
        assert_eq!("5/s".parse::<Rate>().unwrap().per_minute, 300);
        assert_eq!("120/h".parse::<Rate>().unwrap().per_minute, 2);
        assert_eq!("1/h".parse::<Rate>().unwrap().per_minute, 1);
        assert_eq!("0".parse::<Rate>().unwrap().per_minute, 0);
        assert!("30".parse::<Rate>().is_err());
        assert!("x/min".parse::<Rate>().is_err());
        assert!("3/day".parse::<Rate>().is_err());
    }

    #[tokio::test]
    async fn local_limits_refuse_past_the_allowance_per_key() {
        let limits = Limits {
            create: "3/min".parse().unwrap(),
            auth_failures: "2/min".parse().unwrap(),
            api: "0".parse().unwrap(),
        };
        let l = LocalLimiter::new(limits);
        for left in [2, 1, 0] {
            let d = l.take(Bucket::Create, "1.2.3.4").await;
            assert!(d.allowed);
            assert_eq!((d.limit, d.remaining), (3, left));
        }
        let d = l.take(Bucket::Create, "1.2.3.4").await;
        assert!(!d.allowed);
        assert!(d.reset_secs >= 1 && d.reset_secs <= 20, "{d:?}");
        assert!(l.take(Bucket::Create, "5.6.7.8").await.allowed, "per key");
        assert!(l.take(Bucket::Api, "k").await.allowed, "0 is unlimited");
        let open = LocalLimiter::new(Limits {
            create: "0".parse().unwrap(),
            auth_failures: "0".parse().unwrap(),
            api: "0".parse().unwrap(),
        });
        for _ in 0..100 {
            assert!(open.take(Bucket::AuthFailure, "1.1.1.1").await.allowed);
        }
        assert!(
            open.refused(Bucket::AuthFailure, "1.1.1.1").await.is_none(),
            "0 never locks out"
        );
        // Failures: refused once a take went past the allowance; looking
        // takes nothing.
        for _ in 0..5 {
            assert!(l.refused(Bucket::AuthFailure, "9.9.9.9").await.is_none());
        }
        l.take(Bucket::AuthFailure, "9.9.9.9").await;
        assert!(l.refused(Bucket::AuthFailure, "9.9.9.9").await.is_none());
        l.take(Bucket::AuthFailure, "9.9.9.9").await;
        let d = l.refused(Bucket::AuthFailure, "9.9.9.9").await.unwrap();
        assert!(d.reset_secs >= 1);
    }
}
