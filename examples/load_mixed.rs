//! Mixed-traffic load test for bench/mixed.sh: for a bounded time, each of
//! `--connections` clients sends, at random, 95% redirects (GET /{slug} over
//! `--links` links), 4% stats reads and 1% link creations, against one or
//! more hop nodes (round-robin). Records every answer's status and latency
//! per kind, samples the servers' resident memory (`--pid`, from /proc)
//! and the click queue's depth (`/metrics`) every second, and prints one
//! JSON report. `--rate` paces the clients to that many requests per second
//! in all (open loop); without it they send as fast as answers come.
//! Exits non-zero, with the count of each unexpected status per kind, on any
//! answer other than the one its kind expects (redirect 302, stats 200,
//! create 201: the server must run with rate limits off, as bench/mixed.sh
//! starts it, so even a 429 is a failure) and on any transport error.
//! Loopback only.
//!
//! ```text
//! load_mixed --base http://127.0.0.1:8080 --key hop_… --pid 1234 \
//!     [--duration 60] [--connections 32] [--links 1000] [--rate 8000]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Redirect,
    Stats,
    Create,
}

impl Kind {
    /// The statuses a request of this kind may get. Links are created with
    /// the default redirect (302) and never expire; rate limits are off.
    fn expected(self) -> &'static [u16] {
        match self {
            Kind::Redirect => &[302],
            Kind::Stats => &[200],
            Kind::Create => &[201],
        }
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

struct Args {
    bases: Vec<String>,
    key: String,
    pids: Vec<u32>,
    duration: Duration,
    connections: usize,
    links: usize,
    rate: Option<f64>,
}

fn args() -> Args {
    let mut a = Args {
        bases: Vec::new(),
        key: String::new(),
        pids: Vec::new(),
        duration: Duration::from_secs(60),
        connections: 32,
        links: 1000,
        rate: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => a.bases.extend(value.split(',').map(str::to_owned)),
            "--key" => a.key = value,
            "--pid" => a
                .pids
                .extend(value.split(',').map(|p| p.parse::<u32>().expect("a pid"))),
            "--duration" => a.duration = Duration::from_secs(value.parse().expect("seconds")),
            "--connections" => a.connections = value.parse().expect("a count"),
            "--links" => a.links = value.parse().expect("a count"),
            "--rate" => a.rate = Some(value.parse().expect("requests per second")),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.bases.is_empty(), "--base is required");
    assert!(!a.key.is_empty(), "--key is required");
    a
}

/// A counter or gauge from a Prometheus text page, summed over its series.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `name` summed over every node's `/metrics` page.
async fn scrape(client: &reqwest::Client, bases: &[String], name: &str) -> f64 {
    let mut sum = 0.0;
    for base in bases {
        if let Ok(res) = client.get(format!("{base}/metrics")).send().await
            && let Ok(page) = res.text().await
        {
            sum += metric(&page, name);
        }
    }
    sum
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(a.connections)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let auth = format!("Bearer {}", a.key);

    // The links the redirects and stats reads spread over.
    let run = rand::rng().random::<u32>();
    let mut slugs = Vec::with_capacity(a.links);
    for i in 0..a.links {
        let slug = format!("m{run:08x}{i}");
        let res = client
            .post(format!("{}/api/v1/links", a.bases[i % a.bases.len()]))
            .header("authorization", &auth)
            .json(&json!({"url": format!("https://example.com/load/{i}"), "slug": slug}))
            .send()
            .await
            .expect("create a link");
        assert_eq!(res.status(), 201, "creating {slug}: {:?}", res.text().await);
        slugs.push(slug);
    }
    // One pass over every link and node, so caches start warm.
    for (i, slug) in slugs.iter().enumerate() {
        for base in &a.bases {
            let _ = client.get(format!("{base}/{slug}")).send().await;
        }
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let slugs = Arc::new(slugs);

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let rss_task = {
        let pids = a.pids.clone();
        let stop = stop.clone();
        let client = client.clone();
        let bases = a.bases.clone();
        tokio::spawn(async move {
            // (seconds, RSS KiB, click queue depth)
            let mut samples: Vec<(f64, u64, f64)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let total: u64 = pids.iter().filter_map(|p| rss_kib(*p)).sum();
                let depth = scrape(&client, &bases, "hop_click_queue_depth").await;
                samples.push((started.elapsed().as_secs_f64(), total, depth));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            samples
        })
    };

    // Open-loop pacing: each client sends at its share of --rate.
    let gap = a
        .rate
        .map(|r| Duration::from_secs_f64(a.connections as f64 / r));
    let mut tasks = Vec::new();
    for c in 0..a.connections {
        let client = client.clone();
        let slugs = slugs.clone();
        let stop = stop.clone();
        let auth = auth.clone();
        let bases = a.bases.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally: BTreeMap<Kind, Tally> = BTreeMap::new();
            let mut n = c;
            let mut created = 0u64;
            let mut tick = gap.map(|g| {
                let mut t = tokio::time::interval(g);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let (roll, pick) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(0..100u32),
                        rng.random_range(0..slugs.len()),
                    )
                };
                let base = &bases[n % bases.len()];
                n += 1;
                let slug = &slugs[pick];
                let (kind, req) = if roll < 95 {
                    (Kind::Redirect, client.get(format!("{base}/{slug}")))
                } else if roll < 99 {
                    (
                        Kind::Stats,
                        client
                            .get(format!("{base}/api/v1/links/{slug}/stats"))
                            .header("authorization", &auth),
                    )
                } else {
                    created += 1;
                    (
                        Kind::Create,
                        client
                            .post(format!("{base}/api/v1/links"))
                            .header("authorization", &auth)
                            .json(&json!({"url": format!("https://example.org/{c}/{created}")})),
                    )
                };
                let t0 = Instant::now();
                let result = match req.send().await {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        res.bytes().await.map(|_| status)
                    }
                    Err(e) => Err(e),
                };
                let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                let t = tally.entry(kind).or_default();
                match result {
                    Ok(status) => {
                        t.latencies_us.push(us);
                        *t.statuses.entry(status).or_default() += 1;
                    }
                    Err(_) => t.errors += 1,
                }
            }
            tally
        }));
    }
    tokio::time::sleep(a.duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();

    let mut all: BTreeMap<Kind, Tally> = BTreeMap::new();
    for t in tasks {
        for (kind, tally) in t.await.unwrap() {
            let into = all.entry(kind).or_default();
            into.latencies_us.extend(tally.latencies_us);
            into.errors += tally.errors;
            for (s, n) in tally.statuses {
                *into.statuses.entry(s).or_default() += n;
            }
        }
    }
    let samples = rss_task.await.unwrap();
    let mut metrics = serde_json::Map::new();
    for name in [
        "hop_click_queue_depth",
        "hop_clicks_stored_total",
        "hop_clicks_dropped_total",
    ] {
        metrics.insert(name.into(), json!(scrape(&client, &a.bases, name).await));
    }

    let mut report = serde_json::Map::new();
    let mut total = 0u64;
    let mut server_errors = 0u64;
    let mut transport_errors = 0u64;
    // What makes the run fail: unexpected statuses and transport errors,
    // per kind.
    let mut failures: Vec<String> = Vec::new();
    let mut every: Vec<u32> = Vec::new();
    for (kind, mut t) in all {
        for (status, n) in &t.statuses {
            if !kind.expected().contains(status) {
                failures.push(format!(
                    "{kind:?}: {n} answered {status} (expected {:?})",
                    kind.expected()
                ));
            }
        }
        if t.errors > 0 {
            failures.push(format!("{kind:?}: {} transport errors", t.errors));
        }
        t.latencies_us.sort_unstable();
        total += t.latencies_us.len() as u64;
        server_errors += t
            .statuses
            .iter()
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| n)
            .sum::<u64>();
        transport_errors += t.errors;
        every.extend(&t.latencies_us);
        report.insert(
            format!("{kind:?}").to_lowercase(),
            json!({
                "requests": t.latencies_us.len(),
                "statuses": t.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "transport_errors": t.errors,
                "p50_ms": percentile(&t.latencies_us, 0.50),
                "p99_ms": percentile(&t.latencies_us, 0.99),
                "p999_ms": percentile(&t.latencies_us, 0.999),
                "max_ms": percentile(&t.latencies_us, 1.0),
            }),
        );
    }
    every.sort_unstable();
    // RSS: after warm-up (10 s in) against the end, and the peak.
    let at = |secs: f64| {
        samples
            .iter()
            .find(|(t, _, _)| *t >= secs)
            .or(samples.last())
            .map(|s| s.1)
            .unwrap_or(0)
    };
    let depth_at = |secs: f64| {
        samples
            .iter()
            .find(|(t, _, _)| *t >= secs)
            .or(samples.last())
            .map(|s| s.2)
            .unwrap_or(0.0)
    };
    let end = samples.last().map(|s| s.1).unwrap_or(0);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    report.insert(
        "all".into(),
        json!({
            "seconds": elapsed,
            "requests": total,
            "requests_per_sec": (total as f64 / elapsed).round(),
            "p50_ms": percentile(&every, 0.50),
            "p99_ms": percentile(&every, 0.99),
            "server_errors": server_errors,
            "transport_errors": transport_errors,
            "failures": failures,
        }),
    );
    report.insert(
        "click_queue_depth".into(),
        json!({
            "at_10s": depth_at(10.0),
            "at_30s": depth_at(30.0),
            "end": samples.last().map(|s| s.2).unwrap_or(0.0),
            "peak": samples.iter().map(|s| s.2).fold(0.0, f64::max),
        }),
    );
    report.insert("metrics_after".into(), serde_json::Value::Object(metrics));
    report.insert(
        "rss_kib".into(),
        json!({
            "at_1s": at(1.0),
            "at_10s": at(10.0),
            "at_30s": at(30.0),
            "end": end,
            "peak": peak,
            "every_30s": samples.iter().step_by(30).map(|s| s.1).collect::<Vec<_>>(),
            "growth_after_10s_pct": if at(10.0) > 0 { ((end as f64 / at(10.0) as f64 - 1.0) * 1000.0).round() / 10.0 } else { 0.0 },
        }),
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::Object(report)).unwrap()
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        std::process::exit(1);
    }
}
