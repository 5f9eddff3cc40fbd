//! The HTTP surface. This file is the table of contents: every route hop
//! answers is listed in [`router`].

pub mod access;
pub mod assets;
pub mod embedded;
pub mod error;
pub mod extract;
pub mod limits;
pub mod links;
pub mod live;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod qr;
pub mod redirect;
pub mod render;
pub mod reports;
pub mod stats;
pub mod ui;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use error::ApiError;

/// Largest accepted API request body.
pub const MAX_BODY: usize = 64 * 1024;

/// `/metrics` alone, for `--metrics-listen`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let api = Router::new()
        .route("/links", get(links::list_links).post(links::create_link))
        .route(
            "/links/{slug}",
            get(links::get_link)
                .patch(links::update_link)
                .delete(links::delete_link),
        )
        .route("/links/{slug}/stats", get(stats::link_stats_handler))
        .route("/links/{slug}/clicks.csv", get(stats::export_clicks))
        .route(
            "/links/{slug}/clicks",
            axum::routing::delete(stats::purge_clicks),
        )
        .route("/links/{slug}/live", get(live::live_clicks))
        .route("/links/{slug}/qr.svg", get(qr::link_qr_svg))
        .route("/links/{slug}/qr.png", get(qr::link_qr_png))
        .route(
            "/reports",
            get(reports::list_reports).post(reports::create_report),
        )
        .route(
            "/admin/disable-domain",
            axum::routing::post(reports::disable_domain),
        )
        .route(
            "/admin/takedowns",
            get(reports::list_takedowns).post(reports::create_takedown),
        )
        .route(
            "/admin/takedowns/{domain}",
            axum::routing::delete(reports::lift_takedown),
        )
        .route("/openapi.json", get(ops::openapi))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this method is not allowed here",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_api,
        ))
        .layer(CatchPanicLayer::custom(|e| pages::panic_response(true, e)));

    let web = Router::new()
        .route("/", get(ui::home).post(ui::shorten))
        .route("/login", get(ui::login_page).post(ui::login))
        .route("/logout", axum::routing::post(ui::logout))
        .route("/links", get(ui::list_page))
        .route("/links/{slug}", get(ui::dashboard))
        .route("/links/{slug}/unlock", axum::routing::post(ui::unlock))
        .route("/links/{slug}/edit", get(ui::edit_page).post(ui::edit))
        .route(
            "/links/{slug}/delete",
            get(ui::delete_page).post(ui::delete),
        )
        .route("/report", get(ui::report_page).post(ui::report))
        .route("/static/{file}", get(assets::serve_asset))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(CatchPanicLayer::custom(|e| pages::panic_response(false, e)));

    let mut managed = Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz));
    if state.metrics_on_main {
        managed = managed.route("/metrics", get(ops::metrics));
    }
    let managed = managed
        .merge(web)
        .layer(middleware::from_fn(ops::track))
        .layer(middleware::from_fn(ops::nosniff))
        // Not on redirects: they answer from cache or fail fast on the store.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            ops::request_timeout,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }));

    Router::new()
        .merge(managed)
        .route("/{slug}", get(redirect::follow_link))
        .fallback(pages::fallback)
        .layer(middleware::from_fn(ops::head_bound))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
