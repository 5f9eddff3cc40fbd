//! Router tests with `oneshot`: no socket, in-memory store.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn router() -> axum::Router {
    let app = hop::app::Application::build(hop::config::ServeConfig::for_tests("memory://"))
        .await
        .unwrap();
    hop::http::router(app.state().clone())
}

async fn send(req: Request<Body>) -> (StatusCode, String) {
    let res = router().await.oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn anonymous_create_then_redirect() {
    let r = router().await;
    let req = Request::post("/api/v1/links")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"url":"https://example.com/x","slug":"one"}"#,
        ))
        .unwrap();
    let res = r.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = r
        .oneshot(Request::get("/one").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "https://example.com/x");
}

#[tokio::test]
async fn errors_are_enveloped() {
    let (s, b) = send(
        Request::post("/api/v1/links")
            .header("content-type", "application/json")
            .body(Body::from("nope"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    let (s, b) = send(Request::get("/api/v1/unknown").body(Body::empty()).unwrap()).await;
    assert_eq!((s, code(&b).as_str()), (StatusCode::NOT_FOUND, "not_found"));
    let (s, b) = send(
        Request::delete("/api/v1/links")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let big = format!(
        r#"{{"url":"https://example.com","title":"{}"}}"#,
        "a".repeat(65 * 1024)
    );
    let (s, b) = send(
        Request::post("/api/v1/links")
            .header("content-type", "application/json")
            .body(Body::from(big))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, code(&b).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn non_slug_paths_are_html_404s() {
    for path in ["/no-such", "/a/b/c", "/%F0%9F%98%80"] {
        let (s, b) = send(Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert!(b.contains("Link not found"));
    }
    let (s, b) = send(Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("ok"));
}
