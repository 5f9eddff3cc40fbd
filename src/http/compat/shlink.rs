//! Shlink's REST API v3 (`--compat-shlink`), so that shlink-web-client,
//! Shlink's SDKs and scripts written against Shlink work unchanged against
//! hop: `/rest/v3/short-urls` (list with paging, search, tags, ordering
//! and dates; create with `longUrl`, `customSlug`, `tags`, `title`,
//! `validSince`, `validUntil`, `maxVisits`, `findIfExists`; get, edit,
//! delete), `/rest/v3/short-urls/{shortCode}/visits` (read, delete),
//! `/rest/v3/tags` and `/tags/stats`, `/rest/v3/visits`,
//! `/rest/v3/domains`, `/rest/v3/mercure-info` (not configured, as
//! Shlink answers without a hub) and `/rest/health`. Field names, status
//! codes and problem+json errors are Shlink 4's (its `ShortUrl`
//! serialisation, `*Exception::fromX` problem details and the SDK's
//! `ErrorType`s). docs/compat.md lists what is and is not covered.
//!
//! Authentication is `X-Api-Key: <hop API key>`; an admin key is Shlink's
//! admin key (every short URL), any other key an "author only" key (its
//! own short URLs).

use std::collections::{BTreeMap, HashMap, VecDeque};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::{all_links, clicks_of, link_to, live_key, own_domain, visible};
use crate::domain::{FieldError, Link, LinkId, SlugError};
use crate::service::links::{LinkChanges, LinkError, NewLink};
use crate::state::AppState;
use crate::store::{ApiKey, StoreError, TimeRange};

/// The Shlink release whose API this follows (what `/rest/health` says).
pub const SHLINK_VERSION: &str = "4.6.0";
const ERROR_TYPE: &str = "https://shlink.io/api/error/";
/// Shlink's default page size for short URLs.
const DEFAULT_ITEMS: i64 = 10;
/// Most visits one answer carries (Shlink's "all" is unbounded; the web
/// client reads visits in pages of 5 000).
const MAX_VISITS_PAGE: i64 = 20_000;
/// A day, in ms: how far past now a visits list reads by default (a click
/// stamped ahead by a node's clock still shows).
const DAY_MS: i64 = 86_400_000;
/// Raw clicks read per store call while listing visits.
const VISIT_CHUNK: usize = 2_000;

/// The routes, under `/rest`.
pub fn routes() -> Router<AppState> {
    use tower_http::cors::{Any, CorsLayer};
    // Shlink answers any origin (its web client runs on another one) and
    // its preflights name X-Api-Key.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-api-key"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(std::time::Duration::from_secs(3600));
    Router::new()
        .route("/rest/health", get(health))
        .route("/rest/v3/health", get(health))
        .route("/rest/v3/short-urls", get(list).post(create))
        .route(
            "/rest/v3/short-urls/{code}",
            get(one).patch(edit).delete(remove),
        )
        .route(
            "/rest/v3/short-urls/{code}/visits",
            get(visits).delete(delete_visits),
        )
        .route("/rest/v3/tags", get(tags))
        .route("/rest/v3/tags/stats", get(tag_stats))
        .route("/rest/v3/visits", get(overview))
        .route("/rest/v3/domains", get(domains))
        .route("/rest/v3/mercure-info", get(mercure))
        .route("/rest/{*rest}", any(not_found))
        .method_not_allowed_fallback(|| async {
            problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "This route does not answer this method.",
            )
        })
        .layer(cors)
}

