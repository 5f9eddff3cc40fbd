//! Benchmark: clicks per second the embedded pipeline (queue → enrich →
//! SQLite batch writer) sustains, and that the final count is exact.
//! Usage: bench_pipeline [CLICKS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hop::clicks::{BatchWriter, ClickQueue, ClickSink, Enricher};
use hop::domain::{ClickEvent, Utm};
use hop::store::conformance::link;
use hop::store::{ClickStore, LinkStore};
use tokio_util::sync::CancellationToken;

const UAS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(300_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(
        hop::store::sqlite::SqliteStore::open(
            &dir.path().join("hop.db"),
            hop::store::DEFAULT_SQLITE_CACHE_MIB,
            true,
        )
        .await?,
    );
    let l = link("bench", None);
    store.insert_link(&l).await?.expect("fresh store");
    let geo = std::env::var("HOP_GEOIP_DB").ok().map(|p| {
        let paths: Vec<_> = p.split(',').map(Into::into).collect();
        hop::clicks::geo::GeoDb::open(&paths).expect("geoip db opens")
    });
    let (queue, rx) = ClickQueue::new(n);
    let live = std::sync::Arc::new(hop::clicks::LiveFeed::new(16));
    let writer = BatchWriter {
        store: store.clone(),
        enricher: Arc::new(Enricher::new(geo)),
        batch_size: 2000,
        max_wait: Duration::from_millis(5),
        live,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<ClickEvent> = (0..n)
        .map(|i| ClickEvent {
            event_id: uuid::Uuid::now_v7(),
            link_id: l.id,
            at: now - (i as i64 % 3_600_000),
            ip: std::net::IpAddr::from([81, 2, (i % 200) as u8, (i % 250) as u8]),
            user_agent: Some(UAS[i % 3].into()),
            referrer: (i % 2 == 0).then(|| "https://news.ycombinator.com/".into()),
            utm: Utm {
                source: (i % 3 == 0).then(|| "newsletter".into()),
                ..Default::default()
            },
            region: "local".into(),
            withheld: false,
        })
        .collect();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(writer.run(rx, stop.clone()));
    for e in events {
        assert!(queue.submit(e), "queue sized to hold every click");
    }
    stop.cancel();
    task.await?;
    let elapsed = started.elapsed();
    let stored = store.click_totals(&[l.id], true).await?[&l.id];
    println!(
        "pipeline: {n} clicks in {:.2} s = {:.0} clicks/s; stored {stored} ({})",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        if stored == n as u64 {
            "exact"
        } else {
            "MISMATCH"
        }
    );
    anyhow::ensure!(stored == n as u64, "count mismatch");
    Ok(())
}
