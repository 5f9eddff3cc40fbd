//! Whole stats answers held to a brute-force reference. [`link_stats`]
//! splits a range into rollup grains and raw edges and buckets the series in
//! the viewer's zone; this case writes random clicks, asks for stats over
//! random ranges, and recomputes every field of the answer the slow way,
//! click by click, with code that shares nothing with `stats` or the stores.
//!
//! What the reference holds hop to:
//! - **Totals and breakdowns**: every click with `from <= at < to` (bots only
//!   with `include_bots`) counts once in the total and once in each breakdown
//!   it has a value for; entries ordered by clicks (most first), then value,
//!   and cut to `top`.
//! - **Series**: a click's bucket is its local time in the zone, floored to
//!   the minute, hour or day. A minute or hour bucket is one local minute or
//!   hour *at one UTC offset* (the repeated hour of a fall-back is two
//!   buckets); a day bucket is one local date, whatever its offsets. A
//!   bucket's start is the first instant that falls in it (not the floored
//!   local time, which a DST gap may skip), and the series lists every bucket
//!   that holds an instant of the range, empty ones too.
//! - **Unique visitors**, as hop defines them (`ClickStore::visitors`,
//!   docs/architecture.md): a visitor is a (UTC day, visitor hash) pair,
//!   counted in a range when the *first* click of that pair (among the
//!   clicks counted: bots only with `include_bots`) falls in the range. So
//!   it is not "distinct hashes in the range": one whose first click that day
//!   came before `from` is not counted even if it clicked again inside the
//!   range, and a hash seen on two UTC days counts twice. The hash covers the
//!   user agent, which decides bot-ness, so a visitor is never both.
//!
//! Cases are seeded: a failure names its seed, and `HOP_STATS_SEED=<seed>`
//! reruns just that case.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike};
use chrono_tz::Tz;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::{insert, link};
use crate::domain::{DeviceType, Dimension, EnrichedClick, LinkId, Utm};
use crate::stats::{Interval, LinkStats, MAX_BUCKETS, StatsQuery, link_stats, plan};
use crate::store::{Resolution, Store, TimeRange};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// Cases per backend; each writes its own link.
const CASES: u64 = 20;
const BASE_SEED: u64 = 0x5eed_0010;

/// Instants where a zone's UTC offset changes (2026), with the zone: clicks
/// of a case gather around one of them.
const TRANSITIONS: [(&str, Tz); 10] = [
    ("2026-03-29T01:00:00Z", chrono_tz::Europe::Paris),
    ("2026-10-25T01:00:00Z", chrono_tz::Europe::Paris),
    ("2026-03-08T07:00:00Z", chrono_tz::America::New_York),
    ("2026-11-01T06:00:00Z", chrono_tz::America::New_York),
    // Lord Howe shifts by 30 minutes: +11:00 → +10:30, and back.
    ("2026-04-04T15:00:00Z", chrono_tz::Australia::Lord_Howe),
    ("2026-10-03T15:30:00Z", chrono_tz::Australia::Lord_Howe),
    // Newfoundland: DST on a half-hour offset (-03:30 / -02:30).
    ("2026-03-08T05:30:00Z", chrono_tz::America::St_Johns),
    ("2026-11-01T04:30:00Z", chrono_tz::America::St_Johns),
    // Chatham: DST on a 45-minute offset (+12:45 / +13:45).
    ("2026-04-04T14:00:00Z", chrono_tz::Pacific::Chatham),
    ("2026-09-26T14:00:00Z", chrono_tz::Pacific::Chatham),
];

/// Zones the stats are asked in: the ones above plus fixed :30 and :45
/// offsets, and UTC.
const ZONES: [Tz; 10] = [
    chrono_tz::UTC,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Australia::Eucla,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::Europe::Paris,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::America::St_Johns,
    chrono_tz::Pacific::Chatham,
    chrono_tz::Pacific::Kiritimati,
];

/// What a user agent makes of a click. The visitor hash covers the user
/// agent, so a visitor keeps its agent (and never is both bot and human).
struct Agent {
    browser: &'static str,
    os: &'static str,
    device: DeviceType,
    bot: bool,
}

