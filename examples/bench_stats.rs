//! Benchmark: stats latency on a link with many clicks (default 10M over 90
//! days), answered from rollups, and every answer checked. Ingests through
//! `ClickStore::record_clicks` (the pipeline's write path) into a SQLite
//! file or a PostgreSQL database, reused when it already holds the clicks.
//!
//! The clicks are a pure function of (CLICKS, their index, the link's
//! creation time, which ends the 90 days), so a reused file's clicks are
//! generated again rather than trusted. Every answer's total, unique
//! visitors, series (every bucket) and breakdowns (the top 10 the timed
//! query returns, and each breakdown in full, whose sum is the total) must
//! equal a count made here, click by click, without hop's stats code; any
//! difference is printed and the example exits non-zero.
//!
//! Usage: bench_stats DB_PATH|postgres://… [CLICKS]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Offset, Timelike};
use chrono_tz::Tz;
use hop::domain::{DeviceType, Dimension, EnrichedClick, LinkId, Slug, Utm};
use hop::stats::{Interval, LinkStats, StatsQuery, link_stats};
use hop::store::{Store, TimeRange};
use hop::testing::{link, widened};
use rand::{Rng, SeedableRng};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// Clicks per `record_clicks` call, and per generator seed.
const BATCH: u64 = 10_000;

const BROWSERS: [&str; 4] = ["Chrome", "Firefox", "Safari", "Edge"];
const OSES: [&str; 5] = ["Windows", "macOS", "Linux", "iOS", "Android"];
const DEVICES: [DeviceType; 4] = [
    DeviceType::Desktop,
    DeviceType::Mobile,
    DeviceType::Tablet,
    DeviceType::Bot,
];

/// One generated click as small numbers: what the check counts. Codes per
/// breakdown: country 0..50; city 0..300 (six per country); referrer 0 for
/// none, else 1..=20; browser, OS, device (3: bot) index the tables above;
/// UTM source 0 for none, else 1..=10.
struct Spec {
    at: i64,
    event: u128,
    visitor: i64,
    bot: bool,
    codes: [usize; 7],
}

/// The breakdowns a spec has codes for, in `Spec::codes` order, and how
/// many codes each has. UTM medium and campaign are never set.
const CODED: [(Dimension, usize); 7] = [
    (Dimension::Country, 50),
    (Dimension::City, 300),
    (Dimension::Referrer, 21),
    (Dimension::Browser, 4),
    (Dimension::Os, 5),
    (Dimension::Device, 4),
    (Dimension::UtmSource, 11),
];

/// The clicks of batch `b` (indices `b * BATCH ..`, at most `n`), spread
/// evenly over the 90 days before `end`, in time order. Seeded by the batch
/// alone, so any batch can be made again.
fn batch(b: u64, n: u64, end: i64) -> Vec<Spec> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(b);
    let start = end - 90 * DAY;
    (b * BATCH..((b + 1) * BATCH).min(n))
        .map(|i| {
            let country = rng.random_range(0..50);
            // Bot-ness goes with the visitor (its hash covers the user
            // agent), as it does in hop.
            let visitor = rng.random_range(0..2_000_000i64);
            let bot = visitor % 20 == 0;
            Spec {
                at: start + (i as i64 * 90 * DAY) / n as i64,
                event: rng.random(),
                visitor,
                bot,
                codes: [
                    country,
                    country * 6 + rng.random_range(0..6),
                    if rng.random_ratio(1, 2) {
                        1 + rng.random_range(0..20)
                    } else {
                        0
                    },
                    rng.random_range(0..4),
                    rng.random_range(0..5),
                    if bot { 3 } else { rng.random_range(0..3) },
                    if rng.random_ratio(1, 3) {
                        1 + rng.random_range(0..10)
                    } else {
                        0
                    },
                ],
            }
        })
        .collect()
}

