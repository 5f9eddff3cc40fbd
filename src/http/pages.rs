//! Minimal HTML pages for the redirect path: unknown (404), gone (410) and
//! unavailable (503). Static text: nothing from the request is echoed.

use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::domain::Gone;

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title} · hop</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:15vh auto;padding:0 1rem;color:#1a1a1a}}\
         @media (prefers-color-scheme:dark){{body{{background:#111;color:#eee}}a{{color:#9cf}}}}</style></head>\
         <body><h1>{title}</h1><p>{message}</p><p><a href=\"/\">hop</a></p></body></html>"
    );
    (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

pub fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not found",
        "There is no link at this address.",
    )
}

pub fn gone(why: Gone) -> Response {
    let message = match why {
        Gone::Expired => "This link has expired.",
        Gone::Disabled => "This link has been disabled.",
        Gone::Exhausted => "This link has reached its click limit.",
    };
    page(StatusCode::GONE, "Link no longer available", message)
}

pub fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "This link cannot be looked up right now. Please try again in a moment.",
    )
}

pub async fn home() -> Response {
    page(
        StatusCode::OK,
        "hop",
        "A URL shortener with exact, real-time click analytics. \
         Shorten links with <code>POST /api/v1/links</code>; \
         the API is described at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.",
    )
}

pub async fn fallback() -> Response {
    not_found()
}