const fn agent(browser: &'static str, os: &'static str, device: DeviceType, bot: bool) -> Agent {
    Agent {
        browser,
        os,
        device,
        bot,
    }
}

const AGENTS: [Agent; 11] = [
    agent("Chrome", "Windows 10", DeviceType::Desktop, false),
    agent("Chrome", "Android", DeviceType::Mobile, false),
    agent("Chrome", "Android", DeviceType::Tablet, false),
    agent("Safari", "iOS", DeviceType::Mobile, false),
    agent("Safari", "iOS", DeviceType::Tablet, false),
    agent("Safari", "Mac OSX", DeviceType::Desktop, false),
    agent("Firefox", "Linux", DeviceType::Desktop, false),
    agent("Other", "Other", DeviceType::Other, false),
    // A user agent withheld (DNT, --no-track-ua): a human, unknown.
    agent("unknown", "unknown", DeviceType::Other, false),
    agent("Googlebot", "Other", DeviceType::Bot, true),
    agent("Other", "Linux", DeviceType::Bot, true),
];

const COUNTRIES: [&str; 7] = ["GB", "US", "DE", "FR", "IN", "AU", "NP"];
const CITIES: [&str; 6] = [
    "London",
    "Paris",
    "Kathmandu",
    "Zürich",
    "Washington, D.C.",
    "東京",
];
const REFERRERS: [&str; 5] = [
    "news.ycombinator.com",
    "google.com",
    "t.co",
    "bücher.example",
    "direct.example",
];
const SOURCES: [&str; 5] = ["newsletter", "Newsletter", "twitter", "a%_b", "ünï"];
const MEDIUMS: [&str; 4] = ["email", "social", "cpc", "email "];
const CAMPAIGNS: [&str; 4] = ["spring", "spring'26", "launch", "unknown"];

/// Stats of SQLite, PostgreSQL and the in-memory store equal a brute-force
/// answer over the clicks written, for random ranges, zones and intervals.
pub async fn stats_equal_reference(store: &dyn Store) {
    let only: Option<u64> = std::env::var("HOP_STATS_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    let seeds: Vec<u64> = match only {
        Some(seed) => vec![seed],
        None => (0..CASES).map(|i| BASE_SEED + i).collect(),
    };
    let mut seen = Coverage::default();
    for seed in &seeds {
        stats_case(store, *seed, &mut seen).await;
    }
    if only.is_none() {
        // The generator keeps reaching what it is for: every piece kind of
        // `split`, every interval, every zone, days that are not 24 hours.
        for res in [
            Resolution::Week,
            Resolution::Day,
            Resolution::Hour,
            Resolution::QuarterHour,
            Resolution::FiveMinutes,
            Resolution::Minute,
        ] {
            assert!(seen.pieces.contains(&res), "no query read {res:?}");
        }
        assert_eq!(seen.intervals.len(), 3, "intervals asked");
        assert_eq!(seen.zones.len(), ZONES.len(), "zones asked");
        assert!(seen.odd_days > 0, "no day bucket across a DST change");
        if store.keeps_rollups() {
            assert!(seen.sealed > 0, "no bucket sealed");
        }
    }
}

/// What the queries of a run reached.
#[derive(Default)]
struct Coverage {
    pieces: HashSet<Resolution>,
    intervals: HashSet<&'static str>,
    zones: HashSet<&'static str>,
    /// Day buckets that were not 24 hours long.
    odd_days: usize,
    /// Buckets sealed between batches.
    sealed: u64,
}

