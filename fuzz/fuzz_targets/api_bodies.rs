//! The JSON request bodies, through the real router (in-memory store, no
//! socket): whatever the bytes, the answer is never a 5xx; every refusal is
//! the JSON error envelope; a link that is created or edited reads back
//! from the store exactly as the API answered, with a target URL that
//! parses again to itself.
#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    router: Router,
    admin: String,
    // Kept (and its background tasks with it) for the whole run.
    _app: std::sync::Mutex<hop::app::Application>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (router, admin, app) = rt.block_on(async {
            let mut config = hop::config::ServeConfig::for_tests("memory://");
            // Limits off: the target is validation, not the limiter.
            config.rate_create = "0".parse().unwrap();
            config.rate_api = "0".parse().unwrap();
            config.rate_auth_failures = "0".parse().unwrap();
            let app = hop::app::Application::build(config).await.unwrap();
            let token = hop::auth::Token::generate(hop::auth::KEY_PREFIX);
            app.state()
                .store
                .insert_key("fuzz", token.hash(), true)
                .await
                .unwrap();
            let router = hop::http::router(app.state().clone());
            // The link PATCH bodies are applied to.
            let req = Request::post("/api/v1/links")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {}", token.expose()))
                .body(Body::from(r#"{"url":"https://example.com/","slug":"fz"}"#))
                .unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            (router, token.expose().to_owned(), app)
        });
        Fixture {
            rt,
            router,
            admin,
            _app: std::sync::Mutex::new(app),
        }
    })
}

const ENDPOINTS: [(&str, &str); 4] = [
    ("POST", "/api/v1/links"),
    ("PATCH", "/api/v1/links/fz"),
    ("POST", "/api/v1/reports"),
    ("POST", "/api/v1/admin/disable-domain"),
];

fuzz_target!(|input: (u8, &[u8])| {
    let (which, body) = input;
    let (method, path) = ENDPOINTS[which as usize % ENDPOINTS.len()];
    let f = fixture();
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", f.admin))
        .body(Body::from(body.to_vec()))
        .unwrap();
    let (status, bytes) = f.rt.block_on(send(f, req));
    assert!(
        !status.is_server_error(),
        "{method} {path} answered {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let json: Value = serde_json::from_slice(&bytes).expect("a JSON answer");
    if status.is_client_error() {
        assert!(json["error"]["code"].is_string(), "{json}");
        assert!(json["error"]["message"].is_string(), "{json}");
    } else if path.starts_with("/api/v1/links") {
        read_back(f, &json);
    }
});

async fn send(f: &Fixture, req: Request<Body>) -> (StatusCode, axum::body::Bytes) {
    let res = f.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

/// An accepted create or edit: the link reads back from the store as the
/// API answered, and its target is a normalised URL (it parses again, to
/// itself).
fn read_back(f: &Fixture, answered: &Value) {
    let slug = answered["slug"]
        .as_str()
        .expect("an accepted link has a slug");
    let url = answered["url"]
        .as_str()
        .expect("an accepted link has a URL");
    let target = hop::domain::TargetUrl::parse(url, &[]).expect("a stored target parses again");
    assert_eq!(target.as_str(), url, "the target is normalised once");
    let req = Request::get(format!("/api/v1/links/{slug}"))
        .header("authorization", format!("Bearer {}", f.admin))
        .body(Body::empty())
        .unwrap();
    let (status, bytes) = f.rt.block_on(send(f, req));
    assert_eq!(
        status,
        StatusCode::OK,
        "{slug} reads back: {}",
        String::from_utf8_lossy(&bytes)
    );
    let stored: Value = serde_json::from_slice(&bytes).expect("a JSON link");
    // The secret of an anonymous link is shown once, in the create answer.
    let mut answered = answered.clone();
    answered
        .as_object_mut()
        .expect("a link is an object")
        .remove("secret");
    assert_eq!(stored, answered, "the stored link is the one answered");
}
