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

/// Who a request comes from, as far as the proxies we trust can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAddr {
    Ip(IpAddr),
    /// What a trusted proxy wrote where the client's address belongs, when
    /// that is no address (`unknown`, an obfuscated name, garbage): still a
    /// client of its own (never the proxy), with no known location.
    Unparsed(String),
}

/// Longest unparsed `X-Forwarded-For` entry kept as a client's name.
const MAX_UNPARSED: usize = 64;

impl ClientAddr {
    /// The address, if the client has one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            ClientAddr::Ip(ip) => Some(*ip),
            ClientAddr::Unparsed(_) => None,
        }
    }

    /// The key the client's rate limits and caps are counted under: see
    /// [`crate::ratelimit::ip_key`]; an unparsed entry is keyed by its text
    /// (which no address key can equal).
    pub fn limit_key(&self, v6_prefix: u8) -> String {
        match self {
            ClientAddr::Ip(ip) => crate::ratelimit::ip_key(*ip, v6_prefix),
            ClientAddr::Unparsed(s) => format!("unparsed:{s}"),
        }
    }
}

/// One `X-Forwarded-For` entry: an address, also as some proxies write it,
/// with a port (`1.2.3.4:5678`, `[2001:db8::1]:443`) or in brackets
/// (`[2001:db8::1]`). IPv4-mapped IPv6 addresses are IPv4.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The client: the peer, unless the peer is a trusted proxy, in which case
/// the nearest untrusted hop of `X-Forwarded-For`, read from the right so a
/// client cannot forge it by prepending entries. An entry that is not an
/// address, met before any untrusted one, was written by a trusted proxy
/// for the client it could not name: that entry is the client. With only
/// trusted hops, the leftmost is.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> ClientAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return ClientAddr::Ip(peer);
    }
    let values: Vec<_> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    let mut leftmost = peer;
    for entry in values
        .iter()
        .rev()
        .flat_map(|v| v.rsplit(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        match parse_hop(entry) {
            Some(ip) if is_trusted(&ip) => leftmost = ip,
            Some(ip) => return ClientAddr::Ip(ip),
            None => {
                let name = entry.chars().take(MAX_UNPARSED).collect();
                return ClientAddr::Unparsed(name);
            }
        }
    }
    ClientAddr::Ip(leftmost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    fn ip(s: &str) -> ClientAddr {
        ClientAddr::Ip(s.parse().unwrap())
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = xff("1.1.1.1, 81.2.69.142, 10.0.0.2");
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(client_addr(proxy, &h, &trusted), ip("81.2.69.142"));
        assert_eq!(client_addr(stranger, &h, &trusted), ip("8.8.8.8"));
        assert_eq!(
            client_addr(proxy, &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        // Only trusted hops: the leftmost.
        assert_eq!(
            client_addr(proxy, &xff("10.9.9.9, 10.0.0.2"), &trusted),
            ip("10.9.9.9")
        );
        // Several headers read as one list.
        let mut h = xff("81.2.69.142");
        h.append("x-forwarded-for", "10.0.0.3".parse().unwrap());
        assert_eq!(client_addr(proxy, &h, &trusted), ip("81.2.69.142"));
    }

    #[test]
    fn forwarded_for_entries_with_ports_and_brackets() {
        let trusted: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8:ffff::/48".parse().unwrap(),
        ];
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client = |v: &str| client_addr(proxy, &xff(v), &trusted);
        assert_eq!(client("1.2.3.4:5678"), ip("1.2.3.4"));
        assert_eq!(client("[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(client("[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(client("2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(client("1.2.3.4:5678, 10.0.0.2:80"), ip("1.2.3.4"));
        assert_eq!(client("1.2.3.4, [2001:db8:ffff::9]:443"), ip("1.2.3.4"));
        // IPv4-mapped IPv6 is IPv4, for the client and for trust alike.
        assert_eq!(client("::ffff:1.2.3.4"), ip("1.2.3.4"));
        assert_eq!(client("1.2.3.4, [::ffff:10.0.0.2]:80"), ip("1.2.3.4"));
        let mapped_proxy: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_addr(mapped_proxy, &xff("1.2.3.4"), &trusted),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn unparsable_forwarded_for_entries_are_clients_never_the_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client = |v: &str| client_addr(proxy, &xff(v), &trusted);
        // Garbage the client prepended is never read.
        assert_eq!(client("x, 1.2.3.4"), ip("1.2.3.4"));
        assert_eq!(client("garbage, 1.2.3.4:99, 10.0.0.2"), ip("1.2.3.4"));
        // Garbage a trusted proxy wrote for the client is the client.
        let unknown = client("unknown");
        assert_eq!(unknown, ClientAddr::Unparsed("unknown".into()));
        assert_eq!(client("1.2.3.4, unknown, 10.0.0.2"), unknown);
        assert_eq!(unknown.ip(), None);
        assert_eq!(unknown.limit_key(64), "unparsed:unknown");
        assert_ne!(client("_hidden").limit_key(64), unknown.limit_key(64));
        let long = client(&"z".repeat(500));
        assert_eq!(long.limit_key(64).len(), "unparsed:".len() + MAX_UNPARSED);
        // Empty entries are no hops.
        assert_eq!(client("1.2.3.4, , 10.0.0.2,"), ip("1.2.3.4"));
        // Invalid UTF-8 is garbage too, not the proxy.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert!(matches!(
            client_addr(proxy, &h, &trusted),
            ClientAddr::Unparsed(_)
        ));
        assert_eq!(ip("1.2.3.4").limit_key(64), "1.2.3.4");
    }
}
