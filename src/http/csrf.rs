//! CSRF protection of the site's forms (the UI's, and the password form of
//! protected links): double-submit, a random `hop_csrf` cookie
//! (SameSite=Strict, HttpOnly) that each form must echo in a field, and a
//! cross-site `Origin` refused.

use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

use super::render::message;
use crate::auth::Token;
use crate::state::AppState;

/// Name of the CSRF cookie.
pub const CSRF_COOKIE: &str = "hop_csrf";

/// A cookie of the site: whole path, HttpOnly, Secure when hop is served
/// over HTTPS.
pub fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    same_site: SameSite,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(same_site)
        .build()
}

/// The jar with a CSRF cookie (the one it had, or a new one) and its token.
pub fn ensure(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar.get(CSRF_COOKIE)
        && c.value().len() >= 32
    {
        let token = c.value().to_owned();
        return (jar, token);
    }
    let token = Token::generate("").expose().to_owned();
    let jar = jar.add(cookie(state, CSRF_COOKIE, token.clone(), SameSite::Strict));
    (jar, token)
}

/// The page refusing a form post whose token does not match the cookie, or
/// that comes from another origin; `None`: the post may go on.
pub fn refusal(jar: &CookieJar, headers: &HeaderMap, sent: Option<&str>) -> Option<Response> {
    let refused = || {
        message(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The page was open too long or came from another site. Go back, reload the page and try again.",
        )
    };
    if let (Some(origin), Some(host)) = (headers.get(ORIGIN), headers.get(HOST)) {
        let origin = origin.to_str().unwrap_or_default();
        let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
        if origin == "null" || origin_host.as_bytes() != host.as_bytes() {
            return Some(refused());
        }
    }
    let expected = jar.get(CSRF_COOKIE).map(|c| c.value()).unwrap_or_default();
    let sent = sent.unwrap_or_default();
    if expected.len() < 32 || !bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
        return Some(refused());
    }
    None
}
