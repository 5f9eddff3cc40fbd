//! Hostile input: every attempt gets the right 4xx (or a harmless answer),
//! never a 500, and nothing is stored. Raw requests go over a plain TCP
//! socket where an HTTP client would normalise them.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, error_code};

async fn link_count(app: &TestApp) -> usize {
    let body: Value = app
        .api(
            Method::GET,
            "/api/v1/links?limit=200",
            Some(&app.admin_key),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    body["links"].as_array().unwrap().len()
}

/// Sends raw bytes and returns what the server answered before closing.
async fn raw(app: &TestApp, request: &[u8]) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn hostile_targets_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let cases = [
        ("https://example.com/%0d%0aSet-Cookie:%20x=1", "invalid_url"),
        (
            "https://example.com/%0D%0ALocation:%20https://evil.example",
            "invalid_url",
        ),
        ("https://example.com/a\u{2028}b", "invalid_url"),
        ("https://example.com/a\u{2029}b", "invalid_url"),
        ("https://example.com/a\u{0085}b", "invalid_url"),
        ("https://example.com/\r\nX: y", "invalid_url"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("JaVaScRiPt:alert(1)", "unsupported_scheme"),
        (" javascript:alert(1)", "invalid_url"),
        (
            "data:text/html,<script>alert(1)</script>",
            "unsupported_scheme",
        ),
        ("file:///etc/passwd", "unsupported_scheme"),
        ("ftp://example.com/", "unsupported_scheme"),
        ("https://good.example@evil.example/", "userinfo_not_allowed"),
        ("https://user:pass@evil.example/", "userinfo_not_allowed"),
        ("http://hop.test/loop", "redirect_loop"),
        ("HTTP://HOP.TEST/loop", "redirect_loop"),
        ("https://hop.test./x", "redirect_loop"),
        ("https://hop.test%2e/x", "redirect_loop"),
        ("https://Hop.Test.:8443/x", "redirect_loop"),
    ];
    for (url, code) in cases {
        let (status, got) = app.create_refused(json!({ "url": url })).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{url:?}"
        );
    }
    assert_eq!(link_count(&app).await, 0);

    // IPv6 and IDN hosts are fine, stored normalised.
    for (url, stored) in [
        ("http://[2001:db8::1]/x", "http://[2001:db8::1]/x"),
        (
            "https://bücher.example/straße",
            "https://xn--bcher-kva.example/stra%C3%9Fe",
        ),
    ] {
        let link = app.create(json!({ "url": url })).await;
        assert_eq!(link["url"], stored, "{url}");
        let slug = link["slug"].as_str().unwrap();
        let res = app.click(&format!("/{slug}")).await;
        assert_eq!(res.headers()["location"], stored);
    }
}

#[tokio::test]
async fn hostile_slugs_paths_and_sql_metacharacters() {
    let app = TestApp::spawn().await;
    for slug in [
        "../x",
        "..",
        "a/b",
        "a b",
        "a'--",
        "x%00",
        "<script>",
        "a;DROP TABLE links",
    ] {
        let (status, code) = app
            .create_refused(json!({ "url": "https://example.com/", "slug": slug }))
            .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_slug"),
            "{slug:?}"
        );
    }
    assert_eq!(link_count(&app).await, 0);

    // SQL metacharacters in free text are data, not SQL.
    let title = "'; DROP TABLE links; -- \" OR 1=1 %_\\";
    let link = app
        .create(json!({ "url": "https://example.com/", "slug": "sqlish", "title": title, "tags": ["a'b", "%"] }))
        .await;
    assert_eq!(link["title"], title);
    let body: Value = app
        .api(
            Method::GET,
            "/api/v1/links?q=%25'%20OR%20'1'%3D'1",
            Some(&app.admin_key),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["links"].as_array().unwrap().len(),
        0,
        "no injection through search"
    );
    let body: Value = app
        .api(
            Method::GET,
            "/api/v1/links?tag=a'b",
            Some(&app.admin_key),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["links"].as_array().unwrap().len(), 1);

    // Path traversal and odd paths, sent raw: a 404 page, never a file.
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/../Cargo.toml",
        "/%ff%fe",
        "/sqlish/../../x",
    ] {
        let res = raw(
            &app,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let status = status_of(&res);
        assert!(status == 404 || status == 400, "{path}: {res}");
        assert!(
            !res.contains("[package]") && !res.contains("root:"),
            "{path}"
        );
    }
    // Invalid UTF-8 in the request line and in headers.
    let res = raw(
        &app,
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!((400..500).contains(&status_of(&res)), "{res}");
    let res = raw(
        &app,
        b"GET /sqlish HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0 \xff\xfe\r\nReferer: http://\xc3\x28/\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&res), 302, "{res}");
    app.wait_for_clicks("sqlish", "include_bots=true", 1).await;
}

#[tokio::test]
async fn oversized_and_deeply_nested_bodies() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(1024 * 1024);
    let res = app
        .client
        .post(app.url("/api/v1/links"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/json")
        .body(format!("{{\"url\":\"https://example.com/{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    let res = app
        .client
        .post(app.url("/"))
        .form(&[("url", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let res = app
        .client
        .post(app.url("/api/v1/links"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"url\":\"https://example.com/\",\"tags\":{}}}",
            &deep[..60_000]
        ))
        .send()
        .await
        .unwrap();
    let (status, _) = error_code(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(link_count(&app).await, 0);
}

#[tokio::test]
async fn slow_and_oversized_request_heads_are_cut_off() {
    let app = TestApp::spawn_with(|c| c.header_timeout_secs = 1).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Slowloris: headers that never end. The server hangs up.
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was left open");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Heads over 64 KiB are refused with 431, whether hyper or hop
    // counts; heads under it are served. Written from a task of its own:
    // the server may answer before it has read everything.
    for (size, want) in [
        (60_000, 404),
        (65_000, 404),
        (66_000, 431),
        (80_000, 431),
        (114_000, 431),
        (200_000, 431),
    ] {
        let pad = size - 60;
        let head = format!(
            "GET /nowhere/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(pad)
        );
        let res = raw(&app, head.as_bytes()).await;
        assert_eq!(status_of(&res), want, "{size} bytes: {res:.200}");
    }
    // And the server is fine afterwards.
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