/// A problem+json answer, as Shlink gives them.
fn problem(status: StatusCode, kind: &str, title: &str, detail: &str) -> Problem {
    Problem {
        status,
        body: json!({
            "type": format!("{ERROR_TYPE}{kind}"),
            "title": title,
            "detail": detail,
            "status": status.as_u16(),
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    }
}

struct Problem {
    status: StatusCode,
    body: Map<String, Value>,
}

impl Problem {
    fn with(mut self, k: &str, v: Value) -> Problem {
        self.body.insert(k.into(), v);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut res = (self.status, Value::Object(self.body).to_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        tracing::warn!(error = %e, "shlink api: store error");
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service unavailable",
            "The store did not answer; try again.",
        )
    }
}

fn invalid(elements: &[&str], detail: &str) -> Problem {
    problem(
        StatusCode::BAD_REQUEST,
        "invalid-data",
        "Invalid data",
        detail,
    )
    .with("invalidElements", json!(elements))
}

fn not_found_code(code: &str, domain: Option<&str>) -> Problem {
    let detail = match domain {
        Some(d) => format!("No URL found with short code \"{code}\" for domain \"{d}\""),
        None => format!("No URL found with short code \"{code}\""),
    };
    let p = problem(
        StatusCode::NOT_FOUND,
        "short-url-not-found",
        "Short URL not found",
        &detail,
    )
    .with("shortCode", json!(code));
    match domain {
        Some(d) => p.with("domain", json!(d)),
        None => p,
    }
}

type Answer = Result<Response, Problem>;

fn ok(v: Value) -> Answer {
    Ok(axum::Json(v).into_response())
}

/// The key `X-Api-Key` names, or Shlink's 401.
async fn key_of(state: &AppState, headers: &HeaderMap) -> Result<ApiKey, Problem> {
    let Some(given) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) else {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "missing-authentication",
            "Invalid authorization",
            "Expected one of the following authentication headers, [\"X-Api-Key\"], but none were provided",
        ));
    };
    live_key(state, given).await?.ok_or_else(|| {
        problem(
            StatusCode::UNAUTHORIZED,
            "invalid-api-key",
            "Invalid API key",
            "Provided API key does not exist or is invalid.",
        )
    })
}

/// Shlink's dates: ISO 8601 with the offset as `+00:00`.
fn atom(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A date as Shlink takes them: ISO 8601 / RFC 3339 with an offset
/// (`+00:00` or `+0000`), or a plain date (its midnight, UTC).
fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Whether a `domain` a request gives names this server (absent, Shlink's
/// `DEFAULT`, or its own authority).
fn is_own_domain(state: &AppState, domain: Option<&str>) -> bool {
    match domain.map(str::trim).filter(|d| !d.is_empty()) {
        None => true,
        Some(d) => d == "DEFAULT" || d.eq_ignore_ascii_case(&own_domain(state)),
    }
}

/// The query string's parameters; `name[]` repeated gives a list.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
    fn list(&self, k: &str) -> Vec<String> {
        let bracketed = format!("{k}[]");
        self.0
            .iter()
            .filter(|(n, _)| *n == bracketed || n == k)
            .flat_map(|(_, v)| v.split(',').map(str::trim).map(str::to_owned))
            .filter(|v| !v.is_empty())
            .collect()
    }
    fn flag(&self, k: &str) -> Result<bool, Problem> {
        match self.get(k) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(_) => Err(invalid(&[k], &format!("{k} must be true or false"))),
        }
    }
    fn date(&self, k: &str) -> Result<Option<DateTime<Utc>>, Problem> {
        self.get(k)
            .map(|v| {
                parse_date(v).ok_or_else(|| invalid(&[k], &format!("{k} must be an ISO 8601 date")))
            })
            .transpose()
    }
    /// `page` (from 1) and `itemsPerPage` (`-1`: all, up to `cap`).
    fn paging(&self, default_items: i64, cap: i64) -> Result<(i64, i64), Problem> {
        let page = match self.get("page") {
            None => 1,
            Some(p) => p
                .parse::<i64>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| invalid(&["page"], "page must be a whole number from 1"))?,
        };
        let items = match self.get("itemsPerPage") {
            None => default_items,
            Some(n) => match n.parse::<i64>() {
                Ok(-1) => cap,
                Ok(n) if n >= 1 => n.min(cap),
                _ => {
                    return Err(invalid(
                        &["itemsPerPage"],
                        "itemsPerPage must be a whole number from 1, or -1 for all",
                    ));
                }
            },
        };
        Ok((page, items))
    }
}

