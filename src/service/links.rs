//! The rules of a link's life: what may be created (valid target, not
//! blocked, not taken down, not private with `--refuse-private-targets`,
//! a free slug), what an edit may change, listing and deleting. Every change
//! drops the cached link, so the next redirect sees it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::auth::{LINK_SECRET_PREFIX, Token};
use crate::domain::rules::{ConditionSpec, RuleError, RuleSpec, Rules, VariantSpec};
use crate::domain::{
    FieldError, Link, LinkId, LinkPreview, MAX_PREVIEW_DESCRIPTION_LEN, MAX_PREVIEW_TITLE_LEN,
    RedirectStatus, Slug, SlugError, TargetUrl, UrlError, parse_expiry, parse_max_clicks,
    parse_password, parse_preview_text, parse_tags, parse_title,
};
use crate::public_host::Refusal;
use crate::state::AppState;
use crate::store::{ApiKey, Conflict, LinkQuery, StoreError};

/// Attempts at a free random slug before giving up (each is a conditional
/// insert; at 64^7 slugs, needing more than one is already rare).
const RANDOM_SLUG_ATTEMPTS: usize = 8;

/// A link to create, as given: every field is checked by [`create`], in a
/// fixed order, so the first problem reported is always the same one.
#[derive(Debug, Default, Clone)]
pub struct NewLink {
    pub url: String,
    /// Custom slug; random if absent.
    pub slug: Option<String>,
    pub title: Option<String>,
    pub tags: Vec<String>,
    /// RFC 3339 time, in the future.
    pub expires_at: Option<String>,
    pub max_clicks: Option<i64>,
    /// 301, 302, 307 or 308; 302 if absent.
    pub redirect_status: Option<u16>,
    /// Smart link rules, in order.
    pub rules: Vec<RuleSpec>,
    /// Where visits go once the link has expired, reached its click limit
    /// or been disabled.
    pub fallback_url: Option<String>,
    /// A password visitors must give before being redirected.
    pub password: Option<String>,
    /// What link preview bots are shown.
    pub preview: Option<PreviewSpec>,
}

/// A link preview as given: text fields and an image URL.
#[derive(Debug, Default, Clone)]
pub struct PreviewSpec {
    pub title: Option<String>,
    pub description: Option<String>,
    pub image: Option<String>,
}

/// An edit: `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Default, Clone)]
pub struct LinkChanges {
    pub url: Option<String>,
    pub title: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    /// RFC 3339 time, in the future.
    pub expires_at: Option<Option<String>>,
    pub max_clicks: Option<Option<i64>>,
    pub redirect_status: Option<u16>,
    pub disabled: Option<bool>,
    /// The whole list of rules, replaced (empty: none).
    pub rules: Option<Vec<RuleSpec>>,
    pub fallback_url: Option<Option<String>>,
    /// A new password (`Some(None)`: the link is no longer protected).
    pub password: Option<Option<String>>,
    /// A new preview, whole (`Some(None)`: none).
    pub preview: Option<Option<PreviewSpec>>,
}

/// Which links to list, newest first.
#[derive(Debug, Clone)]
pub struct LinkListing {
    pub tag: Option<String>,
    /// Case-insensitive text in slug, URL or title.
    pub text: Option<String>,
    /// Only links older than this one (the previous page's last).
    pub before: Option<LinkId>,
    pub limit: usize,
}

/// One page of links with their all-time human clicks.
#[derive(Debug)]
pub struct ListedLinks {
    pub links: Vec<(Link, u64)>,
    /// The last link's id, when there are more.
    pub next: Option<LinkId>,
}

/// Why a link could not be created, changed or found.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Slug(#[from] SlugError),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(transparent)]
    Rules(#[from] RuleError),
    /// `expires_at` is not an RFC 3339 time.
    #[error("expires_at must be an RFC 3339 time, e.g. 2030-01-01T00:00:00Z")]
    InvalidExpiry,
    /// The target's domain is taken down by an admin.
    #[error("links to this domain have been taken down by this service's administrators")]
    TakenDown,
    /// The target's domain is on the blocklist.
    #[error("links to this domain are not allowed on this service")]
    Blocked,
    /// Refused by `--refuse-private-targets` (which fails closed).
    #[error("target refused as not public: {0:?}")]
    PrivateTarget(Refusal),
    /// The custom slug names another link.
    #[error("this slug is already taken")]
    SlugTaken,
    /// No free random slug after a few attempts.
    #[error("could not find a free slug; try again")]
    SlugSpaceExhausted,
    /// The link went away (deleted in between).
    #[error("no such link")]
    NotFound,
    /// The link has no rule with this id.
    #[error("this link has no rule with that id")]
    RuleNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refuse_blocked(state: &AppState, target: &TargetUrl) -> Result<(), LinkError> {
    if state.takedowns.covers(target.host()) {
        tracing::info!(
            target.host = target.host(),
            "target on a domain taken down refused"
        );
        return Err(LinkError::TakenDown);
    }
    if state.blocklist.blocks(target.host()) {
        tracing::info!(target.host = target.host(), "blocked target refused");
        return Err(LinkError::Blocked);
    }
    Ok(())
}

async fn refuse_private(state: &AppState, target: &TargetUrl) -> Result<(), LinkError> {
    let Some(guard) = &state.target_guard else {
        return Ok(());
    };
    guard
        .check(target.host())
        .await
        .map_err(LinkError::PrivateTarget)
}

/// A target URL that may be linked to: valid, not blocked or taken down,
/// public if so configured.
async fn allowed_target(state: &AppState, url: &str) -> Result<TargetUrl, LinkError> {
    let target = TargetUrl::parse(url, &state.own_hosts)?;
    refuse_blocked(state, &target)?;
    refuse_private(state, &target).await?;
    Ok(target)
}

/// Rules whose every target may be linked to (as [`allowed_target`]).
async fn allowed_rules(state: &AppState, specs: &[RuleSpec]) -> Result<Rules, LinkError> {
    let rules = Rules::parse(specs, &state.own_hosts)?;
    for target in rules.targets() {
        refuse_blocked(state, target)?;
        refuse_private(state, target).await?;
    }
    Ok(rules)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, LinkError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| LinkError::InvalidExpiry)
}

