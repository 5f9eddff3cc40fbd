//! What smart link rules add to a redirect: the time of one decision over
//! a link with RULES rules (20 by default) of ten conditions each, none of
//! which holds (every condition of every rule is tested, the worst case),
//! then the same with the user agent parse and the geo lookup the rules
//! ask for (the redirect does them once per visit), against a link
//! without rules. Medians of RUNS runs of ITERS decisions, in ns.
//! Usage: bench_rules [GEOIP_FILE]   (bench/rules.sh runs it)

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use hop::clicks::Enricher;
use hop::domain::LinkId;
use hop::domain::rules::{RuleSpec, Rules, Visit};

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median ns per call of `f` over `runs` runs of `iters` calls.
fn median_ns(runs: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let rules_n = env("RULES", 20);
    let runs = env("RUNS", 5);
    let iters = env("ITERS", 200_000);
    let rule = |i: usize| {
        format!(
            r#"{{"id":"r{i}","if":[
                {{"country":["DE","AT","CH","FR","IT"]}},{{"city":["Berlin","Wien"]}},
                {{"device":["mobile","tablet"]}},{{"os":["ios","android"]}},{{"browser":["Safari"]}},
                {{"language":["de","fr"]}},{{"query_present":"ref"}},
                {{"ip":["10.0.0.0/8","192.168.0.0/16","2001:db8::/32"]}},
                {{"time":{{"days":["sat","sun"],"hours":{{"from":22,"to":6}},"tz":"Europe/Berlin"}}}},
                {{"referrer":["example.org","news.example.net"]}}],
              "target":"https://example.com/r{i}"}}"#
        )
    };
    // Every condition holds but the last (the referrer), so each rule
    // tests all ten.
    let json = format!("[{}]", (0..rules_n).map(rule).collect::<Vec<_>>().join(","));
    let specs: Vec<RuleSpec> = serde_json::from_str(&json)?;
    let rules = Rules::parse(&specs, &[])?;
    let geo = match std::env::args().nth(1) {
        Some(path) => Some(hop::clicks::geo::GeoDb::open(&[path.into()])?),
        None => None,
    };
    let enricher = Enricher::new(geo);
    let ip: IpAddr = "81.2.69.142".parse()?;
    let now =
        chrono::DateTime::parse_from_rfc3339("2026-03-07T23:30:00Z")?.with_timezone(&chrono::Utc);
    let visit = Visit {
        country: Some("DE"),
        city: Some("Berlin"),
        device: Some(hop::domain::DeviceType::Mobile),
        os: Some("iOS"),
        browser: Some("Safari"),
        accept_language: Some("de-DE,de;q=0.9,en;q=0.5"),
        query: Some("utm_source=x&ref=r0"),
        ip: Some("10.1.2.3".parse()?),
        referrer_host: Some("www.google.com"),
        visitor: 42,
        now,
    };
    let link = LinkId(1);
    let none = Rules::default();
    let empty = median_ns(runs, iters, || {
        black_box(none.decide(link, black_box(&visit)));
    });
    let decide = median_ns(runs, iters, || {
        assert!(rules.decide(link, black_box(&visit)).rule.is_none());
    });
    let facts = median_ns(runs, iters / 4, || {
        black_box(enricher.user_agent(Some(black_box(UA))));
        black_box(enricher.location(black_box(ip)));
    });
    println!("rules per link: {rules_n} (10 conditions each, all tested)");
    println!("no rules: {empty:.0} ns per decision");
    println!("{rules_n} rules: {decide:.0} ns per decision");
    println!("user agent parse (cached) and geo lookup the rules ask for: {facts:.0} ns");
    println!(
        "added per redirect: {:.2} µs",
        (decide - empty + facts) / 1000.0
    );
    Ok(())
}