/// One page of `items`, with Shlink's pagination object.
fn page_of<T>(items: Vec<T>, page: i64, per: i64, total: i64) -> (Vec<T>, Value) {
    let pages = if total == 0 {
        0
    } else {
        total / per + i64::from(total % per != 0)
    };
    let start = (page - 1).saturating_mul(per).min(items.len() as i64) as usize;
    let data: Vec<T> = items.into_iter().skip(start).take(per as usize).collect();
    let pagination = json!({
        "currentPage": page,
        "pagesCount": pages,
        "itemsPerPage": per,
        "itemsInCurrentPage": data.len(),
        "totalItems": total,
    });
    (data, pagination)
}

/// Every click and the human ones, per link.
async fn summaries(
    state: &AppState,
    ids: &[LinkId],
) -> Result<HashMap<LinkId, (u64, u64)>, StoreError> {
    let mut out: HashMap<LinkId, (u64, u64)> = HashMap::new();
    for (id, n) in clicks_of(state, ids, true).await? {
        out.entry(id).or_default().0 = n;
    }
    for (id, n) in clicks_of(state, ids, false).await? {
        out.entry(id).or_default().1 = n;
    }
    Ok(out)
}

fn visits_summary((total, humans): (u64, u64)) -> Value {
    json!({"total": total, "nonBots": humans, "bots": total.saturating_sub(humans)})
}

/// A short URL as Shlink serialises one.
fn short_url(state: &AppState, l: &Link, counts: (u64, u64)) -> Value {
    json!({
        "shortCode": l.slug.as_str(),
        "shortUrl": state.short_url(&l.slug),
        "longUrl": l.target.as_str(),
        "dateCreated": atom(l.created_at),
        "visitsSummary": visits_summary(counts),
        "tags": l.tags,
        "meta": {
            "validSince": Value::Null,
            "validUntil": l.expires_at.map(atom),
            "maxVisits": l.max_clicks,
        },
        "domain": Value::Null,
        "title": l.title,
        "crawlable": false,
        "forwardQuery": false,
        "hasRedirectRules": !l.rules.is_empty(),
    })
}

async fn one_short_url(state: &AppState, l: &Link) -> Answer {
    let counts = summaries(state, &[l.id])
        .await?
        .get(&l.id)
        .copied()
        .unwrap_or_default();
    ok(short_url(state, l, counts))
}

async fn health(State(state): State<AppState>) -> Response {
    let up = state.store.ping().await.is_ok();
    let body = json!({
        "status": if up { "pass" } else { "fail" },
        "version": SHLINK_VERSION,
        "links": {"about": "https://shlink.io", "project": "https://github.com/shlinkio/shlink"},
    });
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/health+json"),
    );
    res
}

async fn not_found() -> Problem {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "Requested route does not exist.",
    )
}

async fn mercure(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    key_of(&state, &headers).await?;
    Err(problem(
        StatusCode::NOT_IMPLEMENTED,
        "mercure-not-configured",
        "Mercure integration not configured",
        "This Shlink instance is not integrated with a mercure hub.",
    ))
}

async fn domains(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    key_of(&state, &headers).await?;
    let redirects = json!({
        "baseUrlRedirect": Value::Null,
        "regular404Redirect": Value::Null,
        "invalidShortUrlRedirect": Value::Null,
    });
    ok(json!({"domains": {
        "data": [{"domain": own_domain(&state), "isDefault": true, "redirects": redirects}],
        "defaultRedirects": redirects,
    }}))
}

/// Whether `l` matches a search term as Shlink's does: the short code,
/// long URL, title or a tag contains it (any case).
fn matches_term(l: &Link, term: &str) -> bool {
    let term = term.to_lowercase();
    l.slug.as_str().to_lowercase().contains(&term)
        || l.target.as_str().to_lowercase().contains(&term)
        || l.title
            .as_deref()
            .is_some_and(|t| t.to_lowercase().contains(&term))
        || l.tags.iter().any(|t| t.to_lowercase().contains(&term))
}