async fn stats_case(store: &dyn Store, seed: u64, seen: &mut Coverage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let l = link(&format!("ref{seed}"), None);
    insert(store, &l).await;

    let (center, home) = *TRANSITIONS.choose(&mut rng).unwrap();
    let center = DateTime::parse_from_rfc3339(center)
        .unwrap()
        .timestamp_millis();
    assert_ne!(
        offset_ms(home, center - 1),
        offset_ms(home, center),
        "{} changes its offset at {center}",
        home.name()
    );
    // A few hours to ten days (some spanning a whole epoch week, so the
    // week rollup is read too), around the transition.
    let (before, after) = match rng.random_range(0..4) {
        0 => (
            rng.random_range(HOUR..6 * HOUR),
            rng.random_range(HOUR..6 * HOUR),
        ),
        1 | 2 => (
            rng.random_range(HOUR..2 * DAY),
            rng.random_range(HOUR..2 * DAY),
        ),
        _ => (
            rng.random_range(4 * DAY..6 * DAY),
            rng.random_range(4 * DAY..6 * DAY),
        ),
    };
    let window = TimeRange {
        from: center - before,
        to: center + after,
    };
    let visitors_per_agent = rng.random_range(1..12);
    let n = rng.random_range(200..1200);
    let mut clicks: Vec<EnrichedClick> = Vec::with_capacity(n);
    for _ in 0..n {
        let at = click_time(&mut rng, window, center, &clicks);
        clicks.push(random_click(&mut rng, l.id, at, visitors_per_agent));
    }

    // Written in random batches, in time order or shuffled (so visitors'
    // first clicks arrive late), then one batch replayed.
    let mut order: Vec<&EnrichedClick> = clicks.iter().collect();
    if rng.random_bool(0.5) {
        order.sort_by_key(|c| c.at);
    } else {
        order.shuffle(&mut rng);
    }
    let mut written = 0;
    let mut batches = Vec::new();
    let mut rest = &order[..];
    // Buckets are sealed now and then: those closed by a random point of
    // the window, and open ones with some rows, so later batches add rows
    // to sealed buckets.
    let seal = async |rng: &mut StdRng| {
        if rng.random_ratio(1, 3) {
            let horizon = rng.random_range(window.from..window.to + DAY);
            let open_rows = if rng.random_bool(0.5) {
                rng.random_range(1..40)
            } else {
                u64::MAX
            };
            store
                .seal_rollups(horizon, open_rows, rng.random_range(1..400))
                .await
                .unwrap()
        } else {
            0
        }
    };
    while !rest.is_empty() {
        let k = rng.random_range(1..300).min(rest.len());
        let batch: Vec<EnrichedClick> = rest[..k].iter().map(|c| (*c).clone()).collect();
        written += store.record_clicks(&batch).await.unwrap();
        batches.push(batch);
        rest = &rest[k..];
        seen.sealed += seal(&mut rng).await;
    }
    assert_eq!(written, n as u64, "seed {seed}: every click is new");
    let replay = batches.choose(&mut rng).unwrap();
    assert_eq!(
        store.record_clicks(replay).await.unwrap(),
        0,
        "seed {seed}: a replay adds nothing"
    );
    seen.sealed += seal(&mut rng).await;
    for bots in [false, true] {
        let totals = store.click_totals(&[l.id], bots).await.unwrap();
        let want = clicks.iter().filter(|c| bots || !c.bot).count() as u64;
        assert_eq!(
            totals[&l.id], want,
            "seed {seed}: all-time total, bots {bots}"
        );
    }

    let mut ranges = vec![TimeRange {
        from: window.from - rng.random_range(0..HOUR),
        to: window.to + rng.random_range(0..HOUR),
    }];
    for _ in 0..5 {
        let a = range_edge(&mut rng, window, center, &clicks);
        let b = if rng.random_ratio(1, 12) {
            a
        } else {
            range_edge(&mut rng, window, center, &clicks)
        };
        ranges.push(TimeRange {
            from: a.min(b),
            to: a.max(b),
        });
    }
    for range in ranges {
        for interval in [Interval::Minute, Interval::Hour, Interval::Day] {
            let tz = if rng.random_bool(0.5) {
                home
            } else {
                *ZONES.choose(&mut rng).unwrap()
            };
            let top = if rng.random_ratio(1, 4) {
                rng.random_range(1..4)
            } else {
                100
            };
            // Edges from here on are honoured to the minute, earlier ones
            // to the quarter hour: all, none, or a cut inside the window.
            let minute_since = match rng.random_range(0..3) {
                0 => i64::MIN,
                1 => i64::MAX,
                _ => rng.random_range(window.from..window.to),
            };
            // Asked after every click, or in the middle of them (as if some
            // were stamped ahead by a node's clock).
            let now = if rng.random_ratio(1, 3) {
                rng.random_range(window.from..window.to)
            } else {
                i64::MAX
            };
            let query = |include_bots| StatsQuery {
                range,
                interval,
                tz,
                include_bots,
                top,
                minute_since,
                now,
            };
            if query(false).bucket_estimate() > MAX_BUCKETS {
                continue; // the API refuses these
            }
            let (counted, shown) = widened(range, minute_since, now);
            let mut zone = Zone::new(tz, interval);
            let reference = Reference::new(&clicks, shown, counted, &mut zone);
            let reads = plan(counted, interval);
            for (res, _) in reads
                .series
                .iter()
                .chain(&reads.dims)
                .chain(&reads.visitors)
            {
                assert_ne!(
                    *res,
                    Resolution::Raw,
                    "seed {seed}: a raw read in {reads:?}"
                );
                seen.pieces.insert(*res);
            }
            seen.intervals.insert(interval.as_str());
            seen.zones.insert(tz.name());
            if interval == Interval::Day {
                seen.odd_days += reference
                    .buckets
                    .windows(2)
                    .filter(|w| w[1] - w[0] != DAY)
                    .count();
            }
            for include_bots in [false, true] {
                let q = query(include_bots);
                let got = link_stats(store, l.id, &q).await.unwrap();
                let want = reference.answer(&clicks, &q);
                let ctx = format!(
                    "seed {seed} (rerun with HOP_STATS_SEED={seed}): {} buckets in {}, \
                     [{}, {}) = [{}, {}), include_bots {include_bots}, top {top}",
                    interval.as_str(),
                    tz.name(),
                    show(range.from, chrono_tz::UTC),
                    show(range.to, chrono_tz::UTC),
                    range.from,
                    range.to,
                );
                compare(&got, &want, tz, &ctx);
            }
        }
    }
}

