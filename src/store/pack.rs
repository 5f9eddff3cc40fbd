//! Sealed breakdown buckets: once a rollup bucket has closed, the sealer
//! moves its breakdown rows, one per (value), into one packed row per
//! (link, grain, bucket, dimension, bot): every (value, clicks) of it,
//! postcard-encoded. A read then decodes one row per bucket instead of
//! fetching thousands (docs/architecture.md, "Sealed buckets").
//!
//! Packs and rows add up: a click arriving late for a sealed bucket goes to
//! a row, read beside the pack and folded into it at the next sealing. So
//! answers never depend on whether, or when, a bucket was sealed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{ClickStore, DimCount, StoreError};
use crate::domain::Dimension;

/// How long after a bucket closes it waits to be sealed: the clicks still
/// in queues, or stamped by a node whose clock is a little behind, arrive
/// meanwhile. A later one is a row beside the pack, and the bucket is
/// sealed again at the next run.
pub const SEAL_GRACE_MS: i64 = 10_000;

/// An open bucket with this many breakdown rows written since it was last
/// sealed is sealed so far: during a flood, an open hour takes thousands of
/// rows a minute, and a read of it would fetch them all. Sealed every 5 s
/// (the upkeep tick), a read meets a few seconds' worth.
pub const SEAL_OPEN_ROWS: u64 = 500;

/// Buckets per [`ClickStore::seal_rollups`] call.
const SEAL_ROUND: usize = 100;

/// Seals the buckets closed before `now - SEAL_GRACE_MS`, and the open ones
/// with [`SEAL_OPEN_ROWS`] rows, round by round, until none is left or
/// `budget` is spent (a backlog, as after upgrading a large database, is
/// worked off over several runs). Returns how many.
pub async fn seal_closed(
    store: &dyn ClickStore,
    now: i64,
    budget: Duration,
) -> Result<u64, StoreError> {
    let start = Instant::now();
    let mut sealed = 0;
    loop {
        let n = store
            .seal_rollups(now - SEAL_GRACE_MS, SEAL_OPEN_ROWS, SEAL_ROUND)
            .await?;
        sealed += n;
        if n < SEAL_ROUND as u64 || start.elapsed() >= budget {
            return Ok(sealed);
        }
    }
}

/// Encodes a bucket's (value, clicks) pairs.
pub fn encode<'a>(values: impl IntoIterator<Item = (&'a str, u64)>) -> Vec<u8> {
    let values: Vec<(&str, u64)> = values.into_iter().collect();
    // Strings and integers only: serialising them cannot fail.
    postcard::to_allocvec(&values).expect("a pack of strings and integers")
}

/// Decodes a pack, borrowing its values from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Vec<(&str, u64)>, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("rollup pack: {e}")))
}

/// Sums breakdown counts from rows and packs, borrowing every value, and
/// answers each dimension's top N.
#[derive(Default)]
pub struct DimSums<'a> {
    sums: HashMap<Dimension, HashMap<&'a str, u64>>,
}

impl<'a> DimSums<'a> {
    pub fn add(&mut self, dim: Dimension, value: &'a str, clicks: u64) {
        *self.sums.entry(dim).or_default().entry(value).or_default() += clicks;
    }

    pub fn add_pack(&mut self, dim: Dimension, bytes: &'a [u8]) -> Result<(), StoreError> {
        let values = self.sums.entry(dim).or_default();
        for (value, clicks) in decode(bytes)? {
            *values.entry(value).or_default() += clicks;
        }
        Ok(())
    }

    /// The `top` values of each dimension, most clicks first, ties by value
    /// in byte order (as `stats::link_stats` orders them).
    pub fn top(self, top: usize) -> Vec<DimCount> {
        let mut out = Vec::new();
        for (dim, values) in self.sums {
            let mut values: Vec<(&str, u64)> = values.into_iter().collect();
            let order = |a: &(&str, u64), b: &(&str, u64)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
            if values.len() > top && top > 0 {
                values.select_nth_unstable_by(top - 1, order);
            }
            values.truncate(top);
            values.sort_unstable_by(order);
            out.extend(values.into_iter().map(|(value, clicks)| DimCount {
                dim,
                value: value.to_owned(),
                clicks,
            }));
        }
        out
    }
}

/// A stored dimension code as a [`Dimension`].
pub fn dimension(code: i16) -> Result<Dimension, StoreError> {
    Dimension::from_code(i64::from(code))
        .ok_or_else(|| StoreError::Corrupt(format!("dimension {code}")))
}

/// Decodes packs of (dimension code, bytes) as owned breakdown rows.
pub fn unpack(packs: &[(i16, Vec<u8>)]) -> Result<Vec<DimCount>, StoreError> {
    let mut out = Vec::new();
    for (dim, bytes) in packs {
        let dim = dimension(*dim)?;
        out.extend(decode(bytes)?.into_iter().map(|(value, clicks)| DimCount {
            dim,
            value: value.to_owned(),
            clicks,
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_round_trip_and_reject_garbage() {
        let bytes = encode([("Paris", 3), ("", 1), ("Zürich", u64::MAX)]);
        assert_eq!(
            decode(&bytes).unwrap(),
            vec![("Paris", 3), ("", 1), ("Zürich", u64::MAX)]
        );
        assert!(decode(&[5, 1]).is_err(), "truncated");
        assert!(decode(&[1, 2, 0xff, 0xfe, 1]).is_err(), "not UTF-8");
    }

    #[test]
    fn top_sums_rows_and_packs_and_breaks_ties_by_value() {
        let pack = encode([("b", 2), ("a", 1), ("c", 5)]);
        let mut sums = DimSums::default();
        sums.add_pack(Dimension::City, &pack).unwrap();
        sums.add(Dimension::City, "a", 1);
        sums.add(Dimension::Country, "FR", 7);
        let mut top = sums.top(2);
        top.sort_by_key(|d| d.dim as i64);
        let got: Vec<(Dimension, &str, u64)> = top
            .iter()
            .map(|d| (d.dim, d.value.as_str(), d.clicks))
            .collect();
        assert_eq!(
            got,
            vec![
                (Dimension::Country, "FR", 7),
                (Dimension::City, "c", 5),
                (Dimension::City, "a", 2),
            ]
        );
    }
}
