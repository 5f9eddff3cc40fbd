//! Benchmark: stats latency on a link going viral. One link takes CLICKS
//! clicks (default 2 000 000) all within the last 30 minutes, through the
//! real write path: click events enriched by hop's `Enricher` (user agent,
//! GeoIP when `HOP_GEOIP_DB` is set, referrer, visitor hash), then
//! `ClickStore::record_clicks` in batches of 2 000, as the batch writer
//! does. The clicks arrive in three waves, each spread over the same 30
//! minutes, and after 100 000, 1 000 000 and CLICKS clicks the dashboard's
//! queries are timed, so a reader sees whether the cost grows with the
//! clicks. Each query shape is asked at 12 clock positions (now, and every
//! 5 minutes up to 55 minutes later), 3 times each: which pieces of a range
//! hold the flood depends on where the hour boundaries fall. Printed: the
//! median of all 36, the worst position's median, and the max; the target
//! is the worst position's median under 30 ms and the max under 100 ms.
//! Before each position's queries, the buckets closed by then are sealed
//! (`store::pack::seal_closed`, as a server's upkeep does every 5 s).
//!
//! Every answer is checked: the same enriched clicks go to the in-memory
//! store, which answers from raw clicks (the reference the conformance
//! suite holds every backend to), and each timed answer (one per position)
//! must equal its.
//!
//! Usage: bench_viral STORE [CLICKS], STORE being `sqlite://PATH` or a
//! `postgres://` URL.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DurationRound, TimeDelta, Utc};
use chrono_tz::Tz;
use hop::clicks::Enricher;
use hop::clicks::geo::GeoDb;
use hop::domain::{ClickEvent, LinkId, Utm};
use hop::stats::{Interval, StatsQuery, link_stats};
use hop::store::memory::MemoryStore;
use hop::store::{ClickStore, LinkStore, Store, TimeRange};
use rand::{Rng, SeedableRng};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
const WRITE_BATCH: usize = 2_000;
/// Clock positions each query shape is asked at: now, then every 5 minutes
/// up to 55 minutes later (a dashboard opened during or after the flood),
/// so that the hour and quarter-hour boundaries fall at every place in the
/// flood's half hour.
const POSITIONS: i64 = 12;
const POSITION_STEP: i64 = 5 * MINUTE;
const RUNS_PER_POSITION: usize = 3;

/// Browser user agents of real traffic (desktop, phone, tablet) and a bot.
const UAS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];
const REFERRERS: [&str; 5] = [
    "https://news.ycombinator.com/",
    "https://www.reddit.com/r/rust/",
    "https://t.co/abc",
    "https://www.google.com/",
    "https://mastodon.social/@hop",
];

async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(
            hop::store::sqlite::SqliteStore::open(
                std::path::Path::new(path),
                hop::store::DEFAULT_SQLITE_CACHE_MIB,
                true,
            )
            .await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            hop::store::postgres::PgStore::open(url, true).await?,
        ))
    } else {
        anyhow::bail!("STORE must be sqlite://PATH or a postgres:// URL, not {url}")
    }
}

/// The click events of the whole flood, in time order, over `window`.
fn events(link: LinkId, n: usize, window: TimeRange) -> Vec<ClickEvent> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let span = window.to - window.from;
    (0..n)
        .map(|i| {
            // A few hundred thousand people, from many networks.
            let person: u32 = rng.random_range(0..400_000);
            ClickEvent {
                event_id: uuid::Uuid::from_u128(rng.random()),
                link_id: link,
                at: window.from + (i as i64 * span) / n as i64,
                ip: std::net::IpAddr::from(
                    (person.wrapping_mul(2_654_435_761) | 0x0100_0000).to_be_bytes(),
                ),
                user_agent: Some(UAS[person as usize % UAS.len()].into()),
                referrer: (!person.is_multiple_of(3))
                    .then(|| REFERRERS[person as usize % 5].into()),
                utm: Utm {
                    source: person.is_multiple_of(4).then(|| "newsletter".into()),
                    medium: person.is_multiple_of(8).then(|| "email".into()),
                    campaign: person.is_multiple_of(16).then(|| "launch".into()),
                },
                region: "local".into(),
                withheld: false,
                located: None,
                route: Default::default(),
            }
        })
        .collect()
}