/// The range an answer counts and the one its series lists buckets over,
/// (counted, shown), as documented and written out apart from `stats`:
/// `from` floored and `to` raised to the minute (at or after `minute_since`)
/// or to the quarter hour (before it); the counted `to`, when after `now`,
/// raised further to the end of its UTC day. An empty range stays empty.
pub fn widened(range: TimeRange, minute_since: i64, now: i64) -> (TimeRange, TimeRange) {
    let grain = |at: i64| {
        if at >= minute_since {
            MINUTE
        } else {
            15 * MINUTE
        }
    };
    let ceil = |at: i64, g: i64| at + (g - at.rem_euclid(g)) % g;
    let from = range.from - range.from.rem_euclid(grain(range.from));
    if range.to <= range.from {
        let empty = TimeRange { from, to: from };
        return (empty, empty);
    }
    let to = ceil(range.to, grain(range.to));
    assert!(from <= range.from && to >= range.to);
    let counted_to = if range.to > now { ceil(to, DAY) } else { to };
    (
        TimeRange {
            from,
            to: counted_to,
        },
        TimeRange { from, to },
    )
}

fn compare(got: &LinkStats, want: &LinkStats, tz: Tz, ctx: &str) {
    assert_eq!(got.range, want.range, "range counted, {ctx}");
    assert_eq!(got.total_clicks, want.total_clicks, "total clicks, {ctx}");
    assert_eq!(
        got.unique_visitors, want.unique_visitors,
        "unique visitors, {ctx}"
    );
    if got.series != want.series {
        let at = got
            .series
            .iter()
            .zip(&want.series)
            .position(|(g, w)| g != w)
            .unwrap_or(got.series.len().min(want.series.len()));
        let around = |s: &[(i64, u64)]| {
            s.iter()
                .skip(at.saturating_sub(2))
                .take(5)
                .map(|(b, n)| format!("{} ({b}): {n}", show(*b, tz)))
                .collect::<Vec<_>>()
        };
        panic!(
            "series differ at bucket {at} ({} vs {} buckets)\n  got:  {:?}\n  want: {:?}\n{ctx}",
            got.series.len(),
            want.series.len(),
            around(&got.series),
            around(&want.series),
        );
    }
    for dim in Dimension::ALL {
        assert_eq!(got.top.get(&dim), want.top.get(&dim), "{dim:?}, {ctx}");
    }
    assert_eq!(got.top.len(), want.top.len(), "breakdowns, {ctx}");
}

