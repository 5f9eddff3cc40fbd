//! Error pages in the site's look: unknown (404), gone (410), too many
//! requests (429), internal error (500) and unavailable (503). Static text:
//! nothing from the request is echoed. They depend on the rendering alone
//! ([`super::render`]), never on the UI's handlers, so the redirect can
//! answer with them.

use std::any::Any;

use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::render::{message, message_about};
use crate::domain::Gone;
use crate::domain::Slug;

pub fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Link not found",
        "There is no link at this address. Check for a typo: short links are case-sensitive.",
    )
}

/// 404 for a slug that parses but names no link, with a report link.
pub fn not_found_for(slug: &Slug) -> Response {
    message_about(
        StatusCode::NOT_FOUND,
        "Link not found",
        "There is no link at this address. Check for a typo: short links are case-sensitive.",
        Some(slug),
    )
}

/// 410 for a link that no longer redirects, with a report link.
pub fn gone_for(slug: &Slug, why: Gone) -> Response {
    let text = match why {
        Gone::Expired => "This link has expired.",
        Gone::Disabled => "This link has been disabled.",
        Gone::Exhausted => "This link has reached its click limit.",
        Gone::Blocked => {
            "This link has been disabled: its destination is on this service's blocklist \
             (phishing, malware or abuse)."
        }
        Gone::TakenDown => {
            "This link has been disabled by this service's administrators: its destination \
             was reported for phishing, malware or abuse."
        }
        Gone::PrivateTarget => {
            "This link has been disabled: its destination is not on the public internet, \
             or could not be checked to be."
        }
    };
    message_about(
        StatusCode::GONE,
        "Link no longer available",
        text,
        Some(slug),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn error_pages_share_the_site_look() {
        let res = too_many_requests(0);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[RETRY_AFTER], "1");
        assert!(body(res).await.contains("Slow down"));
        let res = gone_for(&Slug::parse("spent").unwrap(), Gone::Exhausted);
        assert_eq!(res.status(), StatusCode::GONE);
        let html = body(res).await;
        assert!(html.contains("click limit") && html.contains("/static/app.css?v="));
        assert!(html.contains("/report?slug=spent"));
    }

    #[tokio::test]
    async fn a_panic_is_a_500_in_the_routes_language() {
        let res = panic_response(true, Box::new("boom"));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body(res).await.contains("\"code\":\"internal\""));
        let res = panic_response(false, Box::new(String::from("boom")));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let html = body(res).await;
        assert!(html.contains("Something went wrong") && !html.contains("boom"));
    }
}
