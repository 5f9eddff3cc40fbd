//! YOURLS's API, `GET|POST /yourls-api.php` (`--compat-yourls`): the
//! actions `shorturl`, `expand`, `url-stats`, `stats`, `db-stats` and
//! `version`, in the formats `xml` (YOURLS's default), `json`, `jsonp` and
//! `simple`, with YOURLS's field names, status codes and error shapes
//! (YOURLS 1.9's `functions-api.php`), so that its clients (the WordPress
//! and browser plugins, the PyPI `yourls` client) work unchanged against
//! hop. docs/compat.md lists what is and is not covered.
//!
//! Authentication is hop's API keys, as YOURLS's "secret signature token":
//! `signature=` the API key itself, or the key's YOURLS token
//! ([`yourls_token`], `hop keys yourls-token`), or `timestamp=` and
//! `signature=` the hash (`hash=`: md5, YOURLS's default, sha1, sha256 or
//! sha512) of the timestamp followed by the token, within 12 hours of now
//! (YOURLS's nonce life). A token is derived from the key's stored hash,
//! so the server can check a timed signature without keeping the key.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

use super::{all_links, clicks_of, visible};
use crate::auth::Token;
use crate::domain::{Link, LinkId};
use crate::service::links::{LinkError, NewLink};
use crate::state::AppState;
use crate::store::{ApiKey, StoreError};

/// The YOURLS version hop answers `version` with (the API it follows).
pub const YOURLS_VERSION: &str = "1.9.2";
/// YOURLS's database version of that release.
pub const YOURLS_DB_VERSION: &str = "506";
/// YOURLS_NONCE_LIFE: how far a signature's timestamp may be from now.
const NONCE_LIFE_SECS: i64 = 43_200;
/// Most links `stats` lists at once.
const MAX_STATS_LIMIT: i64 = 1_000;

/// A key's YOURLS signature token: 32 hex digits of HMAC-SHA-256 keyed
/// with the key's SHA-256, so the server derives it from what it stores.
pub fn yourls_token(key_hash: &[u8; 32]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key_hash).expect("any key length");
    mac.update(b"hop yourls signature token");
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The parameters, from the query string and (for a POST) the form body,
/// the body's winning as PHP's `$_REQUEST` does. Bad escapes are taken
/// as they are, never refused.
fn params(query: Option<&str>, method: &Method, body: &[u8]) -> HashMap<String, String> {
    let mut all: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    if method == Method::POST {
        for (k, v) in url::form_urlencoded::parse(body) {
            all.insert(k.into_owned(), v.into_owned());
        }
    }
    all
}

pub async fn api(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let p = params(query.as_deref(), &method, &body);
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let format = get("format").unwrap_or("xml");
    let callback = get("callback").or_else(|| get("jsonp"));
    let mut out = match authenticate(&state, &p).await {
        Ok(Some(key)) => match act(&state, &key, get("action"), &p).await {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(error = %e, "yourls api: store error");
                fail_object("error:db", "Error saving url to database", "500")
            }
        },
        Ok(None) => {
            let message = if get("signature").is_some() || get("username").is_some() {
                "Invalid username or password"
            } else {
                "Please log in"
            };
            let mut m = Map::new();
            m.insert("simple".into(), json!(message));
            m.insert("message".into(), json!(message));
            m.insert("errorCode".into(), json!("403"));
            m.insert("callback".into(), json!(callback.unwrap_or("")));
            m
        }
        Err(e) => {
            tracing::warn!(error = %e, "yourls api: store error");
            let mut m = Map::new();
            m.insert("message".into(), json!("Service unavailable"));
            m.insert("errorCode".into(), json!("503"));
            m
        }
    };
    if let Some(c) = callback {
        out.entry("callback").or_insert_with(|| json!(c));
    }
    output(format, out)
}

