//! The APIs of other shorteners, each switched on by a flag (off by
//! default), so that their clients work against hop unchanged:
//! [`yourls`] (`--compat-yourls`), [`shlink`] (`--compat-shlink`),
//! [`dub`] (`--compat-dub`) and [`bitly`] (`--compat-bitly`).
//! docs/compat.md says what each covers.

pub mod bitly;
pub mod dub;
pub mod shlink;
pub mod yourls;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::access::Caller;
use super::extract::AppQuery;
use super::stats::{StatsParams, link_stats_handler};
use crate::domain::{Link, LinkId, Slug};
use crate::state::AppState;
use crate::store::{ApiKey, LinkQuery, StoreError};
use std::collections::HashMap;

/// `GET /analytics/{slug}`, the path of the Flask shortener hop replaced:
/// its stats as JSON for a client that asks for JSON (`Accept:
/// application/json`; the same answer and credentials as
/// `/api/v1/links/{slug}/stats`), else the link's dashboard, where it
/// lives now (308).
pub async fn analytics(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    query: AppQuery<StatsParams>,
) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    if wants_json {
        return link_stats_handler(state, caller, Path(slug), query)
            .await
            .into_response();
    }
    let path: String = url::form_urlencoded::byte_serialize(slug.as_bytes()).collect();
    Redirect::permanent(&format!("/links/{path}")).into_response()
}

/// The link `keyword` names, if `key` may see it.
pub(super) async fn visible(
    state: &AppState,
    key: &ApiKey,
    keyword: &str,
) -> Result<Option<Link>, StoreError> {
    let Ok(slug) = Slug::parse_path(keyword) else {
        return Ok(None);
    };
    Ok(state
        .store
        .link_by_slug(&slug)
        .await?
        .filter(|l| key.admin || l.owner == Some(key.id)))
}

/// All-time clicks of these links, with bots (YOURLS and Shlink count
/// every redirect) or without (Dub and Bitly count humans).
pub(super) async fn clicks_of(
    state: &AppState,
    ids: &[LinkId],
    include_bots: bool,
) -> Result<HashMap<LinkId, u64>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        out.extend(state.store.click_totals(chunk, include_bots).await?);
    }
    Ok(out)
}

/// The link to `long_url` that `key` sees (its own, or any for an admin)
/// and `also` accepts, if there is one: narrowed by the store's text
/// search, then compared exactly (as given, or as hop stores it).
pub(super) async fn link_to(
    state: &AppState,
    key: &ApiKey,
    long_url: &str,
    also: impl Fn(&Link) -> bool,
) -> Result<Option<Link>, StoreError> {
    let parsed = crate::domain::TargetUrl::parse(long_url, &state.own_hosts).ok();
    let same = |l: &Link| {
        l.target.as_str() == long_url
            || parsed
                .as_ref()
                .is_some_and(|t| t.as_str() == l.target.as_str())
    };
    let mut before = None;
    loop {
        let page = state
            .store
            .list_links(&LinkQuery {
                owner: (!key.admin).then_some(key.id),
                // Stored targets are in parsed form.
                text: Some(parsed.as_ref().map_or(long_url, |t| t.as_str()).to_owned()),
                before,
                limit: 1_000,
                ..LinkQuery::default()
            })
            .await?;
        if let Some(l) = page.iter().find(|l| same(l) && also(l)) {
            return Ok(Some(l.clone()));
        }
        if page.len() < 1_000 {
            return Ok(None);
        }
        before = page.last().map(|l| l.id);
    }
}

/// A bearer token as Dub's and Bitly's clients send it: after `Bearer `,
/// or bare (npm `bitly`); `None` without an `Authorization` header.
pub(super) fn bearer_or_bare(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    Some(
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
            .trim(),
    )
}

/// Every link `key` sees, newest first.
pub(super) async fn all_links(state: &AppState, key: &ApiKey) -> Result<Vec<Link>, StoreError> {
    let mut out: Vec<Link> = Vec::new();
    loop {
        let page = state
            .store
            .list_links(&LinkQuery {
                owner: (!key.admin).then_some(key.id),
                before: out.last().map(|l| l.id),
                limit: 1_000,
                ..LinkQuery::default()
            })
            .await?;
        let done = page.len() < 1_000;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// This server's domain as Shlink and Dub name domains: the public base
/// URL's authority (`host` or `host:port`).
pub(super) fn own_domain(state: &AppState) -> String {
    url::Url::parse(&state.public_base)
        .ok()
        .map(|u| match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => String::new(),
        })
        .unwrap_or_default()
}

/// The live key a token names (an API key given as Shlink's `X-Api-Key`,
/// Dub's or Bitly's bearer token); `None` for anything else.
pub(super) async fn live_key(state: &AppState, given: &str) -> Result<Option<ApiKey>, StoreError> {
    let token = crate::auth::Token::new(given.trim().to_owned());
    if !token.is_api_key() {
        return Ok(None);
    }
    Ok(state
        .store
        .key_by_hash(&token.hash())
        .await?
        .filter(|k| k.revoked_at.is_none()))
}
