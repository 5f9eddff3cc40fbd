//! Smart links through the real server: rules chosen by user agent,
//! Accept-Language, query and the client's country (X-Forwarded-For from
//! the trusted proxy, real GeoIP file), a split sticky per visitor, the
//! fallback URL of an expired, disabled or exhausted link, and rules
//! refused with their codes.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{FIREFOX, IPHONE, TestApp, error_code};

/// Where a GET of `/slug` goes, as `ua` from `ip` with these headers.
async fn goes(app: &TestApp, path: &str, ua: &str, ip: &str, extra: &[(&str, &str)]) -> String {
    let mut req = app
        .client
        .get(app.any_url(path))
        .header("user-agent", ua)
        .header("x-forwarded-for", ip);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_redirection(), "{path}: {}", res.status());
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// A breakdown of a stats answer, as value → clicks.
fn top(stats: &Value, key: &str) -> BTreeMap<String, u64> {
    stats["top"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {stats}"))
        .iter()
        .map(|e| {
            (
                e["value"].as_str().unwrap().to_owned(),
                e["clicks"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn counts<const N: usize>(pairs: [(&str, u64); N]) -> BTreeMap<String, u64> {
    pairs.into_iter().map(|(k, n)| (k.to_owned(), n)).collect()
}

#[tokio::test]
async fn rules_choose_by_device_language_query_and_country() {
    let app = TestApp::spawn().await;
    let link = app
        .create(json!({
            "url": "https://example.com/default",
            "slug": "smart",
            "rules": [
                {"id": "promo", "if": [{"query": {"name": "ref", "equals": "promo"}}], "target": "https://example.com/promo"},
                {"id": "ios", "if": [{"os": ["ios"]}, {"device": ["mobile"]}], "target": "https://apps.example.com/ios"},
                {"id": "german", "if": [{"language": ["de"]}], "target": "https://example.de/"},
                {"if": [{"country": ["GB"]}], "target": "https://example.co.uk/"}
            ]
        }))
        .await;
    assert_eq!(link["rules"][3]["id"], "r4", "ids filled in by position");
    let us = "8.8.8.8";
    let uk = "81.2.69.142";
    for (path, ua, ip, extra, want) in [
        (
            "/smart?ref=promo",
            IPHONE,
            uk,
            vec![],
            "https://example.com/promo",
        ),
        ("/smart", IPHONE, us, vec![], "https://apps.example.com/ios"),
        (
            "/smart",
            FIREFOX,
            us,
            vec![("accept-language", "fr;q=0.5, de-AT")],
            "https://example.de/",
        ),
        (
            "/smart",
            FIREFOX,
            us,
            vec![("accept-language", "de;q=0.5, fr")],
            "https://example.com/default",
        ),
        ("/smart", FIREFOX, uk, vec![], "https://example.co.uk/"),
        (
            "/smart?ref=other",
            FIREFOX,
            us,
            vec![],
            "https://example.com/default",
        ),
    ] {
        assert_eq!(
            goes(&app, path, ua, ip, &extra).await,
            want,
            "{path} {ua} {ip} {extra:?}"
        );
    }
    // HEAD decides the same, without a click.
    let res = app
        .client
        .head(app.any_url("/smart"))
        .header("user-agent", FIREFOX)
        .header("x-forwarded-for", uk)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "https://example.co.uk/");

    // Each click is counted under the rule that sent it; HEAD is no click.
    let stats = app.wait_for_clicks("smart", "", 6).await;
    assert_eq!(
        top(&stats, "rules"),
        counts([
            ("promo", 1),
            ("ios", 1),
            ("german", 1),
            ("r4", 1),
            ("default", 2)
        ])
    );
    assert_eq!(top(&stats, "variants"), counts([]));
    // The country the rules looked up is the click's.
    assert_eq!(top(&stats, "countries").get("GB"), Some(&2), "{stats}");
}

#[tokio::test]
async fn a_split_is_sticky_per_visitor_and_follows_the_weights() {
    let app = TestApp::spawn().await;
    app.create(json!({
        "url": "https://example.com/",
        "slug": "ab",
        "rules": [{"id": "test", "split": [
            {"id": "a", "target": "https://example.com/a", "weight": 1},
            {"id": "b", "target": "https://example.com/b", "weight": 1}
        ]}]
    }))
    .await;
    let mut seen = std::collections::BTreeMap::new();
    for i in 0..200 {
        let ip = format!("198.51.100.{}", i % 250);
        let ua = format!("{FIREFOX} visitor/{i}");
        let first = goes(&app, "/ab", &ua, &ip, &[]).await;
        for _ in 0..2 {
            assert_eq!(
                goes(&app, "/ab", &ua, &ip, &[]).await,
                first,
                "sticky for {ip} {ua}"
            );
        }
        *seen.entry(first).or_insert(0u32) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // 200 visitors, half each: within five standard deviations (±35).
    assert!(seen.values().all(|n| (65..=135).contains(n)), "{seen:?}");

    // The stats count each variant's clicks exactly, under the rule.
    let stats = app.wait_for_clicks("ab", "", 600).await;
    let a = u64::from(seen["https://example.com/a"]);
    assert_eq!(
        top(&stats, "variants"),
        counts([("a", 3 * a), ("b", 3 * (200 - a))])
    );
    assert_eq!(top(&stats, "rules"), counts([("test", 600)]));
    assert_eq!(stats["unique_visitors"], 200);

    // Each variant on its own: clicks and unique visitors side by side,
    // adding up to the link's. (On DynamoDB a variant's copies are written
    // right after the link's batch, not in it: wait for them too.)
    for (variant, visitors) in [("a", a), ("b", 200 - a)] {
        let s = app
            .wait_for_clicks("ab", &format!("variant={variant}"), 3 * visitors)
            .await;
        assert_eq!(s["variant"], variant);
        assert_eq!(s["total_clicks"], 3 * visitors, "{variant}");
        assert_eq!(s["unique_visitors"], visitors, "{variant}");
        assert_eq!(top(&s, "variants"), counts([(variant, 3 * visitors)]));
        let series: u64 = s["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["clicks"].as_u64().unwrap())
            .sum();
        assert_eq!(series, 3 * visitors);
    }
    let none = app.stats("ab", "variant=zzz").await;
    assert_eq!(none["total_clicks"], 0);
    let res = app
        .api(
            Method::GET,
            "/api/v1/links/ab/stats?variant=Not%20one",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::BAD_REQUEST, "invalid_variant".to_owned())
    );
}

#[tokio::test]
async fn the_fallback_url_replaces_the_410_page() {
    let app = TestApp::spawn().await;
    app.create(json!({
        "url": "https://example.com/live", "slug": "limited", "max_clicks": 1,
        "fallback_url": "https://example.com/sold-out"
    }))
    .await;
    assert_eq!(
        goes(&app, "/limited", FIREFOX, "8.8.8.8", &[]).await,
        "https://example.com/live"
    );
    assert_eq!(
        goes(&app, "/limited", FIREFOX, "8.8.8.8", &[]).await,
        "https://example.com/sold-out"
    );
    // A HEAD of it is not a click (it claims none of the limit either).
    let res = app
        .client
        .head(app.any_url("/limited"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection());
    // The visit sent to the fallback is a click, counted as such; a link
    // without rules records no rule for its own clicks.
    let stats = app.wait_for_clicks("limited", "", 2).await;
    assert_eq!(top(&stats, "rules"), counts([("fallback", 1)]));

    app.create(json!({
        "url": "https://example.com/live", "slug": "switched",
        "fallback_url": "https://example.com/paused"
    }))
    .await;
    let res = app
        .api(
            Method::PATCH,
            "/api/v1/links/switched",
            Some(&app.admin_key),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        goes(&app, "/switched", FIREFOX, "8.8.8.8", &[]).await,
        "https://example.com/paused"
    );
    // Removed: the 410 page again.
    let res = app
        .api(
            Method::PATCH,
            "/api/v1/links/switched",
            Some(&app.admin_key),
            Some(json!({"fallback_url": null})),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["fallback_url"], Value::Null);
    assert_eq!(app.click("/switched").await.status(), StatusCode::GONE);
}

#[tokio::test]
async fn rules_are_replaced_and_cleared_by_patch() {
    let app = TestApp::spawn().await;
    app.create(json!({
        "url": "https://example.com/", "slug": "edit-rules",
        "rules": [{"if": [{"query_present": "x"}], "target": "https://example.com/x"}]
    }))
    .await;
    assert_eq!(
        goes(&app, "/edit-rules?x", FIREFOX, "8.8.8.8", &[]).await,
        "https://example.com/x"
    );
    let patch = |body: Value| {
        app.api(
            Method::PATCH,
            "/api/v1/links/edit-rules",
            Some(&app.admin_key),
            Some(body),
        )
    };
    let res = patch(json!({"rules": [{"id": "y", "if": [{"query_present": "y"}], "target": "https://example.com/y"}]})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["rules"][0]["id"], "y");
    assert_eq!(
        goes(&app, "/edit-rules?x", FIREFOX, "8.8.8.8", &[]).await,
        "https://example.com/",
        "the edit reached the cache"
    );
    assert_eq!(
        goes(&app, "/edit-rules?y", FIREFOX, "8.8.8.8", &[]).await,
        "https://example.com/y"
    );
    let res = patch(json!({"rules": []})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["rules"], json!([]));
    assert_eq!(
        goes(&app, "/edit-rules?y", FIREFOX, "8.8.8.8", &[]).await,
        "https://example.com/"
    );
}

#[tokio::test]
async fn bad_rules_are_refused_with_their_codes() {
    let app = TestApp::spawn().await;
    let t = "https://example.com/";
    for (rules, code) in [
        (
            json!([{"if": [{"country": ["Germany"]}], "target": t}]),
            "invalid_condition",
        ),
        (
            json!([{"if": [{"ip": ["300.1.1.1"]}], "target": t}]),
            "invalid_condition",
        ),
        (
            json!([{"if": [{"time": {"tz": "Nowhere/Land"}}], "target": t}]),
            "invalid_condition",
        ),
        (
            json!([{"target": "javascript:alert(1)"}]),
            "invalid_rule_target",
        ),
        (
            json!([{"target": "http://hop.test/loop"}]),
            "invalid_rule_target",
        ),
        (
            json!([{"split": [{"target": t, "weight": 1}]}]),
            "invalid_split",
        ),
        (json!([{"if": []}]), "invalid_rule_action"),
        (
            json!([{"id": "x", "target": t}, {"id": "x", "target": t}]),
            "duplicate_rule_id",
        ),
        (json!([{"id": "Not An Id", "target": t}]), "invalid_rule_id"),
    ] {
        let (status, got) = app.create_refused(json!({"url": t, "rules": rules})).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{rules}"
        );
    }
    // Not the shape at all: the JSON body is refused as such.
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&app.admin_key),
            Some(json!({"url": t, "rules": [{"if": [{"planet": ["mars"]}], "target": t}]})),
        )
        .await;
    let (status, _) = error_code(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, code) = app
        .create_refused(json!({"url": t, "fallback_url": "ftp://example.com/"}))
        .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "unsupported_scheme")
    );
}

#[tokio::test]
async fn one_rule_is_patched_in_place() {
    let app = TestApp::spawn().await;
    app.create(json!({
        "url": "https://example.com/", "slug": "one-rule",
        "rules": [
            {"id": "a", "if": [{"query_present": "a"}], "target": "https://example.com/a"},
            {"id": "b", "if": [{"query_present": "b"}], "target": "https://example.com/b"},
            {"id": "c", "if": [{"query_present": "c"}], "target": "https://example.com/c"}
        ]
    }))
    .await;
    let patch = |id: &str, body: Value| {
        let path = format!("/api/v1/links/one-rule/rules/{id}");
        let app = &app;
        async move {
            app.api(Method::PATCH, &path, Some(&app.admin_key), Some(body))
                .await
        }
    };
    // A new target for b: its conditions, id and place stay.
    let res = patch("b", json!({"target": "https://example.com/b2"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let ids: Vec<&str> = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(body["rules"][1]["if"], json!([{"query_present": "b"}]));
    assert_eq!(
        goes(&app, "/one-rule?b", FIREFOX, "8.8.8.8", &[]).await,
        "https://example.com/b2",
        "the change reached the cache"
    );
    // A split replaces the target; renamed; new conditions.
    let res = patch(
        "b",
        json!({"id": "ab", "if": [{"query_present": "z"}], "split": [
            {"target": "https://example.com/v1", "weight": 1},
            {"target": "https://example.com/v2", "weight": 1}]}),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["rules"][1]["id"], "ab");
    assert!(body["rules"][1].get("target").is_none(), "{body}");
    assert_eq!(body["rules"][1]["split"][1]["id"], "b");
    assert!(
        goes(&app, "/one-rule?z", FIREFOX, "8.8.8.8", &[])
            .await
            .starts_with("https://example.com/v")
    );
    // Refused: no such rule, an id taken, both target and split, a bad
    // target; the link is as it was.
    for (id, body, status, code) in [
        (
            "nope",
            json!({"target": "https://example.com/"}),
            StatusCode::NOT_FOUND,
            "rule_not_found",
        ),
        (
            "ab",
            json!({"id": "a"}),
            StatusCode::BAD_REQUEST,
            "duplicate_rule_id",
        ),
        (
            "ab",
            json!({"target": "https://example.com/", "split": []}),
            StatusCode::BAD_REQUEST,
            "invalid_rule_action",
        ),
        (
            "c",
            json!({"target": "ftp://example.com/"}),
            StatusCode::BAD_REQUEST,
            "invalid_rule_target",
        ),
        (
            "c",
            json!({"when": []}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ] {
        let res = patch(id, body.clone()).await;
        assert_eq!(
            error_code(res).await,
            (status, code.to_owned()),
            "{id} {body}"
        );
    }
    assert_eq!(
        goes(&app, "/one-rule?c", FIREFOX, "8.8.8.8", &[]).await,
        "https://example.com/c"
    );
}

/// Runs `hop ARGS` against `app` (with the admin key), `stdin` as its
/// input; returns whether it succeeded, its output and its errors.
pub(crate) async fn hop_cli(app: &TestApp, args: &[&str], stdin: &str) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args(args)
        .args(["--server", &app.base, "--api-key", &app.admin_key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_makes_and_edits_smart_links() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"[{"if": [{"query_present": "app"}], "target": "https://example.com/app"}]"#,
    )
    .unwrap();
    let (ok, out, err) = hop_cli(
        &app,
        &[
            "shorten",
            "https://example.com/home",
            "--slug",
            "clismart",
            "--rules",
            rules.to_str().unwrap(),
            "--fallback-url",
            "https://example.com/over",
            "--password-stdin",
            "--preview-title",
            "From the CLI",
        ],
        "two words\n",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "http://hop.test/clismart");
    let link = app.link("clismart").await;
    assert_eq!(link["rules"][0]["id"], "r1");
    assert_eq!(link["fallback_url"], "https://example.com/over");
    assert_eq!(link["password_protected"], true);
    assert_eq!(link["preview"]["title"], "From the CLI");

    let (ok, out, _) = hop_cli(&app, &["rules", "show", "clismart"], "").await;
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown, link["rules"]);
    let (ok, out, err) = hop_cli(
        &app,
        &["rules", "patch", "clismart", "r1", "@-"],
        r#"{"target": "https://example.com/app2"}"#,
    )
    .await;
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown[0]["target"], "https://example.com/app2");
    let (ok, _, err) = hop_cli(
        &app,
        &[
            "rules",
            "patch",
            "clismart",
            "nope",
            r#"{"target": "https://example.com/"}"#,
        ],
        "",
    )
    .await;
    assert!(!ok && err.contains("rule_not_found"), "{err}");

    // An access token opens the protected link once, to the rule's target.
    let (ok, out, err) = hop_cli(
        &app,
        &["access-token", "clismart", "--expires-in", "600"],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let url = out.trim();
    let path = &url[url.find("/clismart").unwrap()..];
    let res = app
        .client
        .get(app.any_url(&format!("{path}&app")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "https://example.com/app2");

    let (ok, out, _) = hop_cli(&app, &["rules", "clear", "clismart"], "").await;
    assert!(ok);
    assert_eq!(out.trim(), "[]");
    let (ok, _, err) = hop_cli(&app, &["rules", "set", "clismart", "-"], "not json").await;
    assert!(!ok && err.contains("not JSON"), "{err}");
}
