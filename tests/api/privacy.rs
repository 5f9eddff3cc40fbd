//! Privacy switches, Do-Not-Track, purging a link's clicks, and retention of
//! raw clicks (rollups kept).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{FIREFOX, TestApp, error_code};

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

#[tokio::test]
async fn do_not_track_clicks_are_counted_anonymously_when_honoured() {
    let app = TestApp::spawn_with(|c| c.honor_dnt = true).await;
    app.create_slug("dnt", "https://example.com/").await;
    click_with(&app, "/dnt", &[("dnt", "1")]).await;
    click_with(&app, "/dnt", &[("sec-gpc", "1")]).await;
    click_with(&app, "/dnt", &[]).await;
    let stats = settled(&app, "dnt", 3).await;
    let referrers = &stats["top"]["referrers"];
    let count = |v: &Value, name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["value"] == name)
            .map_or(0, |e| e["clicks"].as_u64().unwrap())
    };
    assert_eq!(
        count(referrers, "news.example"),
        1,
        "only the tracked click"
    );
    assert_eq!(count(referrers, "direct"), 2);
    assert_eq!(count(&stats["top"]["countries"], "GB"), 1);
    assert_eq!(count(&stats["top"]["countries"], "unknown"), 2);

    // Without the switch, DNT changes nothing.
    let app = TestApp::spawn().await;
    app.create_slug("dnt", "https://example.com/").await;
    click_with(&app, "/dnt", &[("dnt", "1")]).await;
    let stats = settled(&app, "dnt", 1).await;
    assert_eq!(top(&stats, "referrers"), ["news.example"]);
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
        .map(|i| hop::store::conformance::click(stored.id, now - 3 * day + i, &mut rng))
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
