//! Dub's API (`--compat-dub`), under `/dub`, so that Dub's SDKs and
//! scripts work unchanged against hop with their server URL set to
//! `https://your-hop/dub`: `/links` (create, list, get by key or id,
//! update, delete) and `/analytics` (count, timeseries, countries,
//! devices, browsers, os, referers), with `Authorization: Bearer <hop API
//! key>`. Field names, status codes and the error shape (`{"error": {code,
//! message, doc_url}}`) are Dub's, as its OpenAPI document and SDK models
//! give them; docs/compat.md lists what is and is not covered.
//!
//! A Dub link id is `link_` and the slug (hop links are found by slug,
//! and a slug never changes); a tag's id is `tag_` and its name.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, patch};
use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use super::{all_links, bearer_or_bare, clicks_of, live_key, own_domain, visible};
use crate::domain::{Dimension, FieldError, Link, LinkId, SlugError};
use crate::service::links::{LinkChanges, LinkError, NewLink, PreviewSpec};
use crate::state::AppState;
use crate::stats::{Bucketer, Interval, MAX_BUCKETS, StatsQuery, link_stats};
use crate::store::{ApiKey, StoreError, TimeRange};

/// Links per page of `GET /links` (Dub's default and most).
const PAGE_SIZE: usize = 100;
/// Entries per breakdown in an analytics answer.
const TOP: usize = 1_000;
/// Tag colours Dub's SDK accepts; a tag's is picked from its name.
const COLOURS: [&str; 8] = [
    "red", "yellow", "green", "blue", "purple", "brown", "gray", "pink",
];

/// The routes, under `/dub`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dub/links", get(list).post(create))
        .route("/dub/links/info", get(info))
        .route("/dub/links/{id}", patch(update).delete(remove))
        .route("/dub/analytics", get(analytics))
        .route("/dub/{*rest}", any(not_found))
        .method_not_allowed_fallback(|| async {
            DubError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This route does not answer this method.",
            )
        })
}

/// Dub's error: `{"error": {"code", "message", "doc_url"}}`.
struct DubError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl DubError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> DubError {
        DubError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> DubError {
        DubError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// A field Dub's schema refuses (its zod errors are 422s).
    fn unprocessable(message: impl Into<String>) -> DubError {
        DubError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            message,
        )
    }
    fn not_found() -> DubError {
        DubError::new(StatusCode::NOT_FOUND, "not_found", "Link not found.")
    }
}

impl IntoResponse for DubError {
    fn into_response(self) -> Response {
        let doc = format!(
            "https://dub.co/docs/api-reference/errors#{}",
            self.code.replace('_', "-")
        );
        (
            self.status,
            axum::Json(
                json!({"error": {"code": self.code, "message": self.message, "doc_url": doc}}),
            ),
        )
            .into_response()
    }
}

impl From<StoreError> for DubError {
    fn from(e: StoreError) -> DubError {
        tracing::warn!(error = %e, "dub api: store error");
        DubError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "The store did not answer; try again.",
        )
    }
}

type Answer = Result<Response, DubError>;

async fn not_found() -> DubError {
    DubError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "The requested resource was not found.",
    )
}

/// The key `Authorization: Bearer` names, or Dub's 401.
async fn key_of(state: &AppState, headers: &HeaderMap) -> Result<ApiKey, DubError> {
    let unauthorized = |m: &str| DubError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let Some(given) = bearer_or_bare(headers) else {
        return Err(unauthorized("Missing Authorization header."));
    };
    live_key(state, given)
        .await?
        .ok_or_else(|| unauthorized("Unauthorized: Invalid API key."))
}

/// Dub's times: `2024-01-01T00:00:00.000Z`.
fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn link_id(l: &Link) -> String {
    format!("link_{}", l.slug)
}

fn tag_object(name: &str) -> Value {
    let colour = COLOURS[name
        .bytes()
        .fold(0usize, |a, b| a.wrapping_mul(31) + b as usize)
        % 8];
    json!({"id": format!("tag_{name}"), "name": name, "color": colour})
}

