//! `GET /{slug}`: the hot path. Parse the slug (no store access for paths
//! that cannot be slugs), resolve it through the cache, answer, and hand the
//! click to the sink without waiting for it.

use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, REFERER, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::extract::{PeerAddr, client_addr};
use super::pages;
use crate::domain::{ClickRef, Gone, Link, MAX_ATTR_LEN, Slug, Utm};
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
            return pages::gone_for(&slug, gone);
        }
        if state.blocklist.blocks(link.target.host()) {
            return pages::gone_for(&slug, Gone::Blocked);
        }
        if state.takedowns.covers(link.target.host()) {
            return pages::gone_for(&slug, Gone::TakenDown);
        }
        // `--refuse-private-targets`, again at redirect time: a name may have
        // started resolving to a private address since the link was made.
        if let Some(guard) = &state.target_guard
            && let Err(why) = guard.check_cached(link.target.host()).await
        {
            tracing::info!(link.slug = %slug, reason = %why, "target refused at redirect");
            return pages::gone_for(&slug, Gone::PrivateTarget);
        }
        // HEAD answers like GET but is not a click.
        if method == Method::HEAD {
            return redirect_to(&link);
        }
        if let Some(max) = link.max_clicks {
            match state.store.claim_click(link.id, max).await {
                Ok(true) => {}
                Ok(false) => return pages::gone_for(&slug, Gone::Exhausted),
                Err(e) => {
                    tracing::error!(error = %e, link.slug = %slug, "claiming a click failed");
                    return pages::unavailable();
                }
            }
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
        // A client the proxy could not name has no address to locate.
        let ip = (!anonymous)
            .then(|| client_addr(peer, headers, &state.trusted_proxies).ip())
            .flatten()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let utm = query.map(Utm::from_query).unwrap_or_default();
        state.clicks.submit(ClickRef {
            event_id: uuid::Uuid::now_v7(),
            link_id: link.id,
            at: now.timestamp_millis(),
            ip,
            user_agent: (!anonymous && !tracking.no_user_agent)
                .then(|| header(USER_AGENT))
                .flatten(),
            referrer: (!anonymous && !tracking.no_referrer)
                .then(|| header(REFERER))
                .flatten(),
            utm: &utm,
            region: &state.region,
            withheld: anonymous || tracking.no_user_agent,
        });
        redirect_to(&link)
    }
    .await;
    state
        .redirect_metrics
        .latency
        .record(started.elapsed().as_secs_f64());
    response
}

fn redirect_to(link: &Link) -> Response {
    let status = StatusCode::from_u16(link.redirect_status.code()).unwrap_or(StatusCode::FOUND);
    match HeaderValue::from_str(link.target.as_str()) {
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
