//! Rate limits: link creation and failed authentication per client,
//! API calls per API key and per link secret. A client is its IPv4
//! address, or its IPv6 address's network prefix (a /64 by default: one
//! subscriber usually holds a whole one), see [`ip_key`]. A rate is a count
//! per period (`10/h` is ten an hour). In process the limits are GCRA
//! limiters (governor: one comes back every period/count, up to count at
//! once); in cluster mode the same algorithm runs in Redis with state shared
//! by every node ([`crate::cluster::limits`]), so a client cannot multiply
//! its allowance by spreading requests over nodes, nor double it at a
//! window boundary. If Redis does not answer, requests are let through
//! (fail open) rather than refused.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

pub use crate::domain::Rate;

/// The key a client address is limited by: an IPv4 address whole (an
/// IPv4-mapped IPv6 address is that IPv4 address), an IPv6 address by its
/// first `v6_prefix` bits, since one subscriber is usually given a whole
/// /64 (or /56, /48) and could otherwise take a fresh address per request.
pub fn ip_key(ip: IpAddr, v6_prefix: u8) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, v6_prefix.min(128))
            .map(|net| net.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Links created (and reports made) without an API key, per client.
    Create,
    /// Failed authentications, per client.
    AuthFailure,
    /// API calls, per API key.
    Api,
    /// API calls, per link secret (anonymous links' holders).
    LinkSecret,
    /// Wrong passwords of protected links, per client.
    PasswordFailure,
    /// Wrong passwords, per protected link (from every client together).
    PasswordLinkFailure,
}

