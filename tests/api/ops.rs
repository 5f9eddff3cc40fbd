//! Operational endpoints: `/metrics` labels stay bounded whatever clients
//! send, and `/metrics` can live on an address of its own.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};

use crate::helpers::TestApp;

/// Every `label="value"` pair of a Prometheus text exposition, by label.
fn label_values(exposition: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((inner, _)) = rest.rsplit_once('}') else {
            continue;
        };
        for pair in inner.split("\",") {
            let Some((name, value)) = pair.split_once("=\"") else {
                continue;
            };
            labels
                .entry(name.trim().to_owned())
                .or_default()
                .insert(value.trim_end_matches('"').to_owned());
        }
    }
    labels
}

/// Invented methods (a few of them 60 KB long) answer 405/404 and never
/// become labels: every label of every metric keeps a small, known set of
/// values, and the exposition does not grow with them.
#[tokio::test]
async fn metric_labels_stay_bounded() {
    let app = TestApp::spawn().await;
    app.create_slug("metrics-lbl", "https://example.com/").await;
    app.click("/metrics-lbl").await;
    let metrics = || async {
        let res = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.text().await.unwrap()
    };
    let paths = ["/healthz", "/api/v1/links", "/links", "/nowhere/at/all"];
    // One invented method first, so that the OTHER series exist before
    // measuring.
    let probe = Method::from_bytes(b"PROBEB").unwrap();
    for path in paths {
        let res = app
            .client
            .request(probe.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error());
    }
    let before = metrics().await;
    for i in 0..50 {
        let name = if i % 10 == 0 {
            format!("PROBE{i}{}", "X".repeat(60_000))
        } else {
            format!("PROBEA{i}")
        };
        let method = Method::from_bytes(name.as_bytes()).unwrap();
        for path in paths {
            let res = app
                .client
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            assert!(
                res.status().is_client_error(),
                "{path}: {} for an invented method",
                res.status()
            );
        }
    }
    let after = metrics().await;
    assert!(
        !after.contains("PROBEA") && !after.contains("PROBEB"),
        "an invented method became a label"
    );
    // Other tests of this process add series of their own; the invented
    // methods added none.
    let other_series = |m: &str| m.lines().filter(|l| l.contains("method=\"OTHER\"")).count();
    assert_eq!(other_series(&before), other_series(&after));
    let labels = label_values(&after);
    let known_methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER",
    ];
    for method in &labels["method"] {
        assert!(
            known_methods.contains(&method.as_str()),
            "method {method:?}"
        );
    }
    assert!(labels["method"].contains("OTHER"));
    for status in &labels["status"] {
        assert!(
            status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
            "status {status:?}"
        );
    }
    for route in &labels["route"] {
        assert!(
            route == "unmatched" || route.starts_with('/'),
            "route {route:?}"
        );
        assert!(!route.contains("metrics-lbl"), "a slug became a label");
    }
    // Route templates, statuses and store operations: tens, never more.
    for (label, values) in &labels {
        assert!(
            values.len() <= 64,
            "label {label} has {} values: {values:?}",
            values.len()
        );
    }
}

/// `--metrics-listen`: `/metrics` answers there, and 404 on the public
/// listener.
#[tokio::test]
async fn metrics_on_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::helpers::config(dir.path());
    c.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    let app = hop::app::Application::build(c).await.unwrap();
    let main = format!("http://127.0.0.1:{}", app.port());
    let metrics = format!("http://{}/metrics", app.metrics_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let res = client.get(format!("{main}/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = client.get(format!("{main}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = client.get(&metrics).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("hop_http_requests_total")
    );
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// `/metrics` carries what the alerts need beside the request series: the
/// store's readiness as `/readyz` checks it (and Redis's in cluster mode) and the build, labelled with the commit `hop --version` prints.
#[tokio::test]
async fn metrics_say_the_store_is_up_and_which_build_answers() {
    let app = TestApp::spawn().await;
    let text = app.metrics_text().await;
    assert!(text.lines().any(|l| l == "hop_store_up 1"), "{text}");
    // Redis is up in cluster mode (HOP_TEST_CLUSTER=1), absent embedded.
    let redis = text.lines().find(|l| l.starts_with("hop_redis_up "));
    if crate::helpers::cluster_mode() {
        assert_eq!(redis, Some("hop_redis_up 1"), "{text}");
    } else {
        assert_eq!(redis, None, "no Redis in embedded mode");
    }
    // There from the start, zero on a healthy node (no "no data"). The
    // registry is the test process's, shared with tests running beside
    // this one, so only the series' presence is this test's to check.
    for series in [
        "hop_clicks_lost_total ",
        "hop_clicks_dropped_total ",
        "hop_live_streams ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "{series} in {text}"
        );
    }
    let build = format!(
        "hop_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        hop::COMMIT
    );
    assert!(text.lines().any(|l| l == build), "{build} in {text}");
    assert!(hop::VERSION.contains(hop::COMMIT));
    assert_ne!(hop::COMMIT, "unknown", "built in a checkout: git knows");
}
