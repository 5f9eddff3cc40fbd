//! Who may do what. API keys own links (admin keys see all); anonymous links
//! carry a per-link secret that grants reading and editing that link only.
//! A browser session (web UI) carries the hash of the key it signed in with
//! and of the link secrets it was shown, and grants the same.
//! Answers never reveal whether a slug exists to someone who may not see it.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::auth::Token;
use crate::domain::{Link, Slug};
use crate::session::{Session, SessionId};
use crate::state::AppState;
use crate::store::{ApiKey, StoreError};

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

/// Why a caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No credentials at all.
    #[error("missing credentials")]
    Unauthorized,
    /// Credentials that name no live key, or a wrong link secret (also for a
    /// slug that does not exist: the answer never tells which exist).
    #[error("the credentials are not valid")]
    InvalidCredentials,
    /// A link secret where only an API key will do.
    #[error("this needs an API key, not a link secret")]
    NeedsApiKey,
    /// An anonymous create while `--anonymous-links` is off.
    #[error("anonymous link creation is disabled")]
    AnonymousDisabled,
    /// A key that may not see this link, or no such link.
    #[error("no such link for these credentials")]
    LinkNotFound,
    /// A key that is not an admin's, where one is needed.
    #[error("this needs an admin API key")]
    NotAdmin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The live session named by a session cookie's value, if any.
pub async fn session(
    state: &AppState,
    cookie: Option<&str>,
) -> Result<Option<(SessionId, Session)>, StoreError> {
    let Some(id) = cookie.and_then(SessionId::parse) else {
        return Ok(None);
    };
    Ok(state.sessions.load(&id).await?.map(|s| (id, s)))
}

async fn key_for_hash(state: &AppState, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
    Ok(state
        .store
        .key_by_hash(hash)
        .await?
        .filter(|k| k.revoked_at.is_none()))
}

/// The live (not revoked) API key `token` is, if any.
pub async fn key_by_token(state: &AppState, token: &Token) -> Result<Option<ApiKey>, StoreError> {
    key_for_hash(state, &token.hash()).await
}

/// A verified API key.
pub async fn api_key(state: &AppState, caller: &Caller) -> Result<ApiKey, AccessError> {
    match caller {
        Caller::Nobody => return Err(AccessError::Unauthorized),
        Caller::Token(t) if !t.is_api_key() => return Err(AccessError::NeedsApiKey),
        _ => {}
    }
    let hash = caller.key_hash().ok_or(AccessError::Unauthorized)?;
    key_for_hash(state, &hash)
        .await?
        .ok_or(AccessError::InvalidCredentials)
}

/// A verified admin API key.
pub async fn admin(state: &AppState, caller: &Caller) -> Result<ApiKey, AccessError> {
    let key = api_key(state, caller).await?;
    if !key.admin {
        return Err(AccessError::NotAdmin);
    }
    Ok(key)
}

/// The caller of a create: a key holder, or anonymous when that is allowed.
pub async fn creator(state: &AppState, caller: &Caller) -> Result<Option<ApiKey>, AccessError> {
    if matches!(caller, Caller::Token(_)) || caller.key_hash().is_some() {
        return api_key(state, caller).await.map(Some);
    }
    if state.anonymous_links {
        Ok(None)
    } else {
        Err(AccessError::AnonymousDisabled)
    }
}

/// The link named by `slug`, if the caller may manage it.
pub async fn link(state: &AppState, caller: &Caller, slug: &str) -> Result<Link, AccessError> {
    if matches!(caller, Caller::Nobody) {
        return Err(AccessError::Unauthorized);
    }
    let key = match caller.key_hash() {
        Some(hash) => match key_for_hash(state, &hash).await? {
            Some(key) => Some(key),
            // A bearer key that is wrong is an error; a session whose key
            // was revoked still holds its link secrets.
            None if matches!(caller, Caller::Token(_)) => {
                return Err(AccessError::InvalidCredentials);
            }
            None => None,
        },
        None => None,
    };
    // Unknown slug, someone else's link and a wrong secret answer the same.
    let denied = || {
        if key.is_some() {
            AccessError::LinkNotFound
        } else {
            AccessError::InvalidCredentials
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
