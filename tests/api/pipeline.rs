use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{FIREFOX, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_concurrent_redirects_count_exactly() {
    let app = TestApp::spawn().await;
    app.create_slug("hot", "https://example.com/").await;
    let n = 10_000u64;
    let ok = futures::stream::iter(0..n)
        .map(|i| {
            let req = app
                .client
                .get(app.url("/hot"))
                .header("user-agent", FIREFOX)
                .header("x-forwarded-for", format!("198.51.100.{}", i % 250));
            async move { req.send().await.map(|r| r.status()) }
        })
        .buffer_unordered(64)
        .filter(|r| futures::future::ready(matches!(r, Ok(s) if *s == StatusCode::FOUND)))
        .count()
        .await;
    assert_eq!(ok as u64, n);
    let s = app.wait_for_clicks("hot", "", n).await;
    assert_eq!(s["unique_visitors"], 250);
    // Still exactly n a moment later: nothing counted twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.stats("hot", "").await["total_clicks"], n);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hop_clicks_dropped_total 0"),
        "no click dropped"
    );
}

#[tokio::test]
async fn data_survives_a_restart() {
    let app = TestApp::spawn().await;
    app.create_slug("keep", "https://example.com/kept").await;
    for _ in 0..5 {
        app.click("/keep").await;
    }
    // Stop at once: the graceful shutdown must write the queued clicks.
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir, |_| {}).await;
    assert_eq!(
        app.click("/keep").await.headers()["location"],
        "https://example.com/kept"
    );
    app.wait_for_clicks("keep", "", 6).await;
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary; returns it once /healthz answers.
pub async fn start_binary(dir: &std::path::Path, port: u16, extra: &[&str]) -> std::process::Child {
    let db = format!("sqlite://{}", dir.join("hop.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hop"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db,
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().ok();
    child.wait().ok();
    panic!("hop did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_every_answered_click() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A slow writer (large batches, long wait) keeps clicks queued at SIGTERM.
    let child = start_binary(
        dir.path(),
        port,
        &[
            "--log-format",
            "json",
            "--click-batch-size",
            "100000",
            "--click-batch-wait-ms",
            "60000",
        ],
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .post(format!("{base}/api/v1/links"))
        .json(&serde_json::json!({"url": "https://example.com/", "slug": "drain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let answered = futures::stream::iter(0..2000)
        .map(|_| {
            client
                .get(format!("{base}/drain"))
                .header("user-agent", FIREFOX)
                .send()
        })
        .buffer_unordered(32)
        .filter(|r| futures::future::ready(matches!(r, Ok(r) if r.status() == StatusCode::FOUND)))
        .count()
        .await;
    assert_eq!(answered, 2000);
    // Answered, and none stored yet: all 2000 wait in the queue.
    let stats: Value = client
        .get(format!("{base}/api/v1/links/drain/stats"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["total_clicks"], 0, "the queue was already written");

    // Redirects keep coming while the server stops; every one answered
    // must be stored too.
    let during = tokio::spawn({
        let client = client.clone();
        let base = base.clone();
        async move {
            let mut answered = 0u64;
            loop {
                let batch = futures::future::join_all((0..8).map(|_| {
                    client
                        .get(format!("{base}/drain"))
                        .header("user-agent", FIREFOX)
                        .send()
                }))
                .await;
                let ok = batch
                    .iter()
                    .filter(|r| matches!(r, Ok(r) if r.status() == StatusCode::FOUND))
                    .count() as u64;
                answered += ok;
                if ok == 0 && batch.iter().all(|r| r.is_err()) {
                    return answered;
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let took = stopping.elapsed();
    assert!(status.status.success(), "clean exit on SIGTERM");
    // The writer waits up to 60 s to fill a batch; a stop does not.
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    let answered_during = during.await.unwrap();
    assert!(answered_during > 0, "no redirect was in flight at SIGTERM");
    // Logs are JSON lines, and never carry the link secret.
    let stderr = String::from_utf8_lossy(&status.stderr);
    let lines: Vec<String> = BufReader::new(stderr.as_bytes())
        .lines()
        .map(|l| l.unwrap())
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v["level"].is_string());
    }
    assert!(stderr.contains("click writer drained"));
    assert!(!stderr.contains(&secret));

    let child = start_binary(dir.path(), port, &[]).await;
    let stats: Value = client
        .get(format!("{base}/api/v1/links/drain/stats"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut child = child;
    child.kill().ok();
    child.wait().ok();
    assert_eq!(
        stats["total_clicks"].as_u64(),
        Some(2000 + answered_during),
        "every click answered before and during the stop was stored"
    );
}

#[tokio::test]
async fn ops_endpoints() {
    let app = TestApp::spawn().await;
    app.create_slug("m", "https://example.com/").await;
    app.click("/m").await;
    app.click("/m").await;
    app.click("/zzz-unknown").await;
    app.wait_for_clicks("m", "", 2).await;
    let get = |p: &'static str| app.client.get(app.url(p)).send();
    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().contains_key("x-request-id"));
    let ready: Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for name in [
        "hop_redirect_duration_seconds_bucket",
        "hop_cache_hits_total",
        "hop_cache_misses_total",
        "hop_click_queue_depth",
        "hop_clicks_stored_total",
        "hop_clicks_dropped_total",
        "hop_store_duration_seconds_bucket",
        "hop_http_requests_total{route=\"/api/v1/links\"",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
    assert!(
        !metrics.contains("zzz-unknown"),
        "metrics never carry slugs"
    );
    let doc: Value = get("/api/v1/openapi.json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/links",
        "/api/v1/links/{slug}",
        "/api/v1/links/{slug}/stats",
        "/api/v1/links/{slug}/clicks.csv",
        "/api/v1/links/{slug}/clicks",
        "/api/v1/links/{slug}/live",
        "/api/v1/links/{slug}/qr.svg",
        "/api/v1/links/{slug}/qr.png",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    // Rate limits and timeouts are part of every operation's contract.
    let create = &doc["paths"]["/api/v1/links"]["post"]["responses"];
    for code in ["201", "400", "408", "409", "429", "503"] {
        assert!(create[code].is_object(), "POST /links lacks {code}");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    // A request id sent by a proxy is kept.
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-file.db");
    let secret = dir.path().join("database_url");
    std::fs::write(&secret, format!("sqlite://{}\n", db.display())).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args(["keys", "create", "--name", "filed"])
        .env("HOP_DATABASE_URL", "sqlite:///nonexistent/dir/never.db")
        .env("HOP_DATABASE_URL_FILE", &secret)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists(), "the URL from the file was used");
    let key = String::from_utf8(out.stdout).unwrap();
    assert!(key.trim().starts_with("hop_"));
    // An unreadable secret file is an error that names the variable.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args(["migrate"])
        .env("HOP_DATABASE_URL_FILE", dir.path().join("missing"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOP_DATABASE_URL_FILE"));
}
