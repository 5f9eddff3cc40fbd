//! Who may do what. API keys own links (admin keys see all); anonymous links
//! carry a per-link secret that grants reading and editing that link only.
//! Answers never reveal whether a slug exists to someone who may not see it.

use super::error::ApiError;
use crate::auth::Token;
use crate::domain::{Link, Slug};
use crate::state::AppState;
use crate::store::ApiKey;

/// A verified API key.
pub async fn api_key(state: &AppState, token: Option<&Token>) -> Result<ApiKey, ApiError> {
    let token = token.ok_or_else(ApiError::unauthorized)?;
    if !token.is_api_key() {
        return Err(ApiError::forbidden(
            "this endpoint needs an API key, not a link secret",
        ));
    }
    match state.store.key_by_hash(&token.hash()).await? {
        Some(key) if key.revoked_at.is_none() => Ok(key),
        _ => Err(ApiError::invalid_credentials()),
    }
}

/// The caller of a create: a key holder, or anonymous when that is allowed.
pub async fn creator(state: &AppState, token: Option<&Token>) -> Result<Option<ApiKey>, ApiError> {
    match token {
        Some(_) => api_key(state, token).await.map(Some),
        None if state.anonymous_links => Ok(None),
        None => Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "anonymous link creation is disabled: send an API key",
        )),
    }
}

/// The link named by `slug`, if the token may manage it.
pub async fn link(state: &AppState, token: Option<&Token>, slug: &str) -> Result<Link, ApiError> {
    let token = token.ok_or_else(ApiError::unauthorized)?;
    if token.is_api_key() {
        let key = api_key(state, Some(token)).await?;
        let slug = Slug::parse_path(slug).map_err(|_| ApiError::link_not_found())?;
        let link = state
            .store
            .link_by_slug(&slug)
            .await?
            .ok_or_else(ApiError::link_not_found)?;
        if key.admin || link.owner == Some(key.id) {
            return Ok(link);
        }
        return Err(ApiError::link_not_found());
    }
    // A link secret: valid only for its own link. Unknown slug and wrong
    // secret answer the same.
    let link = match Slug::parse_path(slug) {
        Ok(slug) => state.store.link_by_slug(&slug).await?,
        Err(_) => None,
    };
    match link {
        Some(link) if link.secret_hash.is_some_and(|h| token.matches(&h)) => Ok(link),
        _ => Err(ApiError::invalid_credentials()),
    }
}