/// A link as Dub serialises one (every key of its schema, nulls included).
fn link_object(state: &AppState, l: &Link, clicks: u64) -> Value {
    let preview = l.preview.as_ref();
    // Two halves: one json! of every key is past the macro's recursion
    // limit.
    let mut link = json!({
        "id": link_id(l),
        "domain": own_domain(state),
        "key": l.slug.as_str(),
        "url": l.target.as_str(),
        "trackConversion": false,
        "externalId": Value::Null,
        "tenantId": Value::Null,
        "programId": Value::Null,
        "partnerId": Value::Null,
        "archived": false,
        "expiresAt": l.expires_at.map(iso),
        "expiredUrl": l.fallback_url.as_ref().map(|u| u.as_str()),
        "disabledAt": l.disabled.then(|| iso(l.updated_at)),
        "password": Value::Null,
        "proxy": preview.is_some(),
        "title": l.title,
        "description": preview.and_then(|p| p.description.clone()),
        "image": preview.and_then(|p| p.image.as_ref().map(|u| u.as_str().to_owned())),
        "video": Value::Null,
        "rewrite": false,
        "doIndex": false,
        "ios": Value::Null,
        "android": Value::Null,
        "geo": Value::Null,
        "publicStats": false,
    });
    let rest = json!({
        "tags": l.tags.iter().map(|t| tag_object(t)).collect::<Vec<_>>(),
        "tagId": Value::Null,
        "folderId": Value::Null,
        "webhookIds": [],
        "comments": Value::Null,
        "shortLink": state.short_url(&l.slug),
        "qrCode": format!("{}/api/v1/links/{}/qr.png", state.public_base, l.slug),
        "utm_source": Value::Null,
        "utm_medium": Value::Null,
        "utm_campaign": Value::Null,
        "utm_term": Value::Null,
        "utm_content": Value::Null,
        "testVariants": Value::Null,
        "testStartedAt": Value::Null,
        "testCompletedAt": Value::Null,
        "userId": Value::Null,
        "workspaceId": "ws_hop",
        "projectId": "ws_hop",
        "clicks": clicks,
        "lastClicked": Value::Null,
        "leads": 0,
        "sales": 0,
        "saleAmount": 0,
        "conversions": 0,
        "createdAt": iso(l.created_at),
        "updatedAt": iso(l.updated_at),
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut link, rest) {
        a.extend(b);
    }
    link
}

async fn one_link(state: &AppState, l: &Link) -> Answer {
    let n = clicks_of(state, &[l.id], false)
        .await?
        .get(&l.id)
        .copied()
        .unwrap_or(0);
    Ok(axum::Json(link_object(state, l, n)).into_response())
}

/// The query string as pairs (a repeated name keeps each value).
fn query(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Tag names from `tagNames` / `tagIds` (`tag_` + name), as lists or
/// comma-separated.
fn tag_names(q: &[(String, String)]) -> Vec<String> {
    q.iter()
        .filter(|(n, _)| matches!(n.as_str(), "tagNames" | "tagIds" | "tagId"))
        .flat_map(|(n, v)| {
            let id = n != "tagNames";
            v.split(',')
                .map(move |t| {
                    let t = t.trim();
                    if id {
                        t.strip_prefix("tag_").unwrap_or(t).to_owned()
                    } else {
                        t.to_owned()
                    }
                })
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

fn is_own_domain(state: &AppState, domain: Option<&str>) -> bool {
    domain.is_none_or(|d| d.eq_ignore_ascii_case(&own_domain(state)))
}

/// The link a Dub id (`link_` + slug) names, if the key may see it.
async fn by_id(state: &AppState, key: &ApiKey, id: &str) -> Result<Link, DubError> {
    let Some(slug) = id.strip_prefix("link_") else {
        return Err(DubError::not_found());
    };
    visible(state, key, slug)
        .await?
        .ok_or_else(DubError::not_found)
}

/// The link a query selects (`linkId`, or `domain` and `key`; an
/// `externalId` names none, hop links have no external ids); `None`: the
/// query selects no link.
async fn selected(
    state: &AppState,
    key: &ApiKey,
    q: &[(String, String)],
) -> Result<Option<Link>, DubError> {
    if let Some(id) = param(q, "linkId") {
        return by_id(state, key, id).await.map(Some);
    }
    if let Some(k) = param(q, "key") {
        if !is_own_domain(state, param(q, "domain")) {
            return Err(DubError::not_found());
        }
        return visible(state, key, k)
            .await?
            .ok_or_else(DubError::not_found)
            .map(Some);
    }
    if param(q, "externalId").is_some() {
        return Err(DubError::not_found());
    }
    Ok(None)
}

async fn info(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let q = query(raw.as_deref());
    let Some(link) = selected(&state, &key, &q).await? else {
        return Err(DubError::bad_request(
            "You must provide a domain and a key or a linkId or an externalId to retrieve a link.",
        ));
    };
    one_link(&state, &link).await
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let q = query(raw.as_deref());
    let page = match param(&q, "page") {
        None => 1,
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| DubError::unprocessable("page: must be a positive whole number"))?,
    };
    let size = match param(&q, "pageSize") {
        None => PAGE_SIZE,
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| (1..=PAGE_SIZE).contains(p))
            .ok_or_else(|| DubError::unprocessable("pageSize: must be 1 to 100"))?,
    };
    let sort = param(&q, "sortBy").or_else(|| param(&q, "sort"));
    if sort.is_some_and(|s| !["createdAt", "clicks", "lastClicked", "saleAmount"].contains(&s)) {
        return Err(DubError::unprocessable(
            "sortBy: must be createdAt, clicks, lastClicked or saleAmount",
        ));
    }
    let ascending = match param(&q, "sortOrder") {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(DubError::unprocessable("sortOrder: must be asc or desc")),
    };
    let tags = tag_names(&q);
    let search = param(&q, "search").map(str::to_lowercase);
    if !is_own_domain(&state, param(&q, "domain")) {
        return Ok(axum::Json(json!([])).into_response());
    }
    let mut links: Vec<Link> = all_links(&state, &key)
        .await?
        .into_iter()
        .filter(|l| tags.is_empty() || tags.iter().any(|t| l.tags.contains(t)))
        .filter(|l| {
            search.as_deref().is_none_or(|s| {
                l.slug.as_str().to_lowercase().contains(s)
                    || l.target.as_str().to_lowercase().contains(s)
                    || l.title
                        .as_deref()
                        .is_some_and(|t| t.to_lowercase().contains(s))
            })
        })
        .collect();
    let ids: Vec<LinkId> = links.iter().map(|l| l.id).collect();
    let counts = clicks_of(&state, &ids, false).await?;
    if sort == Some("clicks") {
        links.sort_by_key(|l| std::cmp::Reverse(counts.get(&l.id).copied().unwrap_or(0)));
    }
    if ascending {
        links.reverse();
    }
    let data: Vec<Value> = links
        .iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|l| link_object(&state, l, counts.get(&l.id).copied().unwrap_or(0)))
        .collect();
    Ok(axum::Json(Value::Array(data)).into_response())
}

/// A JSON body's object, or Dub's 400.
fn body_object(body: &[u8]) -> Result<Map<String, Value>, DubError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(DubError::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

/// A string field; `Some(None)`: given as null.
fn text(m: &Map<String, Value>, k: &str) -> Result<Option<Option<String>>, DubError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(DubError::unprocessable(format!("{k}: Expected string"))),
    }
}

/// `tagNames` (a string or a list) and `tagIds` (`tag_` + name).
fn body_tags(m: &Map<String, Value>) -> Result<Option<Vec<String>>, DubError> {
    let mut out: Option<Vec<String>> = None;
    for (k, strip) in [("tagNames", false), ("tagIds", true), ("tagId", true)] {
        let names: Vec<String> = match m.get(k) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| DubError::unprocessable(format!("{k}: Expected string")))?,
            Some(_) => return Err(DubError::unprocessable(format!("{k}: Expected string"))),
        };
        let names = names.into_iter().map(|n| {
            let n = n.trim().to_owned();
            match strip {
                true => n.strip_prefix("tag_").map(str::to_owned).unwrap_or(n),
                false => n,
            }
        });
        out.get_or_insert_with(Vec::new).extend(names);
    }
    Ok(out)
}

