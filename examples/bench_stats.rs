//! Benchmark: stats latency on a link with many clicks (default 10M over 90
//! days), answered from rollups. Ingests through `ClickStore::record_clicks`
//! (the pipeline's write path) into a SQLite file, which is reused when it
//! already holds the clicks.
//! Usage: bench_stats DB_PATH [CLICKS]

use std::time::Instant;

use chrono_tz::Tz;
use hop::domain::{DeviceType, EnrichedClick, LinkId, Slug, Utm};
use hop::stats::{Interval, StatsQuery, link_stats};
use hop::store::conformance::link;
use hop::store::{ClickStore, LinkStore, TimeRange};
use rand::{Rng, SeedableRng};

const DAY: i64 = 86_400_000;

fn click(link: LinkId, at: i64, rng: &mut impl Rng) -> EnrichedClick {
    let country = rng.random_range(0..50);
    let bot = rng.random_ratio(1, 20);
    EnrichedClick {
        event_id: uuid::Uuid::from_u128(rng.random()),
        link_id: link,
        at,
        bot,
        country: Some(format!("C{country}")),
        city: Some(format!("City{}", country * 6 + rng.random_range(0..6))),
        browser: ["Chrome", "Firefox", "Safari", "Edge"][rng.random_range(0..4)].into(),
        os: ["Windows", "macOS", "Linux", "iOS", "Android"][rng.random_range(0..5)].into(),
        device: if bot {
            DeviceType::Bot
        } else {
            [DeviceType::Desktop, DeviceType::Mobile, DeviceType::Tablet][rng.random_range(0..3)]
        },
        referrer_host: rng
            .random_ratio(1, 2)
            .then(|| format!("ref{}.example", rng.random_range(0..20))),
        utm: Utm {
            source: rng
                .random_ratio(1, 3)
                .then(|| format!("src{}", rng.random_range(0..10))),
            medium: None,
            campaign: None,
        },
        visitor: rng.random_range(0..2_000_000),
        region: "local".into(),
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
    let store = hop::store::sqlite::SqliteStore::open(
        std::path::Path::new(&path),
        hop::store::DEFAULT_SQLITE_CACHE_MIB,
        true,
    )
    .await?;
    let slug = Slug::parse("big")?;
    let end = chrono::Utc::now().timestamp_millis();
    let start = end - 90 * DAY;
    let l = match store.link_by_slug(&slug).await? {
        Some(l) => l,
        None => {
            let l = link("big", None);
            store.insert_link(&l).await?.expect("fresh store");
            l
        }
    };
    let have = store.click_totals(&[l.id], true).await?[&l.id];
    if have < n {
        let mut rng = rand::rngs::StdRng::seed_from_u64(have);
        let started = Instant::now();
        let batch = 10_000u64;
        let mut done = have;
        while done < n {
            let k = batch.min(n - done);
            // Clicks in time order, spread evenly over the 90 days.
            let clicks: Vec<_> = (done..done + k)
                .map(|i| click(l.id, start + (i as i64 * 90 * DAY) / n as i64, &mut rng))
                .collect();
            store.record_clicks(&clicks).await?;
            done += k;
            if done % 1_000_000 == 0 {
                eprintln!(
                    "ingested {done} clicks ({:.0}/s)",
                    (done - have) as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let total = store.click_totals(&[l.id], true).await?[&l.id];
    println!("link has {total} clicks over 90 days");
    let paris: Tz = "Europe/Paris".parse()?;
    let cases = [
        (
            "90 days, interval=day, UTC",
            TimeRange {
                from: start,
                to: end,
            },
            Interval::Day,
            Tz::UTC,
        ),
        (
            "90 days, interval=day, Europe/Paris",
            TimeRange {
                from: start,
                to: end,
            },
            Interval::Day,
            paris,
        ),
        (
            "30 days, interval=hour, Europe/Paris",
            TimeRange {
                from: end - 30 * DAY,
                to: end,
            },
            Interval::Hour,
            paris,
        ),
        (
            "24 hours, interval=hour",
            TimeRange {
                from: end - DAY,
                to: end,
            },
            Interval::Hour,
            Tz::UTC,
        ),
        (
            "last hour, interval=minute",
            TimeRange {
                from: end - 3_600_000,
                to: end,
            },
            Interval::Minute,
            Tz::UTC,
        ),
    ];
    for (name, range, interval, tz) in cases {
        let q = StatsQuery {
            range,
            interval,
            tz,
            include_bots: false,
            top: 10,
        };
        let mut times = Vec::new();
        let mut clicks = 0;
        for _ in 0..15 {
            let t = Instant::now();
            let s = link_stats(&store, l.id, &q).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            clicks = s.total_clicks;
        }
        println!(
            "stats {name:<40} median {:>7.2} ms  (max {:>7.2} ms, {clicks} clicks)",
            median(times.clone()),
            times.iter().cloned().fold(0.0, f64::max)
        );
    }
    Ok(())
}
