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
        assert_eq!(
            app.create_refused(json!({ "url": url })).await,
            (StatusCode::BAD_REQUEST, "blocked_domain".into()),
            "{url}"
        );
    }
    app.create_slug("fine", "https://shady.example/offer").await;
    // A rule's target on a domain that gets listed later stops too.
    app.create(json!({
        "url": "https://ok.example/", "slug": "ruled",
        "rules": [{"if": [{"query_present": "r"}], "target": "https://shady.example/r"}]
    }))
    .await;
    // And so does a fallback URL there.
    app.create(json!({
        "url": "https://ok.example/", "slug": "spent", "max_clicks": 1,
        "fallback_url": "https://shady.example/f"
    }))
    .await;
    assert_eq!(app.click("/spent").await.status(), StatusCode::FOUND);
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
    // Every node re-reads the list on its own (cluster mode): asked
    // until each answers so.
    for path in ["/ruled?r", "/spent"] {
        loop {
            if app.click(path).await.status() == StatusCode::GONE {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} still redirects"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(app.click("/ruled").await.status(), StatusCode::FOUND);
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
        // Found by review: address forms and names the first filter let by.
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[::7f00:1]/",
        "http://[fec0::1]/",
        "http://224.0.0.1/",
        "http://198.18.0.1/",
        "http://198.19.255.254/",
        "http://localhost./",
        "http://admin.localhost/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://printer.local/",
        "http://nowhere.invalid/",
        "http://[ff02::1]/",
        "http://0.0.0.0/",
    ] {
        assert_eq!(
            app.create_refused(json!({ "url": url })).await,
            (StatusCode::BAD_REQUEST, "private_target".into()),
            "{url}"
        );
    }
    app.create(json!({ "url": "http://93.184.216.34/" })).await;
    app.create(json!({ "url": "http://[2606:2800:220:1::1]/" }))
        .await;
    app.create(json!({ "url": "http://[64:ff9b::808:808]/" }))
        .await;
    // Off by default.
    let app = TestApp::spawn().await;
    app.create(json!({ "url": "http://127.0.0.1:8080/" })).await;
}

/// The check runs again when a link is followed: a link whose target is
/// (or has come to be) private stops redirecting once the option is on.
#[tokio::test]
async fn private_targets_are_refused_at_redirect_too() {
    let app = TestApp::spawn().await;
    app.create_slug("inside", "http://localhost:9000/admin")
        .await;
    app.create_slug("meta", "http://[64:ff9b::a9fe:a9fe]/latest")
        .await;
    app.create_slug("outside", "http://93.184.216.34/").await;
    assert_eq!(app.click("/inside").await.status(), StatusCode::FOUND);
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir, |c| c.refuse_private_targets = true).await;
    for slug in ["inside", "meta"] {
        for _ in 0..2 {
            let res = app.click(&format!("/{slug}")).await;
            assert_eq!(res.status(), StatusCode::GONE, "{slug}");
            assert!(res.headers().get("location").is_none());
            assert!(
                res.text()
                    .await
                    .unwrap()
                    .contains("not on the public internet"),
                "{slug}"
            );
        }
    }
    let res = app.click("/outside").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "http://93.184.216.34/");
}