/// `expiresAt` as hop's expiry (RFC 3339; Dub also takes a plain date).
fn expires(v: Option<String>) -> Result<Option<String>, DubError> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            })
            .map(|t| t.to_rfc3339())
            .ok_or_else(|| DubError::unprocessable("expiresAt: Invalid date"))
    })
    .transpose()
}

/// `description` and `image` (with `title` when `proxy`) as hop's preview.
fn preview(m: &Map<String, Value>) -> Result<Option<PreviewSpec>, DubError> {
    let description = text(m, "description")?.flatten();
    let image = text(m, "image")?.flatten();
    let proxy = matches!(m.get("proxy"), Some(Value::Bool(true)));
    if description.is_none() && image.is_none() && !proxy {
        return Ok(None);
    }
    Ok(Some(PreviewSpec {
        title: text(m, "title")?.flatten(),
        description,
        image,
    }))
}

fn link_error(e: LinkError, key: Option<&str>) -> DubError {
    match e {
        LinkError::SlugTaken | LinkError::Slug(SlugError::Reserved) => DubError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "Duplicate key: The key \"{}\" is already in use.",
                key.unwrap_or("")
            ),
        ),
        LinkError::Slug(e) => DubError::unprocessable(format!("key: {e}")),
        LinkError::Url(_)
        | LinkError::Blocked
        | LinkError::TakenDown
        | LinkError::PrivateTarget(_) => DubError::unprocessable(format!("url: {e}")),
        LinkError::Field(f) => {
            let field = match f {
                FieldError::Title => "title",
                FieldError::Tags => "tagNames",
                FieldError::Expiry => "expiresAt",
                FieldError::Password => "password",
                FieldError::Preview => "description",
                _ => "body",
            };
            DubError::unprocessable(format!("{field}: {f}"))
        }
        LinkError::InvalidExpiry => DubError::unprocessable("expiresAt: Invalid date"),
        LinkError::Rules(e) => DubError::unprocessable(e.to_string()),
        LinkError::NotFound | LinkError::RuleNotFound => DubError::not_found(),
        LinkError::SlugSpaceExhausted => DubError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Could not find a free key; try again.",
        ),
        LinkError::Store(e) => e.into(),
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let m = body_object(&body)?;
    let Some(url) = text(&m, "url")?.flatten().filter(|u| !u.trim().is_empty()) else {
        return Err(DubError::unprocessable("url: Required"));
    };
    if !is_own_domain(&state, text(&m, "domain")?.flatten().as_deref()) {
        return Err(DubError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Domain does not belong to this workspace.",
        ));
    }
    let slug = text(&m, "key")?.flatten().filter(|k| !k.is_empty());
    let new = NewLink {
        url,
        slug: slug.clone(),
        title: text(&m, "title")?.flatten(),
        tags: body_tags(&m)?.unwrap_or_default(),
        expires_at: expires(text(&m, "expiresAt")?.flatten())?,
        fallback_url: text(&m, "expiredUrl")?.flatten(),
        password: text(&m, "password")?.flatten(),
        preview: preview(&m)?,
        ..NewLink::default()
    };
    match crate::service::links::create(&state, Some(&key), new).await {
        Ok((link, _)) => Ok(axum::Json(link_object(&state, &link, 0)).into_response()),
        Err(e) => Err(link_error(e, slug.as_deref())),
    }
}

