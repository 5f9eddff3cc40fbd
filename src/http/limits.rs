//! Rate limits on the API: failed authentications per client, calls per
//! API key and per link secret, link creation and reports without a key per
//! client. A client is its IPv4 address or its IPv6 prefix (see
//! [`client_key`]). Limited answers are 429 with `Retry-After`; answers
//! under a limit carry `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset`.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::access;
use super::error::ApiError;
use super::extract::{PeerAddr, client_addr};
use crate::auth::Token;
use crate::ratelimit::{Bucket, Decision};
use crate::state::AppState;

pub fn add_headers(headers: &mut HeaderMap, d: &Decision) {
    if d.limit == 0 {
        return;
    }
    headers.insert("ratelimit-limit", d.limit.into());
    headers.insert("ratelimit-remaining", d.remaining.into());
    headers.insert("ratelimit-reset", d.reset_secs.into());
}

pub fn too_many(d: &Decision, why: &str) -> Response {
    let mut res = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", why).into_response();
    add_headers(res.headers_mut(), d);
    res.headers_mut()
        .insert(RETRY_AFTER, d.reset_secs.max(1).into());
    res
}

fn bearer(headers: &HeaderMap) -> Option<Token> {
    // Shlink's clients send the key as X-Api-Key (`--compat-shlink`).
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(Token::new(key.trim()));
    }
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Token::new(token.trim()))
}

/// The key a client is limited by: its API key's or link secret's hash,
/// never the token.
fn key_id(token: &Token) -> String {
    hex::encode(&token.hash()[..16])
}

/// The key a client's limits and caps are counted under: its address as
/// the trusted proxies tell it, IPv6 addresses grouped by
/// `--rate-ipv6-prefix`.
pub fn client_key(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> String {
    client_addr(peer, headers, &state.trusted_proxies).limit_key(state.ipv6_prefix)
}

/// Whether the request adds something anyone may add: a link (anonymous
/// when allowed) or an abuse report.
fn creating(req: &Request) -> bool {
    let path = req.uri().path().trim_end_matches('/');
    req.method() == Method::POST && (path.ends_with("/links") || path.ends_with("/reports"))
}

/// Which allowance a request draws on. A creation is charged to an API
/// key only if the key authenticates: reports take no credentials, so a
/// made-up token would otherwise buy a fresh allowance per request; any
/// other request with a token that does not authenticate is refused (401,
/// counted as a failed authentication) by its handler.
async fn allowance(
    state: &AppState,
    token: Option<Token>,
    creating: bool,
    client: String,
) -> Option<(Bucket, String)> {
    let Some(token) = token else {
        return creating.then_some((Bucket::Create, client));
    };
    if !creating {
        let bucket = if token.is_api_key() {
            Bucket::Api
        } else {
            Bucket::LinkSecret
        };
        return Some((bucket, key_id(&token)));
    }
    if token.is_api_key() && matches!(access::key_by_token(state, &token).await, Ok(Some(_))) {
        return Some((Bucket::Api, key_id(&token)));
    }
    Some((Bucket::Create, client))
}

pub async fn limit_api(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    req: Request,
    next: Next,
) -> Response {
    let client = client_key(&state, peer, req.headers());
    if let Some(d) = state.limiter.refused(Bucket::AuthFailure, &client).await {
        return too_many(
            &d,
            "too many failed authentications from your address; try again later",
        );
    }
    let mut shown = None;
    let (token, creating) = (bearer(req.headers()), creating(&req));
    if let Some((bucket, key)) = allowance(&state, token, creating, client.clone()).await {
        let d = state.limiter.take(bucket, &key).await;
        if !d.allowed {
            let why = match bucket {
                Bucket::Api => "this API key made too many requests; slow down",
                Bucket::LinkSecret => "this link secret made too many requests; slow down",
                _ => "too many links or reports from your address; slow down",
            };
            return too_many(&d, why);
        }
        shown = Some(d);
    }
    let mut res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        state.limiter.take(Bucket::AuthFailure, &client).await;
    }
    if let Some(d) = shown {
        add_headers(res.headers_mut(), &d);
    }
    res
}