/// Whether `l` has `tags` as `mode` (`any` or `all`) asks.
fn has_tags(l: &Link, tags: &[String], all: bool) -> bool {
    let has = |t: &String| l.tags.iter().any(|x| x.eq_ignore_ascii_case(t));
    if all {
        tags.iter().all(has)
    } else {
        tags.iter().any(has)
    }
}

fn tags_mode(q: &Query, k: &str) -> Result<bool, Problem> {
    match q.get(k) {
        None | Some("any") => Ok(false),
        Some("all") => Ok(true),
        Some(_) => Err(invalid(&[k], &format!("{k} must be any or all"))),
    }
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref());
    let (page, per) = q.paging(DEFAULT_ITEMS, i64::MAX)?;
    let tags = q.list("tags");
    let all_tags = tags_mode(&q, "tagsMode")?;
    let exclude = q.list("excludeTags");
    let all_exclude = tags_mode(&q, "excludeTagsMode")?;
    let (from, to) = (q.date("startDate")?, q.date("endDate")?);
    let exclude_exhausted = q.flag("excludeMaxVisitsReached")?;
    let exclude_expired = q.flag("excludePastValidUntil")?;
    let order = match q.get("orderBy") {
        None => None,
        Some(o) => {
            let (field, dir) = o.rsplit_once('-').unwrap_or((o, "ASC"));
            let known = [
                "dateCreated",
                "shortCode",
                "longUrl",
                "title",
                "visits",
                "nonBotVisits",
            ];
            if !known.contains(&field) || !["ASC", "DESC"].contains(&dir.to_uppercase().as_str()) {
                return Err(invalid(
                    &["orderBy"],
                    "orderBy must be one of dateCreated, shortCode, longUrl, title, visits, nonBotVisits, followed by -ASC or -DESC",
                ));
            }
            Some((field.to_owned(), dir.eq_ignore_ascii_case("DESC")))
        }
    };
    if !is_own_domain(&state, q.get("domain")) {
        let (data, pagination) = page_of(Vec::<Value>::new(), page, per.min(1_000_000), 0);
        return ok(json!({"shortUrls": {"data": data, "pagination": pagination}}));
    }
    let now = Utc::now();
    let mut links: Vec<Link> = all_links(&state, &key)
        .await?
        .into_iter()
        .filter(|l| q.get("searchTerm").is_none_or(|t| matches_term(l, t)))
        .filter(|l| tags.is_empty() || has_tags(l, &tags, all_tags))
        .filter(|l| exclude.is_empty() || !has_tags(l, &exclude, all_exclude))
        .filter(|l| from.is_none_or(|f| l.created_at >= f))
        .filter(|l| to.is_none_or(|t| l.created_at <= t))
        .filter(|l| !exclude_expired || l.expires_at.is_none_or(|e| e > now))
        .collect();
    let needs_counts = exclude_exhausted
        || order
            .as_ref()
            .is_some_and(|(f, _)| f == "visits" || f == "nonBotVisits");
    let mut counts = if needs_counts {
        let ids: Vec<LinkId> = links.iter().map(|l| l.id).collect();
        summaries(&state, &ids).await?
    } else {
        HashMap::new()
    };
    if exclude_exhausted {
        links.retain(|l| {
            l.max_clicks
                .is_none_or(|m| counts.get(&l.id).map_or(0, |c| c.0) < m)
        });
    }
    if let Some((field, desc)) = &order {
        let c = |l: &Link| counts.get(&l.id).copied().unwrap_or_default();
        links.sort_by(|a, b| {
            let o = match field.as_str() {
                "dateCreated" => a.id.cmp(&b.id),
                "shortCode" => a.slug.as_str().cmp(b.slug.as_str()),
                "longUrl" => a.target.as_str().cmp(b.target.as_str()),
                "title" => a.title.cmp(&b.title),
                "visits" => c(a).0.cmp(&c(b).0),
                _ => c(a).1.cmp(&c(b).1),
            };
            if *desc { o.reverse() } else { o }
        });
    }
    let total = links.len() as i64;
    // `-1` (all): one page of everything.
    let per = if per == i64::MAX { total.max(1) } else { per };
    let (links, pagination) = page_of(links, page, per, total);
    if !needs_counts {
        let ids: Vec<LinkId> = links.iter().map(|l| l.id).collect();
        counts = summaries(&state, &ids).await?;
    }
    let data: Vec<Value> = links
        .iter()
        .map(|l| short_url(&state, l, counts.get(&l.id).copied().unwrap_or_default()))
        .collect();
    ok(json!({"shortUrls": {"data": data, "pagination": pagination}}))
}