/// The key the request authenticates as; `None`: refused.
async fn authenticate(
    state: &AppState,
    p: &HashMap<String, String>,
) -> Result<Option<ApiKey>, StoreError> {
    let Some(signature) = p.get("signature").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let live = |k: &ApiKey| k.revoked_at.is_none();
    let timestamp = p.get("timestamp").filter(|t| !t.is_empty());
    if timestamp.is_none() {
        // The API key itself, as a signature token.
        let token = Token::new(signature.clone());
        if token.is_api_key() {
            return Ok(state.store.key_by_hash(&token.hash()).await?.filter(live));
        }
    }
    let keys = state.store.list_keys().await?;
    let Some(timestamp) = timestamp else {
        return Ok(keys
            .into_iter()
            .filter(live)
            .find(|k| constant_eq(&yourls_token(&k.hash), signature)));
    };
    let Ok(at) = timestamp.trim().parse::<i64>() else {
        return Ok(None);
    };
    if (Utc::now().timestamp() - at).abs() >= NONCE_LIFE_SECS {
        return Ok(None);
    }
    let hash = p.get("hash").map(String::as_str).unwrap_or("md5");
    for key in keys.into_iter().filter(live) {
        let message = format!("{timestamp}{}", yourls_token(&key.hash));
        let Some(expected) = hashed(hash, message.as_bytes()) else {
            return Ok(None);
        };
        if constant_eq(&expected, signature) {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

fn hashed(algorithm: &str, data: &[u8]) -> Option<String> {
    Some(match algorithm {
        "md5" => hex::encode(<md5::Md5 as md5::Digest>::digest(data)),
        "sha1" => hex::encode(<sha1::Sha1 as sha1::Digest>::digest(data)),
        "sha256" => hex::encode(Sha256::digest(data)),
        "sha512" => hex::encode(Sha512::digest(data)),
        _ => return None,
    })
}

fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn fail_object(code: &str, message: &str, status: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("status".into(), json!("fail"));
    m.insert("code".into(), json!(code));
    m.insert("message".into(), json!(message));
    m.insert("errorCode".into(), json!(status));
    m.insert("statusCode".into(), json!(status));
    m
}

/// YOURLS's time text: `YYYY-MM-DD HH:MM:SS`, UTC.
fn yourls_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The keyword of `shorturl`: the path of a short URL, or a keyword as is.
fn keyword_of(state: &AppState, shorturl: &str) -> String {
    let s = shorturl.trim();
    let base = state.public_base.trim_end_matches('/');
    if let Some(rest) = s.strip_prefix(base) {
        return rest.trim_start_matches('/').to_owned();
    }
    if s.contains("://")
        && let Ok(u) = url::Url::parse(s)
    {
        return u.path().trim_start_matches('/').to_owned();
    }
    s.to_owned()
}

fn link_object(state: &AppState, l: &Link, clicks: u64) -> Value {
    json!({
        "shorturl": state.short_url(&l.slug),
        "url": l.target.as_str(),
        "title": l.title.clone().unwrap_or_else(|| l.target.as_str().to_owned()),
        "timestamp": yourls_time(l.created_at),
        "ip": "",
        "clicks": clicks.to_string(),
    })
}

async fn act(
    state: &AppState,
    key: &ApiKey,
    action: Option<&str>,
    p: &HashMap<String, String>,
) -> Result<Map<String, Value>, StoreError> {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let mut m = Map::new();
    match action {
        Some("shorturl") => {
            let Some(url) = get("url") else {
                return Ok(with_simple(
                    fail_object("error:nourl", "Missing or malformed URL", "400"),
                    "",
                ));
            };
            let new = NewLink {
                url: url.to_owned(),
                slug: get("keyword").map(str::to_owned),
                title: get("title").map(str::to_owned),
                ..NewLink::default()
            };
            match crate::service::links::create(state, Some(key), new).await {
                Ok((link, _)) => {
                    let short = state.short_url(&link.slug);
                    let title = link.title.clone().unwrap_or_else(|| url.to_owned());
                    m.insert(
                        "url".into(),
                        json!({
                            "keyword": link.slug.as_str(),
                            "url": link.target.as_str(),
                            "title": title,
                            "date": yourls_time(link.created_at),
                            "ip": "",
                        }),
                    );
                    m.insert("status".into(), json!("success"));
                    m.insert(
                        "message".into(),
                        json!(format!("{} added to database", link.target.as_str())),
                    );
                    m.insert("title".into(), json!(title));
                    m.insert("shorturl".into(), json!(short));
                    m.insert("statusCode".into(), json!(200));
                    Ok(with_simple(m, &short))
                }
                Err(LinkError::Store(e)) => Err(e),
                Err(LinkError::SlugTaken) | Err(LinkError::Slug(_)) => {
                    let keyword = get("keyword").unwrap_or("");
                    Ok(with_simple(
                        fail_object(
                            "error:keyword",
                            &format!(
                                "Short URL {keyword} already exists in database or is reserved"
                            ),
                            "400",
                        ),
                        "",
                    ))
                }
                Err(LinkError::Url(crate::domain::UrlError::Loop)) => Ok(with_simple(
                    fail_object("error:noloop", "URL is a short URL", "400"),
                    "",
                )),
                Err(
                    e @ (LinkError::Url(_)
                    | LinkError::Blocked
                    | LinkError::TakenDown
                    | LinkError::PrivateTarget(_)),
                ) => Ok(with_simple(
                    fail_object(
                        "error:nourl",
                        &format!("Missing or malformed URL: {e}"),
                        "400",
                    ),
                    "",
                )),
                Err(e) => Ok(with_simple(
                    fail_object("error:url", &e.to_string(), "400"),
                    "",
                )),
            }
        }
        Some("expand") => {
            let keyword = keyword_of(state, get("shorturl").unwrap_or(""));
            match visible(state, key, &keyword).await? {
                Some(l) => {
                    let long = l.target.as_str().to_owned();
                    m.insert("keyword".into(), json!(keyword));
                    m.insert("shorturl".into(), json!(state.short_url(&l.slug)));
                    m.insert("longurl".into(), json!(long));
                    m.insert(
                        "title".into(),
                        json!(l.title.clone().unwrap_or_else(|| long.clone())),
                    );
                    m.insert("message".into(), json!("success"));
                    m.insert("statusCode".into(), json!("200"));
                    Ok(with_simple(m, &long))
                }
                None => {
                    m.insert("keyword".into(), json!(keyword));
                    m.insert("message".into(), json!("Error: short URL not found"));
                    m.insert("errorCode".into(), json!("404"));
                    Ok(with_simple(m, "not found"))
                }
            }
        }
        Some("url-stats") => {
            let keyword = keyword_of(state, get("shorturl").unwrap_or(""));
            match visible(state, key, &keyword).await? {
                Some(l) => {
                    let clicks = clicks_of(state, &[l.id], true).await?;
                    m.insert("statusCode".into(), json!("200"));
                    m.insert("message".into(), json!("success"));
                    m.insert(
                        "link".into(),
                        link_object(state, &l, clicks.get(&l.id).copied().unwrap_or(0)),
                    );
                }
                None => {
                    m.insert("statusCode".into(), json!("404"));
                    m.insert("message".into(), json!("Error: short URL not found"));
                }
            }
            Ok(with_simple(m, "Need either XML or JSON format for stats"))
        }
        Some("stats") => {
            let links = all_links(state, key).await?;
            let ids: Vec<LinkId> = links.iter().map(|l| l.id).collect();
            let clicks = clicks_of(state, &ids, true).await?;
            let count = |l: &Link| clicks.get(&l.id).copied().unwrap_or(0);
            let limit = get("limit")
                .and_then(|l| l.trim().parse::<i64>().ok())
                .unwrap_or(0)
                .min(MAX_STATS_LIMIT);
            let start = get("start")
                .and_then(|l| l.trim().parse::<i64>().ok())
                .unwrap_or(0)
                .max(0) as usize;
            if limit > 0 {
                let mut sorted: Vec<&Link> = links.iter().collect();
                match get("filter").unwrap_or("top") {
                    "bottom" => sorted.sort_by_key(|l| (count(l), l.id)),
                    "last" => sorted.sort_by_key(|l| std::cmp::Reverse((l.created_at, l.id))),
                    "rand" | "random" => {
                        use rand::seq::SliceRandom;
                        sorted.shuffle(&mut rand::rng());
                    }
                    _ => sorted.sort_by_key(|l| (std::cmp::Reverse(count(l)), l.id)),
                }
                let mut listed = Map::new();
                for (i, l) in sorted.iter().skip(start).take(limit as usize).enumerate() {
                    listed.insert(format!("link_{}", i + 1), link_object(state, l, count(l)));
                }
                if !listed.is_empty() {
                    m.insert("links".into(), Value::Object(listed));
                }
            }
            m.insert("stats".into(), db_stats(&links, &clicks));
            m.insert("statusCode".into(), json!("200"));
            m.insert("message".into(), json!("success"));
            Ok(with_simple(m, "Need either XML or JSON format for stats"))
        }
        Some("db-stats") => {
            let links = all_links(state, key).await?;
            let ids: Vec<LinkId> = links.iter().map(|l| l.id).collect();
            let clicks = clicks_of(state, &ids, true).await?;
            m.insert("db-stats".into(), db_stats(&links, &clicks));
            m.insert("statusCode".into(), json!("200"));
            m.insert("message".into(), json!("success"));
            Ok(with_simple(m, "Need either XML or JSON format for stats"))
        }
        Some("version") => {
            m.insert("version".into(), json!(YOURLS_VERSION));
            if get("db") == Some("1") {
                m.insert("db_version".into(), json!(YOURLS_DB_VERSION));
            }
            Ok(with_simple(m, YOURLS_VERSION))
        }
        _ => {
            let message = "Unknown or missing \"action\" parameter";
            m.insert("errorCode".into(), json!("400"));
            m.insert("message".into(), json!(message));
            Ok(with_simple(m, message))
        }
    }
}

fn db_stats(links: &[Link], clicks: &HashMap<LinkId, u64>) -> Value {
    let total: u64 = links
        .iter()
        .map(|l| clicks.get(&l.id).copied().unwrap_or(0))
        .sum();
    json!({
        "total_links": links.len().to_string(),
        "total_clicks": total.to_string(),
    })
}

fn with_simple(mut m: Map<String, Value>, simple: &str) -> Map<String, Value> {
    m.insert("simple".into(), json!(simple));
    m
}

/// `yourls_api_output`: the status from `statusCode`, else `errorCode`,
/// else 200; the body in the format asked (anything unknown: `simple`).
fn output(format: &str, mut out: Map<String, Value>) -> Response {
    let simple = match out.remove("simple") {
        Some(Value::String(s)) => s,
        _ => String::new(),
    };
    let code = ["statusCode", "errorCode"]
        .iter()
        .find_map(|k| out.get(*k))
        .and_then(|v| match v {
            Value::String(s) => s.parse::<u16>().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            _ => None,
        })
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let (content_type, body) = match format {
        "json" => ("application/json", Value::Object(out).to_string()),
        "jsonp" => {
            let callback = out
                .get("callback")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if !valid_callback(&callback) {
                let body = json!({"errorCode": "400", "error": "Invalid callback parameter"});
                return (
                    StatusCode::BAD_REQUEST,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/javascript"),
                    )],
                    body.to_string(),
                )
                    .into_response();
            }
            (
                "application/javascript",
                format!("{callback}({})", Value::Object(out)),
            )
        }
        "xml" => ("application/xml", xml(&out)),
        _ => ("text/plain", simple),
    };
    (
        code,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// A JavaScript name (or dotted path of names), as YOURLS accepts for a
/// JSONP callback; nothing that could run as more than a call.
fn valid_callback(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 100
        && c.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == '$')
                && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '$')
        })
}

