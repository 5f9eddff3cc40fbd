//! `GET /{slug}`: the hot path. Parse the slug (no store access for paths
//! that cannot be slugs), resolve it through the cache, answer, and hand the
//! click to the sink without waiting for it.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, LOCATION, REFERER, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::extract::{PeerAddr, client_addr};
use super::pages;
use super::protect::{self, PasswordForm};
use crate::clicks::user_agent::is_link_previewer;
use crate::domain::rules::{Visit, visit_key};
use crate::domain::{
    ClickRef, DEFAULT_ROUTE, FALLBACK_ROUTE, Gone, Link, Location, MAX_ATTR_LEN, RouteRef, Slug,
    TargetUrl, Utm,
};
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

/// `POST /{slug}`: the password form of a protected link, posted. A right
/// password answers the redirect (a 303, so the browser follows it with a
/// GET whatever the link's own status) and counts the click; anything else
/// answers the form again, or the page that refuses it.
pub async fn unlock(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    PeerAddr(peer): PeerAddr,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let (parsed, link) = match link_at(&state, &slug).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    if link.password_hash.is_none() {
        let mut res = super::render::message(
            StatusCode::METHOD_NOT_ALLOWED,
            "Nothing to send here",
            "This link has no password: open it with a plain visit.",
        );
        res.headers_mut().insert(
            axum::http::header::ALLOW,
            HeaderValue::from_static("GET, HEAD"),
        );
        return res;
    }
    let Ok(Form(form)) = form else {
        return protect::form(
            &state,
            &parsed,
            &headers,
            StatusCode::BAD_REQUEST,
            Some("The form could not be read. Please try again."),
        );
    };
    if let Some(page) = protect::refusal(&state, &link, peer, &headers, form).await {
        return page;
    }
    let mut res = answer_as(
        &state,
        &Method::GET,
        &slug,
        peer,
        query.as_deref(),
        &headers,
        true,
    )
    .await;
    if res.status().is_redirection() {
        *res.status_mut() = StatusCode::SEE_OTHER;
    }
    res
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
    answer_as(state, method, slug, peer, query, headers, false).await
}

/// [`answer`]; `unlocked`: a protected link's password was given.
async fn answer_as(
    state: &AppState,
    method: &Method,
    slug: &str,
    peer: std::net::IpAddr,
    query: Option<&str>,
    headers: &HeaderMap,
    unlocked: bool,
) -> Response {
    let started = Instant::now();
    let response = async {
        let (slug, link) = match link_at(state, slug).await {
            Ok(found) => found,
            Err(page) => return page,
        };
        let now = Utc::now();
        if let Err(gone) = link.check_live(now) {
            return fallback_or_gone(state, method, &slug, &link, gone, now, peer, query, headers)
                .await;
        }
        // A link preview bot gets the link's preview, if it has one, and
        // its visit is counted as a bot's (by its user agent, kept even
        // where tracking withholds people's: a bot's is nobody's data).
        if let Some(preview) = &link.preview
            && let Some(ua) = headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .filter(|ua| is_link_previewer(ua))
        {
            if method == Method::GET {
                let mut bot = Visitor::of(state, peer, headers);
                bot.user_agent = Some(&ua[..ua.len().min(MAX_ATTR_LEN * 2)]);
                bot.withheld = false;
                bot.click(state, &link, now, query, RouteRef::default(), None);
            }
            return super::preview::page(state, &link, preview);
        }
        // A protected link shows its form, to HEAD and bots too: nothing
        // of its target is in the answer before the password is given (or
        // a GET brings an access token, used up by it).
        if link.password_hash.is_some() && !unlocked {
            // A HEAD never uses a token up.
            let token = (method == Method::GET)
                .then(|| protect::access_token(query))
                .flatten();
            let granted = match &token {
                Some(t) => match protect::redeem(state, &link, t).await {
                    Ok(granted) => granted,
                    Err(e) => {
                        tracing::error!(error = %e, link.slug = %slug, "redeeming an access token failed");
                        return pages::unavailable();
                    }
                },
                None => false,
            };
            if !granted {
                let error = token
                    .is_some()
                    .then_some("This access link has expired or has been used already.");
                return protect::form(state, &slug, headers, StatusCode::OK, error);
            }
        }
        let visitor = Visitor::of(state, peer, headers);
        let (target, route, location) = if link.rules.is_empty() {
            (&link.target, RouteRef::default(), None)
        } else {
            decide(state, &link, now, &visitor, query, headers)
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
                Ok(false) => {
                    return fallback_or_gone(
                        state,
                        method,
                        &slug,
                        &link,
                        Gone::Exhausted,
                        now,
                        peer,
                        query,
                        headers,
                    )
                    .await;
                }
                Err(e) => {
                    tracing::error!(error = %e, link.slug = %slug, "claiming a click failed");
                    return pages::unavailable();
                }
            }
        }
        // The location a rule looked up is the click's, if the click is
        // located by the same address (not when it asked not to be tracked).
        let location = location.filter(|_| visitor.client == Some(visitor.ip));
        visitor.click(state, &link, now, query, route, location.as_ref());
        redirect(status_of(&link), target)
    }
    .await;
    state
        .redirect_metrics
        .latency
        .record(started.elapsed().as_secs_f64());
    response
}