fn click(link: LinkId, s: &Spec) -> EnrichedClick {
    let [country, city, referrer, browser, os, device, source] = s.codes;
    EnrichedClick {
        event_id: uuid::Uuid::from_u128(s.event),
        link_id: link,
        at: s.at,
        bot: s.bot,
        country: Some(format!("C{country}")),
        city: Some(format!("City{city}")),
        browser: BROWSERS[browser].into(),
        os: OSES[os].into(),
        device: DEVICES[device],
        referrer_host: (referrer > 0).then(|| format!("ref{}.example", referrer - 1)),
        utm: Utm {
            source: (source > 0).then(|| format!("src{}", source - 1)),
            medium: None,
            campaign: None,
        },
        visitor: s.visitor,
        region: "local".into(),
        route: Default::default(),
    }
}

/// The value a code shows in a breakdown (`None`: not counted), written out
/// here rather than taken from `Dimension::value_of`.
fn label(dim: Dimension, code: usize) -> Option<String> {
    Some(match dim {
        Dimension::Country => format!("C{code}"),
        Dimension::City => format!("City{code}, C{}", code / 6),
        Dimension::Referrer if code == 0 => "direct".into(),
        Dimension::Referrer => format!("ref{}.example", code - 1),
        Dimension::Browser => BROWSERS[code].into(),
        Dimension::Os => OSES[code].into(),
        Dimension::Device => ["desktop", "mobile", "tablet", "bot"][code].into(),
        Dimension::UtmSource if code == 0 => return None,
        Dimension::UtmSource => format!("src{}", code - 1),
        Dimension::UtmMedium | Dimension::UtmCampaign | Dimension::Rule | Dimension::Variant => {
            return None;
        }
    })
}

/// Series buckets found the slow way: a bucket is named by the local time
/// floored to the interval (and, for minutes and hours, its UTC offset); its
/// start is the first instant with that name, found by bisection.
struct Zone {
    tz: Tz,
    interval: Interval,
    starts: HashMap<(NaiveDateTime, i32), i64>,
    /// The last minute asked for and its bucket: clicks come in time order.
    last: (i64, i64),
}

impl Zone {
    fn new(tz: Tz, interval: Interval) -> Zone {
        Zone {
            tz,
            interval,
            starts: HashMap::new(),
            last: (i64::MIN, 0),
        }
    }

    fn name(&self, ms: i64) -> (NaiveDateTime, i32) {
        let local = DateTime::from_timestamp_millis(ms)
            .expect("in range")
            .with_timezone(&self.tz);
        let t = local.naive_local();
        let offset = local.offset().fix().local_minus_utc();
        let (h, m) = (t.hour(), t.minute());
        let at = |h, m| t.date().and_hms_opt(h, m, 0).expect("a valid time");
        match self.interval {
            Interval::Minute => (at(h, m), offset),
            Interval::Hour => (at(h, 0), offset),
            Interval::Day => (at(0, 0), 0),
        }
    }

    fn bucket(&mut self, ms: i64) -> i64 {
        // Every offset here is whole minutes: a minute is in one bucket.
        let minute = ms.div_euclid(MINUTE) * MINUTE;
        if self.last.0 == minute {
            return self.last.1;
        }
        let name = self.name(minute);
        let start = match self.starts.get(&name) {
            Some(s) => *s,
            None => {
                // A bucket is at most 25 hours long.
                let (mut lo, mut hi) = (minute - 26 * HOUR, minute);
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
        };
        self.last = (minute, start);
        start
    }
}

/// What one query must answer, counted click by click.
struct Expected {
    range: TimeRange,
    zone: Zone,
    total: u64,
    visitors: u64,
    series: BTreeMap<i64, u64>,
    counts: [Vec<u64>; 7],
}

impl Expected {
    fn new(range: TimeRange, tz: Tz, interval: Interval) -> Expected {
        let mut zone = Zone::new(tz, interval);
        // Every bucket holding an instant of the range, empty ones too.
        let mut series = BTreeMap::new();
        let mut minute = range.from.div_euclid(MINUTE) * MINUTE;
        while minute < range.to {
            series.insert(zone.bucket(minute), 0);
            minute += MINUTE;
        }
        Expected {
            range,
            zone,
            total: 0,
            visitors: 0,
            series,
            counts: CODED.map(|(_, k)| vec![0; k]),
        }
    }

