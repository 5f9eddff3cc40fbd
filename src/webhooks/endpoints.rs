//! The rules of webhook endpoints: who may register, see and change one,
//! and what a valid one is. A key sees the endpoints it registered; an
//! admin key sees every one and may register instance-wide ones (every
//! link of the instance). Functions over the store and the caller's key,
//! returning [`EndpointError`]s; no HTTP.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::now_ms;
use crate::domain::webhook::EventType;
use crate::domain::{MAX_TAG_LEN, Slug};
use crate::public_host::{Refusal, is_forbidden_ip, resolve_public};
use crate::store::webhooks::{Attempt, Endpoint, Message, MessageState, ReplaySelection};
use crate::store::{ApiKey, LinkStore, Store, StoreError};

pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_LEN: usize = 500;
pub const MAX_SCOPE_LINKS: usize = 100;
/// Longest grace period of a rotated secret.
pub const MAX_GRACE: Duration = Duration::from_secs(7 * 86_400);
pub const DEFAULT_GRACE: Duration = Duration::from_secs(86_400);

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "url must be an absolute http or https URL of at most 2048 characters, without credentials"
    )]
    InvalidUrl,
    #[error(
        "webhook URLs on private, loopback, link-local or special-use addresses are not allowed ({0})"
    )]
    PrivateUrl(Refusal),
    #[error(
        "events must list one or more of click, link.created, link.updated, link.deleted, link.exhausted"
    )]
    InvalidEvents,
    #[error("description must be at most 500 characters")]
    InvalidDescription,
    #[error(
        "scope: give a tag (1 to 64 characters), or a list of at most 100 slugs of links you can see, not both"
    )]
    InvalidScope,
    #[error("scope.links names a link that does not exist or that this key cannot see: {0}")]
    UnknownLink(String),
    #[error("only admin keys may register instance-wide endpoints")]
    NotAdmin,
    #[error("secret must be whsec_ followed by 24 to 64 bytes in base64")]
    InvalidSecret,
    #[error("grace must be between 0 and 604800 seconds")]
    InvalidGrace,
    #[error("no such webhook endpoint for this key")]
    NotFound,
    #[error("this store does not keep webhooks (they need SQLite or PostgreSQL)")]
    Unsupported,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EndpointError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unsupported(_) => EndpointError::Unsupported,
            other => EndpointError::Store(other),
        }
    }
}

/// Which links an endpoint hears of, beyond its owner's (or, instance-wide,
/// every one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub tag: Option<String>,
    pub links: Option<Vec<String>>,
}

/// A registration, as asked.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub scope: Scope,
    pub instance_wide: bool,
    /// A secret of the caller's own; by default a fresh one.
    pub secret: Option<String>,
}

/// Changes to an endpoint; `None`: unchanged.
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub scope: Option<Scope>,
    pub enabled: Option<bool>,
}

/// Lookups of webhook hosts at once (registration and edits).
static LOOKUPS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(8)));

/// Checks an endpoint URL; unless private addresses are allowed, its host
/// must be on the public internet (resolved now; delivery checks again).
pub async fn check_url(url: &str, allow_private: bool) -> Result<String, EndpointError> {
    let parsed = url::Url::parse(url.trim()).map_err(|_| EndpointError::InvalidUrl)?;
    if url.len() > MAX_URL_LEN
        || !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(EndpointError::InvalidUrl);
    }
    if !allow_private {
        let host = parsed.host_str().unwrap_or_default();
        resolve_public(host, &LOOKUPS, Duration::from_secs(3))
            .await
            .map_err(EndpointError::PrivateUrl)?;
    }
    Ok(parsed.to_string())
}

/// Whether a delivery may go to this literal address (names are vetted by
/// the delivery client's resolver).
pub fn literal_allowed(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => !is_forbidden_ip((*ip).into()),
        url::Host::Ipv6(ip) => !is_forbidden_ip((*ip).into()),
        url::Host::Domain(_) => true,
    }
}

fn parse_events(names: &[String]) -> Result<Vec<EventType>, EndpointError> {
    if names.len() > EventType::ALL.len() {
        return Err(EndpointError::InvalidEvents);
    }
    let mut events = names
        .iter()
        .map(|n| EventType::parse(n.trim()).ok_or(EndpointError::InvalidEvents))
        .collect::<Result<Vec<_>, _>>()?;
    events.sort();
    events.dedup();
    if events.is_empty() {
        return Err(EndpointError::InvalidEvents);
    }
    Ok(events)
}

fn parse_description(d: Option<String>) -> Result<Option<String>, EndpointError> {
    let d = d.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
    if d.as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN || d.chars().any(char::is_control))
    {
        return Err(EndpointError::InvalidDescription);
    }
    Ok(d)
}

async fn parse_scope(
    store: &dyn Store,
    key: &ApiKey,
    scope: Scope,
) -> Result<(Option<String>, Option<Vec<String>>), EndpointError> {
    let tag = scope.tag.map(|t| t.trim().to_owned());
    if let Some(t) = &tag
        && (t.is_empty() || t.chars().count() > MAX_TAG_LEN || t.chars().any(char::is_control))
    {
        return Err(EndpointError::InvalidScope);
    }
    let Some(slugs) = scope.links else {
        return Ok((tag, None));
    };
    if tag.is_some() || slugs.is_empty() || slugs.len() > MAX_SCOPE_LINKS {
        return Err(EndpointError::InvalidScope);
    }
    let mut out = Vec::with_capacity(slugs.len());
    for s in slugs {
        let slug = Slug::parse_path(&s).map_err(|_| EndpointError::UnknownLink(s.clone()))?;
        match LinkStore::link_by_slug(store, &slug).await? {
            Some(l) if key.admin || l.owner == Some(key.id) => out.push(slug.to_string()),
            _ => return Err(EndpointError::UnknownLink(s)),
        }
    }
    out.sort();
    out.dedup();
    Ok((None, Some(out)))
}

