//! Extractors that answer failures with the API error envelope, and the
//! client address and credentials of a request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::request::Parts;
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// JSON body; bad JSON, wrong types, wrong content type and oversized
/// bodies all get the error envelope.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(AppJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "invalid_json",
            format!("body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => ApiError::bad_request(
            "invalid_body",
            format!("body does not match the schema: {}", e.body_text()),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than 64 KiB",
        ),
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// Query string; a malformed one gets the error envelope.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(AppQuery(q.0)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::bad_request("invalid_query", e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// A whole-number query parameter within `range` (`default` when absent);
/// anything else is a 400 `invalid_query` naming the parameter and range.
pub fn bounded_param(
    name: &str,
    value: Option<&str>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{name} must be {} to {}", range.start(), range.end()),
                )
            }),
    }
}

/// A boolean query parameter: `true`/`1`, `false`/`0` or absent (false);
/// anything else, a bare `?flag` included, is a 400.
pub fn parse_bool(name: &str, s: Option<&str>) -> Result<bool, ApiError> {
    match s {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            format!("{name} must be true or false"),
        )),
    }
}

/// The socket peer's address; unspecified when served without connect info
/// (router tests).
pub struct PeerAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

/// The client address: the peer, unless the peer is a trusted proxy, in
/// which case the nearest untrusted hop of `X-Forwarded-For` (read from the
/// right, so a client cannot forge it by prepending entries).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return peer;
        };
        for part in value.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return peer,
            }
        }
    }
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.1.1.1, 81.2.69.142, 10.0.0.2".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "81.2.69.142".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
    }
}
