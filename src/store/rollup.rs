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
}

impl BatchRollup {
    pub fn add(&mut self, c: &EnrichedClick) {
        let link = c.link_id.0;
        for res in [Resolution::Minute, Resolution::QuarterHour] {
            *self
                .series
                .entry((link, res_code(res), res.floor(c.at), c.bot))
                .or_default() += 1;
        }
        for (dim, value) in rollup_keys(c) {
            for res in [Resolution::Hour, Resolution::Day, Resolution::Week] {
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
