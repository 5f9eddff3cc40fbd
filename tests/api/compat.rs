//! Other shorteners' APIs, driven by their own clients (installed by
//! scripts/compat-clients.sh, driven by scripts/compat/*): YOURLS's with
//! the PyPI `yourls` client, Shlink's with `@shlinkio/shlink-js-sdk`,
//! Dub's with the PyPI `dub` SDK, Bitly's with the PyPI `bitly-api-sdk`
//! and `pyshorteners`; and the Flask shortener's two paths.

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

/// Runs a client script (`program script args…`, the script in
/// scripts/compat/) off the runtime and gives what it printed as JSON,
/// failing with its stderr when it fails.
async fn run_client(program: std::path::PathBuf, script: &str, args: Vec<String>) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/compat")
        .join(script);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
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
    let args = vec![app.base.clone(), app.admin_key.clone(), token];
    let got = run_client(compat_python(), "yourls_client.py", args).await;
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

/// Shlink's own SDK (@shlinkio/shlink-js-sdk, scripts/compat/shlink_client.mjs)
/// against `--compat-shlink`: create (custom slug, tags, title, validUntil,
/// maxVisits, findIfExists), read back, follow, read the visits, list,
/// edit, tags, overview, delete; and Shlink's problems for each refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shlinks_sdk_creates_reads_follows_and_counts() {
    let app = TestApp::spawn_with(|c| c.compat_shlink = true).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sdk = root.join("target/compat-node");
    assert!(
        sdk.join("node_modules/@shlinkio/shlink-js-sdk").exists(),
        "run scripts/compat-clients.sh (scripts/test.sh does)"
    );
    let args = vec![
        app.base.clone(),
        app.admin_key.clone(),
        sdk.display().to_string(),
    ];
    let got = run_client("node".into(), "shlink_client.mjs", args).await;
    let url = "https://example.com/from-shlink?a=1";

    assert_eq!(got["health"]["status"], "pass");
    assert_eq!(
        got["health"]["version"],
        hop::http::compat::shlink::SHLINK_VERSION
    );
    let created = &got["created"];
    assert_eq!(
        created,
        &json!({
            "shortCode": "sdk-one", "shortUrl": "http://hop.test/sdk-one", "longUrl": url,
            "dateCreated": created["dateCreated"],
            "visitsSummary": {"total": 0, "nonBots": 0, "bots": 0},
            "tags": ["news", "sdk"],
            "meta": {"validSince": null, "validUntil": got["validUntil"], "maxVisits": 100},
            "domain": null, "title": "From the SDK", "crawlable": false, "forwardQuery": false,
            "hasRedirectRules": false,
        })
    );
    assert!(created["dateCreated"].as_str().unwrap().ends_with("+00:00"));
    // findIfExists gives the link there is, not a new one.
    assert_eq!(got["found"]["shortCode"], "sdk-one");
    assert_eq!(
        got["taken"]["error"],
        json!({"type": "https://shlink.io/api/error/non-unique-slug", "title": "Invalid custom slug",
               "detail": "Provided slug \"sdk-one\" is already in use.", "status": 400,
               "customSlug": "sdk-one"})
    );
    for (case, field) in [("bad_url", "longUrl"), ("future_start", "validSince")] {
        let e = &got[case]["error"];
        assert_eq!(
            e["type"], "https://shlink.io/api/error/invalid-data",
            "{case}"
        );
        assert_eq!(e["status"], 400, "{case}");
        assert_eq!(e["invalidElements"], json!([field]), "{case}");
    }
    assert_eq!(got["read"], got["created"]);

    // Two browsers and a crawler followed it.
    assert_eq!(got["follow"], json!([[302, url], [302, url], [302, url]]));
    assert_eq!(got["counted"], json!({"total": 3, "nonBots": 2, "bots": 1}));
    let visits = &got["visits"];
    assert_eq!(visits["pagination"]["totalItems"], 3);
    let data = visits["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data.iter().filter(|v| v["potentialBot"] == true).count(), 1);
    for v in data {
        assert_eq!(v["referer"], "news.example.org");
        assert_eq!(v["visitedUrl"], "http://hop.test/sdk-one");
    }
    // Newest first.
    assert!(data[0]["date"].as_str() >= data[2]["date"].as_str());
    assert_eq!(got["human_visits"]["pagination"]["totalItems"], 2);
    assert_eq!(
        got["visits_page"]["pagination"],
        json!({"currentPage": 2, "pagesCount": 2, "itemsPerPage": 2, "itemsInCurrentPage": 1, "totalItems": 3})
    );
    assert_eq!(got["visits_page"]["data"][0], data[2]);

    let all = &got["list_all"];
    assert_eq!(all["pagination"]["totalItems"], 2);
    assert_eq!(got["list_tag"], json!(["sdk-one"]));
    assert_eq!(got["list_search"], json!([got["random_code"]]));
    assert_eq!(got["list_by_visits"]["data"][0]["shortCode"], "sdk-one");
    assert_eq!(got["list_by_visits"]["pagination"]["pagesCount"], 2);
    assert_eq!(
        got["list_bad_order"]["error"]["invalidElements"],
        json!(["orderBy"])
    );

    let edited = &got["edited"];
    assert_eq!(edited["longUrl"], "https://example.com/edited");
    assert_eq!(edited["title"], "Edited");
    assert_eq!(edited["meta"]["maxVisits"], Value::Null);
    assert_eq!(edited["meta"]["validUntil"], got["validUntil"]);
    assert_eq!(
        got["follow_edited"],
        json!([302, "https://example.com/edited"])
    );

    assert_eq!(got["tags"]["data"], json!(["news", "other", "sdk"]));
    assert_eq!(
        got["tag_stats"]["data"][0],
        json!({"tag": "news", "shortUrlsCount": 1, "visitsSummary": {"total": 3, "nonBots": 2, "bots": 1}})
    );
    assert_eq!(
        got["overview"],
        json!({"nonOrphanVisits": {"total": 3, "nonBots": 2, "bots": 1},
               "orphanVisits": {"total": 0, "nonBots": 0, "bots": 0}})
    );
    assert_eq!(got["domains"]["data"][0]["domain"], "hop.test");
    assert_eq!(got["domains"]["data"][0]["isDefault"], true);
    assert_eq!(got["mercure"]["error"]["status"], 501);
    assert_eq!(
        got["wrong_key"]["error"],
        json!({"type": "https://shlink.io/api/error/invalid-api-key", "title": "Invalid API key",
               "detail": "Provided API key does not exist or is invalid.", "status": 401})
    );
    assert_eq!(
        got["gone"]["error"]["type"],
        "https://shlink.io/api/error/short-url-not-found"
    );
    assert_eq!(got["gone"]["error"]["shortCode"], got["random_code"]);
    assert_eq!(
        got["missing_route"]["error"]["type"],
        "https://shlink.io/api/error/not-found"
    );
    let gone = app
        .store
        .link_by_slug(&hop::domain::Slug::parse(got["random_code"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert!(gone.is_none(), "deleted through the SDK");
}

/// What the SDK does not reach: no key, another key's links, a regular
/// key's view, bad bodies, CORS preflights, and the flag off.
#[tokio::test]
async fn shlinks_api_refuses_as_shlink_does() {
    let app = TestApp::spawn_with(|c| c.compat_shlink = true).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}/rest/v3{p}", app.base);
    let res = client.get(url("/short-urls")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://shlink.io/api/error/missing-authentication"
    );

    let alice = app.create_key("alice", false).await;
    let bob = app.create_key("bob", false).await;
    let post = |key: &str, body: Value| {
        client
            .post(url("/short-urls"))
            .header("X-Api-Key", key)
            .json(&body)
            .send()
    };
    let res = post(
        &alice,
        json!({"longUrl": "https://example.com/a", "customSlug": "alices"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Bob is an "author only" key: Alice's link is not there for him.
    let res = client
        .get(url("/short-urls/alices"))
        .header("X-Api-Key", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = client
        .get(url("/short-urls"))
        .header("X-Api-Key", &bob)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["shortUrls"]["pagination"]["totalItems"], 0);
    let res = client
        .delete(url("/short-urls/alices"))
        .header("X-Api-Key", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        app.store
            .link_by_slug(&hop::domain::Slug::parse("alices").unwrap())
            .await
            .unwrap()
            .is_some()
    );

    // Bad bodies: each a 400 invalid-data naming the field, nothing stored.
    for (body, field) in [
        (json!({}), "longUrl"),
        (json!({"longUrl": 5}), "longUrl"),
        (
            json!({"longUrl": "https://example.com/", "tags": "x"}),
            "tags",
        ),
        (
            json!({"longUrl": "https://example.com/", "maxVisits": 0}),
            "maxVisits",
        ),
        (
            json!({"longUrl": "https://example.com/", "validUntil": "soon"}),
            "validUntil",
        ),
        (
            json!({"longUrl": "https://example.com/", "validUntil": "2001-01-01"}),
            "validUntil",
        ),
        (
            json!({"longUrl": "https://example.com/", "customSlug": "no spaces"}),
            "customSlug",
        ),
        (
            json!({"longUrl": "https://example.com/", "domain": "other.test"}),
            "domain",
        ),
        (
            json!({"longUrl": "https://example.com/", "findIfExists": "yes"}),
            "findIfExists",
        ),
    ] {
        let res = post(&alice, body.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let got: Value = res.json().await.unwrap();
        assert_eq!(
            got["type"], "https://shlink.io/api/error/invalid-data",
            "{body}"
        );
        assert_eq!(got["invalidElements"], json!([field]), "{body}");
    }
    let res = client
        .post(url("/short-urls"))
        .header("X-Api-Key", &alice)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Pages far past the end are empty, not errors.
    for path in [
        "/short-urls?page=999999999999999&itemsPerPage=-1",
        "/short-urls?page=999999999999999&itemsPerPage=999999999999",
        "/short-urls/alices/visits?page=999999999999999&itemsPerPage=20000",
        "/tags?page=999999999999999&itemsPerPage=-1",
    ] {
        let res = client
            .get(url(path))
            .header("X-Api-Key", &alice)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let body: Value = res.json().await.unwrap();
        let list = body.as_object().unwrap().values().next().unwrap();
        assert_eq!(list["data"], json!([]), "{path}");
    }
    for q in [
        "page=0",
        "itemsPerPage=many",
        "startDate=someday",
        "tagsMode=most",
    ] {
        let res = client
            .get(url(&format!("/short-urls?{q}")))
            .header("X-Api-Key", &alice)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{q}");
    }
    let res = client
        .put(url("/short-urls"))
        .header("X-Api-Key", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["status"], 405);

    // The web client's preflight, from another origin.
    let res = client
        .request(Method::OPTIONS, url("/short-urls"))
        .header("Origin", "https://app.shlink.io")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-api-key,content-type")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("x-api-key"), "{allowed}");
    let res = client
        .get(format!("{}/rest/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/health+json");

    let off = TestApp::spawn().await;
    let res = client
        .get(format!("{}/rest/v3/short-urls", off.base))
        .header("X-Api-Key", &off.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_ne!(
        res.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("application/problem+json".to_owned())
    );
}

/// Dub's own Python SDK (PyPI `dub`, scripts/compat/dub_client.py), its
/// server URL set to hop's `/dub`, against `--compat-dub`: every answer
/// passes the SDK's models; create, read back by key and id, follow, read
/// the analytics, list, update, delete; Dub's errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dubs_sdk_creates_reads_follows_and_counts() {
    let app = TestApp::spawn_with(|c| c.compat_dub = true).await;
    let args = vec![app.base.clone(), app.admin_key.clone()];
    let got = run_client(compat_python(), "dub_client.py", args).await;
    let url = "https://example.com/from-dub?x=1";

    let created = &got["created"];
    assert_eq!(created["id"], "link_dub-one");
    assert_eq!(created["domain"], "hop.test");
    assert_eq!(created["key"], "dub-one");
    assert_eq!(created["url"], url);
    assert_eq!(created["shortLink"], "http://hop.test/dub-one");
    assert_eq!(created["title"], "From the SDK");
    assert_eq!(created["expiredUrl"], "https://example.com/expired");
    assert_eq!(
        created["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].clone())
            .collect::<Vec<_>>(),
        [json!("tag_launch"), json!("tag_sdk")]
    );
    let created_at = created["createdAt"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created_at).is_ok(),
        "{created_at}"
    );
    assert_eq!(got["by_key"], got["by_id"]);
    assert_eq!(got["by_key"]["id"], "link_dub-one");
    let error = |case: &str| got[case]["body"]["error"].clone();
    assert_eq!(got["taken"]["status"], 409);
    assert_eq!(error("taken")["code"], "conflict");
    assert_eq!(got["bad_url"]["status"], 422);
    assert_eq!(error("bad_url")["code"], "unprocessable_entity");

    assert_eq!(got["follow"], json!([[302, url], [302, url], [302, url]]));
    // Dub does not count bots: two clicks, however they are asked for.
    for case in ["count", "count_by_key", "workspace_count"] {
        assert_eq!(got[case]["clicks"], 2.0, "{case}");
    }
    let series = got["timeseries"].as_array().unwrap();
    assert!(series.len() >= 24, "{series:?}");
    let sum: f64 = series.iter().map(|b| b["clicks"].as_f64().unwrap()).sum();
    assert_eq!(sum, 2.0);
    // All time, by month in Paris: this month starts at 23:00 UTC (or
    // 22:00 in summer) the day before the 1st.
    let months = got["timeseries_all"].as_array().unwrap();
    assert_eq!(months.len(), 1);
    assert_eq!(months[0]["clicks"], 2.0);
    let start = months[0]["start"].as_str().unwrap();
    assert!(
        start.contains("T23:00:00") || start.contains("T22:00:00"),
        "{start}"
    );
    let rows = |case: &str, field: &str| -> Vec<(String, f64)> {
        got[case]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[field].as_str().unwrap().to_owned(),
                    r["clicks"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        rows("devices", "device"),
        [("Desktop".into(), 1.0), ("Mobile".into(), 1.0)]
    );
    assert_eq!(
        rows("browsers", "browser"),
        [("Chrome".into(), 1.0), ("Safari".into(), 1.0)]
    );
    assert_eq!(
        rows("referers", "referer"),
        [("(direct)".into(), 1.0), ("google.com".into(), 1.0)]
    );
    assert_eq!(
        rows("countries", "country")
            .iter()
            .map(|r| r.1)
            .sum::<f64>(),
        2.0
    );
    assert_eq!(got["countries"][0]["city"], "*");
    assert_eq!(rows("os", "os").len(), 2);
    assert_eq!(got["cities"]["status"], 400);
    assert_eq!(got["filtered"]["status"], 400);

    let other = got["other_key"].as_str().unwrap();
    assert_eq!(got["listed"], json!([other, "dub-one"]));
    assert_eq!(got["listed_tag"], json!(["dub-one"]));
    assert_eq!(got["listed_search"], json!([other]));
    assert_eq!(got["updated"]["url"], "https://example.com/updated");
    assert_eq!(got["updated"]["title"], "Updated");
    assert_eq!(got["updated"]["tags"][0]["name"], "launch");
    assert_eq!(got["updated"]["tags"].as_array().unwrap().len(), 1);
    assert_eq!(
        got["follow_updated"],
        json!([302, "https://example.com/updated"])
    );
    assert_eq!(got["deleted"], json!({"id": format!("link_{other}")}));
    assert_eq!(got["gone"]["status"], 404);
    assert_eq!(error("gone")["code"], "not_found");
    assert_eq!(got["wrong_key"]["status"], 401);
    assert_eq!(error("wrong_key")["code"], "unauthorized");
}

/// What the SDK does not reach: no key, another key's links, bad bodies,
/// and the flag off.
#[tokio::test]
async fn dubs_api_refuses_as_dub_does() {
    let app = TestApp::spawn_with(|c| c.compat_dub = true).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}/dub{p}", app.base);
    let res = client.get(url("/links")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let alice = app.create_key("alice", false).await;
    let bob = app.create_key("bob", false).await;
    let res = client
        .post(url("/links"))
        .bearer_auth(&alice)
        .json(&json!({"url": "https://example.com/a", "key": "alices"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for (method, path) in [
        (Method::GET, "/links/info?linkId=link_alices"),
        (Method::PATCH, "/links/link_alices"),
        (Method::DELETE, "/links/link_alices"),
        (Method::GET, "/analytics?linkId=link_alices"),
    ] {
        let res = client
            .request(method.clone(), url(path))
            .bearer_auth(&bob)
            .json(&json!({"title": "mine now"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let listed: Value = client
        .get(url("/links"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
    assert!(
        app.store
            .link_by_slug(&hop::domain::Slug::parse("alices").unwrap())
            .await
            .unwrap()
            .is_some()
    );

    for (body, status) in [
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"url": 5}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"url": "https://example.com/", "key": "has space"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "https://example.com/", "expiresAt": "soon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "https://example.com/", "tagNames": [1]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"url": "https://example.com/", "domain": "dub.sh"}),
            StatusCode::FORBIDDEN,
        ),
        (json!([1]), StatusCode::BAD_REQUEST),
    ] {
        let res = client
            .post(url("/links"))
            .bearer_auth(&alice)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{body}");
        let got: Value = res.json().await.unwrap();
        assert!(got["error"]["code"].is_string(), "{body}");
    }
    let far: Value = client
        .get(url("/links?page=999999999999999999"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(far, json!([]));
    for q in ["page=0", "pageSize=500", "sortBy=colour", "sortOrder=up"] {
        let res = client
            .get(url(&format!("/links?{q}")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{q}");
    }
    for q in [
        "interval=2w",
        "event=views",
        "timezone=Mars/Base",
        "groupBy=top_links",
        "start=yesterday",
    ] {
        let res = client
            .get(url(&format!("/analytics?{q}")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{q}");
    }
    let res = client
        .get(url("/links/info"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = client
        .patch(url("/links/link_alices"))
        .bearer_auth(&alice)
        .json(&json!({"key": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let off = TestApp::spawn().await;
    let res = client
        .get(format!("{}/dub/links", off.base))
        .bearer_auth(&off.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Bitly v4 (`--compat-bitly`) through `bitly-api-sdk` (generated from
/// Bitly's API collection) and `pyshorteners`
/// (scripts/compat/bitly_client.py): shorten (201, then 200 for the same
/// URL), create with a back-half, read back, follow, clicks by day, hour
/// and month, the summary, patch; Bitly's errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitly_clients_shorten_read_follow_and_count() {
    let app = TestApp::spawn_with(|c| c.compat_bitly = true).await;
    let args = vec![app.base.clone(), app.admin_key.clone()];
    let got = run_client(compat_python(), "bitly_client.py", args).await;
    let url = "https://example.com/from-bitly";

    assert_eq!(got["shorten"][0], 201);
    assert_eq!(got["shorten_again"][0], 200);
    assert_eq!(got["shorten_again"][1]["id"], got["shorten"][1]["id"]);
    let created = &got["created"][1];
    assert_eq!(got["created"][0], 201);
    assert_eq!(
        created,
        &json!({
            "references": {"group": "http://hop.test/v4/groups/Bhop"},
            "link": "http://hop.test/bitly-one", "id": "hop.test/bitly-one", "long_url": url,
            "title": "From the SDK", "archived": false, "created_at": created["created_at"],
            "created_by": "test-admin", "client_id": "hop", "custom_bitlinks": [], "tags": ["t1"],
            "deeplinks": [], "is_deleted": false, "launchpad_ids": [], "campaign_ids": [],
        })
    );
    let created_at = created["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_str(created_at, "%Y-%m-%dT%H:%M:%S%z").is_ok()
            && created_at.ends_with("+0000"),
        "{created_at}"
    );
    assert_eq!(got["created_model"][1]["title"], "plain");
    assert_eq!(got["taken"][0], 409);
    assert_eq!(got["bad_url"][0], 400);
    assert_eq!(got["bad_url"][1]["message"], "INVALID_ARG_LONG_URL");
    assert_eq!(got["bad_url"][1]["errors"][0]["field"], "long_url");
    assert_eq!(got["read"], json!([200, created]));

    assert_eq!(got["follow"], json!([[302, url], [302, url], [302, url]]));
    // Humans only: the crawler's visit is not a click.
    assert_eq!(got["summary"][1]["total_clicks"], 2);
    assert_eq!(got["summary"][1]["units"], -1);
    let days = got["clicks"][1]["link_clicks"].as_array().unwrap();
    assert_eq!(days.len(), 1, "one day since the link was made");
    assert_eq!(days[0]["clicks"], 2);
    assert!(
        days[0]["date"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00+0000")
    );
    let hours = got["clicks_hours"][1]["link_clicks"].as_array().unwrap();
    assert_eq!(hours.len(), 3);
    assert_eq!(hours[0]["clicks"], 2, "newest hour first");
    assert_eq!(hours[1]["clicks"], 0);
    let months = got["clicks_months"][1]["link_clicks"].as_array().unwrap();
    assert_eq!(months.len(), 2);
    assert_eq!(months[0]["clicks"], 2);
    assert!(months[0]["date"].as_str().unwrap().contains("-01T00:00:00"));
    assert_eq!(got["bad_unit"][0], 400);
    assert_eq!(got["bad_unit"][1]["message"], "INVALID_ARG_UNIT");

    assert_eq!(got["patched"][0], 200);
    assert_eq!(got["patched"][1]["title"], "Patched");
    assert_eq!(got["patched"][1]["tags"], json!(["t1", "t2"]));
    assert_eq!(
        got["unknown"],
        json!([404, {"message": "NOT_FOUND", "resource": "bitlinks",
                     "description": "What you are looking for cannot be found."}, "NOTFOUNDException"])
    );
    assert_eq!(got["wrong_key"][0], 403);
    assert_eq!(got["wrong_key"][1]["message"], "FORBIDDEN");
    // pyshorteners gets the bitlink there is for this URL, and its clicks.
    assert_eq!(got["py_short"], "http://hop.test/bitly-one");
    assert_eq!(got["py_expand"], url);
    assert_eq!(got["py_total"], 2);
}

/// What the clients do not reach: a bare token (npm `bitly` sends one),
/// another key's links, bad bodies and units, and the flag off.
#[tokio::test]
async fn bitlys_api_refuses_as_bitly_does() {
    let app = TestApp::spawn_with(|c| c.compat_bitly = true).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}/v4{p}", app.base);
    let res = client
        .post(url("/shorten"))
        .json(&json!({"long_url": "https://example.com/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let alice = app.create_key("alice", false).await;
    let bob = app.create_key("bob", false).await;
    let res = client
        .post(url("/bitlinks"))
        .header("Authorization", &alice)
        .json(&json!({"long_url": "https://example.com/a", "keyword": "alices"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "a bare token");
    for (method, path) in [
        (Method::GET, "/bitlinks/hop.test%2Falices"),
        (Method::PATCH, "/bitlinks/hop.test/alices"),
        (Method::GET, "/bitlinks/hop.test/alices/clicks"),
        (Method::GET, "/bitlinks/hop.test/alices/clicks/summary"),
        (Method::GET, "/bitlinks/bit.ly/alices"),
    ] {
        let res = client
            .request(method.clone(), url(path))
            .bearer_auth(&bob)
            .json(&json!({"title": "mine now"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["message"], "NOT_FOUND");
    }
    // Bob shortening the same URL gets a link of his own.
    let res = client
        .post(url("/shorten"))
        .bearer_auth(&bob)
        .json(&json!({"long_url": "https://example.com/a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    for (body, field) in [
        (json!({}), "long_url"),
        (json!({"long_url": 3}), "long_url"),
        (json!({"long_url": "javascript:alert(1)"}), "long_url"),
        (json!({"long_url": "http://hop.test/alices"}), "long_url"),
        (
            json!({"long_url": "https://example.com/", "domain": "other.test"}),
            "domain",
        ),
        (
            json!({"long_url": "https://example.com/", "keyword": "a b"}),
            "keyword",
        ),
        (
            json!({"long_url": "https://example.com/", "tags": "x"}),
            "tags",
        ),
    ] {
        let res = client
            .post(url("/bitlinks"))
            .bearer_auth(&alice)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let got: Value = res.json().await.unwrap();
        assert_eq!(got["errors"][0]["field"], field, "{body}");
    }
    for q in [
        "unit=fortnight",
        "units=0",
        "units=x",
        "units=1000000000000",
        "unit_reference=soon",
        "unit=minute&units=-1&unit_reference=2030-01-01T00:00:00%2B0000",
    ] {
        let res = client
            .get(url(&format!("/bitlinks/hop.test/alices/clicks?{q}")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{q}");
    }
    let res = client
        .patch(url("/bitlinks/hop.test/alices"))
        .bearer_auth(&alice)
        .json(&json!({"archived": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = client
        .delete(url("/bitlinks/hop.test/alices"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        app.store
            .link_by_slug(&hop::domain::Slug::parse("alices").unwrap())
            .await
            .unwrap()
            .is_some()
    );

    let off = TestApp::spawn().await;
    let res = client
        .post(format!("{}/v4/shorten", off.base))
        .bearer_auth(&off.admin_key)
        .json(&json!({"long_url": "https://example.com/"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert_ne!(res.status(), StatusCode::CREATED);
}
