//! `POST /api/v1/imports` and `GET /api/v1/imports/{id}`: admins start an
//! import as a background job and read how it stands.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

async fn job(app: &TestApp, id: &str) -> Value {
    // Up to 20 s: a loaded CI machine is slow, a CSV of two links is not.
    for _ in 0..400 {
        let res = app
            .api(
                Method::GET,
                &format!("/api/v1/imports/{id}"),
                Some(&app.admin_key),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let job: Value = res.json().await.unwrap();
        if job["state"] != "running" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} still running");
}

#[tokio::test]
async fn admins_import_a_csv_as_a_job_and_read_how_it_went() {
    let app = TestApp::spawn().await;
    let csv = "url,slug,title,tags\nhttps://example.com/a,imp-a,First,\"x,y\"\nhttps://example.com/b,imp-b,,\n";
    let res = app
        .api(
            Method::POST,
            "/api/v1/imports",
            Some(&app.admin_key),
            Some(json!({"source": "csv", "data": csv})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["state"], "running");
    let id = started["id"].as_str().unwrap().to_owned();
    let done = job(&app, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["summary"]["links_created"], 2, "{done}");
    assert!(done["finished_at"].is_string());
    let link = app.link("imp-a").await;
    assert_eq!(link["title"], "First");
    assert_eq!(link["tags"], json!(["x", "y"]));

    // Again: found, not made twice.
    let res = app
        .api(
            Method::POST,
            "/api/v1/imports",
            Some(&app.admin_key),
            Some(json!({"source": "csv", "data": csv, "on_conflict": "suffix"})),
        )
        .await;
    let again: Value = res.json().await.unwrap();
    let done = job(&app, again["id"].as_str().unwrap()).await;
    assert_eq!(done["summary"]["links_existing"], 2, "{done}");
    assert_eq!(done["summary"]["links_created"], 0, "{done}");

    // A source that cannot be read fails the job, with why.
    let res = app
        .api(
            Method::POST,
            "/api/v1/imports",
            Some(&app.admin_key),
            Some(json!({"source": "shlink", "from": "http://127.0.0.1:9", "api_key": "k"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let failed: Value = res.json().await.unwrap();
    let failed = job(&app, failed["id"].as_str().unwrap()).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("127.0.0.1:9"),
        "{failed}"
    );
}

#[tokio::test]
async fn imports_are_for_admins_and_refuse_what_they_cannot_run() {
    let app = TestApp::spawn().await;
    let body = json!({"source": "csv", "data": "url\nhttps://example.com/\n"});
    let res = app
        .api(Method::POST, "/api/v1/imports", None, Some(body.clone()))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let regular = app.create_key("regular", false).await;
    let res = app
        .api(Method::POST, "/api/v1/imports", Some(&regular), Some(body))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    for bad in [
        json!({"source": "dub"}),
        json!({"source": "csv"}),
        json!({"source": "yourls", "from": "mysql://root@127.0.0.1/yourls"}),
        json!({"source": "kutt", "from": "ftp://x", "api_key": "k"}),
        json!({"source": "csv", "data": "url\n", "source_name": "a b"}),
        json!({"source": "csv", "data": "url\n", "extra": 1}),
        json!({"source": "gitlab"}),
        json!({"source": "yourls", "data": "", "prefix": "x;drop"}),
    ] {
        let res = app
            .api(
                Method::POST,
                "/api/v1/imports",
                Some(&app.admin_key),
                Some(bad.clone()),
            )
            .await;
        let (status, code) = error_code(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(!code.is_empty(), "{bad}");
    }
    for id in ["0193a0b0-0000-7000-8000-000000000000", "not-hex!"] {
        let res = app
            .api(
                Method::GET,
                &format!("/api/v1/imports/{id}"),
                Some(&app.admin_key),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{id}");
    }
}
