//! Fills a SQLite database with clicks for the export benchmark
//! (bench/export.sh): LINKS links (`export-0` …), CLICKS clicks spread over
//! them by turn within the last hour, the conformance suite's mix of
//! countries, browsers and bots, stored through `record_clicks` as the
//! writer stores them (so the stats count them as they would live ones).
//! Usage: fill_clicks DB_PATH CLICKS LINKS

use std::time::Instant;

use hop::store::{ClickStore, LinkStore};
use rand::SeedableRng;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || anyhow::anyhow!("usage: fill_clicks DB_PATH CLICKS LINKS");
    let path = args.next().ok_or_else(usage)?;
    let n: usize = args.next().ok_or_else(usage)?.parse()?;
    let links_n: usize = args.next().ok_or_else(usage)?.parse::<usize>()?.max(1);
    let store = hop::store::sqlite::SqliteStore::open(
        std::path::Path::new(&path),
        hop::store::DEFAULT_SQLITE_CACHE_MIB,
        true,
    )
    .await?;
    let mut links = Vec::with_capacity(links_n);
    for i in 0..links_n {
        let mut l = hop::testing::link(&format!("export-{i}"), None);
        l.created_at = chrono::Utc::now() - chrono::TimeDelta::hours(2);
        while store.insert_link(&l).await?.is_err() {
            l.id = hop::domain::LinkId(l.id.0 + 1);
        }
        links.push(l.id);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let now = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let mut stored = 0u64;
    let mut batch = Vec::with_capacity(hop::config::CLICK_BATCH_SIZE);
    for i in 0..n {
        let at = now - 1 - (i as i64 * 7919 % 3_600_000);
        batch.push(hop::testing::click(links[i % links_n], at, &mut rng));
        if batch.len() == hop::config::CLICK_BATCH_SIZE || i + 1 == n {
            stored += store.record_clicks(&batch).await?;
            batch.clear();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "stored {stored} clicks over {links_n} links in {secs:.1} s ({:.0} clicks/s)",
        stored as f64 / secs
    );
    Ok(())
}