/// The link at `path` (a slug as the path gives it), through the cache;
/// else the page to answer: 404 (not a slug, no such link) or 503.
async fn link_at(state: &AppState, path: &str) -> Result<(Slug, std::sync::Arc<Link>), Response> {
    let Ok(slug) = Slug::parse_path(path) else {
        return Err(pages::not_found());
    };
    match state.resolve(&slug).await {
        Ok(Some(link)) => Ok((slug, link)),
        Ok(None) => Err(pages::not_found_for(&slug)),
        Err(e) => {
            tracing::error!(error = %e, link.slug = %slug, "link lookup failed");
            Err(pages::unavailable())
        }
    }
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
/// one that may be redirected to (a GET of it counted as a click routed
/// [`FALLBACK_ROUTE`]; it claims no click of a limit), else the 410 page.
#[allow(clippy::too_many_arguments)]
async fn fallback_or_gone(
    state: &AppState,
    method: &Method,
    slug: &Slug,
    link: &Link,
    gone: Gone,
    now: DateTime<Utc>,
    peer: IpAddr,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let Some(fallback) = &link.fallback_url else {
        return pages::gone_for(slug, gone);
    };
    if let Some(why) = refused(state, slug, fallback).await {
        return pages::gone_for(slug, why);
    }
    if method != Method::HEAD {
        let route = RouteRef {
            rule: Some(FALLBACK_ROUTE),
            variant: None,
        };
        Visitor::of(state, peer, headers).click(state, link, now, query, route, None);
    }
    redirect(StatusCode::FOUND, fallback)
}

/// What a click keeps of the client, as tracking allows: worked out once
/// per visit, for the rules and the click.
struct Visitor<'h> {
    /// The client's address as the trusted proxies give it, Do-Not-Track
    /// or not: rules may place it (nothing of it is kept).
    client: Option<IpAddr>,
    /// The address the click is located and hashed by: unspecified when
    /// the client asked not to be tracked or could not be named.
    ip: IpAddr,
    user_agent: Option<&'h str>,
    referrer: Option<&'h str>,
    withheld: bool,
}

impl<'h> Visitor<'h> {
    fn of(state: &AppState, peer: IpAddr, headers: &'h HeaderMap) -> Visitor<'h> {
        // Header values that are `str` are visible ASCII, so cutting at a
        // byte is cutting at a character; the click borrows them (no copies
        // here).
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
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Visitor {
            client,
            ip,
            user_agent: (!anonymous && !tracking.no_user_agent)
                .then(|| header(USER_AGENT))
                .flatten(),
            referrer: (!anonymous && !tracking.no_referrer)
                .then(|| header(REFERER))
                .flatten(),
            withheld: anonymous || tracking.no_user_agent,
        }
    }

    /// Hands this visit's click to the sink (never waits).
    fn click(
        &self,
        state: &AppState,
        link: &Link,
        now: DateTime<Utc>,
        query: Option<&str>,
        route: RouteRef<'_>,
        location: Option<&Location>,
    ) {
        let utm = query.map(Utm::from_query).unwrap_or_default();
        state.clicks.submit(ClickRef {
            event_id: uuid::Uuid::now_v7(),
            link_id: link.id,
            at: now.timestamp_millis(),
            ip: self.ip,
            user_agent: self.user_agent,
            referrer: self.referrer,
            utm: &utm,
            region: &state.region,
            withheld: self.withheld,
            route,
            location,
        });
    }
}

/// Where a link's rules send this visit: the facts they read (location,
/// user agent class, the visit's key for splits) are worked out here, once,
/// and only those they read.
fn decide<'l>(
    state: &AppState,
    link: &'l Link,
    now: DateTime<Utc>,
    visitor: &Visitor<'_>,
    query: Option<&str>,
    headers: &HeaderMap,
) -> (&'l TargetUrl, RouteRef<'l>, Option<Location>) {
    let client = visitor.client;
    let needs = link.rules.needs();
    // Rules place the client where it is, Do-Not-Track or not: nothing of
    // it is kept.
    let looked_up = needs
        .location
        .then(|| client.map(|c| state.enricher.location(c)))
        .flatten();
    let nowhere = Location::default();
    let location = looked_up.as_ref().unwrap_or(&nowhere);
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
                visitor.ip,
                visitor.user_agent.unwrap_or(""),
            )
        } else {
            0
        },
        now,
    };
    let decision = link.rules.decide(link.id, &visit);
    let route = RouteRef {
        rule: Some(decision.rule.unwrap_or(DEFAULT_ROUTE)),
        variant: decision.variant,
    };
    (decision.target.unwrap_or(&link.target), route, looked_up)
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
