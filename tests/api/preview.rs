//! Link previews through the real server: preview bots get the Open Graph
//! page (never the target, counted as bots), people the redirect; edited
//! and removed through the API; bad previews refused.

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{FIREFOX, TestApp, error_code};

const SLACK: &str = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)";
const WHATSAPP: &str = "WhatsApp/2.23.20.0 A";

async fn fetch(app: &TestApp, path: &str, ua: &str) -> reqwest::Response {
    app.client
        .get(app.any_url(path))
        .header("user-agent", ua)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn preview_bots_get_the_card_and_people_the_redirect() {
    let app = TestApp::spawn().await;
    let link = app
        .create(json!({
            "url": "https://example.com/launch?ref=secret-campaign",
            "slug": "launch",
            "preview": {
                "title": "Our launch <\"party\">",
                "description": "Doors at 7.\nBring friends.",
                "image": "https://cdn.example.com/card.png"
            }
        }))
        .await;
    assert_eq!(link["preview"]["title"], "Our launch <\"party\">");
    assert_eq!(link["preview"]["image"], "https://cdn.example.com/card.png");

    for ua in [SLACK, WHATSAPP] {
        let res = fetch(&app, "/launch", ua).await;
        assert_eq!(res.status(), StatusCode::OK, "{ua}");
        assert!(res.headers().get(LOCATION).is_none());
        let html = res.text().await.unwrap();
        assert!(
            !html.contains("secret-campaign"),
            "the target is not in the card"
        );
        assert!(
            html.contains(
                r#"<meta property="og:title" content="Our launch &lt;&quot;party&quot;&gt;">"#
            ),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<meta property="og:image" content="https://cdn.example.com/card.png">"#
            )
        );
        assert!(html.contains(r#"<meta name="twitter:card" content="summary_large_image">"#));
        assert!(html.contains("og:url") && html.contains("/launch\">"));
    }
    let res = fetch(&app, "/launch", FIREFOX).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.headers()[LOCATION],
        "https://example.com/launch?ref=secret-campaign"
    );
    // Two bot visits and one human click.
    let all = app.wait_for_clicks("launch", "include_bots=true", 3).await;
    let bots = all["top"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["value"] == "bot")
        .map(|e| e["clicks"].clone());
    assert_eq!(bots, Some(json!(2)), "{}", all["top"]["devices"]);
    let humans = app.stats("launch", "").await;
    assert_eq!(humans["total_clicks"], 1);

    // Removed: bots follow the redirect like everyone.
    let res = app
        .api(
            Method::PATCH,
            "/api/v1/links/launch",
            Some(&app.admin_key),
            Some(json!({"preview": null})),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["preview"], Value::Null);
    assert_eq!(
        fetch(&app, "/launch", SLACK).await.status(),
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn a_protected_link_shows_bots_its_preview_and_people_the_form() {
    let app = TestApp::spawn().await;
    app.create(json!({
        "url": "https://example.com/private-doc", "slug": "doc", "password": "letmein",
        "preview": {"title": "A shared document"}
    }))
    .await;
    let res = fetch(&app, "/doc", SLACK).await;
    let html = res.text().await.unwrap();
    assert!(html.contains("A shared document") && !html.contains("private-doc"));
    assert!(html.contains(r#"<meta name="twitter:card" content="summary">"#));
    let res = fetch(&app, "/doc", FIREFOX).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("type=\"password\""));
}

#[tokio::test]
async fn bad_previews_are_refused() {
    let app = TestApp::spawn().await;
    for (preview, code) in [
        (json!({"title": "x".repeat(201)}), "invalid_preview"),
        (json!({"title": "tab\there"}), "invalid_preview"),
        (json!({"description": "y".repeat(1001)}), "invalid_preview"),
        (
            json!({"image": "ftp://cdn.example.com/a.png"}),
            "unsupported_scheme",
        ),
        (json!({"colour": "red"}), "invalid_body"),
    ] {
        let res = app
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&app.admin_key),
                Some(json!({"url": "https://example.com/", "preview": preview})),
            )
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, code.to_owned()),
            "{preview}"
        );
    }
    // Nothing in it: no preview.
    let link = app
        .create(json!({"url": "https://example.com/", "preview": {"title": "  "}}))
        .await;
    assert_eq!(link["preview"], Value::Null);
}
