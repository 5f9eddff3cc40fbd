//! Rollup increments of one batch, summed in memory before a SQL backend
//! writes them: one upsert per (link, grain, bucket, …) key per batch,
//! whatever the number of clicks behind it.

use std::collections::HashMap;

/// The batch maps' hasher: foldhash, not SipHash. Their keys are a batch's
/// own rollup keys, and hashing them was a visible share of the writer's
/// time in profiles (issue 13).
pub type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use super::{Resolution, rollup_keys};
use crate::domain::{Dimension, EnrichedClick};

/// Grain in minutes, as stored in the `res` columns.
pub fn res_code(res: Resolution) -> i64 {
    res.grain_ms() / 60_000
}

/// A rollup row's key: (link, res, bucket, bot).
pub type BucketKey = (i64, i64, i64, bool);

/// One batch's rollup increments, summed in memory before they are written.
#[derive(Default)]
pub struct BatchRollup {
    pub series: Map<BucketKey, i64>,
    pub dims: Map<(i64, i64, i64, bool, Dimension, String), i64>,
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
/// rows ([`WINDOW_GRAINS`]) are pruned after [`crate::stats::MINUTE_WINDOW_MS`].
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
    pub fn touched(&self) -> Vec<(i64, i64, i64, i64, i64)> {
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
        for (dim, value) in rollup_keys(c) {
            for res in DIM_GRAINS {
                *self
                    .dims
                    .entry((
                        link,
                        res_code(res),
                        res.floor(c.at),
                        c.bot,
                        dim,
                        value.clone(),
                    ))
                    .or_default() += 1;
            }
        }
        let first = self
            .visitors
            .entry((link, Resolution::Day.floor(c.at), c.visitor))
            .or_insert((c.bot, c.at));
        first.1 = first.1.min(c.at);
    }
}