/// A JSON body's object, or Shlink's invalid-data.
fn body_object(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(invalid(&[], "The request body must be a JSON object")),
    }
}

/// A field that must be a string (or absent / null).
fn text(m: &Map<String, Value>, k: &str) -> Result<Option<String>, Problem> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(&[k], &format!("{k} must be a string"))),
    }
}

fn tags_field(m: &Map<String, Value>) -> Result<Option<Vec<String>>, Problem> {
    match m.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(|s| s.trim().to_owned()))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| invalid(&["tags"], "tags must be a list of strings")),
        Some(_) => Err(invalid(&["tags"], "tags must be a list of strings")),
    }
}

fn max_visits(m: &Map<String, Value>) -> Result<Option<i64>, Problem> {
    match m.get("maxVisits") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| invalid(&["maxVisits"], "maxVisits must be a whole number from 1")),
    }
}

/// `validUntil` as hop's expiry (RFC 3339).
fn valid_until(m: &Map<String, Value>) -> Result<Option<String>, Problem> {
    text(m, "validUntil")?
        .map(|v| {
            parse_date(&v)
                .map(|t| t.to_rfc3339())
                .ok_or_else(|| invalid(&["validUntil"], "validUntil must be an ISO 8601 date"))
        })
        .transpose()
}

/// `validSince`: hop links are valid from their creation, so a start in
/// the past (or now) holds already; a future one is refused rather than
/// ignored.
fn valid_since(m: &Map<String, Value>) -> Result<(), Problem> {
    if let Some(v) = text(m, "validSince")? {
        let at = parse_date(&v)
            .ok_or_else(|| invalid(&["validSince"], "validSince must be an ISO 8601 date"))?;
        if at > Utc::now() {
            return Err(invalid(
                &["validSince"],
                "validSince in the future is not supported: hop links are valid from their creation",
            ));
        }
    }
    Ok(())
}

fn bool_field(m: &Map<String, Value>, k: &str) -> Result<bool, Problem> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(&[k], &format!("{k} must be true or false"))),
    }
}

