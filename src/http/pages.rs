//! Error pages in the site's look: unknown (404), gone (410), too many
//! requests (429), internal error (500) and unavailable (503). Static text:
//! nothing from the request is echoed.

use std::any::Any;

use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::ui::message;
use crate::domain::Gone;

pub fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Link not found",
        "There is no link at this address. Check for a typo: short links are case-sensitive.",
    )
}

pub fn gone(why: Gone) -> Response {
    let text = match why {
        Gone::Expired => "This link has expired.",
        Gone::Disabled => "This link has been disabled.",
        Gone::Exhausted => "This link has reached its click limit.",
    };
    message(StatusCode::GONE, "Link no longer available", text)
}

pub fn unavailable() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "This link cannot be looked up right now. Please try again in a moment.",
    )
}

pub fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut res = message(
        StatusCode::TOO_MANY_REQUESTS,
        "Slow down",
        "Too many requests came from your address. Please wait a little and try again.",
    );
    res.headers_mut()
        .insert(RETRY_AFTER, retry_after_secs.max(1).into());
    res
}

pub fn internal_error() -> Response {
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "hop hit an unexpected error. It has been logged; please try again.",
    )
}

pub async fn fallback() -> Response {
    not_found()
}

/// Answer for a handler that panicked: logged, and a 500 in the envelope or
/// page the route speaks, never a dropped connection.
pub fn panic_response(api: bool, err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    if api {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
        .into_response()
    } else {
        internal_error()
    }
}
