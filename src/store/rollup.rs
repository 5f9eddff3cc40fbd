//! Rollup increments of one batch, summed in memory before a SQL backend
//! writes them: one upsert per (link, grain, bucket, …) key per batch,
//! whatever the number of clicks behind it.

use std::collections::HashMap;

/// The batch maps' hasher: foldhash, not SipHash. Their keys are a batch's
/// own rollup keys, and hashing them was a visible share of the writer's
/// time in profiles (issue 13).
pub type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use super::Resolution;
use crate::domain::{Dimension, EnrichedClick};

/// How long minute-grain breakdown and visitor rollups are kept: range edges
/// this recent are honoured to the minute, older ones to the quarter hour
/// (which every zone's hours and days are aligned to). A store constant
/// (copies into DynamoDB cut there), used by `stats`.
pub const MINUTE_WINDOW_MS: i64 = 2 * 86_400_000;

/// Grain in minutes, as stored in the `res` columns.
pub fn res_code(res: Resolution) -> i64 {
    res.grain_ms() / 60_000
}

/// A rollup row's key: (link, res, bucket, bot).
pub type BucketKey = (i64, i64, i64, bool);

/// A breakdown row's key: (link, res, bucket, bot, dimension, value).
pub type DimKey = (i64, i64, i64, bool, Dimension, String);

/// One batch's rollup increments, summed in memory before they are written.
#[derive(Default)]
pub struct BatchRollup {
    pub series: Map<BucketKey, i64>,
    /// Every grain's breakdown counts, made from `minute_dims` when asked
    /// for (`dims`, `take_dims`, `touched`).
    dims: Map<DimKey, i64>,
    /// Breakdown counts at the minute, by (link, minute, bot, dimension)
    /// and then value. A click costs one lookup per dimension here, by the
    /// value borrowed from the click (no allocation unless the value is
    /// new to the batch); the coarser grains are summed from these once per
    /// batch. Adding each click to every grain directly cost six lookups
    /// and six owned values per dimension, a quarter of the writer's time
    /// (perf, issue 13).
    minute_dims: Map<(i64, i64, bool, Dimension), Map<String, i64>>,
    /// (link, day, visitor) → (bot, first click in this batch).
    pub visitors: Map<(i64, i64, i64), (bool, i64)>,
    /// (link, bot) → clicks: the all-time totals.
    pub totals: Map<(i64, bool), i64>,
    /// (link, segment) pairs this batch counted clicks under: the segments'
    /// list (`link_segments`), so that deleting a link finds them.
    pub segments: Map<(i64, i64), ()>,
}

/// Grains of the series rollup (`rollup_series`), kept for ever.
pub const SERIES_GRAINS: [Resolution; 2] = [Resolution::Minute, Resolution::QuarterHour];
/// Grains of the breakdown rollup (`rollup_dims`); minute and five-minute
/// rows ([`WINDOW_GRAINS`]) are pruned after [`MINUTE_WINDOW_MS`].
pub const DIM_GRAINS: [Resolution; 6] = [
    Resolution::Minute,
    Resolution::FiveMinutes,
    Resolution::QuarterHour,
    Resolution::Hour,
    Resolution::Day,
    Resolution::Week,
];
/// Grains of the new-visitor rollup (`rollup_visitors`); minute and
/// five-minute rows are pruned like the breakdowns'.
pub const VISITOR_GRAINS: [Resolution; 5] = [
    Resolution::Minute,
    Resolution::FiveMinutes,
    Resolution::QuarterHour,
    Resolution::Hour,
    Resolution::Day,
];

/// Grains of breakdowns and visitors kept only for the minute window: range
/// edges older than it are quarter-hour aligned and never read them.
pub const WINDOW_GRAINS: [Resolution; 2] = [Resolution::Minute, Resolution::FiveMinutes];

impl BatchRollup {
    /// Every breakdown bucket this batch adds to, as (closes at, link, res,
    /// bucket, rows written), sorted: the sealer's to-do list
    /// (`rollup_dirty`, see `store::pack`).
    pub fn touched(&mut self) -> Vec<(i64, i64, i64, i64, i64)> {
        self.fold();
        let mut rows: Map<(i64, i64, i64), i64> = Map::default();
        for &(link, res, bucket, ..) in self.dims.keys() {
            *rows.entry((link, res, bucket)).or_default() += 1;
        }
        let mut out: Vec<(i64, i64, i64, i64, i64)> = rows
            .into_iter()
            .map(|((link, res, bucket), n)| (bucket + res * 60_000, link, res, bucket, n))
            .collect();
        out.sort_unstable();
        out
    }

    /// Every grain's breakdown increments of the batch.
    pub fn dims(&mut self) -> &Map<DimKey, i64> {
        self.fold();
        &self.dims
    }

    /// [`Self::dims`], taken out.
    pub fn take_dims(&mut self) -> Map<DimKey, i64> {
        self.fold();
        std::mem::take(&mut self.dims)
    }

    /// Adds the minute counts into every grain of `dims`. Each coarser
    /// bucket starts on a whole minute, so flooring a click's minute is
    /// flooring its time.
    fn fold(&mut self) {
        for ((link, minute, bot, dim), values) in self.minute_dims.drain() {
            for (value, n) in values {
                for res in DIM_GRAINS {
                    *self
                        .dims
                        .entry((
                            link,
                            res_code(res),
                            res.floor(minute),
                            bot,
                            dim,
                            value.clone(),
                        ))
                        .or_default() += n;
                }
            }
        }
    }

    /// Adds clicks a source counted: to the totals, the series and the
    /// breakdowns at the minute of `at`; no visitors.
    pub fn add_counted(&mut self, c: &super::CountedClicks) {
        let link = c.link.0;
        let n = c.clicks as i64;
        if n > 0 {
            *self.totals.entry((link, c.bot)).or_default() += n;
            for res in SERIES_GRAINS {
                *self
                    .series
                    .entry((link, res_code(res), res.floor(c.at), c.bot))
                    .or_default() += n;
            }
        }
        let minute = Resolution::Minute.floor(c.at);
        for (dim, value, k) in &c.dims {
            *self
                .minute_dims
                .entry((link, minute, c.bot, *dim))
                .or_default()
                .entry(value.clone())
                .or_default() += *k as i64;
        }
    }

    /// Adds a new click, and its copy under its variant's segment (see
    /// [`EnrichedClick::segment_copy`]).
    pub fn add(&mut self, c: &EnrichedClick) {
        self.add_one(c);
        if let Some(copy) = c.segment_copy() {
            self.segments.insert((c.link_id.0, copy.link_id.0), ());
            self.add_one(&copy);
        }
    }

    fn add_one(&mut self, c: &EnrichedClick) {
        let link = c.link_id.0;
        *self.totals.entry((link, c.bot)).or_default() += 1;
        for res in SERIES_GRAINS {
            *self
                .series
                .entry((link, res_code(res), res.floor(c.at), c.bot))
                .or_default() += 1;
        }
        let minute = Resolution::Minute.floor(c.at);
        for dim in Dimension::ALL {
            let Some(value) = dim.value_ref(c) else {
                continue;
            };
            let values = self
                .minute_dims
                .entry((link, minute, c.bot, dim))
                .or_default();
            match values.get_mut(value.as_ref()) {
                Some(n) => *n += 1,
                None => {
                    values.insert(value.into_owned(), 1);
                }
            }
        }
        let first = self
            .visitors
            .entry((link, Resolution::Day.floor(c.at), c.visitor))
            .or_insert((c.bot, c.at));
        first.1 = first.1.min(c.at);
    }
}