/// Registers an endpoint; the answer holds its secret (shown this once).
pub async fn create(
    store: &dyn Store,
    key: &ApiKey,
    new: NewEndpoint,
    allow_private: bool,
) -> Result<Endpoint, EndpointError> {
    if !store.has_webhooks() {
        return Err(EndpointError::Unsupported);
    }
    if new.instance_wide && !key.admin {
        return Err(EndpointError::NotAdmin);
    }
    let url = check_url(&new.url, allow_private).await?;
    let events = parse_events(&new.events)?;
    let description = parse_description(new.description)?;
    let (scope_tag, scope_links) = parse_scope(store, key, new.scope).await?;
    let secret = match new.secret {
        Some(s) if super::valid_secret(&s) => s,
        Some(_) => return Err(EndpointError::InvalidSecret),
        None => super::new_secret(),
    };
    let now = now_ms();
    let e = Endpoint {
        id: super::new_endpoint_id(),
        owner: Some(key.id),
        instance_wide: new.instance_wide,
        url,
        description,
        events,
        scope_tag,
        scope_links,
        secret,
        previous_secret: None,
        previous_until: None,
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_endpoint(&e).await?;
    Ok(e)
}

/// The endpoints the key sees.
pub async fn list(store: &dyn Store, key: &ApiKey) -> Result<Vec<Endpoint>, EndpointError> {
    if !store.has_webhooks() {
        return Err(EndpointError::Unsupported);
    }
    Ok(store.list_endpoints((!key.admin).then_some(key.id)).await?)
}

/// One endpoint the key may see.
pub async fn get(store: &dyn Store, key: &ApiKey, id: &str) -> Result<Endpoint, EndpointError> {
    if !store.has_webhooks() {
        return Err(EndpointError::Unsupported);
    }
    if id.len() > 64 {
        return Err(EndpointError::NotFound);
    }
    match store.endpoint(id).await? {
        Some(e) if key.admin || e.owner == Some(key.id) => Ok(e),
        _ => Err(EndpointError::NotFound),
    }
}

pub async fn update(
    store: &dyn Store,
    key: &ApiKey,
    id: &str,
    changes: EndpointChanges,
    allow_private: bool,
) -> Result<Endpoint, EndpointError> {
    let mut e = get(store, key, id).await?;
    if let Some(url) = changes.url {
        e.url = check_url(&url, allow_private).await?;
    }
    if let Some(events) = changes.events {
        e.events = parse_events(&events)?;
    }
    if let Some(d) = changes.description {
        e.description = parse_description(d)?;
    }
    if let Some(scope) = changes.scope {
        (e.scope_tag, e.scope_links) = parse_scope(store, key, scope).await?;
    }
    if let Some(enabled) = changes.enabled {
        if enabled && !e.enabled {
            // Enabled again: a fresh start, its waiting messages go out.
            e.disabled_reason = None;
            e.failing_since = None;
        } else if !enabled && e.enabled {
            e.disabled_reason = Some("disabled by its owner".into());
        }
        e.enabled = enabled;
    }
    e.updated_at = now_ms();
    if !store.update_endpoint(&e).await? {
        return Err(EndpointError::NotFound);
    }
    Ok(e)
}

pub async fn delete(store: &dyn Store, key: &ApiKey, id: &str) -> Result<(), EndpointError> {
    let e = get(store, key, id).await?;
    if !store.delete_endpoint(&e.id).await? {
        return Err(EndpointError::NotFound);
    }
    Ok(())
}

/// A new secret; the old one keeps being signed with for `grace`, so
/// receivers can switch without missing a message.
pub async fn rotate_secret(
    store: &dyn Store,
    key: &ApiKey,
    id: &str,
    grace: Option<Duration>,
) -> Result<Endpoint, EndpointError> {
    let grace = grace.unwrap_or(DEFAULT_GRACE);
    if grace > MAX_GRACE {
        return Err(EndpointError::InvalidGrace);
    }
    let mut e = get(store, key, id).await?;
    let now = now_ms();
    let old = std::mem::replace(&mut e.secret, super::new_secret());
    (e.previous_secret, e.previous_until) = if grace.is_zero() {
        (None, None)
    } else {
        (Some(old), Some(now + grace.as_millis() as i64))
    };
    e.updated_at = now;
    if !store.update_endpoint(&e).await? {
        return Err(EndpointError::NotFound);
    }
    Ok(e)
}

pub async fn messages(
    store: &dyn Store,
    key: &ApiKey,
    id: &str,
    state: Option<MessageState>,
    before: Option<(i64, &str)>,
    limit: usize,
) -> Result<Vec<Message>, EndpointError> {
    let e = get(store, key, id).await?;
    Ok(store.list_messages(&e.id, state, before, limit).await?)
}

pub async fn attempts(
    store: &dyn Store,
    key: &ApiKey,
    id: &str,
    message: Option<&str>,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Attempt>, EndpointError> {
    let e = get(store, key, id).await?;
    Ok(store.list_attempts(&e.id, message, before, limit).await?)
}

/// Sends messages again (with their ids and bodies unchanged), with a
/// fresh retry window.
pub async fn replay(
    store: &dyn Store,
    key: &ApiKey,
    id: &str,
    which: ReplaySelection,
    retry_for: Duration,
) -> Result<u64, EndpointError> {
    let e = get(store, key, id).await?;
    let now = now_ms();
    Ok(store
        .replay_messages(&e.id, &which, now, now + retry_for.as_millis() as i64)
        .await?)
}
