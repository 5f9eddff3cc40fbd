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
    /// Breakdowns before the minute window, per quarter hour (start, ms):
    /// what `coarsen` leaves of the minutes there.
    pub qdims: BTreeMap<(i64, u8, String), Pair>,
    /// New visitors before the minute window, per quarter hour.
    pub qvisitors: BTreeMap<i64, Pair>,
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
        fn merge<K: Ord + Clone>(into: &mut BTreeMap<K, Pair>, from: &BTreeMap<K, Pair>) {
            for (k, v) in from {
                let e = into.entry(k.clone()).or_default();
                e[0] += v[0];
                e[1] += v[1];
            }
        }
        merge(&mut self.series, &other.series);
        merge(&mut self.dims, &other.dims);
        merge(&mut self.visitors, &other.visitors);
        merge(&mut self.qdims, &other.qdims);
        merge(&mut self.qvisitors, &other.qvisitors);
    }

    /// Moves breakdown and visitor minutes before `before` to their quarter
    /// hours (`ClickStore::prune_minute_rollups`); returns how many minute
    /// entries went.
    pub fn coarsen(&mut self, before: i64) -> u64 {
        let qh = |m: i64| Resolution::QuarterHour.floor(m);
        let keep_dims = self.dims.split_off(&(before, 0, String::new()));
        let old_dims = std::mem::replace(&mut self.dims, keep_dims);
        let keep_visitors = self.visitors.split_off(&before);
        let old_visitors = std::mem::replace(&mut self.visitors, keep_visitors);
        let moved = (old_dims.len() + old_visitors.len()) as u64;
        for ((m, dim, value), v) in old_dims {
            let e = self.qdims.entry((qh(m), dim, value)).or_default();
            e[0] += v[0];
            e[1] += v[1];
        }
        for (m, v) in old_visitors {
            let e = self.qvisitors.entry(qh(m)).or_default();
            e[0] += v[0];
            e[1] += v[1];
        }
        moved
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
        for (k, v) in &self.qdims {
            out.entry(day(k.0)).or_default().qdims.insert(k.clone(), *v);
        }
        for (k, v) in &self.qvisitors {
            out.entry(day(*k)).or_default().qvisitors.insert(*k, *v);
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

    /// Breakdowns over a minute-aligned range at `res`: minutes only at
    /// minute grains (none before the minute window, as in every store),
    /// quarter hours too at coarser ones.
    pub fn dims_in(
        &self,
        res: Resolution,
        range: TimeRange,
        include_bots: bool,
        out: &mut HashMap<(u8, String), i64>,
    ) {
        let from = (range.from, 0, String::new());
        let to = (range.to, 0, String::new());
        let mut add = |map: &BTreeMap<(i64, u8, String), Pair>| {
            for ((_, dim, value), v) in map.range(from.clone()..to.clone()) {
                *out.entry((*dim, value.clone())).or_default() += Self::pick(v, include_bots);
            }
        };
        add(&self.dims);
        if !fine(res) {
            add(&self.qdims);
        }
    }

    pub fn visitors_in(&self, res: Resolution, range: TimeRange, include_bots: bool) -> i64 {
        let sum = |map: &BTreeMap<i64, Pair>| -> i64 {
            map.range(range.from..range.to)
                .map(|(_, v)| Self::pick(v, include_bots))
                .sum()
        };
        sum(&self.visitors) + if fine(res) { 0 } else { sum(&self.qvisitors) }
    }
}

/// Whether a resolution asks for minute precision.
fn fine(res: Resolution) -> bool {
    matches!(
        res,
        Resolution::Raw | Resolution::Minute | Resolution::FiveMinutes
    )
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