/// A refused link, as Shlink's problem.
fn link_problem(e: LinkError, slug: Option<&str>) -> Problem {
    match e {
        LinkError::SlugTaken => {
            let slug = slug.unwrap_or("");
            problem(
                StatusCode::BAD_REQUEST,
                "non-unique-slug",
                "Invalid custom slug",
                &format!("Provided slug \"{slug}\" is already in use."),
            )
            .with("customSlug", json!(slug))
        }
        LinkError::Slug(SlugError::Reserved) => {
            let slug = slug.unwrap_or("");
            problem(
                StatusCode::BAD_REQUEST,
                "non-unique-slug",
                "Invalid custom slug",
                &format!("Provided slug \"{slug}\" is already in use."),
            )
            .with("customSlug", json!(slug))
        }
        LinkError::Slug(e) => invalid(&["customSlug"], &e.to_string()),
        LinkError::Url(_)
        | LinkError::Blocked
        | LinkError::TakenDown
        | LinkError::PrivateTarget(_) => invalid(&["longUrl"], &e.to_string()),
        LinkError::Field(f) => {
            let field = match f {
                FieldError::Title => "title",
                FieldError::Tags => "tags",
                FieldError::MaxClicks => "maxVisits",
                FieldError::Expiry => "validUntil",
                _ => "",
            };
            invalid(&[field], &f.to_string())
        }
        LinkError::InvalidExpiry => invalid(&["validUntil"], &e.to_string()),
        LinkError::NotFound | LinkError::RuleNotFound => not_found_code(slug.unwrap_or(""), None),
        LinkError::Rules(e) => invalid(&[], &e.to_string()),
        LinkError::SlugSpaceExhausted => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service unavailable",
            "Could not find a free short code; try again.",
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
    let Some(long_url) = text(&m, "longUrl")?.filter(|u| !u.trim().is_empty()) else {
        return Err(invalid(&["longUrl"], "Provided data is not valid"));
    };
    let slug = text(&m, "customSlug")?.filter(|s| !s.is_empty());
    let title = text(&m, "title")?;
    let tags = tags_field(&m)?;
    let max = max_visits(&m)?;
    let until = valid_until(&m)?;
    valid_since(&m)?;
    for k in ["crawlable", "forwardQuery", "findIfExists"] {
        bool_field(&m, k)?;
    }
    match m.get("shortCodeLength") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_i64().is_some_and(|n| n >= 4) => {}
        Some(_) => {
            return Err(invalid(
                &["shortCodeLength"],
                "shortCodeLength must be a whole number from 4",
            ));
        }
    }
    if !is_own_domain(&state, text(&m, "domain")?.as_deref()) {
        return Err(invalid(
            &["domain"],
            "This server answers one domain: its own (leave domain out)",
        ));
    }
    if bool_field(&m, "findIfExists")? {
        let same_tags = |l: &Link| {
            tags.as_ref().is_none_or(|t| {
                let mut a: Vec<String> = t.iter().map(|s| s.to_lowercase()).collect();
                let mut b: Vec<String> = l.tags.iter().map(|s| s.to_lowercase()).collect();
                a.sort();
                b.sort();
                a == b
            })
        };
        let found = link_to(&state, &key, &long_url, |l| {
            slug.as_deref().is_none_or(|s| l.slug.as_str() == s)
                && same_tags(l)
                && title.as_ref().is_none_or(|t| l.title.as_ref() == Some(t))
                && max.is_none_or(|m| l.max_clicks == Some(m as u64))
        })
        .await?;
        if let Some(l) = found {
            return one_short_url(&state, &l).await;
        }
    }
    let new = NewLink {
        url: long_url,
        slug: slug.clone(),
        title,
        tags: tags.unwrap_or_default(),
        expires_at: until,
        max_clicks: max,
        ..NewLink::default()
    };
    match crate::service::links::create(&state, Some(&key), new).await {
        Ok((link, _)) => ok(short_url(&state, &link, (0, 0))),
        Err(e) => Err(link_problem(e, slug.as_deref())),
    }
}

/// The short URL a path names, with the request's `domain`, if the key
/// may see it; else Shlink's 404.
async fn named(
    state: &AppState,
    key: &ApiKey,
    code: &str,
    raw: Option<&str>,
) -> Result<Link, Problem> {
    let q = Query::parse(raw);
    let domain = q.get("domain");
    if !is_own_domain(state, domain) {
        return Err(not_found_code(code, domain));
    }
    visible(state, key, code)
        .await?
        .ok_or_else(|| not_found_code(code, domain.filter(|d| *d != "DEFAULT")))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let link = named(&state, &key, &code, raw.as_deref()).await?;
    one_short_url(&state, &link).await
}

async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let link = named(&state, &key, &code, raw.as_deref()).await?;
    let m = body_object(&body)?;
    let nullable = |k: &str| m.contains_key(k);
    let changes = LinkChanges {
        url: text(&m, "longUrl")?,
        title: nullable("title").then(|| text(&m, "title")).transpose()?,
        tags: tags_field(&m)?,
        expires_at: nullable("validUntil")
            .then(|| valid_until(&m))
            .transpose()?,
        max_clicks: nullable("maxVisits").then(|| max_visits(&m)).transpose()?,
        ..LinkChanges::default()
    };
    valid_since(&m)?;
    for k in ["crawlable", "forwardQuery"] {
        bool_field(&m, k)?;
    }
    match crate::service::links::update(&state, link, changes).await {
        Ok(link) => one_short_url(&state, &link).await,
        Err(e) => Err(link_problem(e, Some(&code))),
    }
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let link = named(&state, &key, &code, raw.as_deref()).await?;
    crate::service::links::delete(&state, &link).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A raw click as a Shlink visit. hop keeps neither the full referrer nor
