use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{GOOGLEBOT, TestApp};

#[tokio::test]
async fn redirect_answers_with_the_stored_target() {
    let app = TestApp::spawn().await;
    app.create_slug("go", "https://example.com/path?q=1#frag")
        .await;
    let res = app.click("/go").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.headers()["location"],
        "https://example.com/path?q=1#frag"
    );
    assert_eq!(res.headers()["cache-control"], "private, max-age=0");
    // Search engines must not index the short link in the target's place.
    assert_eq!(res.headers()["x-robots-tag"], "noindex");
    for code in [301u16, 302, 307, 308] {
        let slug = format!("s{code}");
        app.create(json!({"url": "https://example.com/", "slug": slug, "redirect_status": code}))
            .await;
        assert_eq!(app.click(&format!("/{slug}")).await.status().as_u16(), code);
    }
}

#[tokio::test]
async fn redirects_answered_before_the_router_say_what_the_routers_do() {
    // `http::front` answers `/{slug}` itself; a percent-encoded path goes
    // through the router's `/{slug}` route (which decodes it). Both must
    // answer alike: status, target, length, request id, no body for HEAD.
    let app = TestApp::spawn().await;
    app.create_slug("fast", "https://example.com/f").await;
    for method in [Method::GET, Method::HEAD] {
        for path in ["/fast", "/f%61st"] {
            let res = app
                .client
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::FOUND, "{method} {path}");
            assert_eq!(res.headers()["location"], "https://example.com/f");
            assert_eq!(res.headers()["content-length"], "0", "{method} {path}");
            let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert_eq!(id.len(), 36, "a fresh uuid: {id}");
            assert!(res.bytes().await.unwrap().is_empty());
        }
        for path in ["/nothing-here", "/nothing%2Dhere"] {
            let res = app
                .client
                .request(method.clone(), app.url(path))
                .header("x-request-id", "trace-7")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(res.headers()["x-request-id"], "trace-7", "{method} {path}");
            let length: usize = res.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body = res.bytes().await.unwrap();
            if method == Method::HEAD {
                assert!(body.is_empty() && length > 0, "{path}: {length}");
            } else {
                assert_eq!(body.len(), length, "{path}");
            }
        }
    }
    // Counted: the two GETs, not the HEADs.
    app.wait_for_clicks("fast", "include_bots=true", 2).await;
}

#[tokio::test]
async fn unknown_and_malformed_slugs_get_the_404_page() {
    let app = TestApp::spawn().await;
    for path in [
        "/nothing",
        "/a.b",
        "/a%2Fb",
        "/%C3%A9",
        "/x/y",
        &format!("/{}", "x".repeat(65)),
        "/'%20OR%201=1--",
    ] {
        let res = app.click(path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(res.text().await.unwrap().contains("Link not found"));
    }
}

#[tokio::test]
async fn head_answers_like_get_but_is_not_counted() {
    let app = TestApp::spawn().await;
    app.create_slug("head", "https://example.com/h").await;
    let res = app.client.head(app.url("/head")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "https://example.com/h");
    app.click("/head").await;
    app.wait_for_clicks("head", "include_bots=true", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.stats("head", "include_bots=true").await["total_clicks"],
        1
    );
}

#[tokio::test]
async fn expired_disabled_and_exhausted_links_are_gone() {
    let app = TestApp::spawn().await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    app.create(json!({"url": "https://example.com/", "slug": "brief", "expires_at": soon}))
        .await;
    assert_eq!(app.click("/brief").await.status(), StatusCode::FOUND);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let res = app.click("/brief").await;
    assert_eq!(res.status(), StatusCode::GONE);
    assert!(res.text().await.unwrap().contains("expired"));

    app.create_slug("off", "https://example.com/").await;
    for res in app.click_everywhere("/off").await {
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    let res = app
        .api_on(
            1,
            Method::PATCH,
            "/api/v1/links/off",
            Some(&app.admin_key),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Disabling takes effect at once on the node that did it, and on every
    // node that had the link cached.
    app.expect_everywhere(1, "/off", (StatusCode::GONE, None))
        .await;
    app.api_on(
        0,
        Method::PATCH,
        "/api/v1/links/off",
        Some(&app.admin_key),
        Some(json!({"disabled": false})),
    )
    .await;
    app.expect_everywhere(0, "/off", (StatusCode::FOUND, Some("https://example.com/")))
        .await;

    app.create(json!({"url": "https://example.com/", "slug": "three", "max_clicks": 3}))
        .await;
    // HEAD does not use up the limit.
    app.client.head(app.url("/three")).send().await.unwrap();
    let statuses: Vec<u16> = futures::future::join_all((0..5).map(|_| app.click("/three")))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 302).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 410).count(),
        2,
        "{statuses:?}"
    );
    app.wait_for_clicks("three", "", 3).await;
}

