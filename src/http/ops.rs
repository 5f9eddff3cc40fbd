//! Operational endpoints: liveness, readiness, metrics, the OpenAPI document,
//! and the per-route HTTP metrics middleware.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::OpenApi;

use super::error::ApiError;
use super::openapi::ApiDoc;
use crate::metrics::names;
use crate::state::AppState;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers. In cluster mode it also reports Redis:
/// while Redis is down the node still serves (cache, then store) and buffers
/// clicks, so it stays ready and says `"redis": "down"`.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let ready = readiness(&state).await;
    match ready.store {
        Ok(()) => {
            let mut body = json!({ "status": "ready", "store": "ok" });
            if let Some(redis) = ready.redis {
                body["redis"] = json!(if redis { "ok" } else { "down" });
            }
            Json(body).into_response()
        }
        Err(why) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", why).into_response()
        }
    }
}

/// What `/readyz` reports, for it and for `/metrics`'s `hop_store_up` and
/// `hop_redis_up`.
struct Readiness {
    store: Result<(), &'static str>,
    /// In cluster mode: whether Redis is up.
    redis: Option<bool>,
}

async fn readiness(state: &AppState) -> Readiness {
    let redis = state
        .links
        .shared
        .as_ref()
        .map(|shared| shared.cache.is_up());
    let store = match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            Err("the store is unreachable")
        }
        Err(_) => Err("the store did not answer in time"),
    };
    Readiness { store, redis }
}

/// Prometheus text; each scrape first asks what `/readyz` asks, so alerts
/// can say the store or Redis is down (`hop_store_up`, `hop_redis_up`).
/// Those two are this node's answer to this scrape, written here rather
/// than kept in the process-wide registry.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let ready = readiness(&state).await;
    let mut text = state.prometheus.render();
    let mut gauge = |name: &str, help: &str, up: bool| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}\n",
            u8::from(up)
        ));
    };
    gauge(
        names::STORE_UP,
        "1 when the store answered this scrape's readiness check (as /readyz), else 0",
        ready.store.is_ok(),
    );
    if let Some(redis) = ready.redis {
        gauge(
            names::REDIS_UP,
            "Cluster mode: 1 when Redis is up (as /readyz reports it), else 0",
            redis,
        );
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

pub async fn openapi() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default());
    ([(CONTENT_TYPE, "application/json")], doc.clone()).into_response()
}

/// Counts and times requests by route template (never by slug or raw path).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let started = Instant::now();
    let res = next.run(req).await;
    let status = status_label(res.status());
    metrics::counter!(names::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(names::HTTP_DURATION, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// The method as a metric label: the standard ones by name, anything else
/// (clients may send any token as a method) as `OTHER`, so a client cannot
/// mint new time series.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The status as a metric label. hop answers only statuses it chose, but
/// the label stays bounded whatever a layer below produces.
fn status_label(status: StatusCode) -> String {
    let code = status.as_u16();
    if (100..600).contains(&code) {
        code.to_string()
    } else {
        "other".to_owned()
    }
}

/// `nosniff` on every API, UI and asset answer (HTML pages get the rest of
/// their headers where they are rendered, `render::render`). Not on redirects:
/// a 302 has no body to sniff, and the hot path stays lean.
pub async fn nosniff(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    res
}

/// Size of a request head as sent: request line, each header as
/// `Name: value` with its line break, and the blank line. (A client that
/// wrote `Name:value` sent a byte less per header than counted.)
pub fn head_size<B>(req: &axum::http::Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + req.uri().authority().map_or(0, |a| a.as_str().len() + 3)
        + req.uri().scheme_str().map_or(0, str::len);
    let line = req.method().as_str().len() + 1 + target + 1 + 8 + 2;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// Largest request head (request line and headers) accepted; a bigger one
/// is answered 431 ([`head_bound`]).
pub const MAX_HEAD: usize = 64 * 1024;

/// What hyper buffers of a request head at most (it closes the connection
/// with a 431 beyond). Its bound is not exact, so it is set above
/// [`MAX_HEAD`], and heads between the two get a clean 431 from
/// [`head_bound`] after being read whole.
pub const MAX_HEAD_BUFFER: usize = 4 * MAX_HEAD;

/// Refuses request heads larger than [`MAX_HEAD`] with 431. hyper bounds
/// what it buffers ([`MAX_HEAD_BUFFER`], see `app::serve`), but not
/// exactly: this makes the documented bound the real one.
pub async fn head_bound(req: Request, next: Next) -> Response {
    if head_size(&req) <= MAX_HEAD {
        return next.run(req).await;
    }
    let mut res = if req.uri().path().starts_with("/api/") {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "head_too_large",
            "the request's headers are larger than 64 KiB",
        )
        .into_response()
    } else {
        super::render::message(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request too large",
            "The request's headers are larger than this service accepts.",
        )
    };
    res.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    res
}

/// Answers 408 when a request is not answered within the configured time
/// (a client trickling its body, or work stuck somewhere). Applies until the
/// response starts: streamed bodies (CSV, live) are not cut.
pub async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) if api => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took too long",
        )
        .into_response(),
        Err(_) => super::render::message(
            StatusCode::REQUEST_TIMEOUT,
            "That took too long",
            "The request was not completed in time. Please try again.",
        ),
    }
}