/// the user agent: `referer` is the referrer's host, `userAgent` hop's
/// reading of it ("Chrome on Windows").
fn visit(state: &AppState, l: &Link, c: &crate::domain::EnrichedClick) -> Value {
    let at = DateTime::<Utc>::from_timestamp_millis(c.at).unwrap_or_default();
    let location = (c.country.is_some() || c.city.is_some()).then(|| {
        json!({
            "countryCode": c.country,
            "countryName": Value::Null,
            "regionName": Value::Null,
            "cityName": c.city,
            "latitude": Value::Null,
            "longitude": Value::Null,
            "timezone": Value::Null,
            "isEmpty": false,
        })
    });
    json!({
        "referer": c.referrer_host.as_deref().unwrap_or(""),
        "date": atom(at),
        "userAgent": format!("{} on {}", c.browser, c.os),
        "visitLocation": location,
        "potentialBot": c.bot,
        "visitedUrl": state.short_url(&l.slug),
        "redirectUrl": Value::Null,
    })
}

async fn visits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let link = named(&state, &key, &code, raw.as_deref()).await?;
    let q = Query::parse(raw.as_deref());
    let (page, per) = q.paging(MAX_VISITS_PAGE, MAX_VISITS_PAGE)?;
    let humans_only = q.flag("excludeBots")?;
    let from = q.date("startDate")?.map_or(0, |t| t.timestamp_millis());
    let to = q
        .date("endDate")?
        .map_or(Utc::now().timestamp_millis() + DAY_MS, |t| {
            t.timestamp_millis() + 1
        });
    // Newest first: clicks are read oldest first and only the newest
    // `page × per` kept, so memory is bounded by the page asked for.
    let keep = page.saturating_mul(per) as usize;
    let mut newest: VecDeque<crate::domain::EnrichedClick> = VecDeque::new();
    let mut total: i64 = 0;
    let mut after = None;
    loop {
        let chunk = state
            .store
            .export_clicks(
                link.id,
                TimeRange { from, to },
                !humans_only,
                after,
                VISIT_CHUNK,
            )
            .await?;
        let done = chunk.len() < VISIT_CHUNK;
        after = chunk.last().map(|c| (c.at, c.event_id));
        for c in chunk {
            total += 1;
            newest.push_back(c);
            if newest.len() > keep {
                newest.pop_front();
            }
        }
        if done {
            break;
        }
    }
    let newest: Vec<Value> = newest
        .iter()
        .rev()
        .map(|c| visit(&state, &link, c))
        .collect();
    let (data, pagination) = page_of(newest, page, per, total);
    // `page_of` skipped from the start of what was kept: what was kept is
    // exactly the pages up to this one, newest first.
    ok(json!({"visits": {"data": data, "pagination": pagination}}))
}

async fn delete_visits(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let link = named(&state, &key, &code, raw.as_deref()).await?;
    let (total, _) = summaries(&state, &[link.id])
        .await?
        .get(&link.id)
        .copied()
        .unwrap_or_default();
    state.store.purge_clicks(link.id).await?;
    ok(json!({"deletedVisits": total}))
}

/// Each tag of the links `key` sees, with its links.
async fn tagged(state: &AppState, key: &ApiKey) -> Result<BTreeMap<String, Vec<LinkId>>, Problem> {
    let mut out: BTreeMap<String, Vec<LinkId>> = BTreeMap::new();
    for l in all_links(state, key).await? {
        for t in &l.tags {
            out.entry(t.clone()).or_default().push(l.id);
        }
    }
    Ok(out)
}

