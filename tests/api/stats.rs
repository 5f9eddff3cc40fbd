use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{FIREFOX, IPHONE, TestApp, error_code};

#[tokio::test]
async fn enrichment_geo_referrer_utm_and_visitors() {
    let app = TestApp::spawn().await;
    app.create_slug("rich", "https://example.com/").await;
    // Same person twice, another browser once, someone in the US, and one
    // from an address no database knows.
    app.click_as(
        "/rich?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
        FIREFOX,
        "81.2.69.142",
    )
    .await;
    app.click_as("/rich", FIREFOX, "81.2.69.142").await;
    app.client
        .get(app.url("/rich"))
        .header("user-agent", IPHONE)
        .header("x-forwarded-for", "8.8.8.8")
        .header("referer", "https://www.google.com/search?q=hop")
        .send()
        .await
        .unwrap();
    app.click_as("/rich", IPHONE, "2001:4860:4860::8888").await;
    app.click_as("/rich", FIREFOX, "10.1.2.3").await;
    let s = app.wait_for_clicks("rich", "", 5).await;
    assert_eq!(s["unique_visitors"], 4);
    let top = &s["top"];
    let value_of = |dim: &str, value: &str| -> u64 {
        top[dim]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["value"] == value)
            .map_or(0, |e| e["clicks"].as_u64().unwrap())
    };
    assert_eq!(value_of("countries", "GB"), 2);
    assert_eq!(value_of("countries", "US"), 2);
    assert_eq!(value_of("countries", "unknown"), 1);
    assert_eq!(value_of("cities", "Bracknell, GB"), 2);
    assert_eq!(value_of("referrers", "google.com"), 1);
    assert_eq!(value_of("referrers", "direct"), 4);
    assert_eq!(value_of("browsers", "Firefox"), 3);
    assert_eq!(value_of("browsers", "Safari"), 2);
    assert_eq!(value_of("oses", "iOS"), 2);
    assert_eq!(value_of("devices", "mobile"), 2);
    assert_eq!(
        top["utm_sources"],
        json!([{"value": "newsletter", "clicks": 1}])
    );
    assert_eq!(top["utm_mediums"], json!([{"value": "email", "clicks": 1}]));
    assert_eq!(
        top["utm_campaigns"],
        json!([{"value": "spring", "clicks": 1}])
    );
}

#[tokio::test]
async fn series_is_zero_filled_in_the_requested_zone() {
    let app = TestApp::spawn().await;
    app.create_slug("tz", "https://example.com/").await;
    for _ in 0..3 {
        app.click("/tz").await;
    }
    app.wait_for_clicks("tz", "", 3).await;
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::days(3)).to_rfc3339();
    let to = (now + chrono::Duration::minutes(1)).to_rfc3339();
    let q = format!(
        "interval=day&tz=Asia/Kolkata&from={}&to={}",
        urlencode(&from),
        urlencode(&to)
    );
    let s = app.stats("tz", &q).await;
    let series = s["series"].as_array().unwrap();
    assert!(series.len() == 4 || series.len() == 5, "{series:?}");
    assert!(
        series
            .iter()
            .all(|b| b["start"].as_str().unwrap().ends_with("T00:00:00+05:30"))
    );
    assert_eq!(
        series
            .iter()
            .map(|b| b["clicks"].as_u64().unwrap())
            .sum::<u64>(),
        3
    );
    assert_eq!(
        series.last().unwrap()["clicks"].as_u64().unwrap()
            + series[series.len() - 2]["clicks"].as_u64().unwrap(),
        3
    );
    assert_eq!(s["tz"], "Asia/Kolkata");

    let minutes = app
        .stats(
            "tz",
            &format!(
                "interval=minute&from={}",
                urlencode(&(now - chrono::Duration::minutes(10)).to_rfc3339())
            ),
        )
        .await;
    assert!(minutes["series"].as_array().unwrap().len() >= 10);
    assert_eq!(minutes["total_clicks"], 3);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn bad_stats_queries_get_codes() {
    let app = TestApp::spawn().await;
    app.create_slug("q", "https://example.com/").await;
    for (q, code) in [
        ("interval=week", "invalid_interval"),
        ("tz=Mars/Olympus", "invalid_timezone"),
        ("from=yesterday", "invalid_range"),
        (
            "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "invalid_range",
        ),
        (
            "from=2000-01-01T00:00:00Z&interval=minute",
            "too_many_buckets",
        ),
        ("include_bots=maybe", "invalid_query"),
        ("top=0", "invalid_query"),
    ] {
        let res = app
            .api(
                Method::GET,
                &format!("/api/v1/links/q/stats?{q}"),
                Some(&app.admin_key),
                None,
            )
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, code.into()),
            "{q}"
        );
    }
}