fn show(ms: i64, tz: Tz) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn random_click(rng: &mut StdRng, link: LinkId, at: i64, visitors_per_agent: i64) -> EnrichedClick {
    fn maybe(rng: &mut StdRng, values: &[&str], none: f64) -> Option<String> {
        (!rng.random_bool(none)).then(|| values.choose(rng).unwrap().to_string())
    }
    let agent_no = rng.random_range(0..AGENTS.len());
    let agent = &AGENTS[agent_no];
    // Few distinct hashes, so visitors come back within a day and across
    // days; spread over i64 (negative too), as SHA-256 prefixes are.
    let client = rng.random_range(0..visitors_per_agent);
    let visitor = ((client * AGENTS.len() as i64 + agent_no as i64) + 1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15_u64 as i64);
    EnrichedClick {
        event_id: uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
        link_id: link,
        at,
        bot: agent.bot,
        country: maybe(rng, &COUNTRIES, 0.15),
        city: maybe(rng, &CITIES, 0.4),
        browser: agent.browser.into(),
        os: agent.os.into(),
        device: agent.device,
        referrer_host: maybe(rng, &REFERRERS, 0.4),
        utm: Utm {
            source: maybe(rng, &SOURCES, 0.5),
            medium: maybe(rng, &MEDIUMS, 0.5),
            campaign: maybe(rng, &CAMPAIGNS, 0.6),
        },
        visitor,
        region: "local".into(),
        route: crate::domain::Route {
            rule: maybe(rng, &["r1", "r2", "default"], 0.5),
            variant: maybe(rng, &["a", "b"], 0.7),
        },
    }
}

/// An instant near `ms` on a boundary that rollups or buckets care about:
/// a UTC minute, quarter hour, hour or day, a local midnight, or the
/// transition itself.
fn near_boundary(rng: &mut StdRng, ms: i64, center: i64) -> i64 {
    let snapped = match rng.random_range(0..6) {
        0 => ms.div_euclid(MINUTE) * MINUTE,
        1 => ms.div_euclid(15 * MINUTE) * 15 * MINUTE,
        2 => ms.div_euclid(HOUR) * HOUR,
        3 => ms.div_euclid(DAY) * DAY,
        4 => {
            let tz = *ZONES.choose(rng).unwrap();
            Zone::new(tz, Interval::Day).bucket(ms)
        }
        _ => center,
    };
    snapped
        + *[0, 0, 1, -1, 999, -1000, 59_999, -60_000]
            .choose(rng)
            .unwrap()
}

fn click_time(rng: &mut StdRng, window: TimeRange, center: i64, earlier: &[EnrichedClick]) -> i64 {
    let uniform = rng.random_range(window.from..window.to);
    let at = match rng.random_range(0..10) {
        0..6 => uniform,
        6..9 => near_boundary(rng, uniform, center),
        // Several clicks in one millisecond.
        _ => earlier.choose(rng).map_or(uniform, |c| c.at),
    };
    at.clamp(window.from, window.to - 1)
}

/// A range edge: anywhere (odd milliseconds), on or next to a boundary, or
/// exactly at a click (which `from` includes and `to` leaves out).
fn range_edge(rng: &mut StdRng, window: TimeRange, center: i64, clicks: &[EnrichedClick]) -> i64 {
    let uniform = rng.random_range(window.from - HOUR..window.to + HOUR);
    match rng.random_range(0..10) {
        0..4 => uniform,
        4..7 => near_boundary(rng, uniform, center),
        _ => clicks.choose(rng).map_or(uniform, |c| c.at),
    }
}

fn offset_ms(tz: Tz, ms: i64) -> i64 {
    let utc = DateTime::from_timestamp_millis(ms).unwrap().naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()) * 1000
}

/// Series buckets in one zone, found the slow way: a bucket is named by the
/// click's local time floored to the interval (and, for minutes and hours,
/// its UTC offset); its start is the first instant with that name, found by
/// bisection and remembered.
struct Zone {
    tz: Tz,
    interval: Interval,
    starts: HashMap<(NaiveDateTime, i64), i64>,
}

