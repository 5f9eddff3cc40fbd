//! Other shorteners' APIs, driven by their own clients: YOURLS's with the
//! PyPI `yourls` client (scripts/compat/yourls_client.py, venv by
//! scripts/compat-clients.sh); and the Flask shortener's two paths.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::ui::{browser, csrf_of};

/// A page's text, as a client gets it.
async fn text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// Runs an import of [`CountsOnly`] into the app's store (as `source`).
pub(crate) async fn import_counts_only(app: &TestApp, source: &str) -> hop::import::Summary {
    let enricher = hop::clicks::enrich::Enricher::new(None);
    hop::import::run(
        &*app.store,
        &enricher,
        &mut CountsOnly,
        &hop::import::ImportOptions {
            source: source.into(),
            ..Default::default()
        },
        |_| {},
    )
    .await
    .unwrap()
}

fn compat_python() -> std::path::PathBuf {
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/compat-venv/bin/python");
    assert!(
        python.exists(),
        "run scripts/compat-clients.sh (scripts/test.sh does)"
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_yourls_client_shortens_expands_follows_and_counts() {
    let app = TestApp::spawn_with(|c| c.compat_yourls = true).await;
    // The token for timed signatures, as a user gets it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args(["keys", "yourls-token"])
        .env("HOP_API_KEY", &app.admin_key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 32);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/compat/yourls_client.py");
    let base = app.base.clone();
    let key = app.admin_key.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(compat_python())
            .arg(script)
            .args([&base, &key, &token])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let url = "https://example.com/from-yourls?q=1";

    assert_eq!(
        got["shorten"],
        json!({"keyword": "yclient", "shorturl": "http://hop.test/yclient", "url": url,
               "title": "From the client", "date": got["shorten"]["date"]})
    );
    assert!(!got["random_keyword"].as_str().unwrap().is_empty());
    assert_eq!(got["expand"], url);
    assert_eq!(got["expand_by_url"], url);
    assert_eq!(got["follow"], json!([[302, url], [302, url]]));
    assert_eq!(
        got["url_stats"],
        json!({"clicks": 2, "url": url, "title": "From the client", "shorturl": "http://hop.test/yclient"})
    );
    assert_eq!(
        got["stats_top"],
        json!({"shorturl": "http://hop.test/yclient", "clicks": 2, "total_links": 2, "total_clicks": 2})
    );
    assert_eq!(
        got["db_stats"],
        json!({"total_links": 2, "total_clicks": 2})
    );
    assert_eq!(got["taken"]["status"], 400);
    // YOURLS 1.9 answers a taken keyword with 400, which this client
    // raises as an HTTP error carrying YOURLS's body.
    assert_eq!(
        got["taken"]["body"],
        json!({"status": "fail", "code": "error:keyword", "errorCode": "400", "statusCode": "400",
               "message": "Short URL yclient already exists in database or is reserved"})
    );
    assert_eq!(
        got["wrong_signature"],
        json!({"status": 403, "body": {"message": "Invalid username or password", "errorCode": "403", "callback": ""}})
    );
    assert_eq!(got["timed_md5"], json!([200, url]));
    assert_eq!(got["timed_sha256"][0], 200);
    assert_eq!(got["timed_sha256"][1]["version"], "1.9.2");
    assert_eq!(got["timed_expired"][0], 403, "{got}");
    assert_eq!(got["token"][0], 200, "{got}");

    let xml = &got["xml"];
    assert_eq!(xml[0], 200);
    assert_eq!(xml[1], "application/xml");
    let text = xml[2].as_str().unwrap();
    assert!(
        text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<root>"),
        "{text}"
    );
    assert!(
        text.contains(&format!("<longurl>{url}</longurl>")),
        "{text}"
    );
    assert!(text.contains("<statusCode>200</statusCode>"), "{text}");
    assert_eq!(got["simple"], json!([200, "text/plain", url]));
    let jsonp = &got["jsonp_missing"];
    assert_eq!(jsonp[0], 404);
    assert_eq!(jsonp[1], "application/javascript");
    let body = jsonp[2].as_str().unwrap();
    assert!(body.starts_with("cb({") && body.ends_with("})"), "{body}");
    assert!(
        body.contains("\"message\":\"Error: short URL not found\""),
        "{body}"
    );
    assert_eq!(got["jsonp_bad_callback"][0], 400);
    assert_eq!(
        got["unknown_action"],
        json!([400, {"errorCode": "400", "message": "Unknown or missing \"action\" parameter"}])
    );
    assert_eq!(got["bad_url"][0], 400);
    assert_eq!(got["bad_url"][1]["code"], "error:nourl");
    assert_eq!(got["bad_url"][1]["status"], "fail");
    assert_eq!(
        got["no_signature"],
        json!([403, {"message": "Please log in", "errorCode": "403", "callback": ""}])
    );

    // The link is hop's, owned by the key that signed.
    let link = app.link("yclient").await;
    assert_eq!(link["url"], url);
    assert_eq!(link["title"], "From the client");
}

#[tokio::test]
async fn the_yourls_api_is_off_unless_switched_on() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url(&format!(
            "/yourls-api.php?action=version&format=json&signature={}",
            app.admin_key
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_flask_paths_keep_working() {
    let app = TestApp::spawn().await;
    app.create_slug("flask", "https://example.com/flask").await;
    app.click("/flask").await;
    app.wait_for_clicks("flask", "", 1).await;

    // `/analytics/<id>`: JSON for a JSON client, the dashboard for a browser.
    let res = app
        .client
        .get(app.url("/analytics/flask"))
        .header("accept", "application/json")
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let stats: Value = res.json().await.unwrap();
    assert_eq!(stats["slug"], "flask");
    assert_eq!(stats["total_clicks"], 1, "{stats}");
    let res = app
        .client
        .get(app.url("/analytics/flask"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "same credentials as the API"
    );
    let res = app
        .client
        .get(app.url("/analytics/flask"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()["location"], "/links/flask");

    // `POST /shorten`: the home form's post.
    let browser = browser();
    let html = text(&browser, &app.url("/")).await;
    let csrf = csrf_of(&html);
    let res = browser
        .post(app.url("/shorten"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("url", "https://example.com/posted"),
            ("slug", "posted"),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let html = res.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{html}");
    assert!(html.contains("http://hop.test/posted"));
    assert_eq!(
        app.link("posted").await["url"],
        "https://example.com/posted"
    );

    // Both words are kept from slugs.
    for word in ["shorten", "analytics"] {
        let res = app
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&app.admin_key),
                Some(json!({"url": "https://example.com/", "slug": word})),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{word}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "reserved_slug");
    }
}

/// A source that has one link and only counts for it (as Bitly or Dub).
struct CountsOnly;

#[async_trait::async_trait]
impl hop::import::Source for CountsOnly {
    async fn links(&mut self) -> anyhow::Result<Vec<hop::import::SourceLink>> {
        Ok(vec![hop::import::SourceLink {
            key: "counted".into(),
            slug: Some("counted".into()),
            url: "https://example.com/counted".into(),
            clicks: Some(12),
            ..Default::default()
        }])
    }

    async fn link_counts(
        &mut self,
        _link: &hop::import::SourceLink,
    ) -> anyhow::Result<Vec<hop::import::SourceCount>> {
        Ok(vec![hop::import::SourceCount {
            at: chrono::Utc::now().timestamp_millis() - 3 * 86_400_000,
            clicks: 12,
            complete_to: Some(12),
            ..Default::default()
        }])
    }
}

#[tokio::test]
async fn the_dashboard_says_which_clicks_were_imported_as_counts() {
    let app = TestApp::spawn().await;
    let summary = import_counts_only(&app, "test:default").await;
    assert_eq!(summary.clicks_counted, 12);
    let browser = browser();
    let html = text(&browser, &app.url("/login?next=/links/counted")).await;
    let csrf = csrf_of(&html);
    let res = browser
        .post(app.url("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("key", &app.admin_key),
            ("next", "/links/counted"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = text(&browser, &app.url("/links/counted")).await;
    assert!(
        html.contains("12 of these clicks were imported as counts (from test:default)"),
        "{html}"
    );
    assert!(html.contains("but not in unique visitors"));
    // A link without counted clicks says nothing of them.
    app.create_slug("plain", "https://example.com/plain").await;
    let html = text(&browser, &app.url("/links/plain")).await;
    assert!(!html.contains("counted-note"));
}