fn tag_page<T>(q: &Query, tags: BTreeMap<String, T>) -> Result<(Vec<(String, T)>, Value), Problem> {
    let (page, per) = q.paging(i64::MAX, i64::MAX)?;
    let mut items: Vec<(String, T)> = tags
        .into_iter()
        .filter(|(t, _)| {
            q.get("searchTerm")
                .is_none_or(|s| t.to_lowercase().contains(&s.to_lowercase()))
        })
        .collect();
    if q.get("orderBy").is_some_and(|o| o.ends_with("-DESC")) {
        items.reverse();
    }
    let total = items.len() as i64;
    let per = if per == i64::MAX { total.max(1) } else { per };
    Ok(page_of(items, page, per, total))
}

async fn tags(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref());
    let (items, pagination) = tag_page(&q, tagged(&state, &key).await?)?;
    let data: Vec<String> = items.into_iter().map(|(t, _)| t).collect();
    ok(json!({"tags": {"data": data, "pagination": pagination}}))
}

async fn tag_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref());
    let (items, pagination) = tag_page(&q, tagged(&state, &key).await?)?;
    let ids: Vec<LinkId> = items.iter().flat_map(|(_, ids)| ids.clone()).collect();
    let counts = summaries(&state, &ids).await?;
    let data: Vec<Value> = items
        .into_iter()
        .map(|(tag, ids)| {
            let sum = ids.iter().fold((0, 0), |(a, b), id| {
                let c = counts.get(id).copied().unwrap_or_default();
                (a + c.0, b + c.1)
            });
            json!({"tag": tag, "shortUrlsCount": ids.len(), "visitsSummary": visits_summary(sum)})
        })
        .collect();
    ok(json!({"tags": {"data": data, "pagination": pagination}}))
}

async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let key = key_of(&state, &headers).await?;
    let ids: Vec<LinkId> = all_links(&state, &key)
        .await?
        .iter()
        .map(|l| l.id)
        .collect();
    let sum = summaries(&state, &ids)
        .await?
        .values()
        .fold((0, 0), |(a, b), c| (a + c.0, b + c.1));
    ok(json!({"visits": {
        "nonOrphanVisits": visits_summary(sum),
        "orphanVisits": visits_summary((0, 0)),
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_in_shlinks_forms() {
        let t = |s: &str| parse_date(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2024-03-01").as_deref(),
            Some("2024-03-01T00:00:00+00:00")
        );
        assert_eq!(
            t("2024-03-01T10:00:00+02:00").as_deref(),
            Some("2024-03-01T08:00:00+00:00")
        );
        assert_eq!(
            t("2024-03-01T10:00:00+0000").as_deref(),
            Some("2024-03-01T10:00:00+00:00")
        );
        assert_eq!(t("yesterday"), None);
        assert_eq!(
            atom(parse_date("2024-03-01T10:00:00Z").unwrap()),
            "2024-03-01T10:00:00+00:00"
        );
    }

    #[test]
    fn lists_in_the_query_take_brackets_and_commas() {
        let q = Query::parse(Some("tags[]=a&tags[]=b&excludeTags=c,d&page=2"));
        assert_eq!(q.list("tags"), ["a", "b"]);
        assert_eq!(q.list("excludeTags"), ["c", "d"]);
        assert_eq!(q.paging(10, 100).ok(), Some((2, 10)));
        let q = Query::parse(Some("itemsPerPage=-1"));
        assert_eq!(q.paging(10, 100).ok(), Some((1, 100)));
        assert!(Query::parse(Some("page=0")).paging(10, 100).is_err());
        assert!(
            Query::parse(Some("itemsPerPage=x"))
                .paging(10, 100)
                .is_err()
        );
    }

    #[test]
    fn pages_say_what_they_hold() {
        let (data, p) = page_of((1..=25).collect(), 3, 10, 25);
        assert_eq!(data, [21, 22, 23, 24, 25]);
        assert_eq!(p["pagesCount"], 3);
        assert_eq!(p["itemsInCurrentPage"], 5);
        assert_eq!(p["totalItems"], 25);
    }
}