async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let link = by_id(&state, &key, &id).await?;
    let m = body_object(&body)?;
    if let Some(Some(k)) = text(&m, "key")?
        && k != link.slug.as_str()
    {
        return Err(DubError::unprocessable(
            "key: hop cannot change a link's key; make a new link instead",
        ));
    }
    if !is_own_domain(&state, text(&m, "domain")?.flatten().as_deref()) {
        return Err(DubError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Domain does not belong to this workspace.",
        ));
    }
    let has_preview = ["description", "image", "proxy"]
        .iter()
        .any(|k| m.contains_key(*k));
    let changes = LinkChanges {
        url: text(&m, "url")?.flatten(),
        title: text(&m, "title")?,
        tags: body_tags(&m)?,
        expires_at: text(&m, "expiresAt")?.map(expires).transpose()?,
        fallback_url: text(&m, "expiredUrl")?,
        password: text(&m, "password")?,
        preview: has_preview.then(|| preview(&m)).transpose()?,
        ..LinkChanges::default()
    };
    let slug = link.slug.to_string();
    match crate::service::links::update(&state, link, changes).await {
        Ok(link) => one_link(&state, &link).await,
        Err(e) => Err(link_error(e, Some(&slug))),
    }
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let link = by_id(&state, &key, &id).await?;
    crate::service::links::delete(&state, &link).await?;
    Ok(axum::Json(json!({"id": link_id(&link)})).into_response())
}

