//! The counts a delta or pack item carries (postcard in one binary
//! attribute), at minute grain, humans and bots apart, and how a stats
//! read is answered from them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::domain::{Dimension, EnrichedClick};
use crate::store::{DimCount, Resolution, StoreError, TimeRange, rollup_keys};

/// `[humans, bots]`.
pub type Pair = [i64; 2];

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Clicks per minute (start, ms).
    pub series: BTreeMap<i64, Pair>,
    /// Clicks per (minute, dimension code, value).
    pub dims: BTreeMap<(i64, u8, String), Pair>,
    /// New visitors per minute: +1 where a visitor's first click of the day
    /// is, −1 where an earlier batch had put it before a later batch
    /// brought an earlier click.
    pub visitors: BTreeMap<i64, Pair>,
}

fn slot(bot: bool) -> usize {
    usize::from(bot)
}

impl Counts {
    pub fn click(&mut self, c: &EnrichedClick) {
        let minute = Resolution::Minute.floor(c.at);
        self.series.entry(minute).or_default()[slot(c.bot)] += 1;
        for (dim, value) in rollup_keys(c) {
            self.dims.entry((minute, dim as u8, value)).or_default()[slot(c.bot)] += 1;
        }
    }

    pub fn visitor(&mut self, at: i64, bot: bool, delta: i64) {
        let minute = Resolution::Minute.floor(at);
        self.visitors.entry(minute).or_default()[slot(bot)] += delta;
    }

    pub fn add(&mut self, other: &Counts) {
        for (k, v) in &other.series {
            let e = self.series.entry(*k).or_default();
            e[0] += v[0];
            e[1] += v[1];
        }
        for (k, v) in &other.dims {
            let e = self.dims.entry(k.clone()).or_default();
            e[0] += v[0];
            e[1] += v[1];
        }
        for (k, v) in &other.visitors {
            let e = self.visitors.entry(*k).or_default();
            e[0] += v[0];
            e[1] += v[1];
        }
    }

    /// These counts split by UTC day.
    pub fn by_day(&self) -> BTreeMap<i64, Counts> {
        let mut out: BTreeMap<i64, Counts> = BTreeMap::new();
        let day = |m: i64| Resolution::Day.floor(m);
        for (k, v) in &self.series {
            out.entry(day(*k)).or_default().series.insert(*k, *v);
        }
        for (k, v) in &self.dims {
            out.entry(day(k.0)).or_default().dims.insert(k.clone(), *v);
        }
        for (k, v) in &self.visitors {
            out.entry(day(*k)).or_default().visitors.insert(*k, *v);
        }
        out
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("counts serialise")
    }

    pub fn decode(bytes: &[u8]) -> Result<Counts, StoreError> {
        postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("counts: {e}")))
    }

    fn pick(v: &Pair, include_bots: bool) -> i64 {
        if include_bots { v[0] + v[1] } else { v[0] }
    }

    /// Clicks per bucket of a minute-aligned range: minutes, or quarter
    /// hours for `QuarterHour`.
    pub fn series_in(
        &self,
        res: Resolution,
        range: TimeRange,
        include_bots: bool,
        out: &mut BTreeMap<i64, i64>,
    ) {
        let bucket = match res {
            Resolution::QuarterHour => Resolution::QuarterHour,
            _ => Resolution::Minute,
        };
        for (m, v) in self.series.range(range.from..range.to) {
            *out.entry(bucket.floor(*m)).or_default() += Self::pick(v, include_bots);
        }
    }

    pub fn dims_in(
        &self,
        range: TimeRange,
        include_bots: bool,
        out: &mut HashMap<(u8, String), i64>,
    ) {
        for ((m, dim, value), v) in &self.dims {
            if *m >= range.from && *m < range.to {
                *out.entry((*dim, value.clone())).or_default() += Self::pick(v, include_bots);
            }
        }
    }

    pub fn visitors_in(&self, range: TimeRange, include_bots: bool) -> i64 {
        self.visitors
            .range(range.from..range.to)
            .map(|(_, v)| Self::pick(v, include_bots))
            .sum()
    }
}

/// Breakdown totals as the store trait returns them (zero counts left out).
pub fn dim_counts(dims: HashMap<(u8, String), i64>) -> Result<Vec<DimCount>, StoreError> {
    dims.into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|((dim, value), clicks)| {
            Ok(DimCount {
                dim: Dimension::from_code(i64::from(dim))
                    .ok_or_else(|| StoreError::Corrupt(format!("dimension {dim}")))?,
                value,
                clicks: clicks as u64,
            })
        })
        .collect()
}
