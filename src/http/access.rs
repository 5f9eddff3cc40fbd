//! Who may do what. API keys own links (admin keys see all); anonymous links
//! carry a per-link secret that grants reading and editing that link only.
//! A browser session (web UI) carries the hash of the key it signed in with
//! and of the link secrets it was shown, and grants the same.
//! Answers never reveal whether a slug exists to someone who may not see it.

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{Method, header::AUTHORIZATION};
use axum_extra::extract::CookieJar;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::auth::Token;
use crate::domain::{Link, Slug};
use crate::session::{Session, SessionId};
use crate::state::AppState;
use crate::store::ApiKey;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hop_session";

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Caller {
    Nobody,
    /// `Authorization: Bearer` with an API key or a link secret.
    Token(Token),
    /// A signed-in or link-unlocked browser.
    Session(Arc<(SessionId, Session)>),
}

impl Caller {
    fn key_hash(&self) -> Option<[u8; 32]> {
        match self {
            Caller::Token(t) if t.is_api_key() => Some(t.hash()),
            Caller::Session(s) => s.1.key_hash,
            _ => None,
        }
    }

    fn may_use_secret(&self, stored: &[u8; 32]) -> bool {
        match self {
            Caller::Token(t) => !t.is_api_key() && t.matches(stored),
            Caller::Session(s) => {
                s.1.link_secrets
                    .iter()
                    .fold(false, |found, h| found | bool::from(h.ct_eq(stored)))
            }
            Caller::Nobody => false,
        }
    }
}

/// The session a request's cookie names, if it is a live one.
pub async fn session_of(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(SessionId, Session)>, ApiError> {
    let Some(id) = jar
        .get(SESSION_COOKIE)
        .and_then(|c| SessionId::parse(c.value()))
    else {
        return Ok(None);
    };
    Ok(state.sessions.load(&id).await?.map(|s| (id, s)))
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

async fn key_for_hash(state: &AppState, hash: &[u8; 32]) -> Result<Option<ApiKey>, ApiError> {
    Ok(state
        .store
        .key_by_hash(hash)
        .await?
        .filter(|k| k.revoked_at.is_none()))
}

/// The live (not revoked) API key `token` is, if any.
pub async fn key_by_token(state: &AppState, token: &Token) -> Result<Option<ApiKey>, ApiError> {
    key_for_hash(state, &token.hash()).await
}

/// A verified API key.
pub async fn api_key(state: &AppState, caller: &Caller) -> Result<ApiKey, ApiError> {
    match caller {
        Caller::Nobody => return Err(ApiError::unauthorized()),
        Caller::Token(t) if !t.is_api_key() => {
            return Err(ApiError::forbidden(
                "this endpoint needs an API key, not a link secret",
            ));
        }
        _ => {}
    }
    let hash = caller.key_hash().ok_or_else(ApiError::unauthorized)?;
    key_for_hash(state, &hash)
        .await?
        .ok_or_else(ApiError::invalid_credentials)
}

/// The caller of a create: a key holder, or anonymous when that is allowed.
pub async fn creator(state: &AppState, caller: &Caller) -> Result<Option<ApiKey>, ApiError> {
    if matches!(caller, Caller::Token(_)) || caller.key_hash().is_some() {
        return api_key(state, caller).await.map(Some);
    }
    if state.anonymous_links {
        Ok(None)
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "anonymous link creation is disabled: send an API key",
        ))
    }
}

/// The link named by `slug`, if the caller may manage it.
pub async fn link(state: &AppState, caller: &Caller, slug: &str) -> Result<Link, ApiError> {
    if matches!(caller, Caller::Nobody) {
        return Err(ApiError::unauthorized());
    }
    let key = match caller.key_hash() {
        Some(hash) => match key_for_hash(state, &hash).await? {
            Some(key) => Some(key),
            // A bearer key that is wrong is an error; a session whose key
            // was revoked still holds its link secrets.
            None if matches!(caller, Caller::Token(_)) => {
                return Err(ApiError::invalid_credentials());
            }
            None => None,
        },
        None => None,
    };
    // Unknown slug, someone else's link and a wrong secret answer the same.
    let denied = || {
        if key.is_some() {
            ApiError::link_not_found()
        } else {
            ApiError::invalid_credentials()
        }
    };
    let link = match Slug::parse_path(slug) {
        Ok(slug) => state.store.link_by_slug(&slug).await?,
        Err(_) => None,
    };
    let Some(link) = link else {
        return Err(denied());
    };
    if let Some(key) = &key
        && (key.admin || link.owner == Some(key.id))
    {
        return Ok(link);
    }
    if link.secret_hash.is_some_and(|h| caller.may_use_secret(&h)) {
        return Ok(link);
    }
    Err(denied())
}