/// The grain of a Dub time series.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Grain {
    Hour,
    Day,
    Month,
}

/// `interval` or `start`/`end` as a range (UTC ms) and its grain, Dub's
/// way: 24h by hour; 7d, 30d, 90d, mtd and qtd by day; 1y, ytd and all by
/// month; a custom range by hour up to two days, by day up to 90, else by
/// month.
fn range_of(
    q: &[(String, String)],
    tz: Tz,
    now: DateTime<Utc>,
    first: DateTime<Utc>,
) -> Result<(TimeRange, Grain), DubError> {
    let parse = |k: &str, s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).earliest())
                    .map(|t| t.with_timezone(&Utc))
            })
            .ok_or_else(|| DubError::unprocessable(format!("{k}: Invalid date")))
    };
    if let Some(start) = param(q, "start") {
        let from = parse("start", start)?;
        let to = param(q, "end")
            .map(|e| parse("end", e))
            .transpose()?
            .unwrap_or(now);
        if from > to {
            return Err(DubError::unprocessable("start: must be before end"));
        }
        let days = (to - from).num_days();
        let grain = match days {
            ..=2 => Grain::Hour,
            3..=90 => Grain::Day,
            _ => Grain::Month,
        };
        return Ok((
            TimeRange {
                from: from.timestamp_millis(),
                to: to.timestamp_millis(),
            },
            grain,
        ));
    }
    let local = now.with_timezone(&tz);
    let midnight = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| tz.from_local_datetime(&t).earliest())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now)
    };
    let month_start = |month: u32| {
        NaiveDate::from_ymd_opt(local.year(), month, 1)
            .map(midnight)
            .unwrap_or(now)
    };
    let (from, grain) = match param(q, "interval").unwrap_or("24h") {
        "24h" => (now - Duration::hours(24), Grain::Hour),
        "7d" => (now - Duration::days(7), Grain::Day),
        "30d" => (now - Duration::days(30), Grain::Day),
        "90d" => (now - Duration::days(90), Grain::Day),
        "1y" => (now - Duration::days(365), Grain::Month),
        "mtd" => (month_start(local.month()), Grain::Day),
        "qtd" => (month_start((local.month0() / 3) * 3 + 1), Grain::Day),
        "ytd" => (month_start(1), Grain::Month),
        "all" => (first.min(now), Grain::Month),
        other => {
            return Err(DubError::unprocessable(format!(
                "interval: Invalid enum value. Expected '24h' | '7d' | '30d' | '90d' | '1y' | 'mtd' | 'qtd' | 'ytd' | 'all', received '{other}'"
            )));
        }
    };
    Ok((
        TimeRange {
            from: from.timestamp_millis(),
            to: now.timestamp_millis() + 1,
        },
        grain,
    ))
}