impl Bucket {
    /// The bucket's name in shared counters' keys.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Create => "create",
            Bucket::AuthFailure => "authfail",
            Bucket::Api => "api",
            Bucket::LinkSecret => "secret",
            Bucket::PasswordFailure => "pwfail",
            Bucket::PasswordLinkFailure => "pwlink",
        }
    }

    /// A bucket of failures: what is taken from it has already happened,
    /// so the attempt after the allowance's last is the one refused.
    pub fn counts_failures(self) -> bool {
        matches!(
            self,
            Bucket::AuthFailure | Bucket::PasswordFailure | Bucket::PasswordLinkFailure
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub create: Rate,
    pub auth_failures: Rate,
    pub api: Rate,
    pub link_secret: Rate,
    pub password_failures: Rate,
    pub password_link_failures: Rate,
}

impl Limits {
    pub fn rate(&self, bucket: Bucket) -> Rate {
        match bucket {
            Bucket::Create => self.create,
            Bucket::AuthFailure => self.auth_failures,
            Bucket::Api => self.api,
            Bucket::LinkSecret => self.link_secret,
            Bucket::PasswordFailure => self.password_failures,
            Bucket::PasswordLinkFailure => self.password_link_failures,
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
    pub fn unlimited() -> Decision {
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
    link_secret: Option<Keyed>,
    password_failures: Option<Keyed>,
    password_link_failures: Option<Keyed>,
    clock: DefaultClock,
    /// Keys refused until a moment: governor cannot look without taking, so
    /// a refusal is remembered for [`Limiter::refused`].
    refused_until: moka::sync::Cache<(Bucket, String), std::time::Instant>,
}

/// A GCRA limiter for `rate`: one comes back every period/count, and up
/// to count may be taken at once (so `10/h` lets ten through, then one
/// every six minutes).
fn keyed(rate: Rate) -> Option<Keyed> {
    let burst = NonZeroU32::new(rate.count)?;
    let quota = Quota::with_period(rate.interval())?.allow_burst(burst);
    Some(RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>())
}

impl LocalLimiter {
    pub fn new(limits: Limits) -> LocalLimiter {
        LocalLimiter {
            create: keyed(limits.create),
            auth_failures: keyed(limits.auth_failures),
            api: keyed(limits.api),
            link_secret: keyed(limits.link_secret),
            password_failures: keyed(limits.password_failures),
            password_link_failures: keyed(limits.password_link_failures),
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
            Bucket::LinkSecret => self.link_secret.as_ref(),
            Bucket::PasswordFailure => self.password_failures.as_ref(),
            Bucket::PasswordLinkFailure => self.password_link_failures.as_ref(),
        }
    }

    fn decide(&self, bucket: Bucket, key: &str) -> Decision {
        let Some(limiter) = self.limiter(bucket) else {
            return Decision::unlimited();
        };
        let rate = self.limits.rate(bucket);
        let limit = rate.count;
        let interval = rate.interval().as_secs_f64();
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset_secs: (f64::from(limit - remaining.min(limit)) * interval).ceil() as u64,
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
        // with the shared counters, until one of the allowance is back.
        let wait = if !d.allowed {
            Some(d.reset_secs)
        } else if bucket.counts_failures() && d.limit > 0 && d.remaining == 0 {
            let interval = self.limits.rate(bucket).interval().as_secs_f64();
            Some(interval.ceil().max(1.0) as u64)
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
            for l in [
                &self.create,
                &self.auth_failures,
                &self.api,
                &self.link_secret,
                &self.password_failures,
                &self.password_link_failures,
            ]
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
            limit: self.limits.rate(bucket).count,
            remaining: 0,
            reset_secs: left.as_secs_f64().ceil().max(1.0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> (u32, u64) {
        let r: Rate = s.parse().unwrap();
        (r.count, r.period.as_secs())
    }

    #[test]
    fn rates_parse_as_a_count_per_period() {
        assert_eq!(rate("30/min"), (30, 60));
        assert_eq!(rate("5/s"), (5, 1));
        assert_eq!(rate("120/h"), (120, 3600));
        assert_eq!(rate("1/h"), (1, 3600));
        assert_eq!(rate("10/hour"), (10, 3600));
        assert_eq!(rate("0").0, 0);
        assert_eq!(rate("0/min").0, 0);
        assert!("30".parse::<Rate>().is_err());
        assert!("x/min".parse::<Rate>().is_err());
        assert!("3/day".parse::<Rate>().is_err());
    }

    fn limits(create: &str, auth_failures: &str) -> Limits {
        Limits {
            create: create.parse().unwrap(),
            auth_failures: auth_failures.parse().unwrap(),
            api: Rate::UNLIMITED,
            link_secret: Rate::UNLIMITED,
            password_failures: auth_failures.parse().unwrap(),
            password_link_failures: Rate::UNLIMITED,
        }
    }

    #[tokio::test]
    async fn local_limits_refuse_past_the_allowance_per_key() {
        let l = LocalLimiter::new(limits("3/min", "2/min"));
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
        let open = LocalLimiter::new(limits("0", "0"));
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

    #[tokio::test]
    async fn hourly_rates_allow_their_count_an_hour() {
        let l = LocalLimiter::new(limits("120/h", "10/h"));
        // 120 at once (not 2: an hourly rate is not turned into a
        // per-minute one), then one every 30 s.
        for n in 0..120u32 {
            let d = l.take(Bucket::Create, "k").await;
            assert!(d.allowed, "creation {n}");
            assert_eq!((d.limit, d.remaining), (120, 119 - n));
            assert_eq!(d.reset_secs, u64::from(n + 1) * 30);
        }
        let d = l.take(Bucket::Create, "k").await;
        assert!(!d.allowed);
        assert!((29..=30).contains(&d.reset_secs), "{d:?}");
        // Ten failures an hour; then locked out until one is back (6 min).
        for n in 0..10 {
            assert!(l.refused(Bucket::AuthFailure, "ip").await.is_none(), "{n}");
            assert!(l.take(Bucket::AuthFailure, "ip").await.allowed);
        }
        let d = l.refused(Bucket::AuthFailure, "ip").await.unwrap();
        assert_eq!(d.limit, 10);
        assert!((359..=360).contains(&d.reset_secs), "{d:?}");
        // Wrong passwords count the same way, in a bucket of their own.
        for n in 0..10 {
            assert!(
                l.refused(Bucket::PasswordFailure, "ip").await.is_none(),
                "{n}"
            );
            l.take(Bucket::PasswordFailure, "ip").await;
        }
        assert!(l.refused(Bucket::PasswordFailure, "ip").await.is_some());
        assert!(l.refused(Bucket::PasswordFailure, "other").await.is_none());
    }

    #[test]
    fn clients_are_ipv4_addresses_and_ipv6_prefixes() {
        let key = |ip: &str, prefix| ip_key(ip.parse().unwrap(), prefix);
        assert_eq!(key("198.51.100.7", 64), "198.51.100.7");
        assert_eq!(key("::ffff:198.51.100.7", 64), "198.51.100.7");
        assert_eq!(key("::ffff:198.51.100.7", 48), "198.51.100.7");
        assert_eq!(key("2001:db8:1:2:3:4:5:6", 64), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::1", 64), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1", 64), key("2001:db8:1:2::1", 64));
        assert_eq!(key("2001:db8:1:2:3::", 48), "2001:db8:1::/48");
        assert_eq!(key("2001:db8::1", 128), "2001:db8::1/128");
        assert_ne!(key("2001:db8::1", 128), key("2001:db8::2", 128));
        assert_eq!(key("::1", 64), "::/64");
    }
}