impl Zone {
    fn new(tz: Tz, interval: Interval) -> Zone {
        Zone {
            tz,
            interval,
            starts: HashMap::new(),
        }
    }

    fn name(&self, ms: i64) -> (NaiveDateTime, i64) {
        let local = DateTime::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&self.tz);
        let t = local.naive_local();
        let date: NaiveDate = t.date();
        let offset = i64::from(local.offset().fix().local_minus_utc());
        match self.interval {
            Interval::Minute => (date.and_hms_opt(t.hour(), t.minute(), 0).unwrap(), offset),
            Interval::Hour => (date.and_hms_opt(t.hour(), 0, 0).unwrap(), offset),
            Interval::Day => (date.and_hms_opt(0, 0, 0).unwrap(), 0),
        }
    }

    fn bucket(&mut self, ms: i64) -> i64 {
        let name = self.name(ms);
        if let Some(start) = self.starts.get(&name) {
            return *start;
        }
        // Names before `lo` differ (a bucket is at most 25 hours long);
        // bisect for the first instant that has this one.
        let (mut lo, mut hi) = (ms - 26 * HOUR, ms);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.name(mid) == name {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        self.starts.insert(name, hi);
        hi
    }
}

/// The buckets of a range in one zone, and every click's bucket, computed
/// once and shared by the answers with and without bots.
struct Reference {
    range: TimeRange,
    buckets: Vec<i64>,
    click_buckets: Vec<i64>,
}

impl Reference {
    /// Buckets listed over `shown`; clicks counted over `range` (a click
    /// after `shown` adds its own bucket).
    fn new(
        clicks: &[EnrichedClick],
        shown: TimeRange,
        range: TimeRange,
        zone: &mut Zone,
    ) -> Reference {
        // Every offset is whole minutes, so each bucket holding an instant of
        // a (non-empty) range holds the start of that instant's minute.
        let mut buckets = Vec::new();
        let mut minute = shown.from.div_euclid(MINUTE) * MINUTE;
        while minute < shown.to && shown.from < shown.to {
            let b = zone.bucket(minute);
            if buckets.last() != Some(&b) {
                buckets.push(b);
            }
            minute += MINUTE;
        }
        buckets.sort_unstable();
        buckets.dedup();
        let click_buckets = clicks
            .iter()
            .map(|c| {
                if c.at >= range.from && c.at < range.to {
                    zone.bucket(c.at)
                } else {
                    i64::MIN
                }
            })
            .collect();
        Reference {
            range,
            buckets,
            click_buckets,
        }
    }

    fn answer(&self, clicks: &[EnrichedClick], q: &StatsQuery) -> LinkStats {
        let counted = |c: &EnrichedClick| q.include_bots || !c.bot;
        let inside = |c: &EnrichedClick| c.at >= self.range.from && c.at < self.range.to;

        let mut series: BTreeMap<i64, u64> = self.buckets.iter().map(|b| (*b, 0)).collect();
        let mut total = 0;
        let mut values: BTreeMap<Dimension, HashMap<String, u64>> = BTreeMap::new();
        for (c, bucket) in clicks.iter().zip(&self.click_buckets) {
            if !counted(c) || !inside(c) {
                continue;
            }
            total += 1;
            *series.entry(*bucket).or_default() += 1;
            for (dim, value) in breakdown_values(c) {
                *values.entry(dim).or_default().entry(value).or_default() += 1;
            }
        }
        let top = [
            Dimension::Country,
            Dimension::City,
            Dimension::Referrer,
            Dimension::Browser,
            Dimension::Os,
            Dimension::Device,
            Dimension::UtmSource,
            Dimension::UtmMedium,
            Dimension::UtmCampaign,
            Dimension::Rule,
            Dimension::Variant,
        ]
        .into_iter()
        .map(|dim| {
            let mut entries: Vec<(String, u64)> = values
                .remove(&dim)
                .unwrap_or_default()
                .into_iter()
                .collect();
            entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            entries.truncate(q.top);
            (dim, entries)
        })
        .collect();

        // Each (UTC day, hash) pair's first click, over all the link's clicks.
        let mut first: HashMap<(NaiveDate, i64), i64> = HashMap::new();
        for c in clicks.iter().filter(|c| counted(c)) {
            let day = DateTime::from_timestamp_millis(c.at).unwrap().date_naive();
            let at = first.entry((day, c.visitor)).or_insert(c.at);
            *at = (*at).min(c.at);
        }
        let unique_visitors = first
            .values()
            .filter(|at| **at >= self.range.from && **at < self.range.to)
            .count() as u64;

        LinkStats {
            range: self.range,
            total_clicks: total,
            unique_visitors,
            series: series.into_iter().collect(),
            top,
        }
    }
}

