//! Rollup increments of one batch, summed in memory before a SQL backend
//! writes them: one upsert per (link, grain, bucket, …) key per batch,
//! whatever the number of clicks behind it.

use std::collections::HashMap;

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
    pub series: HashMap<BucketKey, i64>,
    pub dims: HashMap<(i64, i64, i64, bool, Dimension, String), i64>,
    /// (link, day, visitor) → (bot, first click in this batch).
    pub visitors: HashMap<(i64, i64, i64), (bool, i64)>,
    /// (link, bot) → clicks: the all-time totals.
    pub totals: HashMap<(i64, bool), i64>,
}

/// Grains of the series rollup (`rollup_series`), kept for ever.
pub const SERIES_GRAINS: [Resolution; 2] = [Resolution::Minute, Resolution::QuarterHour];
/// Grains of the breakdown rollup (`rollup_dims`); minute rows are pruned
/// after [`crate::stats::MINUTE_WINDOW_MS`].
pub const DIM_GRAINS: [Resolution; 4] = [
    Resolution::Minute,
    Resolution::QuarterHour,
    Resolution::Day,
    Resolution::Week,
];
/// Grains of the new-visitor rollup (`rollup_visitors`); minute rows are
/// pruned like the breakdowns'.
pub const VISITOR_GRAINS: [Resolution; 3] =
    [Resolution::Minute, Resolution::QuarterHour, Resolution::Day];

impl BatchRollup {
    pub fn add(&mut self, c: &EnrichedClick) {
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