/// A hop breakdown value as Dub names it.
fn dub_value(d: Dimension, v: &str) -> String {
    match (d, v) {
        (Dimension::Referrer, "direct") => "(direct)".into(),
        (_, "unknown") => "Unknown".into(),
        (Dimension::Device, v) => {
            let mut c = v.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        _ => v.to_owned(),
    }
}

/// Filters Dub has that hop's answer cannot honour: refused, never
/// ignored (an ignored filter would answer the wrong numbers).
const UNSUPPORTED_FILTERS: [&str; 16] = [
    "country",
    "city",
    "region",
    "continent",
    "device",
    "browser",
    "os",
    "trigger",
    "referer",
    "refererUrl",
    "url",
    "tagId",
    "tagIds",
    "folderId",
    "tenantId",
    "programId",
];

async fn analytics(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let q = query(raw.as_deref());
    match param(&q, "event").unwrap_or("clicks") {
        "clicks" | "leads" | "sales" | "composite" => {}
        other => {
            return Err(DubError::unprocessable(format!(
                "event: Invalid enum value. Expected 'clicks' | 'leads' | 'sales' | 'composite', received '{other}'"
            )));
        }
    }
    if let Some(f) = UNSUPPORTED_FILTERS.iter().find(|f| param(&q, f).is_some()) {
        return Err(DubError::bad_request(format!(
            "The filter {f} is not supported by this server (hop); see docs/compat.md."
        )));
    }
    let group = param(&q, "groupBy").unwrap_or("count");
    let dimension = match group {
        "count" | "timeseries" => None,
        "countries" => Some(Dimension::Country),
        "devices" => Some(Dimension::Device),
        "browsers" => Some(Dimension::Browser),
        "os" => Some(Dimension::Os),
        "referers" => Some(Dimension::Referrer),
        other => {
            return Err(DubError::bad_request(format!(
                "groupBy {other} is not supported by this server (hop): count, timeseries, countries, devices, browsers, os and referers are."
            )));
        }
    };
    let tz: Tz = param(&q, "timezone")
        .unwrap_or("UTC")
        .parse()
        .map_err(|_| DubError::unprocessable("timezone: must be an IANA time zone"))?;
    // The links counted: one (linkId, or domain and key), else every link
    // the key sees (Dub's workspace).
    let links: Vec<Link> = match selected(&state, &key, &q).await? {
        Some(link) => vec![link],
        None => all_links(&state, &key).await?,
    };
    let now = Utc::now();
    let first = links.iter().map(|l| l.created_at).min().unwrap_or(now);
    let first = DateTime::<Utc>::from_timestamp_millis(
        crate::store::Resolution::Day.floor(first.timestamp_millis()),
    )
    .unwrap_or(first);
    let (range, grain) = range_of(&q, tz, now, first)?;
    // Nothing is counted before the first link's day or after now, so a
    // wide custom range (2000 to 2100) is read as what it can hold.
    let range = if param(&q, "start").is_some() {
        let to = range.to.min(now.timestamp_millis() + 1);
        TimeRange {
            from: range.from.max(first.timestamp_millis()).min(to),
            to,
        }
    } else {
        range
    };
    let interval = match grain {
        Grain::Hour => Interval::Hour,
        Grain::Day | Grain::Month => Interval::Day,
    };
    let sq = StatsQuery {
        range,
        interval,
        tz,
        include_bots: false,
        top: TOP,
        minute_since: StatsQuery::minute_since_now(),
        now: now.timestamp_millis(),
    };
    if sq.bucket_estimate() > MAX_BUCKETS {
        return Err(DubError::unprocessable(
            "The range is too long for its grain; give a shorter start and end.",
        ));
    }
    let mut total = 0u64;
    let mut series: Vec<(i64, u64)> = Vec::new();
    let mut top: BTreeMap<String, u64> = BTreeMap::new();
    for l in &links {
        let s = link_stats(state.store.as_ref(), l.id, &sq).await?;
        total += s.total_clicks;
        if series.is_empty() {
            series = s.series;
        } else {
            for (acc, (_, n)) in series.iter_mut().zip(s.series) {
                acc.1 += n;
            }
        }
        if let Some(d) = dimension {
            for (v, n) in s.top.get(&d).into_iter().flatten() {
                *top.entry(dub_value(d, v)).or_default() += n;
            }
        }
    }
    let zero = |mut o: Map<String, Value>, clicks: u64| {
        o.insert("clicks".into(), json!(clicks));
        o.insert("leads".into(), json!(0));
        o.insert("sales".into(), json!(0));
        o.insert("saleAmount".into(), json!(0));
        Value::Object(o)
    };
    let answer = match (group, dimension) {
        ("count", _) => zero(Map::new(), total),
        ("timeseries", _) => {
            let bucketer = Bucketer { tz, interval };
            let mut rows: Vec<(i64, u64)> = Vec::new();
            for (start, n) in series {
                let start = match grain {
                    Grain::Month => {
                        let local = DateTime::<Utc>::from_timestamp_millis(start)
                            .unwrap_or_default()
                            .with_timezone(&tz);
                        NaiveDate::from_ymd_opt(local.year(), local.month(), 1)
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .and_then(|t| tz.from_local_datetime(&t).earliest())
                            .map_or(start, |t| t.timestamp_millis())
                    }
                    _ => bucketer.floor(start),
                };
                match rows.last_mut() {
                    Some(last) if last.0 == start => last.1 += n,
                    _ => rows.push((start, n)),
                }
            }
            Value::Array(
                rows.into_iter()
                    .map(|(start, n)| {
                        let mut o = Map::new();
                        let at = DateTime::<Utc>::from_timestamp_millis(start).unwrap_or_default();
                        o.insert("start".into(), json!(iso(at)));
                        zero(o, n)
                    })
                    .collect(),
            )
        }
        (_, Some(d)) => {
            let field = match d {
                Dimension::Country => "country",
                Dimension::Device => "device",
                Dimension::Browser => "browser",
                Dimension::Os => "os",
                _ => "referer",
            };
            let mut rows: Vec<(String, u64)> = top.into_iter().collect();
            rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Value::Array(
                rows.into_iter()
                    .map(|(v, n)| {
                        let mut o = Map::new();
                        o.insert(field.into(), json!(v));
                        if d == Dimension::Country {
                            o.insert("city".into(), json!("*"));
                            o.insert("region".into(), json!("*"));
                        }
                        zero(o, n)
                    })
                    .collect(),
            )
        }
        _ => Value::Null,
    };
    Ok(axum::Json(answer).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        query(Some(s))
    }

    #[test]
    fn intervals_give_dubs_ranges_and_grains() {
        let now = Utc.with_ymd_and_hms(2026, 5, 17, 12, 0, 0).unwrap();
        let first = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let at = |ms: i64| {
            DateTime::<Utc>::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339()
        };
        let (r, g) = range_of(&q(""), Tz::UTC, now, first).ok().unwrap();
        assert_eq!(
            (at(r.from).as_str(), g),
            ("2026-05-16T12:00:00+00:00", Grain::Hour)
        );
        let (r, g) = range_of(&q("interval=qtd"), Tz::UTC, now, first)
            .ok()
            .unwrap();
        assert_eq!(
            (at(r.from).as_str(), g),
            ("2026-04-01T00:00:00+00:00", Grain::Day)
        );
        let (r, _) = range_of(&q("interval=mtd"), chrono_tz::Europe::Paris, now, first)
            .ok()
            .unwrap();
        assert_eq!(at(r.from), "2026-04-30T22:00:00+00:00");
        let (r, g) = range_of(&q("interval=all"), Tz::UTC, now, first)
            .ok()
            .unwrap();
        assert_eq!(
            (at(r.from).as_str(), g),
            ("2024-01-01T00:00:00+00:00", Grain::Month)
        );
        let (_, g) = range_of(&q("start=2026-05-01&end=2026-05-20"), Tz::UTC, now, first)
            .ok()
            .unwrap();
        assert_eq!(g, Grain::Day);
        assert!(range_of(&q("interval=2w"), Tz::UTC, now, first).is_err());
        assert!(range_of(&q("start=2026-05-20&end=2026-05-01"), Tz::UTC, now, first).is_err());
    }

    #[test]
    fn values_are_named_as_dub_names_them() {
        assert_eq!(dub_value(Dimension::Referrer, "direct"), "(direct)");
        assert_eq!(dub_value(Dimension::Device, "desktop"), "Desktop");
        assert_eq!(dub_value(Dimension::Country, "unknown"), "Unknown");
        assert_eq!(dub_value(Dimension::Browser, "Chrome"), "Chrome");
    }
}
