//! The live stream (`/api/v1/links/{slug}/live`) at the HTTP level: events
//! arrive in order, with increasing ids, and the stream ends on shutdown.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{GOOGLEBOT, TestApp, error_code};

#[derive(Debug)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads server-sent events off a streaming response.
struct SseReader {
    res: reqwest::Response,
    buf: String,
}

impl SseReader {
    async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    let mut event = SseEvent {
                        event: "message".into(),
                        id: None,
                        data: Value::Null,
                    };
                    let mut data = String::new();
                    let mut fields = 0;
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event.event = v.trim().to_owned();
                            fields += 1;
                        } else if let Some(v) = line.strip_prefix("id:") {
                            event.id = Some(v.trim().to_owned());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim());
                            fields += 1;
                        }
                    }
                    if fields == 0 {
                        continue; // keep-alive comment or retry only
                    }
                    event.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    return event;
                }
                let chunk = self.res.chunk().await.unwrap().expect("stream ended");
                self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("an event within 10 s")
    }

    /// The next event that is not a `totals` one.
    async fn next_not_totals(&mut self) -> SseEvent {
        loop {
            let e = self.next().await;
            if e.event != "totals" {
                return e;
            }
        }
    }
}

async fn open(app: &TestApp, slug: &str, key: &str, last_event_id: Option<&str>) -> SseReader {
    let mut req = app
        .client
        .get(app.url(&format!("/api/v1/links/{slug}/live")))
        .bearer_auth(key);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    SseReader {
        res,
        buf: String::new(),
    }
}

#[tokio::test]
async fn clicks_arrive_in_order_with_increasing_ids_and_running_totals() {
    let app = TestApp::spawn().await;
    app.create_slug("livey", "https://example.com/").await;
    app.create_slug("other", "https://example.org/").await;
    let mut sse = open(&app, "livey", &app.admin_key, None).await;
    let first = sse.next().await;
    assert_eq!(first.event, "totals");
    assert_eq!(first.data, json!({ "clicks": 0, "clicks_with_bots": 0 }));

    for i in 0..5 {
        // Another link's clicks are not this stream's business.
        app.click("/other").await;
        let res = app.click(&format!("/livey?utm_source=n{i}")).await;
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    app.click_as("/livey", GOOGLEBOT, "203.0.113.9").await;

    // Events come in the order clicks were stored, with increasing ids. One
    // node stores them in the order they were served; in cluster mode the
    // clicks went to three nodes and two workers, so only the set is fixed.
    let mut last_id = 0u64;
    let mut sources = Vec::new();
    let mut bots = 0;
    for _ in 0..6 {
        let e = sse.next_not_totals().await;
        assert_eq!(e.event, "click");
        let id: u64 = e.id.as_deref().unwrap().parse().unwrap();
        assert!(id > last_id, "ids increase: {id} after {last_id}");
        last_id = id;
        assert!(e.data.get("visitor").is_none(), "no visitor hash leaves");
        if e.data["bot"] == true {
            assert_eq!(e.data["device"], "bot");
            bots += 1;
            continue;
        }
        assert_eq!(e.data["browser"], "Firefox");
        assert_eq!(e.data["breakdown"]["utm_sources"], e.data["utm_source"]);
        sources.push(e.data["utm_source"].as_str().unwrap().to_owned());
    }
    assert_eq!(bots, 1);
    let expected: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
    if !crate::helpers::cluster_mode() {
        assert_eq!(sources, expected, "in the order served");
    }
    sources.sort();
    assert_eq!(sources, expected);

    // Totals catch up: exact, from the store.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let e = sse.next().await;
        if e.event == "totals" && e.data["clicks_with_bots"] == 6 {
            assert_eq!(e.data["clicks"], 5);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "totals never reached 6"
        );
    }

    // The server shuts down with the stream open, and does not wait for it.
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("shutdown is not held up by an open stream");
}

#[tokio::test]
async fn a_reconnecting_client_is_told_to_resync() {
    let app = TestApp::spawn().await;
    app.create_slug("again", "https://example.com/").await;
    let mut sse = open(&app, "again", &app.admin_key, Some("42")).await;
    assert_eq!(sse.next().await.event, "totals");
    assert_eq!(sse.next().await.event, "resync");
}

#[tokio::test]
async fn the_stream_needs_the_links_credentials() {
    let app = TestApp::spawn().await;
    let created: Value = app
        .api(
            Method::POST,
            "/api/v1/links",
            None,
            Some(json!({ "url": "https://example.com/" })),
        )
        .await
        .json()
        .await
        .unwrap();
    let slug = created["slug"].as_str().unwrap();
    let path = format!("/api/v1/links/{slug}/live");
    let (status, code) = error_code(app.api(Method::GET, &path, None, None).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let stranger = app.create_key("stranger", false).await;
    let (status, _) = error_code(app.api(Method::GET, &path, Some(&stranger), None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The link's own secret opens it.
    let secret = created["secret"].as_str().unwrap();
    let mut sse = open(&app, slug, secret, None).await;
    assert_eq!(sse.next().await.event, "totals");
}
