//! `Rate`: a count per period, as the rate-limit flags give it (`30/min`).
//! A plain value here so that the flag parser (config) holds rates without
//! reaching the limiters that enforce them (ratelimit, and in cluster mode
//! Redis).

use std::time::Duration;

/// A rate: `count` per `period` (count 0: unlimited). The period is a
/// whole number of seconds, so that shared counters can use it as their
/// window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate {
        count: 0,
        period: Duration::from_secs(60),
    };

    /// How long one of the allowance takes to come back (GCRA's emission
    /// interval): the period over the count.
    pub fn interval(self) -> Duration {
        (self.period / self.count.max(1)).max(Duration::from_nanos(1))
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `30/min`, `5/s`, `1000/h`, or `0` for no limit.
    fn from_str(s: &str) -> Result<Rate, String> {
        if s.trim() == "0" {
            return Ok(Rate::UNLIMITED);
        }
        let bad = || format!("{s:?}: give a rate like 30/min, 5/s or 1000/h (0: no limit)");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(bad()),
        };
        if count == 0 {
            return Ok(Rate::UNLIMITED);
        }
        Ok(Rate {
            count,
            period: Duration::from_secs(secs),
        })
    }
}
