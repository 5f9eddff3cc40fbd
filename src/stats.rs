//! Link stats from rollups alone. A range is first widened to the precision
//! the rollups keep (to the minute within [`MINUTE_WINDOW_MS`] of now, to
//! the quarter hour before: [`effective_range`]), then split into pieces:
//! the middle aligned to the coarsest grain a rollup has, the leftovers to
//! finer grains, down to the minute. No piece is read from raw clicks, so an
//! answer costs O(buckets) whatever the clicks behind it, and it is exact
//! for the range it says it counted. All pieces are read from one snapshot
//! ([`ClickStore::stats_rows`]).

use std::collections::{BTreeMap, HashMap};

use crate::domain::{Dimension, LinkId};
use crate::store::{ClickStore, Resolution, StatsReads, StoreError, TimeRange};
use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Most buckets one series may have.
pub const MAX_BUCKETS: i64 = 5000;

pub use crate::store::rollup::MINUTE_WINDOW_MS;

/// Minute rows are pruned this long after they leave the window, so that a
/// query deciding its precision a little earlier still finds them.
pub const MINUTE_PRUNE_SLACK_MS: i64 = 3_600_000;

/// Series pieces per interval, breakdown and visitor pieces (coarsest first).
const SERIES_BY_MINUTE: [Resolution; 1] = [Resolution::Minute];
const SERIES_BY_QUARTER: [Resolution; 2] = [Resolution::QuarterHour, Resolution::Minute];
const DIM_PIECES: [Resolution; 6] = [
    Resolution::Week,
    Resolution::Day,
    Resolution::Hour,
    Resolution::QuarterHour,
    Resolution::FiveMinutes,
    Resolution::Minute,
];
const VISITOR_PIECES: [Resolution; 5] = [
    Resolution::Day,
    Resolution::Hour,
    Resolution::QuarterHour,
    Resolution::FiveMinutes,
    Resolution::Minute,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Minute,
    Hour,
    Day,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Interval> {
        match s {
            "minute" => Some(Interval::Minute),
            "hour" => Some(Interval::Hour),
            "day" => Some(Interval::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }

    fn nominal_ms(self) -> i64 {
        match self {
            Interval::Minute => 60_000,
            Interval::Hour => 3_600_000,
            Interval::Day => 86_400_000,
        }
    }

    /// A sensible default for a range: a few hundred buckets at most.
    pub fn auto(range: TimeRange) -> Interval {
        let span = range.to - range.from;
        if span <= 6 * 3_600_000 {
            Interval::Minute
        } else if span <= 14 * 86_400_000 {
            Interval::Hour
        } else {
            Interval::Day
        }
    }
}

#[derive(Debug, Clone)]
pub struct StatsQuery {
    pub range: TimeRange,
    pub interval: Interval,
    pub tz: Tz,
    pub include_bots: bool,
    /// Entries per breakdown.
    pub top: usize,
    /// Range edges at or after this instant are honoured to the minute,
    /// earlier ones to the quarter hour: now − [`MINUTE_WINDOW_MS`] (see
    /// [`StatsQuery::minute_since_now`]).
    pub minute_since: i64,
    /// When the query is asked: no click is stored after it, so a range
    /// reaching past it is counted to the end of its UTC day (see
    /// [`effective_range`]), which reads a day's rows instead of the last
    /// quarter hours' and minutes'.
    pub now: i64,
}

impl StatsQuery {
    /// The `minute_since` of a query asked now.
    pub fn minute_since_now() -> i64 {
        Utc::now().timestamp_millis() - MINUTE_WINDOW_MS
    }

    /// The range shown: `from` floored and `to` ceiled to the precision
    /// kept at each edge (the minute from `minute_since` on, the quarter
    /// hour before), so it holds every instant asked for; series buckets
    /// are listed over it. An empty range stays empty.
    pub fn shown_range(&self) -> TimeRange {
        let grain = |at: i64| {
            if at >= self.minute_since {
                Resolution::Minute
            } else {
                Resolution::QuarterHour
            }
        };
        let from = grain(self.range.from).floor(self.range.from);
        if self.range.to <= self.range.from {
            return TimeRange { from, to: from };
        }
        let g = grain(self.range.to);
        TimeRange {
            from,
            to: g.floor(self.range.to - 1) + g.grain_ms(),
        }
    }

    /// Upper bound of the number of buckets the series will have.
    pub fn bucket_estimate(&self) -> i64 {
        (self.range.to - self.range.from) / self.interval.nominal_ms() + 2
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    /// The range counted: the one asked, widened to whole minutes (or quarter
    /// hours, before the minute window). See [`effective_range`].
    pub range: TimeRange,
    pub total_clicks: u64,
    pub unique_visitors: u64,
    /// Bucket start (UTC milliseconds) and clicks, every bucket present.
    pub series: Vec<(i64, u64)>,
    pub top: BTreeMap<Dimension, Vec<(String, u64)>>,
}

/// Splits `range` into pieces answerable at `grains` (coarsest first), with
/// `Raw` pieces for whatever no grain covers.
pub fn split(range: TimeRange, grains: &[Resolution]) -> Vec<(Resolution, TimeRange)> {
    if range.from >= range.to {
        return Vec::new();
    }
    let Some((&grain, finer)) = grains.split_first() else {
        return vec![(Resolution::Raw, range)];
    };
    let g = grain.grain_ms();
    let start = range.from.div_euclid(g) * g + if range.from.rem_euclid(g) == 0 { 0 } else { g };
    let end = grain.floor(range.to);
    if start >= end {
        return split(range, finer);
    }
    let mut out = split(
        TimeRange {
            from: range.from,
            to: start,
        },
        finer,
    );
    out.push((
        grain,
        TimeRange {
            from: start,
            to: end,
        },
    ));
    out.extend(split(
        TimeRange {
            from: end,
            to: range.to,
        },
        finer,
    ));
    out
}

/// Maps instants to the start of their bucket in a time zone.
#[derive(Debug, Clone, Copy)]
pub struct Bucketer {
    pub tz: Tz,
    pub interval: Interval,
}

impl Bucketer {
    fn offset_ms(&self, ms: i64) -> i64 {
        let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        i64::from(
            self.tz
                .offset_from_utc_datetime(&utc.naive_utc())
                .fix()
                .local_minus_utc(),
        ) * 1000
    }

    fn day_start(&self, date: NaiveDate) -> i64 {
        // Midnight may not exist (DST gaps at 00:00): take the first instant
        // of the day that does.
        for minutes in (0..24 * 60).step_by(15) {
            let local = date.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::minutes(minutes);
            if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
                return t.timestamp_millis();
            }
        }
        date.and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn local_date(&self, ms: i64) -> NaiveDate {
        let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        utc.with_timezone(&self.tz).date_naive()
    }

    /// The first instant after `from`, up to `to`, whose offset is (or,
    /// with `same` false, is not) `off`; the offset changes at most once
    /// between them.
    fn offset_change(&self, from: i64, to: i64, off: i64, same: bool) -> i64 {
        let (mut before, mut after) = (from, to);
        while after - before > 1 {
            let mid = before + (after - before) / 2;
            if (self.offset_ms(mid) == off) == same {
                after = mid;
            } else {
                before = mid;
            }
        }
        after
    }

    /// The start of the bucket holding `ms`: its first instant. An hour
    /// bucket is one local hour at one UTC offset (the repeated hour of a
    /// fall-back is two buckets); a day bucket is one local date.
    pub fn floor(&self, ms: i64) -> i64 {
        match self.interval {
            Interval::Minute => Resolution::Minute.floor(ms),
            Interval::Hour => {
                let off = self.offset_ms(ms);
                let start = Resolution::Hour.floor(ms + off) - off;
                if self.offset_ms(start) == off {
                    start
                } else {
                    // A shift of less than an hour (Lord Howe's 30 minutes,
                    // Chatham's at :45) moved the clocks inside this local
                    // hour: it starts when its offset began, not at a local
                    // time that was skipped or belongs to another bucket.
                    self.offset_change(start, ms, off, true)
                }
            }
            Interval::Day => self.day_start(self.local_date(ms)),
        }
    }

    /// The start of the bucket after the one starting at `bucket`.
    fn next(&self, bucket: i64) -> i64 {
        let next = match self.interval {
            Interval::Minute => bucket + self.interval.nominal_ms(),
            Interval::Hour => {
                // The local hour ends, or the offset changes first.
                let off = self.offset_ms(bucket);
                let end = Resolution::Hour.floor(bucket + off) - off + self.interval.nominal_ms();
                if self.offset_ms(end - 1) == off {
                    end
                } else {
                    self.offset_change(bucket, end - 1, off, false)
                }
            }
            Interval::Day => {
                let d = self.local_date(bucket);
                self.day_start(d.succ_opt().unwrap_or(d))
            }
        };
        next.max(bucket + 60_000)
    }

    /// Every bucket start that overlaps `range` (none for an empty range).
    pub fn buckets(&self, range: TimeRange) -> Vec<i64> {
        let mut out = Vec::new();
        if range.from >= range.to {
            return out;
        }
        let mut b = self.floor(range.from);
        while b < range.to {
            out.push(b);
            b = self.next(b);
        }
        out
    }

    /// Formats a bucket start in the zone, e.g. `2026-03-29T00:00:00+01:00`.
    pub fn format(&self, ms: i64) -> String {
        let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
        utc.with_timezone(&self.tz).to_rfc3339()
    }
}

/// The range a query counts: [`StatsQuery::shown_range`], with a `to`
/// after `now` raised to the end of its UTC day, since nothing is stored
/// after now (a click stamped ahead by a node's clock counts where it is
/// stamped).
pub fn effective_range(q: &StatsQuery) -> TimeRange {
    let shown = q.shown_range();
    if q.range.to > q.now && shown.from < shown.to {
        let to = Resolution::Day.floor(shown.to - 1) + Resolution::Day.grain_ms();
        return TimeRange { to, ..shown };
    }
    shown
}

/// The store reads of a query over an effective (grain-aligned) range.
pub fn plan(range: TimeRange, interval: Interval) -> StatsReads {
    let series: &[Resolution] = match interval {
        Interval::Minute => &SERIES_BY_MINUTE,
        Interval::Hour | Interval::Day => &SERIES_BY_QUARTER,
    };
    StatsReads {
        series: split(range, series),
        dims: split(range, &DIM_PIECES),
        visitors: split(range, &VISITOR_PIECES),
    }
}

/// Answers a stats query from the store's rollups, in one snapshot.
pub async fn link_stats(
    store: &dyn ClickStore,
    link: LinkId,
    q: &StatsQuery,
) -> Result<LinkStats, StoreError> {
    let range = effective_range(q);
    let rows = store
        .stats_rows(link, &plan(range, q.interval), q.include_bots, q.top)
        .await?;

    let bucketer = Bucketer {
        tz: q.tz,
        interval: q.interval,
    };
    let mut series: BTreeMap<i64, u64> = bucketer
        .buckets(q.shown_range())
        .into_iter()
        .map(|b| (b, 0))
        .collect();
    let mut total = 0;
    for (start, clicks) in rows.series {
        *series.entry(bucketer.floor(start)).or_default() += clicks;
        total += clicks;
    }

    let mut dims: HashMap<(Dimension, String), u64> = HashMap::new();
    for d in rows.dims {
        *dims.entry((d.dim, d.value)).or_default() += d.clicks;
    }
    let mut top: BTreeMap<Dimension, Vec<(String, u64)>> = Dimension::ALL
        .into_iter()
        .map(|d| (d, Vec::new()))
        .collect();
    for ((dim, value), clicks) in dims {
        top.entry(dim).or_default().push((value, clicks));
    }
    for entries in top.values_mut() {
        entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        entries.truncate(q.top);
    }

    Ok(LinkStats {
        range,
        total_clicks: total,
        unique_visitors: rows.visitors,
        series: series.into_iter().collect(),
        top,
    })
}

/// The year a timestamp falls in, for sanity checks on user input.
pub fn year_of(ms: i64) -> i32 {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or(0, |t| t.year())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: i64 = 3_600_000;
    const D: i64 = 86_400_000;

    #[test]
    fn split_aligned_and_edges() {
        let r = TimeRange {
            from: D + 90 * 60_000 + 5,
            to: 3 * D + 2 * H + 7,
        };
        let parts = split(r, &[Resolution::Day, Resolution::Hour]);
        let kinds: Vec<_> = parts.iter().map(|p| p.0).collect();
        assert_eq!(
            kinds,
            vec![
                Resolution::Raw,
                Resolution::Hour,
                Resolution::Day,
                Resolution::Hour,
                Resolution::Raw
            ]
        );
        assert_eq!(
            parts[2].1,
            TimeRange {
                from: 2 * D,
                to: 3 * D
            }
        );
        assert!(split(TimeRange { from: 5, to: 5 }, &[Resolution::Day]).is_empty());
    }

    proptest! {
        #[test]
        fn split_tiles_the_range(from in 0i64..10 * D, len in 0i64..5 * D) {
            let r = TimeRange { from, to: from + len };
            let parts = split(r, &[Resolution::Day, Resolution::Hour]);
            let mut at = r.from;
            for (res, p) in &parts {
                prop_assert_eq!(p.from, at);
                prop_assert!(p.from < p.to);
                if *res != Resolution::Raw {
                    prop_assert_eq!(p.from % res.grain_ms(), 0);
                    prop_assert_eq!(p.to % res.grain_ms(), 0);
                } else {
                    prop_assert!(p.to - p.from < 2 * H, "raw pieces stay under two hours");
                }
                at = p.to;
            }
            prop_assert_eq!(at, if parts.is_empty() { r.from } else { r.to });
        }
    }

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn day_buckets_follow_dst_in_paris() {
        let b = Bucketer {
            tz: "Europe/Paris".parse().unwrap(),
            interval: Interval::Day,
        };
        // Paris switched to summer time on 2026-03-29: that day has 23 hours.
        let days = b.buckets(TimeRange {
            from: utc("2026-03-28T12:00:00Z"),
            to: utc("2026-03-30T12:00:00Z"),
        });
        let shown: Vec<_> = days.iter().map(|d| b.format(*d)).collect();
        assert_eq!(
            shown,
            vec![
                "2026-03-28T00:00:00+01:00",
                "2026-03-29T00:00:00+01:00",
                "2026-03-30T00:00:00+02:00"
            ]
        );
        assert_eq!(days[2] - days[1], 23 * H);
        assert_eq!(b.floor(utc("2026-03-29T22:30:00Z")), days[2]);
    }

    #[test]
    fn hour_buckets_in_half_hour_zone() {
        let b = Bucketer {
            tz: "Asia/Kolkata".parse().unwrap(),
            interval: Interval::Hour,
        };
        assert_eq!(
            b.format(b.floor(utc("2026-01-01T10:10:00Z"))),
            "2026-01-01T15:00:00+05:30"
        );
        let hours = b.buckets(TimeRange {
            from: utc("2026-01-01T10:10:00Z"),
            to: utc("2026-01-01T12:10:00Z"),
        });
        assert_eq!(hours.len(), 3);
        // `from == to` is an empty range, even inside a bucket.
        let at = utc("2026-01-01T10:10:00Z");
        assert!(b.buckets(TimeRange { from: at, to: at }).is_empty());
    }

    #[test]
    fn shift_inside_an_hour_starts_a_bucket_when_the_clocks_move() {
        let b = Bucketer {
            tz: "Australia/Lord_Howe".parse().unwrap(),
            interval: Interval::Hour,
        };
        // 2026-10-04 02:00 +10:30 became 02:30 +11:00 (15:30Z).
        let hours = b.buckets(TimeRange {
            from: utc("2026-10-03T14:40:00Z"),
            to: utc("2026-10-03T16:10:00Z"),
        });
        let shown: Vec<_> = hours.iter().map(|d| b.format(*d)).collect();
        assert_eq!(
            shown,
            vec![
                "2026-10-04T01:00:00+10:30",
                "2026-10-04T02:30:00+11:00",
                "2026-10-04T03:00:00+11:00"
            ]
        );
        assert_eq!(b.floor(utc("2026-10-03T15:45:00Z")), hours[1]);
        // 2026-04-05 02:00 +11:00 became 01:30 +10:30 (15:00Z): the repeated
        // half hour is a bucket of its own, starting at 01:30.
        let hours = b.buckets(TimeRange {
            from: utc("2026-04-04T14:10:00Z"),
            to: utc("2026-04-04T15:40:00Z"),
        });
        let shown: Vec<_> = hours.iter().map(|d| b.format(*d)).collect();
        assert_eq!(
            shown,
            vec![
                "2026-04-05T01:00:00+11:00",
                "2026-04-05T01:30:00+10:30",
                "2026-04-05T02:00:00+10:30"
            ]
        );
        // Chatham, 2026-04-05: 03:45 +13:45 became 02:45 +12:45 (14:00Z).
        // Local 03:00 +13:45 and 02:00 +12:45 are the same instant, but
        // not the same hour.
        let b = Bucketer {
            tz: "Pacific/Chatham".parse().unwrap(),
            interval: Interval::Hour,
        };
        let hours = b.buckets(TimeRange {
            from: utc("2026-04-04T13:00:00Z"),
            to: utc("2026-04-04T14:30:00Z"),
        });
        let shown: Vec<_> = hours.iter().map(|d| b.format(*d)).collect();
        assert_eq!(
            shown,
            vec![
                "2026-04-05T02:00:00+13:45",
                "2026-04-05T03:00:00+13:45",
                "2026-04-05T02:45:00+12:45",
                "2026-04-05T03:00:00+12:45"
            ]
        );
    }

    proptest! {
        /// A bucket starts at its first instant: floor is idempotent, never
        /// after the instant, and the next bucket starts where this one ends.
        #[test]
        fn buckets_start_at_their_first_instant(
            (zone, change) in prop::sample::select(vec![
                ("Australia/Lord_Howe", "2026-04-04T15:00:00Z"),
                ("Australia/Lord_Howe", "2026-10-03T15:30:00Z"),
                ("Europe/Paris", "2026-03-29T01:00:00Z"),
                ("America/New_York", "2026-11-01T06:00:00Z"),
                ("America/St_Johns", "2026-03-08T05:30:00Z"),
                ("Pacific/Chatham", "2026-04-04T14:00:00Z"),
                ("Asia/Kathmandu", "2026-01-01T00:00:00Z"),
            ]),
            interval in prop::sample::select(vec![Interval::Minute, Interval::Hour, Interval::Day]),
            delta in -2 * H..2 * H,
        ) {
            let b = Bucketer { tz: zone.parse().unwrap(), interval };
            let at = utc(change) + delta;
            let start = b.floor(at);
            prop_assert!(start <= at);
            prop_assert_eq!(b.floor(start), start);
            let next = b.next(start);
            prop_assert!(next > at);
            prop_assert_eq!(b.floor(next - 1), start);
        }
    }

    #[test]
    fn fall_back_hour_is_two_buckets() {
        let b = Bucketer {
            tz: "America/New_York".parse().unwrap(),
            interval: Interval::Hour,
        };
        let hours = b.buckets(TimeRange {
            from: utc("2026-11-01T04:00:00Z"),
            to: utc("2026-11-01T08:00:00Z"),
        });
        let shown: Vec<_> = hours.iter().map(|d| b.format(*d)).collect();
        assert_eq!(
            shown,
            vec![
                "2026-11-01T00:00:00-04:00",
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T02:00:00-05:00"
            ]
        );
    }
}