#[tokio::test]
async fn reports_reach_admins_who_can_take_a_domain_down() {
    let app = TestApp::spawn().await;
    app.create_slug("lure", "https://login.phish.example/bank")
        .await;
    app.create_slug("lure2", "https://phish.example/other")
        .await;
    app.create_slug("okay", "https://example.com/").await;

    // Anyone reports, through the API or the form linked from error pages.
    let res = app
        .api(
            Method::POST,
            "/api/v1/reports",
            None,
            Some(json!({"slug": "lure", "reason": "phishing", "details": "fake bank login"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    for (body, code) in [
        (
            json!({"slug": "lure", "reason": "boring"}),
            "invalid_reason",
        ),
        (json!({"slug": "../x", "reason": "spam"}), "invalid_slug"),
        (
            json!({"slug": "lure", "reason": "spam", "details": "x".repeat(3000)}),
            "invalid_details",
        ),
    ] {
        let res = app
            .api(Method::POST, "/api/v1/reports", None, Some(body))
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, code.into())
        );
    }
    let b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = b
        .get(app.url("/report?slug=lure2"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("value=\"lure2\""));
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[at..at + html[at..].find('"').unwrap()].to_owned();
    let res = b
        .post(app.url("/report"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("slug", "lure2"),
            ("reason", "malware"),
            ("details", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.text().await.unwrap().contains("Thank you"));

    // Only admins read them.
    let (status, _) = error_code(app.api(Method::GET, "/api/v1/reports", None, None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let user = app.create_key("user", false).await;
    let (status, _) = error_code(
        app.api(Method::GET, "/api/v1/reports", Some(&user), None)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let page: serde_json::Value = app
        .api(Method::GET, "/api/v1/reports", Some(&app.admin_key), None)
        .await
        .json()
        .await
        .unwrap();
    let reports = page["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["slug"], "lure2");
    assert_eq!(reports[0]["reason"], "malware");
    assert_eq!(reports[1]["details"], "fake bank login");

    // One call disables every link to the domain (subdomains included).
    let res = app
        .api(
            Method::POST,
            "/api/v1/admin/disable-domain",
            Some(&user),
            Some(json!({"domain": "phish.example"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res: serde_json::Value = app
        .api(
            Method::POST,
            "/api/v1/admin/disable-domain",
            Some(&app.admin_key),
            Some(json!({"domain": "PHISH.example"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res["disabled"], 2);
    for slug in ["/lure", "/lure2"] {
        let res = app.click(slug).await;
        assert_eq!(res.status(), StatusCode::GONE);
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&format!("/report?slug={}", &slug[1..])),
            "report link on the 410 page"
        );
    }
    assert_eq!(app.click("/okay").await.status(), StatusCode::FOUND);
    let res = app
        .api(
            Method::POST,
            "/api/v1/admin/disable-domain",
            Some(&app.admin_key),
            Some(json!({"domain": "not a domain"})),
        )
        .await;
    assert_eq!(error_code(res).await.1, "invalid_domain");
    // A 404 page offers the report link too.
    let html = app.click("/nosuchlink").await.text().await.unwrap();
    assert!(html.contains("/report?slug=nosuchlink"));
}

/// Follows `path` on node `base` (no redirects followed).
async fn status_on(app: &TestApp, base: &str, path: &str) -> StatusCode {
    app.client
        .get(format!("{base}{path}"))
        .header("user-agent", crate::helpers::FIREFOX)
        .send()
        .await
        .unwrap()
        .status()
}

/// Waits (at most 2 s) until `path` answers `want` on every node, then
/// checks that it keeps answering it.
async fn settle_on_every_node(app: &TestApp, path: &str, want: StatusCode) {
    for base in &app.bases {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let got = status_on(app, base, path).await;
            if got == want {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{base}{path}: {got}, not {want}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        for _ in 0..3 {
            assert_eq!(status_on(app, base, path).await, want, "{base}{path}");
        }
    }
}

/// A takedown is an admin-only state: the link's holder cannot lift it, no
/// new link may point at the domain (or a subdomain), it reaches every
/// node (links already clicked, so cached, included), and only an admin
/// lifts it.
#[tokio::test]
async fn takedowns_stick_until_an_admin_lifts_them() {
    let app = TestApp::spawn().await;
    let anon: serde_json::Value = app
        .api(
            Method::POST,
            "/api/v1/links",
            None,
            Some(json!({"url": "https://login.phish.example/bank", "slug": "td-anon"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = anon["secret"].as_str().unwrap().to_owned();
    let user = app.create_key("owner", false).await;
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&user),
            Some(json!({"url": "https://phish.example/", "slug": "td-user"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    app.create_slug("td-fine", "https://notphish.example/")
        .await;
    // Clicked on every node: cached everywhere.
    for path in ["/td-anon", "/td-user", "/td-fine"] {
        settle_on_every_node(&app, path, StatusCode::FOUND).await;
    }

    // Only admins take down.
    for key in [Some(user.as_str()), Some(secret.as_str()), None] {
        let res = app
            .api(
                Method::POST,
                "/api/v1/admin/takedowns",
                key,
                Some(json!({"domain": "phish.example", "reason": "phishing"})),
            )
            .await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&res.status()),
            "{key:?}: {}",
            res.status()
        );
    }
    let res = app
        .api(
            Method::POST,
            "/api/v1/admin/takedowns",
            Some(&app.admin_key),
            Some(json!({"domain": "Phish.Example", "reason": "phishing"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["domain"], "phish.example");
    let mut slugs: Vec<&str> = body["slugs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    slugs.sort();
    assert_eq!(slugs, ["td-anon", "td-user"]);
    // Again: kept, 200.
    let res = app
        .api(
            Method::POST,
            "/api/v1/admin/takedowns",
            Some(&app.admin_key),
            Some(json!({"domain": "phish.example", "reason": "again"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["reason"],
        "phishing"
    );

    settle_on_every_node(&app, "/td-anon", StatusCode::GONE).await;
    settle_on_every_node(&app, "/td-user", StatusCode::GONE).await;
    settle_on_every_node(&app, "/td-fine", StatusCode::FOUND).await;

    // The holders cannot lift it: re-enabling changes nothing, and the
    // target cannot move to the domain's other hosts.
    for (key, slug) in [(&secret, "td-anon"), (&user, "td-user")] {
        let res = app
            .api(
                Method::PATCH,
                &format!("/api/v1/links/{slug}"),
                Some(key),
                Some(json!({"disabled": false})),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let link: serde_json::Value = res.json().await.unwrap();
        assert_eq!(link["taken_down"], true, "{slug}");
        settle_on_every_node(&app, &format!("/{slug}"), StatusCode::GONE).await;
        let res = app
            .api(
                Method::PATCH,
                &format!("/api/v1/links/{slug}"),
                Some(key),
                Some(json!({"url": "https://www.phish.example/again"})),
            )
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, "taken_down_domain".into())
        );
        // Nor can they lift the takedown itself.
        let res = app
            .api(
                Method::DELETE,
                "/api/v1/admin/takedowns/phish.example",
                Some(key),
                None,
            )
            .await;
        assert!(res.status() == StatusCode::FORBIDDEN || res.status() == StatusCode::UNAUTHORIZED);
    }
    // No new link to the domain or a subdomain, with or without a key.
    for url in ["https://phish.example/new", "https://a.b.PHISH.example./x"] {
        assert_eq!(
            app.create_refused(json!({ "url": url })).await,
            (StatusCode::BAD_REQUEST, "taken_down_domain".into()),
            "{url}"
        );
        let res = app
            .api(
                Method::POST,
                "/api/v1/links",
                None,
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, "taken_down_domain".into())
        );
    }
    app.create(json!({"url": "https://phish.example.org/"}))
        .await;
    let list: serde_json::Value = app
        .api(
            Method::GET,
            "/api/v1/admin/takedowns",
            Some(&app.admin_key),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["takedowns"][0]["domain"], "phish.example");
    assert_eq!(list["takedowns"].as_array().unwrap().len(), 1);

    // An admin lifts it: every node redirects again, links can be made.
    let res = app
        .api(
            Method::DELETE,
            "/api/v1/admin/takedowns/phish.example",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .api(
            Method::DELETE,
            "/api/v1/admin/takedowns/phish.example",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(error_code(res).await.0, StatusCode::NOT_FOUND);
    settle_on_every_node(&app, "/td-anon", StatusCode::FOUND).await;
    settle_on_every_node(&app, "/td-user", StatusCode::FOUND).await;
    app.create(json!({"url": "https://phish.example/new"}))
        .await;
}