#[tokio::test]
async fn edits_take_effect_on_the_next_redirect() {
    let app = TestApp::spawn().await;
    app.create_slug("moving", "https://example.com/old").await;
    for res in app.click_everywhere("/moving").await {
        assert_eq!(res.headers()["location"], "https://example.com/old");
    }
    app.api_on(
        0,
        Method::PATCH,
        "/api/v1/links/moving",
        Some(&app.admin_key),
        Some(json!({"url": "https://example.com/new"})),
    )
    .await;
    app.expect_everywhere(
        0,
        "/moving",
        (StatusCode::FOUND, Some("https://example.com/new")),
    )
    .await;
}

#[tokio::test]
async fn a_cached_404_does_not_hide_a_new_link() {
    let app = TestApp::spawn().await;
    // Unknown on every node, and remembered as such.
    for res in app.click_everywhere("/later").await {
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let res = app
        .api_on(
            2,
            Method::POST,
            "/api/v1/links",
            Some(&app.admin_key),
            Some(json!({"url": "https://example.com/", "slug": "later"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    app.expect_everywhere(
        2,
        "/later",
        (StatusCode::FOUND, Some("https://example.com/")),
    )
    .await;
}

#[tokio::test]
async fn bots_are_excluded_by_default() {
    let app = TestApp::spawn().await;
    app.create_slug("botty", "https://example.com/").await;
    app.click("/botty").await;
    app.click_as("/botty", GOOGLEBOT, "66.249.66.1").await;
    app.client
        .get(app.url("/botty"))
        .header("user-agent", "curl/8.5.0")
        .send()
        .await
        .unwrap();
    let all = app.wait_for_clicks("botty", "include_bots=true", 3).await;
    let humans = app.stats("botty", "").await;
    assert_eq!(humans["total_clicks"], 1);
    assert_eq!(
        humans["top"]["devices"],
        json!([{"value": "desktop", "clicks": 1}])
    );
    let bots = all["top"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["value"] == "bot")
        .unwrap();
    assert_eq!(bots["clicks"], 2);
}

#[tokio::test]
async fn clicks_are_located_when_the_proxy_writes_ports_or_brackets() {
    let app = TestApp::spawn().await;
    app.create_slug("hops", "https://example.com/").await;
    app.click_as("/hops", crate::helpers::FIREFOX, "81.2.69.142:5678")
        .await;
    app.click_as(
        "/hops",
        crate::helpers::FIREFOX,
        "[2001:4860:4860::8888]:443",
    )
    .await;
    app.click_as("/hops", crate::helpers::FIREFOX, "unknown")
        .await;
    let s = app.wait_for_clicks("hops", "", 3).await;
    let countries = &s["top"]["countries"];
    let clicks = |value: &str| {
        countries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["value"] == value)
            .map_or(0, |e| e["clicks"].as_u64().unwrap())
    };
    assert_eq!((clicks("GB"), clicks("US"), clicks("unknown")), (1, 1, 1));
}
