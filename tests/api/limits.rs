//! Rate limits: anonymous creation per IP, failed authentication per IP,
//! calls per API key; 429 with Retry-After and RateLimit headers. In cluster
//! mode the suite's requests go round-robin over three nodes, so these pass
//! only if the nodes share their counters.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, error_code};

fn limited(c: &mut hop::config::ServeConfig) {
    c.rate_create = "3/min".parse().unwrap();
    c.rate_auth_failures = "4/min".parse().unwrap();
    c.rate_api = "5/min".parse().unwrap();
}

#[tokio::test]
async fn anonymous_creation_is_limited_per_client_ip() {
    let app = TestApp::spawn_with(limited).await;
    for left in [2, 1, 0] {
        let res = app
            .client
            .post(app.any_url("/api/v1/links"))
            .header("x-forwarded-for", "198.51.100.1")
            .json(&json!({"url": "https://example.com/"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()["ratelimit-limit"], "3");
        assert_eq!(
            res.headers()["ratelimit-remaining"],
            left.to_string().as_str()
        );
    }
    let res = app
        .client
        .post(app.any_url("/api/v1/links"))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({"url": "https://example.com/"}))
        .send()
        .await
        .unwrap();
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        error_code(res).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    // Another address is not affected.
    let res = app
        .client
        .post(app.any_url("/api/v1/links"))
        .header("x-forwarded-for", "198.51.100.2")
        .json(&json!({"url": "https://example.com/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    // The web form counts against the same allowance.
    let page = app
        .client
        .post(app.url("/"))
        .header("x-forwarded-for", "198.51.100.1")
        .header(
            "cookie",
            "hop_csrf=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        )
        .form(&[
            ("csrf", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("url", "https://example.com/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers().contains_key("retry-after"));
    assert!(page.text().await.unwrap().contains("Slow down"));
    // In cluster mode the counters live in Redis, named by a keyed hash of
    // the address: no raw IP is stored there.
    if let Some(url) = app.dir.redis_url() {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("hop:rl:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            !keys.is_empty(),
            "the shared limiter keeps its counters in Redis"
        );
        for key in keys {
            assert!(!key.contains("198.51.100"), "raw IP in a Redis key: {key}");
        }
    }
}

#[tokio::test]
async fn failed_authentication_locks_the_address_out() {
    let app = TestApp::spawn_with(limited).await;
    let bad = |n: usize| format!("hop_wrong{n}");
    for n in 0..4 {
        let res = app
            .client
            .get(app.any_url("/api/v1/links"))
            .header("x-forwarded-for", "203.0.113.50")
            .bearer_auth(bad(n))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    // After 4 failures even a good key is refused from that address, so
    // guessing cannot go on; other addresses are unaffected.
    let res = app
        .client
        .get(app.any_url("/api/v1/links"))
        .header("x-forwarded-for", "203.0.113.50")
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(res).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    let res = app
        .client
        .get(app.any_url("/api/v1/links"))
        .header("x-forwarded-for", "203.0.113.51")
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn api_calls_are_limited_per_key() {
    let app = TestApp::spawn_with(limited).await;
    let key = app.create_key("busy", false).await;
    for _ in 0..5 {
        let res = app
            .api(Method::GET, "/api/v1/links", Some(&key), None)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = app
        .api(Method::GET, "/api/v1/links", Some(&key), None)
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    // Another key has its own allowance.
    let res = app
        .api(Method::GET, "/api/v1/links", Some(&app.admin_key), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// POSTs `body` to `path` as a client at `ip` (through the trusted loopback
/// proxy), with `bearer` if given.
async fn post_from(
    app: &TestApp,
    path: &str,
    ip: &str,
    bearer: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.any_url(path))
        .header("x-forwarded-for", ip)
        .json(&body);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

async fn create_from(app: &TestApp, ip: &str) -> reqwest::Response {
    post_from(
        app,
        "/api/v1/links",
        ip,
        None,
        json!({"url": "https://example.com/"}),
    )
    .await
}

/// Asserts a 429 `rate_limited` with a `Retry-After`; returns it in seconds.
async fn assert_limited(res: reqwest::Response) -> u64 {
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    assert_eq!(
        error_code(res).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    retry.expect("a 429 carries Retry-After")
}

#[tokio::test]
async fn hourly_rates_are_per_hour() {
    let app = TestApp::spawn_with(|c| {
        limited(c);
        c.rate_create = "3/h".parse().unwrap();
        c.rate_auth_failures = "2/h".parse().unwrap();
    })
    .await;
    let cluster = app.dir.redis_url().is_some();
    for (n, left) in [2, 1, 0].into_iter().enumerate() {
        let res = create_from(&app, "198.51.100.40").await;
        assert_eq!(res.status(), StatusCode::CREATED, "creation {n}");
        let header = |name: &str| res.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("ratelimit-limit"), "3");
        assert_eq!(header("ratelimit-remaining"), left.to_string());
        let reset: u64 = header("ratelimit-reset").parse().unwrap();
        if cluster {
            // Fixed one-hour windows: whole again when this one ends.
            assert!((1..=3600).contains(&reset), "{reset}");
        } else {
            // One comes back every 20 minutes.
            assert_eq!(reset, 1200 * (3 - left), "creation {n}");
        }
    }
    let retry = assert_limited(create_from(&app, "198.51.100.40").await).await;
    if cluster {
        assert!((1..=3600).contains(&retry), "{retry}");
    } else {
        assert!((1100..=1200).contains(&retry), "{retry}");
    }
    // Two failed authentications an hour, then locked out for long.
    for n in 0..2 {
        let res = app
            .client
            .get(app.any_url("/api/v1/links"))
            .header("x-forwarded-for", "198.51.100.41")
            .bearer_auth(format!("hop_wrong{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    let res = app
        .client
        .get(app.any_url("/api/v1/links"))
        .header("x-forwarded-for", "198.51.100.41")
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    let retry = assert_limited(res).await;
    if !cluster {
        assert!((1700..=1800).contains(&retry), "{retry}");
    }
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
    let app = TestApp::spawn_with(limited).await;
    // Three addresses of one /64: one client.
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:aaaa::3"] {
        assert_eq!(create_from(&app, ip).await.status(), StatusCode::CREATED);
    }
    assert_limited(create_from(&app, "2001:db8:1:2:ffff:ffff:ffff:ffff").await).await;
    // The next /64 is someone else.
    assert_eq!(
        create_from(&app, "2001:db8:1:3::1").await.status(),
        StatusCode::CREATED
    );
    // An IPv4-mapped IPv6 address is that IPv4 client.
    for _ in 0..3 {
        let res = create_from(&app, "198.51.100.30").await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    assert_limited(create_from(&app, "::ffff:198.51.100.30").await).await;
    // IPv4 addresses are never grouped.
    assert_eq!(
        create_from(&app, "198.51.100.31").await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn failed_authentication_is_counted_per_ipv6_64() {
    let app = TestApp::spawn_with(limited).await;
    for n in 0..4 {
        let res = app
            .client
            .get(app.any_url("/api/v1/links"))
            .header("x-forwarded-for", format!("2001:db8:7:7::{n:x}"))
            .bearer_auth(format!("hop_wrong{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    // Another address of the same /64 is locked out, even with a good key.
    let res = app
        .client
        .get(app.any_url("/api/v1/links"))
        .header("x-forwarded-for", "2001:db8:7:7:1:2:3:4")
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_limited(res).await;
}

#[tokio::test]
async fn forwarded_for_entries_with_ports_brackets_or_garbage_name_the_client() {
    let app = TestApp::spawn_with(limited).await;
    // One IPv4 client, written three ways (garbage it prepended is not
    // read: the proxy's entry to the right of it names the client).
    for ip in [
        "garbage, 198.51.100.50:4711",
        "198.51.100.50:1234",
        "198.51.100.50",
    ] {
        assert_eq!(create_from(&app, ip).await.status(), StatusCode::CREATED);
    }
    assert_limited(create_from(&app, "198.51.100.50").await).await;
    // One IPv6 client (one /64), bracketed with and without a port.
    for ip in ["[2001:db8:9::1]:443", "[2001:db8:9::2]", "2001:db8:9::3"] {
        assert_eq!(create_from(&app, ip).await.status(), StatusCode::CREATED);
    }
    assert_limited(create_from(&app, "[2001:db8:9::4]:80").await).await;
    // The proxy's own allowance used up (no header: the proxy is the client)…
    for _ in 0..3 {
        let res = app
            .client
            .post(app.any_url("/api/v1/links"))
            .json(&json!({"url": "https://example.com/"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    // …a client the proxy could only name by garbage is a client of its
    // own, not the proxy: it has its own allowance.
    for _ in 0..3 {
        let res = create_from(&app, "unknown").await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    assert_limited(create_from(&app, "unknown").await).await;
    assert_limited(create_from(&app, "127.0.0.1").await).await;
}

#[tokio::test]
async fn bearer_tokens_that_authenticate_nobody_are_limited_as_anonymous() {
    let app = TestApp::spawn_with(limited).await;
    let ip = "198.51.100.20";
    let report = json!({"slug": "somelink", "reason": "spam"});
    // A made-up token, a made-up key and a link secret's shape: none of
    // them is a key that authenticates, so all take from the address's
    // anonymous allowance (3/min).
    let tokens = ["x", "hop_madeup", "hls_madeup", "hop_other"];
    let mut created = 0;
    for n in 0..8 {
        let res = post_from(
            &app,
            "/api/v1/reports",
            ip,
            Some(tokens[n % tokens.len()]),
            report.clone(),
        )
        .await;
        if res.status() == StatusCode::CREATED {
            created += 1;
        } else {
            assert_limited(res).await;
        }
    }
    assert_eq!(created, 3, "a bogus bearer token skipped the limit");
    // Link creation draws on the same allowance, whatever the token.
    for token in tokens {
        let res = post_from(
            &app,
            "/api/v1/links",
            ip,
            Some(token),
            json!({"url": "https://example.com/"}),
        )
        .await;
        assert_limited(res).await;
    }
    // A key that authenticates is limited per key, not by the address.
    let res = post_from(
        &app,
        "/api/v1/reports",
        ip,
        Some(&app.admin_key),
        report.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["ratelimit-limit"], "5");
}

/// Creates an anonymous link from `ip`; its slug and secret.
async fn anonymous_link(app: &TestApp, ip: &str) -> (String, String) {
    let res = create_from(app, ip).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let link: serde_json::Value = res.json().await.unwrap();
    (
        link["slug"].as_str().unwrap().to_owned(),
        link["secret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn link_secrets_have_an_api_allowance_of_their_own() {
    let app = TestApp::spawn_with(|c| {
        limited(c);
        c.rate_link_secret = "4/min".parse().unwrap();
    })
    .await;
    let (slug, secret) = anonymous_link(&app, "198.51.100.60").await;
    let (other_slug, other_secret) = anonymous_link(&app, "198.51.100.61").await;
    let path = format!("/api/v1/links/{slug}");
    for left in [3, 2, 1, 0] {
        let res = app.api(Method::GET, &path, Some(&secret), None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["ratelimit-limit"], "4");
        assert_eq!(
            res.headers()["ratelimit-remaining"],
            left.to_string().as_str()
        );
    }
    // Whatever the endpoint: stats, live stream, edits.
    for path in [
        format!("/api/v1/links/{slug}/stats"),
        format!("/api/v1/links/{slug}/live"),
    ] {
        let res = app.api(Method::GET, &path, Some(&secret), None).await;
        assert_limited(res).await;
    }
    let res = app
        .api(
            Method::PATCH,
            &path,
            Some(&secret),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_limited(res).await;
    // Another link's secret has its own allowance.
    let res = app
        .api(
            Method::GET,
            &format!("/api/v1/links/{other_slug}"),
            Some(&other_secret),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["ratelimit-remaining"], "3");
}

/// Opens `/live` for `slug` on the first node as a client at `ip`; the
/// response is kept open by the caller.
async fn open_live(app: &TestApp, slug: &str, token: &str, ip: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/links/{slug}/live")))
        .header("x-forwarded-for", ip)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn live_streams_are_capped_per_link_per_client_and_per_node() {
    let app = TestApp::spawn_with(|c| {
        c.live_streams_per_link = 2;
        c.live_streams_per_client = 3;
        c.live_streams_max = 5;
    })
    .await;
    let (a, secret) = anonymous_link(&app, "198.51.100.70").await;
    for slug in ["lb", "lc", "ld"] {
        app.create_slug(slug, "https://example.com/").await;
    }
    let key = app.admin_key.clone();
    let (one, two, three) = ("198.51.100.71", "198.51.100.72", "198.51.100.73");
    let mut open = Vec::new();
    // Per link: one anonymous link's secret opens two streams, not more,
    // whoever asks.
    for ip in [one, one] {
        let res = open_live(&app, &a, &secret, ip).await;
        assert_eq!(res.status(), StatusCode::OK);
        open.push(res);
    }
    let res = open_live(&app, &a, &secret, two).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(res).await,
        (StatusCode::TOO_MANY_REQUESTS, "too_many_streams".into())
    );
    // Per client: three, over any links (an IPv6 client by its /64).
    let res = open_live(&app, "lb", &key, one).await;
    assert_eq!(res.status(), StatusCode::OK);
    open.push(res);
    let res = open_live(&app, "lc", &key, one).await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::TOO_MANY_REQUESTS, "too_many_streams".into())
    );
    for ip in ["2001:db8:5:5::1", "2001:db8:5:5::2"] {
        let res = open_live(&app, "lc", &key, ip).await;
        assert_eq!(res.status(), StatusCode::OK);
        open.push(res);
    }
    // Per node: five in all.
    let res = open_live(&app, "ld", &key, three).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(res).await,
        (StatusCode::SERVICE_UNAVAILABLE, "too_many_streams".into())
    );
    // A closed stream gives its place back.
    drop(open.remove(0));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let res = open_live(&app, &a, &secret, two).await;
        if res.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's place never came back: {}",
            res.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|c| c.max_connections = 2).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Two connections, each answered once and kept open (keep-alive).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: hop.test\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(conn);
    }
    // A third is not served while they are open…
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = app.url("/healthz");
    let mut third = tokio::spawn(async move { fresh.get(url).send().await.map(|r| r.status()) });
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(1500), &mut third)
            .await
            .is_err(),
        "a third connection was served past the cap of two"
    );
    // …and is as soon as one closes.
    drop(held.pop());
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), third)
        .await
        .expect("served once a connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}
