//! `GET /{slug}`: the hot path. Parse the slug (no store access for paths
//! that cannot be slugs), resolve it through the cache, answer, and hand the
//! click to the sink without waiting for it.

use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, LOCATION, REFERER, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::extract::{PeerAddr, client_addr};
use super::pages;
use crate::domain::rules::{Visit, visit_key};
use crate::domain::{ClickRef, Gone, Link, MAX_ATTR_LEN, Slug, TargetUrl, Utm};
use crate::state::AppState;

pub async fn follow_link(
    State(state): State<AppState>,
    method: Method,
    Path(slug): Path<String>,
    PeerAddr(peer): PeerAddr,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(&state, &method, &slug, peer, query.as_deref(), &headers).await
}

/// The redirect, timed into the redirect latency histogram: what the
/// router's `/{slug}` route and [`super::front`]'s fast path both answer.
pub async fn answer(
    state: &AppState,
    method: &Method,
    slug: &str,
    peer: std::net::IpAddr,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let started = Instant::now();
    let response = async {
        let Ok(slug) = Slug::parse_path(slug) else {
            return pages::not_found();
        };
        let link = match state.resolve(&slug).await {
            Ok(Some(link)) => link,
            Ok(None) => return pages::not_found_for(&slug),
            Err(e) => {
                tracing::error!(error = %e, link.slug = %slug, "link lookup failed");
                return pages::unavailable();
            }
        };
        let now = Utc::now();
        if let Err(gone) = link.check_live(now) {
            return fallback_or_gone(state, &slug, &link, gone).await;
        }
        // Header values that are `str` are visible ASCII, so cutting at a byte
        // is cutting at a character; the click borrows them (no copies here).
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(|s| &s[..s.len().min(MAX_ATTR_LEN * 2)])
        };
        let tracking = state.tracking;
        // A browser asking not to be tracked is counted, and nothing else.
        let anonymous = tracking.honor_dnt
            && ["dnt", "sec-gpc"].iter().any(|h| {
                headers
                    .get(*h)
                    .is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
            });
        let client = client_addr(peer, headers, &state.trusted_proxies).ip();
        // A client the proxy could not name has no address to locate.
        let ip = (!anonymous)
            .then_some(client)
            .flatten()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let user_agent = (!anonymous && !tracking.no_user_agent)
            .then(|| header(USER_AGENT))
            .flatten();
        let target = if link.rules.is_empty() {
            &link.target
        } else {
            decide(state, &link, now, client, ip, user_agent, query, headers)
        };
        if let Some(gone) = refused(state, &slug, target).await {
            return pages::gone_for(&slug, gone);
        }
        // HEAD answers like GET but is not a click.
        if method == Method::HEAD {
            return redirect(status_of(&link), target);
        }
        if let Some(max) = link.max_clicks {
            match state.store.claim_click(link.id, max).await {
                Ok(true) => {}
                Ok(false) => return fallback_or_gone(state, &slug, &link, Gone::Exhausted).await,
                Err(e) => {
                    tracing::error!(error = %e, link.slug = %slug, "claiming a click failed");
                    return pages::unavailable();
                }
            }
        }
        let utm = query.map(Utm::from_query).unwrap_or_default();
        state.clicks.submit(ClickRef {
            event_id: uuid::Uuid::now_v7(),
            link_id: link.id,
            at: now.timestamp_millis(),
            ip,
            user_agent,
            referrer: (!anonymous && !tracking.no_referrer)
                .then(|| header(REFERER))
                .flatten(),
            utm: &utm,
            region: &state.region,
            withheld: anonymous || tracking.no_user_agent,
        });
        redirect(status_of(&link), target)
    }
    .await;
    state
        .redirect_metrics
        .latency
        .record(started.elapsed().as_secs_f64());
    response
}

/// Why `target` may not be redirected to now, if it may not: its domain
/// is blocked or taken down, or (`--refuse-private-targets`, checked again
/// at redirect time: a name may have started resolving to a private
/// address since the link was made) it is not public.
async fn refused(state: &AppState, slug: &Slug, target: &TargetUrl) -> Option<Gone> {
    if state.blocklist.blocks(target.host()) {
        return Some(Gone::Blocked);
    }
    if state.takedowns.covers(target.host()) {
        return Some(Gone::TakenDown);
    }
    if let Some(guard) = &state.target_guard
        && let Err(why) = guard.check_cached(target.host()).await
    {
        tracing::info!(link.slug = %slug, reason = %why, "target refused at redirect");
        return Some(Gone::PrivateTarget);
    }
    None
}

/// A link that no longer redirects (`gone`): to its fallback URL if it has
/// one that may be redirected to, else the 410 page.
async fn fallback_or_gone(state: &AppState, slug: &Slug, link: &Link, gone: Gone) -> Response {
    match &link.fallback_url {
        Some(fallback) => match refused(state, slug, fallback).await {
            None => redirect(StatusCode::FOUND, fallback),
            Some(why) => pages::gone_for(slug, why),
        },
        None => pages::gone_for(slug, gone),
    }
}

/// Where a link's rules send this visit: the facts they read (location,
/// user agent class, the visit's key for splits) are worked out here, once,
/// and only those they read.
#[allow(clippy::too_many_arguments)]
fn decide<'l>(
    state: &AppState,
    link: &'l Link,
    now: DateTime<Utc>,
    client: Option<std::net::IpAddr>,
    ip: std::net::IpAddr,
    user_agent: Option<&str>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> &'l TargetUrl {
    let needs = link.rules.needs();
    // Rules place the client where it is, Do-Not-Track or not: nothing of
    // it is kept.
    let location = needs
        .location
        .then(|| client.map(|c| state.enricher.location(c)))
        .flatten()
        .unwrap_or_default();
    let class = needs.user_agent.then(|| {
        let ua = headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
        state.enricher.user_agent(ua)
    });
    let referrer = headers
        .get(REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::clicks::enrich::referrer_host);
    let visit = Visit {
        country: location.country.as_deref(),
        city: location.city.as_deref(),
        device: class.as_ref().map(|c| c.device),
        os: class.as_ref().map(|c| c.os.as_str()),
        browser: class.as_ref().map(|c| c.browser.as_str()),
        accept_language: headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
        query,
        ip: client,
        referrer_host: referrer.as_deref(),
        // The inputs of the click's visitor hash: one variant per visitor.
        visitor: if needs.visitor {
            visit_key(
                link.id,
                now.timestamp_millis(),
                ip,
                user_agent.unwrap_or(""),
            )
        } else {
            0
        },
        now,
    };
    link.rules
        .decide(link.id, &visit)
        .target
        .unwrap_or(&link.target)
}

fn status_of(link: &Link) -> StatusCode {
    StatusCode::from_u16(link.redirect_status.code()).unwrap_or(StatusCode::FOUND)
}

fn redirect(status: StatusCode, target: &TargetUrl) -> Response {
    match HeaderValue::from_str(target.as_str()) {
        Ok(location) => (
            status,
            [
                (LOCATION, location),
                (
                    CACHE_CONTROL,
                    HeaderValue::from_static("private, max-age=0"),
                ),
                (
                    axum::http::HeaderName::from_static("x-robots-tag"),
                    HeaderValue::from_static("noindex"),
                ),
            ],
        )
            .into_response(),
        // Targets are checked to be header-safe on the way in; a stored one
        // that is not is refused rather than sent.
        Err(_) => pages::unavailable(),
    }
}