#[tokio::test]
async fn csv_export_has_every_click() {
    let app = TestApp::spawn().await;
    app.create_slug("csv", "https://example.com/").await;
    for i in 0..7 {
        app.click_as(&format!("/csv?utm_source=s{i}"), FIREFOX, "81.2.69.142")
            .await;
    }
    app.wait_for_clicks("csv", "", 7).await;
    let res = app
        .api(
            Method::GET,
            "/api/v1/links/csv/clicks.csv",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "event_id");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 7);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert!(
        rows.iter()
            .all(|r| &r[col("country")] == "GB" && &r[col("city")] == "Bracknell")
    );
    let mut sources: Vec<_> = rows
        .iter()
        .map(|r| r[col("utm_source")].to_owned())
        .collect();
    sources.sort();
    assert_eq!(sources, (0..7).map(|i| format!("s{i}")).collect::<Vec<_>>());
    assert!(
        !text.contains("81.2.69.142"),
        "raw IPs are never stored or exported"
    );
}

/// Cells a visitor controls (UTM parameters, referrer) never reach a
/// spreadsheet as formulas: OWASP's CSV-injection prefixes get a `'`.
#[tokio::test]
async fn csv_export_neutralises_formulas() {
    let app = TestApp::spawn().await;
    app.create_slug("csv-formula", "https://example.com/").await;
    let hostile = [
        "=HYPERLINK(\"https://evil.example\",\"x\")",
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)*cmd",
        "\tx=1",
        "\rx=1",
    ];
    for (i, value) in hostile.iter().enumerate() {
        let q: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let path = format!("/csv-formula?utm_source={q}&utm_medium={q}&utm_campaign=c{i}");
        app.click_as(&path, FIREFOX, "81.2.69.142").await;
    }
    app.wait_for_clicks("csv-formula", "", hostile.len() as u64)
        .await;
    let text = app
        .api(
            Method::GET,
            "/api/v1/links/csv-formula/clicks.csv",
            Some(&app.admin_key),
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), hostile.len());
    let mut seen = 0;
    for row in &rows {
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "formula cell {cell:?} in {row:?}"
            );
        }
        // Leading tabs and CRs may be trimmed on the way in; whatever
        // arrived starting with a formula character is prefixed.
        let source = &row[col("utm_source")];
        if let Some(sent) = source.strip_prefix('\'') {
            assert!(
                hostile.contains(&sent),
                "the value is kept after the prefix: {source:?}"
            );
            seen += 1;
        }
    }
    // At least the four printable prefixes arrive as sent.
    assert!(seen >= 4, "{text}");
}

#[tokio::test]
async fn cli_talks_to_the_server() {
    let app = TestApp::spawn().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args([
            "shorten",
            "https://example.com/cli",
            "--slug",
            "fromcli",
            "--server",
            &app.base,
            "--api-key",
            &app.admin_key,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "http://hop.test/fromcli"
    );
    app.click("/fromcli").await;
    app.wait_for_clicks("fromcli", "", 1).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args([
            "stats",
            "fromcli",
            "--json",
            "--server",
            &app.base,
            "--api-key",
            &app.admin_key,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_clicks"], 1);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .args([
            "stats",
            "nope",
            "--server",
            &app.base,
            "--api-key",
            &app.admin_key,
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("link_not_found"));
}