/// The dashboard's queries, asked at `now` on a link created at `created`.
fn queries(now: i64, created: i64) -> Vec<(&'static str, StatsQuery)> {
    let paris: Tz = "Europe/Paris".parse().expect("a zone");
    let kolkata: Tz = "Asia/Kolkata".parse().expect("a zone");
    let hour = now.div_euclid(HOUR) * HOUR;
    let q = |from: i64, to: i64, interval: Option<Interval>, tz: Tz| {
        let range = TimeRange { from, to };
        StatsQuery {
            range,
            interval: interval.unwrap_or_else(|| Interval::auto(range)),
            tz,
            include_bots: false,
            top: 10,
            minute_since: now - hop::stats::MINUTE_WINDOW_MS,
            now,
        }
    };
    vec![
        // The API's default: from the start of the link's UTC day to now.
        (
            "default range",
            q(created.div_euclid(DAY) * DAY, now + 1, None, Tz::UTC),
        ),
        (
            "last hour by minute",
            q(now - HOUR, now + 1, Some(Interval::Minute), Tz::UTC),
        ),
        (
            "24 h by hour, Europe/Paris",
            q(now - DAY, now + 1, Some(Interval::Hour), paris),
        ),
        (
            "7 days by day, Asia/Kolkata",
            q(now - 7 * DAY, now + 1, Some(Interval::Day), kolkata),
        ),
        (
            "30 days by day",
            q(now - 30 * DAY, now + 1, Some(Interval::Day), Tz::UTC),
        ),
        (
            "custom :07:13 to :52:41",
            q(
                hour - DAY + 7 * MINUTE + 13_000,
                hour + 52 * MINUTE + 41_000,
                Some(Interval::Hour),
                Tz::UTC,
            ),
        ),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: bench_viral STORE [CLICKS]"))?;
    let n: usize = std::env::args()
        .nth(2)
        .map_or(Ok(2_000_000), |s| s.parse())?;
    let store = open(&url).await?;
    let reference = MemoryStore::default();
    let geo = match std::env::var("HOP_GEOIP_DB") {
        Ok(p) if !p.is_empty() => Some(GeoDb::open(
            &p.split(',').map(Into::into).collect::<Vec<_>>(),
        )?),
        _ => None,
    };
    let enricher = Enricher::new(geo);

    let now = Utc::now();
    let l = hop::testing::link(&format!("viral-{}", now.timestamp_millis()), None);
    let mut l = l;
    // Created just before the flood, as a link is before it is shared.
    l.created_at = now - TimeDelta::minutes(31);
    store.insert_link(&l).await?.expect("a fresh slug");
    reference.insert_link(&l).await?.expect("a fresh slug");
    let end = now
        .duration_trunc(TimeDelta::seconds(1))?
        .timestamp_millis();
    let window = TimeRange {
        from: end - 30 * MINUTE,
        to: end,
    };
    let all = events(l.id, n, window);
    // Three waves over the same 30 minutes: every 20th click, then every
    // other one, then the rest.
    type Wave = (usize, fn(usize) -> bool);
    let waves: [Wave; 3] = [
        (n.min(100_000), |i| i.is_multiple_of(20)),
        (n.min(1_000_000), |i| {
            i.is_multiple_of(2) && !i.is_multiple_of(20)
        }),
        (n, |i| !i.is_multiple_of(2)),
    ];
    let mut written = 0usize;
    let mut failures = Vec::new();
    for (target, in_wave) in waves {
        let wave: Vec<&ClickEvent> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| in_wave(*i))
            .map(|(_, e)| e)
            .take(target.saturating_sub(written))
            .collect();
        if wave.is_empty() {
            continue;
        }
        let started = Instant::now();
        let mut enriched = Vec::with_capacity(WRITE_BATCH);
        let mut stored = 0;
        for chunk in wave.chunks(WRITE_BATCH) {
            enriched.clear();
            enriched.extend(chunk.iter().map(|e| enricher.enrich(e)));
            stored += store.record_clicks(&enriched).await?;
            reference.record_clicks(&enriched).await?;
        }
        anyhow::ensure!(
            stored == wave.len() as u64,
            "FAIL: stored {stored} of {} clicks",
            wave.len()
        );
        written += wave.len();
        println!(
            "viral link: {written} clicks in the last 30 minutes ({} written at {:.0} clicks/s, enrichment included)",
            wave.len(),
            wave.len() as f64 / started.elapsed().as_secs_f64()
        );
        let asked = Utc::now().timestamp_millis();
        let created = l.created_at.timestamp_millis();
        let shapes = queries(asked, created).len();
        // times[shape][position]: the runs of one shape at one position.
        let mut times = vec![vec![Vec::new(); POSITIONS as usize]; shapes];
        let mut counted = vec![0; shapes];
        let mut sealing = (0, 0.0f64);
        for position in 0..POSITIONS {
            let at = asked + position * POSITION_STEP;
            // What a server's upkeep has done by then: every bucket closed
            // a minute before is sealed (the timing below is apart).
            let t = Instant::now();
            sealing.0 += hop::store::pack::seal_closed(
                store.as_ref(),
                at,
                std::time::Duration::from_secs(3600),
            )
            .await?;
            sealing.1 += t.elapsed().as_secs_f64() * 1000.0;
            for (shape, (name, q)) in queries(at, created).into_iter().enumerate() {
                let mut answer = None;
                for _ in 0..RUNS_PER_POSITION {
                    let t = Instant::now();
                    let s = link_stats(store.as_ref(), l.id, &q).await?;
                    times[shape][position as usize].push(t.elapsed().as_secs_f64() * 1000.0);
                    answer = Some(s);
                }
                let got = answer.expect("RUNS_PER_POSITION > 0");
                let want = link_stats(&reference, l.id, &q).await?;
                if got != want {
                    failures.push(format!(
                        "{written} clicks, {name}, asked {position} × 5 min later: {} clicks, {} visitors (want {}, {})",
                        got.total_clicks, got.unique_visitors, want.total_clicks, want.unique_visitors
                    ));
                }
                counted[shape] = got.total_clicks;
            }
        }
        println!(
            "  sealing closed buckets before each position: {} buckets, {:.0} ms in all",
            sealing.0, sealing.1
        );
        for (shape, (name, _)) in queries(asked, created).into_iter().enumerate() {
            let all: Vec<f64> = times[shape].iter().flatten().copied().collect();
            let worst_position = times[shape]
                .iter()
                .map(|t| median(t.clone()))
                .fold(0.0, f64::max);
            let (med, max) = (median(all.clone()), all.iter().cloned().fold(0.0, f64::max));
            println!(
                "  {written:>9} clicks  {name:<30} median {med:>7.2} ms  worst position {worst_position:>7.2} ms  max {max:>7.2} ms  ({} counted{})",
                counted[shape],
                if worst_position < 30.0 && max < 100.0 {
                    ""
                } else {
                    ", OVER TARGET"
                }
            );
            if std::env::var_os("BENCH_POSITIONS").is_some() {
                let each: Vec<String> = times[shape]
                    .iter()
                    .map(|t| format!("{:.1}", median(t.clone())))
                    .collect();
                println!("      by position: {}", each.join(" "));
            }
        }
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        anyhow::bail!(
            "{} answers differ from the in-memory reference",
            failures.len()
        );
    }
    println!("every answer equals the in-memory store's, counted from raw clicks");
    Ok(())
}
