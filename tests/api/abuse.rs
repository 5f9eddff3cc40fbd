//! Abuse: the domain blocklist, at creation, on edit and at redirect time
//! (re-read when the file changes).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn blocked_domains_are_refused_and_their_links_stop() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blocklist.txt");
    std::fs::write(&file, "# reported\nevil.example\n").unwrap();
    let path = file.clone();
    let app = TestApp::spawn_with(move |c| c.blocklist = Some(path.clone())).await;

    for url in ["https://evil.example/login", "https://www.EVIL.example./x"] {
        let res = app
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&app.admin_key),
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, "blocked_domain".into()),
            "{url}"
        );
    }
    app.create_slug("fine", "https://shady.example/offer").await;
    let res = app
        .api(
            Method::PATCH,
            "/api/v1/links/fine",
            Some(&app.admin_key),
            Some(json!({ "url": "https://evil.example/" })),
        )
        .await;
    assert_eq!(error_code(res).await.1, "blocked_domain");
    assert_eq!(app.click("/fine").await.status(), StatusCode::FOUND);

    // The domain gets reported and listed: its links stop at once.
    std::fs::write(&file, "evil.example\nshady.example\n").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let res = app.click("/fine").await;
        if res.status() == StatusCode::GONE {
            let html = res.text().await.unwrap();
            assert!(html.contains("blocklist"), "{html}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "blocklist not re-read"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The web form explains it next to the URL field.
    let b = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let html = b
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &html[at..at + html[at..].find('"').unwrap()];
    let res = b
        .post(app.url("/"))
        .form(&[("csrf", csrf), ("url", "https://shady.example/x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("id=\"url-error\""));
}

#[tokio::test]
async fn private_targets_are_refused_when_asked() {
    let app = TestApp::spawn_with(|c| c.refuse_private_targets = true).await;
    // Literals and names from /etc/hosts only: no DNS traffic leaves.
    for url in [
        "http://127.0.0.1:8080/admin",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.64.0.1/",
        "http://localhost:9000/",
    ] {
        let res = app
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&app.admin_key),
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, "private_target".into()),
            "{url}"
        );
    }
    app.create(json!({ "url": "http://93.184.216.34/" })).await;
    app.create(json!({ "url": "http://[2606:2800:220:1::1]/" }))
        .await;
    // Off by default.
    let app = TestApp::spawn().await;
    app.create(json!({ "url": "http://127.0.0.1:8080/" })).await;
}