fn parse_status(code: Option<u16>) -> Result<RedirectStatus, LinkError> {
    match code {
        None => Ok(RedirectStatus::Found),
        Some(c) => RedirectStatus::from_code(c).ok_or(LinkError::Field(FieldError::RedirectStatus)),
    }
}

/// All-time human clicks of a link.
pub async fn clicks(state: &AppState, link: &Link) -> Result<u64, StoreError> {
    Ok(state
        .store
        .click_totals(&[link.id], false)
        .await?
        .get(&link.id)
        .copied()
        .unwrap_or(0))
}

/// A preview as stored, once checked: its texts, and its image URL checked
/// like a target (bots fetch it); `None` when it says nothing.
async fn allowed_preview(
    state: &AppState,
    spec: PreviewSpec,
) -> Result<Option<LinkPreview>, LinkError> {
    let image = match spec.image.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => Some(allowed_target(state, url).await?),
        _ => None,
    };
    let preview = LinkPreview {
        title: parse_preview_text(spec.title, MAX_PREVIEW_TITLE_LEN, false)?,
        description: parse_preview_text(spec.description, MAX_PREVIEW_DESCRIPTION_LEN, true)?,
        image,
    };
    Ok((!preview.is_empty()).then_some(preview))
}

/// The stored hash of a protected link's new password, once it is checked.
async fn password_hash(password: String) -> Result<String, LinkError> {
    parse_password(&password)?;
    Ok(crate::password::hash_blocking(password).await)
}

/// Creates a link for `owner` (anonymous when `None`, which also mints the
/// link's secret, returned once here).
pub async fn create(
    state: &AppState,
    owner: Option<&ApiKey>,
    new: NewLink,
) -> Result<(Link, Option<Token>), LinkError> {
    let now = Utc::now();
    let target = allowed_target(state, &new.url).await?;
    let custom = new.slug.as_deref().map(Slug::parse).transpose()?;
    let expires_at = new.expires_at.as_deref().map(parse_time).transpose()?;
    let secret = owner.is_none().then(|| Token::generate(LINK_SECRET_PREFIX));
    let rules = allowed_rules(state, &new.rules).await?;
    let fallback_url = match &new.fallback_url {
        Some(url) => Some(allowed_target(state, url).await?),
        None => None,
    };
    let password_hash = match new.password {
        Some(p) => Some(password_hash(p).await?),
        None => None,
    };
    let preview = match new.preview {
        Some(p) => allowed_preview(state, p).await?,
        None => None,
    };
    let mut link = Link {
        id: LinkId::generate(now, &mut rand::rng()),
        slug: custom
            .clone()
            .unwrap_or_else(|| state.store.random_slug(&mut rand::rng())),
        target,
        title: parse_title(new.title)?,
        tags: parse_tags(new.tags)?,
        created_at: now,
        updated_at: now,
        expires_at: parse_expiry(expires_at, now)?,
        max_clicks: parse_max_clicks(new.max_clicks)?,
        redirect_status: parse_status(new.redirect_status)?,
        disabled: false,
        owner: owner.map(|k| k.id),
        secret_hash: secret.as_ref().map(Token::hash),
        rules,
        fallback_url,
        password_hash,
        preview,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let inserted = match custom {
            Some(_) => state.store.insert_link(&link).await?,
            None => state.store.insert_random_link(&link).await?,
        };
        match inserted {
            Ok(()) => break,
            Err(Conflict::SlugTaken) if custom.is_some() => return Err(LinkError::SlugTaken),
            Err(_) if attempt >= RANDOM_SLUG_ATTEMPTS => {
                return Err(LinkError::SlugSpaceExhausted);
            }
            Err(Conflict::SlugTaken) => link.slug = state.store.random_slug(&mut rand::rng()),
            Err(Conflict::IdTaken) => link.id = LinkId::generate(now, &mut rand::rng()),
        }
    }
    // A recent 404 for this slug may be cached as "missing".
    state.invalidate_link(&link.slug).await;
    tracing::info!(link.slug = %link.slug, anonymous = owner.is_none(), "link created");
    Ok((link, secret))
}

