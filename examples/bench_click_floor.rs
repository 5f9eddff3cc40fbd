//! Benchmark: the floor under the SQLite click write. Stores only what every
//! click needs whatever the rollups (its raw row, keyed by link and time,
//! and its row in the day's visitor set), in the writer's own batch size,
//! with the pragmas the writer uses, and no breakdown, series or totals at
//! all. No click write can be faster than this on the same schema, so it
//! bounds what `bench_pipeline` can reach (docs/benchmarks.md, "The click
//! path").
//! Usage: bench_click_floor [CLICKS [LINKS]]

use std::time::Instant;

use hop::store::LinkStore;
use hop::testing::link;
use rusqlite::{Connection, TransactionBehavior, params};

// The writer's statements (store/sql/sqlite_clicks.rs).
const INSERT_CLICK: &str = "INSERT INTO clicks (link_id, at, event_id, bot, country, city, \
     browser, os, device, referrer_host, utm_source, utm_medium, utm_campaign, visitor, region) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
     ON CONFLICT DO NOTHING";
const INSERT_VISITOR: &str =
    "INSERT INTO visitors (link_id, day, visitor, first_at, bot) VALUES (?1, ?2, ?3, ?4, ?5)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(300_000), |s| s.parse())?;
    let links_n: usize = std::env::args().nth(2).map_or(Ok(1), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hop.db");
    // Migrated by hop, links made as the service makes them.
    let store =
        hop::store::sqlite::SqliteStore::open(&path, hop::store::DEFAULT_SQLITE_CACHE_MIB, true)
            .await?;
    let mut links = Vec::with_capacity(links_n.max(1));
    for i in 0..links_n.max(1) {
        let l = loop {
            let l = link(&format!("floor{i}"), None);
            if store.insert_link(&l).await?.is_ok() {
                break l;
            }
        };
        links.push(l.id.0);
    }
    let mut conn = Connection::open(&path)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(
        None,
        "cache_size",
        -(i64::from(hop::store::DEFAULT_SQLITE_CACHE_MIB) * 1024),
    )?;
    let now = chrono::Utc::now().timestamp_millis();
    let day = now - now.rem_euclid(86_400_000);
    let started = Instant::now();
    let mut stored = 0usize;
    for chunk in (0..n)
        .collect::<Vec<_>>()
        .chunks(hop::config::CLICK_BATCH_SIZE)
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut click = tx.prepare_cached(INSERT_CLICK)?;
            let mut visitor = tx.prepare_cached(INSERT_VISITOR)?;
            for &i in chunk {
                // As bench_pipeline spreads them: link by turn, times over
                // the last minutes, a new visitor each.
                let link = links[i % links.len()];
                let at = now - (i as i64 % 3_600_000);
                let event = uuid::Uuid::now_v7();
                stored += click.execute(params![
                    link,
                    at,
                    event.as_bytes().as_slice(),
                    false,
                    "GB",
                    "London",
                    "Firefox",
                    "Linux",
                    "desktop",
                    (i % 2 == 0).then_some("news.ycombinator.com"),
                    (i % 3 == 0).then_some("newsletter"),
                    None::<&str>,
                    None::<&str>,
                    i as i64,
                    "local",
                ])?;
                visitor.execute(params![link, day, i as i64, at, false])?;
            }
        }
        tx.commit()?;
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(stored == n, "FAIL: stored {stored} of {n}");
    println!(
        "floor: {n} clicks over {} link(s) in {:.2} s = {:.0} clicks/s (raw row + visitor row only)",
        links.len(),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
