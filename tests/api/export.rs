//! Exports of every link a key can see: `/api/v1/clicks.csv`,
//! `/api/v1/clicks.ndjson` and `hop export links|clicks`.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{GOOGLEBOT, TestApp, error_code};

async fn get_text(app: &TestApp, path: &str, key: &str) -> (String, String) {
    let res = app.api(Method::GET, path, Some(key), None).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, res.text().await.unwrap())
}

fn csv_rows(text: &str) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let rows = reader.records().map(|r| r.unwrap()).collect();
    (headers, rows)
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// How many rows each slug has.
fn per_slug<'a>(slugs: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in slugs {
        *m.entry(s.to_owned()).or_default() += 1;
    }
    m
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

/// Clicks of three admin links (two tagged) and of a regular key's link;
/// the exports give each key what it may see, a tag's links, a range, bots
/// on request, and as many rows as the stats count.
#[tokio::test]
async fn every_visible_link_is_exported_as_csv_and_ndjson() {
    let app = TestApp::spawn().await;
    let user = app.create_key("user", false).await;
    for (slug, tags) in [
        ("ex-a", json!(["t1"])),
        ("ex-b", json!(["t1"])),
        ("ex-c", json!([])),
    ] {
        app.create(json!({ "url": "https://example.com/", "slug": slug, "tags": tags }))
            .await;
    }
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&user),
            Some(json!({ "url": "https://example.org/", "slug": "ex-d" })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let before_clicks = chrono::Utc::now().to_rfc3339();
    for (slug, n) in [("ex-a", 3), ("ex-b", 2), ("ex-c", 1), ("ex-d", 2)] {
        for _ in 0..n {
            app.click(&format!("/{slug}")).await;
        }
    }
    app.click_as("/ex-a", GOOGLEBOT, "66.249.66.1").await;
    let mut total = 0;
    for (slug, n) in [("ex-a", 3), ("ex-b", 2), ("ex-c", 1), ("ex-d", 2)] {
        total += app.wait_for_clicks(slug, "", n).await["total_clicks"]
            .as_u64()
            .unwrap();
    }
    app.wait_for_clicks("ex-a", "include_bots=true", 4).await;

    // CSV, admin: every link's human clicks, the slug first, then the
    // per-link export's columns.
    let (content_type, text) = get_text(&app, "/api/v1/clicks.csv", &app.admin_key).await;
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let (headers, rows) = csv_rows(&text);
    let per_link_csv = app
        .api(
            Method::GET,
            "/api/v1/links/ex-a/clicks.csv",
            Some(&app.admin_key),
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    let (per_link_headers, per_link_rows) = csv_rows(&per_link_csv);
    assert_eq!(&headers[0], "slug");
    assert_eq!(
        headers.iter().skip(1).collect::<Vec<_>>(),
        per_link_headers.iter().collect::<Vec<_>>()
    );
    assert_eq!(rows.len() as u64, total, "one row per counted click");
    assert_eq!(
        per_slug(rows.iter().map(|r| &r[0])),
        counts(&[("ex-a", 3), ("ex-b", 2), ("ex-c", 1), ("ex-d", 2)])
    );
    // A link's rows are its per-link export's, cell for cell.
    let a_rows: Vec<Vec<&str>> = rows
        .iter()
        .filter(|r| &r[0] == "ex-a")
        .map(|r| r.iter().skip(1).collect())
        .collect();
    let per_link: Vec<Vec<&str>> = per_link_rows.iter().map(|r| r.iter().collect()).collect();
    assert_eq!(a_rows, per_link);
    let ids: BTreeSet<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(ids.len(), rows.len(), "each click once");

    // NDJSON with bots: the same fields under the same names.
    let (content_type, text) = get_text(
        &app,
        "/api/v1/clicks.ndjson?include_bots=true",
        &app.admin_key,
    )
    .await;
    assert_eq!(content_type, "application/x-ndjson");
    let lines = ndjson(&text);
    assert_eq!(lines.len(), 9);
    assert_eq!(lines.iter().filter(|l| l["bot"] == json!(true)).count(), 1);
    let first = lines[0].as_object().unwrap();
    let mut names: Vec<&str> = first.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut want: Vec<&str> = headers.iter().collect();
    want.sort_unstable();
    assert_eq!(names, want);
    for l in &lines {
        assert!(l["event_id"].as_str().unwrap().len() == 36, "{l}");
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
        assert_eq!(l["visitor"].as_str().unwrap().len(), 16, "{l}");
    }
    let human_ids: BTreeSet<&str> = lines
        .iter()
        .filter(|l| l["bot"] == json!(false))
        .map(|l| l["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(human_ids, ids, "CSV and NDJSON name the same clicks");

    // One link's NDJSON: its lines of the whole.
    let (content_type, text) = get_text(
        &app,
        "/api/v1/links/ex-a/clicks.ndjson?include_bots=true",
        &app.admin_key,
    )
    .await;
    assert_eq!(content_type, "application/x-ndjson");
    let of_a: Vec<&Value> = lines.iter().filter(|l| l["slug"] == "ex-a").collect();
    assert_eq!(ndjson(&text).iter().collect::<Vec<_>>(), of_a);
    assert_eq!(of_a.len(), 4);

    // One tag.
    let (_, text) = get_text(&app, "/api/v1/clicks.ndjson?tag=t1", &app.admin_key).await;
    assert_eq!(
        per_slug(ndjson(&text).iter().map(|l| l["slug"].as_str().unwrap())),
        counts(&[("ex-a", 3), ("ex-b", 2)])
    );
    // A regular key sees its own links only.
    let (_, text) = get_text(&app, "/api/v1/clicks.csv", &user).await;
    let (_, rows) = csv_rows(&text);
    assert_eq!(per_slug(rows.iter().map(|r| &r[0])), counts(&[("ex-d", 2)]));
    // A range before every click: the header alone.
    let path = format!("/api/v1/clicks.csv?to={}", urlencoding(&before_clicks));
    let (_, text) = get_text(&app, &path, &app.admin_key).await;
    let (headers, rows) = csv_rows(&text);
    assert_eq!(&headers[0], "slug");
    assert!(rows.is_empty(), "{text}");
    let path = format!("/api/v1/clicks.ndjson?from={}", urlencoding(&before_clicks));
    let (_, text) = get_text(&app, &path, &app.admin_key).await;
    assert_eq!(ndjson(&text).len(), 8);
}

fn urlencoding(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn bad_export_queries_get_a_clear_4xx() {
    let app = TestApp::spawn().await;
    for (query, code) in [
        ("from=yesterday", "invalid_range"),
        (
            "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "invalid_range",
        ),
        ("include_bots=maybe", "invalid_query"),
    ] {
        for format in ["csv", "ndjson"] {
            let path = format!("/api/v1/clicks.{format}?{query}");
            let res = app
                .api(Method::GET, &path, Some(&app.admin_key), None)
                .await;
            let (status, got) = error_code(res).await;
            assert_eq!(
                (status, got.as_str()),
                (StatusCode::BAD_REQUEST, code),
                "{path}"
            );
        }
    }
    let res = app.api(Method::GET, "/api/v1/clicks.csv", None, None).await;
    assert_eq!(error_code(res).await.0, StatusCode::UNAUTHORIZED);
}

/// More links than one page of the export's link listing (200): the
/// oldest link's and the newest's clicks are both in it.
#[tokio::test]
async fn exports_page_through_many_links() {
    let app = TestApp::spawn().await;
    for i in 0..203 {
        app.create(json!({ "url": "https://example.com/", "slug": format!("many-{i}") }))
            .await;
    }
    app.click("/many-0").await;
    app.click("/many-202").await;
    app.wait_for_clicks("many-0", "", 1).await;
    app.wait_for_clicks("many-202", "", 1).await;
    let (_, text) = get_text(&app, "/api/v1/clicks.ndjson", &app.admin_key).await;
    assert_eq!(
        per_slug(ndjson(&text).iter().map(|l| l["slug"].as_str().unwrap())),
        counts(&[("many-0", 1), ("many-202", 1)])
    );
}

async fn hop(app: &TestApp, args: &[&str]) -> std::process::Output {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args(args)
        .args(["--server", &app.base, "--api-key", &app.admin_key])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test]
async fn cli_exports_links_and_clicks() {
    let app = TestApp::spawn().await;
    app.create(json!({ "url": "https://example.com/one", "slug": "cli-one",
        "title": "=cmd", "tags": ["a", "b"] }))
        .await;
    app.create(json!({ "url": "https://example.com/two", "slug": "cli-two" }))
        .await;
    // One value with a quote: JSON escapes it, CSV doubles it; either way
    // the count of rows stays right.
    app.click("/cli-one?utm_source=say%22hi").await;
    for _ in 0..2 {
        app.click("/cli-one").await;
    }
    app.wait_for_clicks("cli-one", "", 3).await;

    let out = hop(&app, &["export", "links"]).await;
    let (headers, rows) = csv_rows(std::str::from_utf8(&out.stdout).unwrap());
    assert_eq!(
        headers.iter().take(6).collect::<Vec<_>>(),
        ["url", "slug", "title", "tags", "created_at", "expires_at"]
    );
    assert_eq!(rows.len(), 2);
    let one = rows.iter().find(|r| &r[1] == "cli-one").unwrap();
    assert_eq!(&one[0], "https://example.com/one");
    assert_eq!(&one[2], "'=cmd", "a title is not a formula");
    assert_eq!(&one[3], "a,b");
    let col = headers.iter().position(|h| h == "clicks").unwrap();
    assert_eq!(&one[col], "3");

    let out = hop(
        &app,
        &["export", "links", "--format", "ndjson", "--tag", "a"],
    )
    .await;
    let lines = ndjson(std::str::from_utf8(&out.stdout).unwrap());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["slug"], "cli-one");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clicks.ndjson");
    let out = hop(
        &app,
        &[
            "export",
            "clicks",
            "--format",
            "ndjson",
            "-o",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "exported 3 clicks"
    );
    let lines = ndjson(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["slug"] == "cli-one"));
    assert!(!dir.path().join("clicks.ndjson.partial").exists());

    let out = hop(&app, &["export", "clicks"]).await;
    let (headers, rows) = csv_rows(std::str::from_utf8(&out.stdout).unwrap());
    assert_eq!(&headers[0], "slug");
    assert_eq!(rows.len(), 3);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "exported 3 clicks"
    );

    // A refusal is the server's error, and nothing is written.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args([
            "export",
            "clicks",
            "--from",
            "soon",
            "-o",
            file.to_str().unwrap(),
        ])
        .args(["--server", &app.base, "--api-key", &app.admin_key])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid_range"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