    fn inside(&self, at: i64) -> bool {
        at >= self.range.from && at < self.range.to
    }

    /// Counts a human click (bots are left out, as the queries ask);
    /// `first` says whether it is its visitor's first that UTC day.
    fn count(&mut self, s: &Spec, first: bool) {
        if !self.inside(s.at) {
            return;
        }
        self.total += 1;
        self.visitors += u64::from(first);
        *self.series.entry(self.zone.bucket(s.at)).or_default() += 1;
        for (counts, code) in self.counts.iter_mut().zip(s.codes) {
            counts[code] += 1;
        }
    }

    /// Each breakdown in full, most clicks first, then by value.
    fn breakdowns(&self) -> BTreeMap<Dimension, Vec<(String, u64)>> {
        let mut out: BTreeMap<Dimension, Vec<(String, u64)>> = Dimension::ALL
            .into_iter()
            .map(|d| (d, Vec::new()))
            .collect();
        for ((dim, _), counts) in CODED.iter().zip(&self.counts) {
            let entries = out.entry(*dim).or_default();
            for (code, clicks) in counts.iter().enumerate() {
                if let (Some(value), true) = (label(*dim, code), *clicks > 0) {
                    entries.push((value, *clicks));
                }
            }
            entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        out
    }

    /// How `got` differs from this, or `None`; breakdowns cut to `top`.
    fn differs(&self, got: &LinkStats, top: usize) -> Option<String> {
        if got.range != self.range {
            return Some(format!(
                "range counted {:?} (want {:?})",
                got.range, self.range
            ));
        }
        let want_series: Vec<(i64, u64)> = self.series.iter().map(|(b, n)| (*b, *n)).collect();
        if got.total_clicks != self.total {
            return Some(format!("total {} (want {})", got.total_clicks, self.total));
        }
        if got.unique_visitors != self.visitors {
            return Some(format!(
                "unique visitors {} (want {})",
                got.unique_visitors, self.visitors
            ));
        }
        if got.series != want_series {
            let at = got
                .series
                .iter()
                .zip(&want_series)
                .position(|(g, w)| g != w)
                .unwrap_or(got.series.len().min(want_series.len()));
            return Some(format!(
                "series ({} buckets, want {}) differ at bucket {at}: {:?} (want {:?})",
                got.series.len(),
                want_series.len(),
                got.series.get(at),
                want_series.get(at)
            ));
        }
        for (dim, mut want) in self.breakdowns() {
            want.truncate(top);
            let got = got.top.get(&dim).cloned().unwrap_or_default();
            if got != want {
                return Some(format!("{dim:?} breakdown: {}", entries_diff(&got, &want)));
            }
            // Every click has a value in these, so they add up to the total.
            let whole = !matches!(
                dim,
                Dimension::UtmSource | Dimension::UtmMedium | Dimension::UtmCampaign
            );
            if top == usize::MAX && whole {
                let sum: u64 = got.iter().map(|(_, n)| n).sum();
                if sum != self.total {
                    return Some(format!("{dim:?} breakdown sums to {sum}, not the total"));
                }
            }
        }
        None
    }
}

/// The entries of a breakdown that differ (a few), or that the order does.
fn entries_diff(got: &[(String, u64)], want: &[(String, u64)]) -> String {
    let got: BTreeMap<&str, u64> = got.iter().map(|(v, n)| (v.as_str(), *n)).collect();
    let want: BTreeMap<&str, u64> = want.iter().map(|(v, n)| (v.as_str(), *n)).collect();
    let values: BTreeSet<&str> = got.keys().chain(want.keys()).copied().collect();
    let differ: Vec<String> = values
        .into_iter()
        .filter(|v| got.get(v) != want.get(v))
        .map(|v| format!("{v:?} {:?} (want {:?})", got.get(v), want.get(v)))
        .collect();
    if differ.is_empty() {
        "the same entries in another order".into()
    } else {
        format!(
            "{} entries differ: {}",
            differ.len(),
            differ[..differ.len().min(5)].join(", ")
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/bench-stats.db".into());
    let n: u64 = std::env::args()
        .nth(2)
        .map_or(Ok(10_000_000), |s| s.parse())?;
    anyhow::ensure!(n > 0, "CLICKS must be at least 1");
    let store: Box<dyn Store> = if path.starts_with("postgres://") {
        Box::new(hop::store::postgres::PgStore::open(&path, true).await?)
    } else {
        Box::new(
            hop::store::sqlite::SqliteStore::open(
                std::path::Path::new(&path),
                hop::store::DEFAULT_SQLITE_CACHE_MIB,
                true,
            )
            .await?,
        )
    };
    // One link per click count, so a file can hold several sizes.
    let slug = Slug::parse(&format!("big-{n}"))?;
    let l = match store.link_by_slug(&slug).await? {
        Some(l) => l,
        None => {
            let l = link(slug.as_str(), None);
            store.insert_link(&l).await?.expect("fresh slug");
            l
        }
    };
    // The clicks' 90 days end when the link was created.
    let end = l.created_at.timestamp_millis();
    let start = end - 90 * DAY;
    let have = store.click_totals(&[l.id], true).await?[&l.id];
    anyhow::ensure!(
        have <= n,
        "FAIL: {path} holds {have} clicks for {slug}, more than {n}"
    );
    if have < n {
        let started = Instant::now();
        let mut added = 0;
        // Batches are written whole (one transaction each), so `have` is a
        // multiple of BATCH; a replayed click would count once anyway.
        for b in have / BATCH..n.div_ceil(BATCH) {
            let clicks: Vec<_> = batch(b, n, end).iter().map(|s| click(l.id, s)).collect();
            added += store.record_clicks(&clicks).await?;
            let done = (b + 1) * BATCH;
            if done.is_multiple_of(1_000_000) {
                eprintln!(
                    "ingested {done} clicks ({:.0}/s)",
                    (done - have) as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        anyhow::ensure!(
            have + added == n,
            "FAIL: record_clicks stored {added} new clicks on top of {have}, for {n}"
        );
    }

    // What a server's upkeep does in the background: prune the minute
    // rows older than the window, then seal every closed bucket (on a
    // reused file, only what is not sealed yet).
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp_millis();
    store
        .prune_minute_rollups(
            now - hop::stats::MINUTE_WINDOW_MS - hop::stats::MINUTE_PRUNE_SLACK_MS,
        )
        .await?;
    let sealed = hop::store::pack::seal_closed(&*store, now, std::time::Duration::MAX).await?;
    eprintln!(
        "pruned and sealed {sealed} buckets in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let paris: Tz = "Europe/Paris".parse()?;
    let kolkata: Tz = "Asia/Kolkata".parse()?;
    let hour = end.div_euclid(HOUR) * HOUR;
    let now = chrono::Utc::now().timestamp_millis();
    let auto = |from: i64, to: i64| Interval::auto(TimeRange { from, to });
    // (name, from, to, interval, zone): the clicks end at `end`, so that is
    // "now" for the data; the default range starts at the link's creation.
    let cases = [
        ("90 days by day, UTC", start, end, Interval::Day, Tz::UTC),
        (
            "90 days by day, Europe/Paris",
            start,
            end,
            Interval::Day,
            paris,
        ),
        (
            "30 days by hour, Europe/Paris",
            end - 30 * DAY,
            end,
            Interval::Hour,
            paris,
        ),
        (
            "30 days by day",
            end - 30 * DAY,
            end,
            Interval::Day,
            Tz::UTC,
        ),
        (
            "7 days by day, Asia/Kolkata",
            end - 7 * DAY,
            end,
            Interval::Day,
            kolkata,
        ),
        (
            "24 h by hour, Europe/Paris",
            end - DAY,
            end,
            Interval::Hour,
            paris,
        ),
        (
            "last hour by minute",
            end - HOUR,
            end,
            Interval::Minute,
            Tz::UTC,
        ),
        (
            "custom :07:13 to :52:41",
            hour - DAY + 7 * MINUTE + 13_000,
            hour - HOUR + 52 * MINUTE + 41_000,
            Interval::Hour,
            Tz::UTC,
        ),
        // The API's default: from the start of the link's UTC day to now.
        (
            "default range",
            end.div_euclid(DAY) * DAY,
            now + 1,
            auto(end.div_euclid(DAY) * DAY, now + 1),
            Tz::UTC,
        ),
    ];
    let minute_since = StatsQuery::minute_since_now();

    // The answers, counted from the clicks made again, over the range each
    // answer must say it counted.
    let checking = Instant::now();
    let mut expected: Vec<Expected> = cases
        .iter()
        .map(|(_, from, to, interval, tz)| {
            let (counted, shown) = widened(
                TimeRange {
                    from: *from,
                    to: *to,
                },
                minute_since,
                now,
            );
            // No click is after now: the shown range holds every counted one.
            let mut e = Expected::new(shown, *tz, *interval);
            e.range = counted;
            e
        })
        .collect();
    let (mut all, mut humans) = (0u64, 0u64);
    // Visitors seen on the current UTC day.
    let (mut day, mut seen) = (i64::MIN, HashSet::new());
    for b in 0..n.div_ceil(BATCH) {
        for s in batch(b, n, end) {
            all += 1;
            if s.bot {
                continue;
            }
            humans += 1;
            if s.at.div_euclid(DAY) != day {
                day = s.at.div_euclid(DAY);
                seen.clear();
            }
            let first = seen.insert(s.visitor);
            for e in &mut expected {
                e.count(&s, first);
            }
        }
    }
    let mut failures = Vec::new();
    let totals = (
        store.click_totals(&[l.id], true).await?[&l.id],
        store.click_totals(&[l.id], false).await?[&l.id],
    );
    if totals != (all, humans) {
        failures.push(format!(
            "all-time totals (with bots, humans) {totals:?}, want ({all}, {humans})"
        ));
    }
    println!(
        "link has {} clicks over 90 days ({humans} human); expected answers counted in {:.1} s",
        totals.0,
        checking.elapsed().as_secs_f64()
    );

    for ((name, from, to, interval, tz), want) in cases.iter().zip(&expected) {
        let mut q = StatsQuery {
            range: TimeRange {
                from: *from,
                to: *to,
            },
            interval: *interval,
            tz: *tz,
            include_bots: false,
            top: 10,
            minute_since,
            now,
        };
        let mut times = Vec::new();
        let mut wrong = None;
        for _ in 0..15 {
            let t = Instant::now();
            let s = link_stats(store.as_ref(), l.id, &q).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            wrong = wrong.or_else(|| want.differs(&s, q.top));
        }
        // Untimed: every breakdown in full.
        q.top = usize::MAX;
        if wrong.is_none() {
            wrong = want.differs(&link_stats(store.as_ref(), l.id, &q).await?, q.top);
        }
        println!(
            "stats {name:<40} median {:>7.2} ms  (max {:>7.2} ms, {} clicks, {}{})",
            median(times.clone()),
            times.iter().cloned().fold(0.0, f64::max),
            want.total,
            if wrong.is_none() { "exact" } else { "WRONG" },
            if median(times.clone()) < 30.0 && times.iter().all(|t| *t < 100.0) {
                ""
            } else {
                ", OVER TARGET"
            }
        );
        if let Some(w) = wrong {
            failures.push(format!("{name}: {w}"));
        }
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        anyhow::bail!(
            "{} stats answers differ from the clicks written",
            failures.len()
        );
    }
    println!(
        "every answer equals the clicks written: totals, unique visitors, every series bucket, \
         each breakdown's top 10 and in full"
    );
    Ok(())
}