/// The value a click shows in each breakdown, written out again here rather
/// than taken from `Dimension::value_of`.
fn breakdown_values(c: &EnrichedClick) -> Vec<(Dimension, String)> {
    let mut out = vec![
        (
            Dimension::Country,
            c.country.as_deref().unwrap_or("unknown").to_owned(),
        ),
        (
            Dimension::City,
            match (c.city.as_deref(), c.country.as_deref()) {
                (None, _) => "unknown".to_owned(),
                (Some(city), None) => city.to_owned(),
                (Some(city), Some(country)) => format!("{city}, {country}"),
            },
        ),
        (
            Dimension::Referrer,
            c.referrer_host.as_deref().unwrap_or("direct").to_owned(),
        ),
        (Dimension::Browser, c.browser.clone()),
        (Dimension::Os, c.os.clone()),
        (
            Dimension::Device,
            match c.device {
                DeviceType::Desktop => "desktop",
                DeviceType::Mobile => "mobile",
                DeviceType::Tablet => "tablet",
                DeviceType::Bot => "bot",
                DeviceType::Other => "other",
            }
            .to_owned(),
        ),
    ];
    for (dim, value) in [
        (Dimension::UtmSource, &c.utm.source),
        (Dimension::UtmMedium, &c.utm.medium),
        (Dimension::UtmCampaign, &c.utm.campaign),
        (Dimension::Rule, &c.route.rule),
        (Dimension::Variant, &c.route.variant),
    ] {
        if let Some(v) = value {
            out.push((dim, v.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn reference_buckets_by_hand() {
        let mut paris = Zone::new(chrono_tz::Europe::Paris, Interval::Day);
        // The 23-hour day of 2026-03-29 starts at its midnight, +01:00.
        assert_eq!(
            paris.bucket(utc("2026-03-29T21:59:59.999Z")),
            utc("2026-03-28T23:00:00Z")
        );
        assert_eq!(
            paris.bucket(utc("2026-03-29T22:00:00Z")),
            utc("2026-03-29T22:00:00Z")
        );
        let mut ny = Zone::new(chrono_tz::America::New_York, Interval::Hour);
        // 01:00 happens twice on 2026-11-01: two buckets.
        assert_eq!(
            ny.bucket(utc("2026-11-01T05:59:00Z")),
            utc("2026-11-01T05:00:00Z")
        );
        assert_eq!(
            ny.bucket(utc("2026-11-01T06:00:00Z")),
            utc("2026-11-01T06:00:00Z")
        );
        let mut lord_howe = Zone::new(chrono_tz::Australia::Lord_Howe, Interval::Hour);
        // Clocks go from 02:00 +10:30 to 02:30 +11:00 at 15:30Z: the hour
        // 02:00-03:00 +11:00 starts at 02:30.
        assert_eq!(
            lord_howe.bucket(utc("2026-10-03T15:45:00Z")),
            utc("2026-10-03T15:30:00Z")
        );
        assert_eq!(
            lord_howe.bucket(utc("2026-10-03T15:15:00Z")),
            utc("2026-10-03T14:30:00Z")
        );
        let mut kathmandu = Zone::new(chrono_tz::Asia::Kathmandu, Interval::Hour);
        assert_eq!(
            kathmandu.bucket(utc("2026-01-01T10:10:00Z")),
            utc("2026-01-01T09:15:00Z")
        );
    }
}
