//! The HTTP surface. This file is the table of contents: every route hop
//! answers is listed in [`router`].

pub mod access;
pub mod assets;
pub mod compat;
pub mod csrf;
pub mod embedded;
pub mod error;
pub mod export;
pub mod extract;
pub mod front;
pub mod imports;
pub mod limits;
pub mod links;
pub mod live;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod preview;
pub mod protect;
pub mod qr;
pub mod redirect;
pub mod render;
pub mod reports;
pub mod rule_schema;
pub mod stats;
pub mod ui;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// The API's documented routes, relative to `/api/v1`: each handler's
/// `#[utoipa::path]` gives both its axum route and its OpenAPI operation, so
/// the router and the document cannot drift. Routes on one path go in one
/// `routes!`.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(links::list_links, links::create_link))
        .routes(routes!(
            links::get_link,
            links::update_link,
            links::delete_link
        ))
        .routes(routes!(links::update_link_rule))
        .routes(routes!(stats::link_stats_handler))
        .routes(routes!(export::export_clicks))
        .routes(routes!(export::export_clicks_ndjson_of_link))
        .routes(routes!(export::export_clicks_csv))
        .routes(routes!(export::export_clicks_ndjson))
        .routes(routes!(stats::purge_clicks))
        .routes(routes!(live::live_clicks))
        .routes(routes!(live::recent_clicks))
        .routes(routes!(qr::link_qr_svg))
        .routes(routes!(qr::link_qr_png))
        .routes(routes!(protect::create_access_token))
        .routes(routes!(reports::list_reports, reports::create_report))
        .routes(routes!(reports::disable_domain))
        .routes(routes!(reports::list_takedowns, reports::create_takedown))
        .routes(routes!(reports::lift_takedown))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::rotate_webhook_secret))
        .routes(routes!(webhooks::list_webhook_messages))
        .routes(routes!(webhooks::list_webhook_attempts))
        .routes(routes!(webhooks::replay_webhook))
        .routes(routes!(imports::create_import))
        .routes(routes!(imports::get_import))
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    // The documented routes come with their OpenAPI paths (`api_routes`);
    // the document itself is served from `openapi::ApiDoc`.
    let (api, _) = api_routes().split_for_parts();
    let api = api
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
        // The Flask shortener's form post, as the home form's.
        .route("/shorten", axum::routing::post(ui::shorten))
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
        .route("/webhooks", get(ui::webhooks_page).post(ui::create_webhook))
        .route(
            "/webhooks/{id}",
            get(ui::webhook_page).post(ui::webhook_action),
        )
        .route("/static/{file}", get(assets::serve_asset))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(CatchPanicLayer::custom(|e| pages::panic_response(false, e)));

    let mut managed = Router::new()
        .nest("/api/v1", api)
        .route("/analytics/{slug}", get(compat::analytics))
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

    let mut compat = Router::new();
    if state.compat.yourls {
        compat = compat.route(
            "/yourls-api.php",
            get(compat::yourls::api).post(compat::yourls::api),
        );
    }
    if state.compat.shlink {
        compat = compat.merge(compat::shlink::routes());
    }
    if state.compat.dub {
        compat = compat.merge(compat::dub::routes());
    }
    if state.compat.bitly {
        compat = compat.merge(compat::bitly::routes());
    }
    let compat = compat
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_api,
        ))
        .layer(CatchPanicLayer::custom(|e| pages::panic_response(true, e)));

    Router::new()
        .merge(managed)
        .merge(compat)
        .route("/{slug}", get(redirect::follow_link).post(redirect::unlock))
        .fallback(pages::fallback)
        .layer(middleware::from_fn(ops::head_bound))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