/// YOURLS's XML (Spatie's ArrayToXml): the object's keys as elements under
/// `<root>`, spaces in names as `_`.
fn xml(out: &Map<String, Value>) -> String {
    fn escape(s: &str) -> String {
        let mut o = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '&' => o.push_str("&amp;"),
                '<' => o.push_str("&lt;"),
                '>' => o.push_str("&gt;"),
                '"' => o.push_str("&quot;"),
                '\'' => o.push_str("&apos;"),
                c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => {}
                c => o.push(c),
            }
        }
        o
    }
    fn element(o: &mut String, name: &str, v: &Value) {
        let name = name.replace(' ', "_");
        o.push('<');
        o.push_str(&name);
        o.push('>');
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    element(o, k, v);
                }
            }
            Value::String(s) => o.push_str(&escape(s)),
            Value::Null => {}
            Value::Bool(b) => o.push_str(if *b { "1" } else { "" }),
            other => o.push_str(&other.to_string()),
        }
        o.push_str("</");
        o.push_str(&name);
        o.push('>');
    }
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<root>");
    for (k, v) in out {
        element(&mut o, k, v);
    }
    o.push_str("</root>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_signatures() {
        let a = yourls_token(&[1; 32]);
        assert_eq!(a.len(), 32);
        assert_eq!(a, yourls_token(&[1; 32]));
        assert_ne!(a, yourls_token(&[2; 32]));
        assert_eq!(
            hashed("md5", b"abc").unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            hashed("sha1", b"abc").unwrap(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert!(hashed("crc32", b"abc").is_none());
    }

    #[test]
    fn callbacks_are_names_only() {
        assert!(valid_callback("cb"));
        assert!(valid_callback("jQuery.fn_1$"));
        for bad in ["", "alert(1)", "a;b", "1x", "a..b", "a b"] {
            assert!(!valid_callback(bad), "{bad}");
        }
    }

    #[test]
    fn xml_escapes_and_nests() {
        let mut m = Map::new();
        m.insert("message".into(), json!("<a & 'b'>"));
        m.insert("db-stats".into(), json!({"total_links": "2"}));
        let x = xml(&m);
        assert!(
            x.contains("<message>&lt;a &amp; &apos;b&apos;&gt;</message>"),
            "{x}"
        );
        assert!(
            x.contains("<db-stats><total_links>2</total_links></db-stats>"),
            "{x}"
        );
        assert!(x.starts_with("<?xml"));
    }
}