/// One page of the links `key` may see (all of them for an admin), newest
/// first, with click totals.
pub async fn list(
    state: &AppState,
    key: &ApiKey,
    listing: LinkListing,
) -> Result<ListedLinks, StoreError> {
    let query = LinkQuery {
        owner: if key.admin { None } else { Some(key.id) },
        tag: listing.tag,
        text: listing.text,
        before: listing.before,
        limit: listing.limit + 1,
    };
    let mut links = state.store.list_links(&query).await?;
    let next = if links.len() > listing.limit {
        links.truncate(listing.limit);
        links.last().map(|l| l.id)
    } else {
        None
    };
    let ids: Vec<LinkId> = links.iter().map(|l| l.id).collect();
    let totals: HashMap<LinkId, u64> = state.store.click_totals(&ids, false).await?;
    let links = links
        .into_iter()
        .map(|l| {
            let clicks = totals.get(&l.id).copied().unwrap_or(0);
            (l, clicks)
        })
        .collect();
    Ok(ListedLinks { links, next })
}

/// Applies an edit and drops the cached link, so the next redirect on any
/// node sees it.
pub async fn update(
    state: &AppState,
    mut link: Link,
    changes: LinkChanges,
) -> Result<Link, LinkError> {
    let now = Utc::now();
    if let Some(url) = &changes.url {
        link.target = allowed_target(state, url).await?;
    }
    if let Some(title) = changes.title {
        link.title = parse_title(title)?;
    }
    if let Some(tags) = changes.tags {
        link.tags = parse_tags(tags)?;
    }
    if let Some(expires_at) = changes.expires_at {
        let at = expires_at.as_deref().map(parse_time).transpose()?;
        link.expires_at = parse_expiry(at, now)?;
    }
    if let Some(max) = changes.max_clicks {
        link.max_clicks = parse_max_clicks(max)?;
    }
    if let Some(code) = changes.redirect_status {
        link.redirect_status = parse_status(Some(code))?;
    }
    if let Some(disabled) = changes.disabled {
        link.disabled = disabled;
    }
    if let Some(specs) = &changes.rules {
        link.rules = allowed_rules(state, specs).await?;
    }
    if let Some(fallback) = &changes.fallback_url {
        link.fallback_url = match fallback {
            Some(url) => Some(allowed_target(state, url).await?),
            None => None,
        };
    }
    if let Some(preview) = changes.preview {
        link.preview = match preview {
            Some(p) => allowed_preview(state, p).await?,
            None => None,
        };
    }
    if let Some(password) = changes.password {
        link.password_hash = match password {
            Some(p) => Some(password_hash(p).await?),
            None => None,
        };
    }
    link.updated_at = now;
    if !state.store.update_link(&link).await? {
        return Err(LinkError::NotFound);
    }
    state.invalidate_link(&link.slug).await;
    tracing::info!(link.slug = %link.slug, "link updated");
    Ok(link)
}

/// A change to one rule: each field given replaces the rule's (a `target`
/// replaces a `split` and the other way round), the others stay.
#[derive(Debug, Default, Clone)]
pub struct RulePatch {
    pub id: Option<String>,
    pub conditions: Option<Vec<ConditionSpec>>,
    pub target: Option<String>,
    pub split: Option<Vec<VariantSpec>>,
}

/// Patches the rule `id` of `link` (its place in the list kept), checked
/// like a whole list, and saves the link as [`update`] does.
pub async fn patch_rule(
    state: &AppState,
    link: Link,
    id: &str,
    patch: RulePatch,
) -> Result<Link, LinkError> {
    let mut specs = link.rules.to_specs();
    let rule = specs
        .iter_mut()
        .find(|r| r.id.as_deref() == Some(id))
        .ok_or(LinkError::RuleNotFound)?;
    if let Some(new_id) = patch.id {
        rule.id = Some(new_id);
    }
    if let Some(conditions) = patch.conditions {
        rule.conditions = conditions;
    }
    match (patch.target, patch.split) {
        (Some(target), None) => {
            rule.target = Some(target);
            rule.split = None;
        }
        (None, Some(split)) => {
            rule.split = Some(split);
            rule.target = None;
        }
        // Both: refused by the check, as in a whole list.
        (Some(target), Some(split)) => {
            rule.target = Some(target);
            rule.split = Some(split);
        }
        (None, None) => {}
    }
    let changes = LinkChanges {
        rules: Some(specs),
        ..LinkChanges::default()
    };
    update(state, link, changes).await
}

/// Deletes a link with its clicks and drops it from the cache.
pub async fn delete(state: &AppState, link: &Link) -> Result<(), StoreError> {
    state.store.delete_link(&link.slug).await?;
    state.invalidate_link(&link.slug).await;
    tracing::info!(link.slug = %link.slug, "link deleted");
    Ok(())
}
