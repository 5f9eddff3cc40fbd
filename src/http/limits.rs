//! Rate limits on the API: failed authentications per client, calls per
//! API key, anonymous link creation per client. A client is its IPv4
//! address or its IPv6 prefix (see [`client_key`]). Limited answers are 429
//! with `Retry-After`; answers under a limit carry `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset`.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Token::new(token.trim()))
}

/// The key a client is limited by: its API key's hash, never the key.
fn key_id(token: &Token) -> String {
    hex::encode(&token.hash()[..16])
}

/// The key a client's limits and caps are counted under: its address as
/// the trusted proxies tell it, IPv6 addresses grouped by
/// `--rate-ipv6-prefix`.
pub fn client_key(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> String {
    client_addr(peer, headers, &state.trusted_proxies).limit_key(state.ipv6_prefix)
}

pub async fn limit_api(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    req: Request,
    next: Next,
) -> Response {
    let ip = client_key(&state, peer, req.headers());
    if let Some(d) = state.limiter.refused(Bucket::AuthFailure, &ip).await {
        return too_many(
            &d,
            "too many failed authentications from your address; try again later",
        );
    }
    let mut shown = None;
    match bearer(req.headers()) {
        Some(token) if token.is_api_key() => {
            let d = state.limiter.take(Bucket::Api, &key_id(&token)).await;
            if !d.allowed {
                return too_many(&d, "this API key made too many requests; slow down");
            }
            shown = Some(d);
        }
        Some(_) => {}
        None => {
            let path = req.uri().path().trim_end_matches('/');
            let creating = req.method() == Method::POST
                && (path.ends_with("/links") || path.ends_with("/reports"));
            if creating {
                let d = state.limiter.take(Bucket::Create, &ip).await;
                if !d.allowed {
                    return too_many(&d, "too many links created from your address; slow down");
                }
                shown = Some(d);
            }
        }
    }
    let mut res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        state.limiter.take(Bucket::AuthFailure, &ip).await;
    }
    if let Some(d) = shown {
        add_headers(res.headers_mut(), &d);
    }
    res
}
