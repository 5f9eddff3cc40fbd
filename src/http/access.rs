//! Credentials on the wire: the [`Caller`] extractor (a bearer token, or the
//! session cookie on safe requests) and the API's answers to the access
//! rules of [`crate::service::access`], which decide who may do what.

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header::AUTHORIZATION};
use axum_extra::extract::CookieJar;

use super::error::ApiError;
use crate::auth::Token;
use crate::domain::Link;
use crate::service::access::{self as rules, AccessError};
use crate::session::{Session, SessionId};
use crate::state::AppState;
use crate::store::ApiKey;

pub use crate::service::access::Caller;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hop_session";

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Unauthorized => ApiError::unauthorized(),
            AccessError::InvalidCredentials => ApiError::invalid_credentials(),
            AccessError::NeedsApiKey => {
                ApiError::forbidden("this endpoint needs an API key, not a link secret")
            }
            AccessError::AnonymousDisabled => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "anonymous link creation is disabled: send an API key",
            ),
            AccessError::LinkNotFound => ApiError::link_not_found(),
            AccessError::NotAdmin => ApiError::forbidden("this needs an admin API key"),
            AccessError::Store(e) => e.into(),
        }
    }
}

/// The session a request's cookie names, if it is a live one.
pub async fn session_of(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(SessionId, Session)>, ApiError> {
    let cookie = jar.get(SESSION_COOKIE).map(|c| c.value());
    Ok(rules::session(state, cookie).await?)
}

/// A bearer token wins; without one, safe requests (GET, HEAD) may be made
/// with the session cookie. State-changing API calls never ride on a cookie,
/// so no cross-site form can make them.
impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| ApiError::invalid_credentials())?;
            let (scheme, token) = value
                .split_once(' ')
                .ok_or_else(ApiError::invalid_credentials)?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(ApiError::invalid_credentials());
            }
            return Ok(Caller::Token(Token::new(token.trim())));
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let jar = CookieJar::from_headers(&parts.headers);
            if let Some(session) = session_of(state, &jar).await? {
                return Ok(Caller::Session(Arc::new(session)));
            }
        }
        Ok(Caller::Nobody)
    }
}

/// The live (not revoked) API key `token` is, if any.
pub async fn key_by_token(state: &AppState, token: &Token) -> Result<Option<ApiKey>, ApiError> {
    Ok(rules::key_by_token(state, token).await?)
}

/// A verified API key.
pub async fn api_key(state: &AppState, caller: &Caller) -> Result<ApiKey, ApiError> {
    Ok(rules::api_key(state, caller).await?)
}

/// A verified admin API key.
pub async fn admin(state: &AppState, caller: &Caller) -> Result<ApiKey, ApiError> {
    Ok(rules::admin(state, caller).await?)
}

/// The caller of a create: a key holder, or anonymous when that is allowed.
pub async fn creator(state: &AppState, caller: &Caller) -> Result<Option<ApiKey>, ApiError> {
    Ok(rules::creator(state, caller).await?)
}

/// The link named by `slug`, if the caller may manage it.
pub async fn link(state: &AppState, caller: &Caller, slug: &str) -> Result<Link, ApiError> {
    Ok(rules::link(state, caller, slug).await?)
}
