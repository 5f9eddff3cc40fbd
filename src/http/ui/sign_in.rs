//! `/login` and `/logout`: signing in with an API key starts a session
//! (under a fresh id), signing out ends it.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use minijinja::context;
use serde::Deserialize;

use super::{CsrfOnly, Frame, PageError, accept, save_session};
use crate::auth::Token;
use crate::http::access::{self, Caller, SESSION_COOKIE};
use crate::http::extract::PeerAddr;
use crate::http::limits::client_key;
use crate::ratelimit::Bucket;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

/// Only a path on this origin is followed after sign-in (no open
/// redirect): it starts with one `/`, has no backslash, control or space
/// character (browsers drop tabs and newlines, so `/\t/evil.example` would
/// become `//evil.example`), and resolves to this origin.
fn safe_next(next: Option<&str>) -> String {
    let same_origin = |n: &str| {
        let base = url::Url::parse("http://hop.invalid/").expect("static base parses");
        n.starts_with('/')
            && !n.starts_with("//")
            && !n
                .chars()
                .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
            && base
                .join(n)
                .is_ok_and(|u| u.origin() == base.origin() && u.username().is_empty())
    };
    match next {
        Some(n) if same_origin(n) => n.to_owned(),
        _ => "/links".to_owned(),
    }
}

pub async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
    next: Result<Query<NextParam>, QueryRejection>,
) -> Result<Response, PageError> {
    let frame = Frame::load(&state, jar).await?;
    let next = safe_next(next.as_ref().ok().and_then(|q| q.next.as_deref()));
    Ok(frame.page(
        StatusCode::OK,
        "login.html",
        context! { next, noindex => true },
    ))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    key: Option<String>,
    next: Option<String>,
    csrf: Option<String>,
}

posted!(LoginForm);

pub async fn login(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (form, frame) = accept(&state, jar, &headers, form).await?;
    let next = safe_next(form.next.as_deref());
    let ip = client_key(&state, peer, &headers);
    if let Some(d) = state.limiter.refused(Bucket::AuthFailure, &ip).await {
        return Ok(crate::http::pages::too_many_requests(d.reset_secs));
    }
    let token = Token::new(form.key.unwrap_or_default().trim());
    let key = match access::api_key(&state, &Caller::Token(token.clone())).await {
        Ok(key) => key,
        Err(e) if e.status.is_server_error() => return Err(e.into()),
        Err(_) => {
            tracing::info!("web sign-in refused");
            state.limiter.take(Bucket::AuthFailure, &ip).await;
            return Ok(frame.page(
                StatusCode::UNAUTHORIZED,
                "login.html",
                context! { next, error => "That API key is not valid.", noindex => true },
            ));
        }
    };
    let (old, session) = frame.session.clone().unzip();
    let mut session = session.unwrap_or_default();
    session.key_hash = Some(token.hash());
    // A sign-in begins the session's lifetime anew.
    session.created_at = 0;
    let jar = save_session(&state, frame.jar, old.as_ref(), &session, true).await?;
    tracing::info!(key.id = key.id.0, "web sign-in");
    Ok((jar, Redirect::to(&next)).into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Result<Response, PageError> {
    let (_, frame) = accept(&state, jar, &headers, form).await?;
    if let Some((id, _)) = &frame.session {
        let _ = state.sessions.remove(id).await;
    }
    let jar = frame.jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/links/abc")), "/links/abc");
        assert_eq!(safe_next(Some("//evil.com")), "/links");
        assert_eq!(safe_next(Some("https://evil.com")), "/links");
        assert_eq!(safe_next(Some("/\\evil.com")), "/links");
        assert_eq!(safe_next(None), "/links");
        for hostile in [
            "/\t/evil.example/phish",
            "/\n/evil.example",
            "/\r//evil.example",
            "/ /evil.example",
            "/\u{3000}/evil.example",
            "/\u{0}/evil.example",
            "\\/evil.example",
            " //evil.example",
            "///evil.example",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/links", "{hostile:?}");
        }
        assert_eq!(safe_next(Some("/links?q=a%20b")), "/links?q=a%20b");
    }
}
