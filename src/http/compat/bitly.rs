//! A subset of Bitly's API v4 (`--compat-bitly`), so that scripts and
//! libraries written against Bitly work with their API host set to hop:
//! `POST /v4/shorten`, `POST /v4/bitlinks` (with a custom back-half,
//! `keyword`), `GET|PATCH /v4/bitlinks/{bitlink}`,
//! `GET /v4/bitlinks/{bitlink}/clicks` and `/clicks/summary`, and
//! `POST /v4/expand`. Field names, status codes and errors (`{message,
//! resource, description, errors}`) are Bitly's documented ones;
//! docs/compat.md lists what is and is not covered.
//!
//! A bitlink's id is the short URL without its scheme (`hop.example/abc`),
//! as Bitly's is (`bit.ly/abc`). The token is a hop API key, as
//! `Authorization: Bearer <key>` or, as some clients send it, bare.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::{bearer_or_bare, link_to, live_key, own_domain, visible};
use crate::domain::{FieldError, Link, SlugError, UrlError};
use crate::service::links::{LinkChanges, LinkError, NewLink};
use crate::state::AppState;
use crate::stats::{Interval, MAX_BUCKETS, StatsQuery, link_stats};
use crate::store::{ApiKey, StoreError, TimeRange};

/// The group every link is in (hop has no groups).
const GROUP: &str = "Bhop";

/// The routes, under `/v4`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v4/shorten", post(shorten))
        .route("/v4/bitlinks", post(create))
        .route("/v4/expand", post(expand))
        .route("/v4/bitlinks/{*rest}", any(bitlink))
        .route("/v4/{*rest}", any(not_found))
        .method_not_allowed_fallback(|| async {
            BitlyError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "This route does not answer this method.",
            )
        })
}

/// Bitly's error body.
struct BitlyError {
    status: StatusCode,
    message: String,
    description: String,
    field: Option<&'static str>,
}

impl BitlyError {
    fn new(status: StatusCode, message: &str, description: impl Into<String>) -> BitlyError {
        BitlyError {
            status,
            message: message.into(),
            description: description.into(),
            field: None,
        }
    }
    fn not_found() -> BitlyError {
        BitlyError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "What you are looking for cannot be found.",
        )
    }
    /// `INVALID_ARG_<FIELD>`, naming the field in `errors`.
    fn invalid(field: &'static str, description: impl Into<String>) -> BitlyError {
        BitlyError {
            status: StatusCode::BAD_REQUEST,
            message: format!("INVALID_ARG_{}", field.to_uppercase()),
            description: description.into(),
            field: Some(field),
        }
    }
}

impl IntoResponse for BitlyError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "message": self.message,
            "resource": "bitlinks",
            "description": self.description,
        });
        if let Some(f) = self.field {
            body["errors"] = json!([{"field": f, "error_code": "invalid"}]);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for BitlyError {
    fn from(e: StoreError) -> BitlyError {
        tracing::warn!(error = %e, "bitly api: store error");
        BitlyError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            "The store did not answer; try again.",
        )
    }
}

type Answer = Result<Response, BitlyError>;

async fn not_found() -> BitlyError {
    BitlyError::not_found()
}

/// The key the token names, or Bitly's 403.
async fn key_of(state: &AppState, headers: &HeaderMap) -> Result<ApiKey, BitlyError> {
    let given = bearer_or_bare(headers).unwrap_or("");
    live_key(state, given).await?.ok_or_else(|| {
        BitlyError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "You are currently forbidden to access this resource.",
        )
    })
}

/// Bitly's times: `2026-01-01T10:00:00+0000`.
fn bitly_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+0000").to_string()
}

fn bitlink_id(state: &AppState, l: &Link) -> String {
    format!("{}/{}", own_domain(state), l.slug)
}

/// A bitlink as Bitly serialises one.
fn bitlink_object(state: &AppState, key: &ApiKey, l: &Link) -> Value {
    json!({
        "references": {"group": format!("{}/v4/groups/{GROUP}", state.public_base)},
        "link": state.short_url(&l.slug),
        "id": bitlink_id(state, l),
        "long_url": l.target.as_str(),
        "title": l.title,
        "archived": false,
        "created_at": bitly_time(l.created_at),
        "created_by": if l.owner == Some(key.id) { key.name.as_str() } else { "hop" },
        "client_id": "hop",
        "custom_bitlinks": [],
        "tags": l.tags,
        "deeplinks": [],
        "is_deleted": false,
        "launchpad_ids": [],
        "campaign_ids": [],
    })
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, BitlyError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(BitlyError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_CONTENT_TYPE_HEADER",
            "The request body must be a JSON object.",
        )),
    }
}

/// A string field; `Some(None)`: given as null.
fn text(m: &Map<String, Value>, k: &'static str) -> Result<Option<Option<String>>, BitlyError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(BitlyError::invalid(k, "The value provided is invalid.")),
    }
}

fn tags(m: &Map<String, Value>) -> Result<Option<Vec<String>>, BitlyError> {
    match m.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| BitlyError::invalid("tags", "The value provided is invalid.")),
        Some(_) => Err(BitlyError::invalid(
            "tags",
            "The value provided is invalid.",
        )),
    }
}

/// `domain` names this server (or Bitly's default, which clients send
/// from their models: links are made on this server's domain).
fn check_domain(state: &AppState, m: &Map<String, Value>) -> Result<(), BitlyError> {
    match text(m, "domain")?.flatten() {
        None => Ok(()),
        Some(d) if d == "bit.ly" || d.eq_ignore_ascii_case(&own_domain(state)) => Ok(()),
        Some(_) => Err(BitlyError::invalid(
            "domain",
            "The value provided is invalid.",
        )),
    }
}

fn link_error(e: LinkError) -> BitlyError {
    match e {
        LinkError::Url(UrlError::Loop) => BitlyError {
            message: "ALREADY_A_BITLINK".into(),
            ..BitlyError::invalid("long_url", "The value provided is already a short link.")
        },
        LinkError::Url(_)
        | LinkError::Blocked
        | LinkError::TakenDown
        | LinkError::PrivateTarget(_) => BitlyError::invalid("long_url", e.to_string()),
        LinkError::SlugTaken | LinkError::Slug(SlugError::Reserved) => BitlyError::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            "The keyword is already in use.",
        ),
        LinkError::Slug(e) => BitlyError::invalid("keyword", e.to_string()),
        LinkError::Field(FieldError::Title) => BitlyError::invalid("title", e.to_string()),
        LinkError::Field(FieldError::Tags) => BitlyError::invalid("tags", e.to_string()),
        LinkError::Field(_) | LinkError::InvalidExpiry | LinkError::Rules(_) => {
            BitlyError::new(StatusCode::BAD_REQUEST, "INVALID_ARG", e.to_string())
        }
        LinkError::NotFound | LinkError::RuleNotFound => BitlyError::not_found(),
        LinkError::SlugSpaceExhausted => BitlyError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            "Could not find a free back-half; try again.",
        ),
        LinkError::Store(e) => e.into(),
    }
}

/// `POST /v4/shorten` and `POST /v4/bitlinks`: 200 with the key's bitlink
/// for this long URL when there is one (and no keyword asks for a new
/// one), else 201 with a new one.
async fn make(state: &AppState, headers: &HeaderMap, body: &[u8], full: bool) -> Answer {
    let key = key_of(state, headers).await?;
    let m = body_object(body)?;
    let Some(long_url) = text(&m, "long_url")?
        .flatten()
        .filter(|u| !u.trim().is_empty())
    else {
        return Err(BitlyError::invalid(
            "long_url",
            "The value provided is invalid.",
        ));
    };
    check_domain(state, &m)?;
    let keyword = if full {
        text(&m, "keyword")?.flatten().filter(|k| !k.is_empty())
    } else {
        None
    };
    let title = if full {
        text(&m, "title")?.flatten()
    } else {
        None
    };
    let tags = if full { tags(&m)? } else { None };
    if keyword.is_none()
        && let Some(l) = link_to(state, &key, &long_url, |l| l.owner == Some(key.id)).await?
    {
        return Ok((StatusCode::OK, axum::Json(bitlink_object(state, &key, &l))).into_response());
    }
    let new = NewLink {
        url: long_url,
        slug: keyword,
        title,
        tags: tags.unwrap_or_default(),
        ..NewLink::default()
    };
    match crate::service::links::create(state, Some(&key), new).await {
        Ok((l, _)) => Ok((
            StatusCode::CREATED,
            axum::Json(bitlink_object(state, &key, &l)),
        )
            .into_response()),
        Err(e) => Err(link_error(e)),
    }
}

async fn shorten(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    make(&state, &headers, &body, false).await
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    make(&state, &headers, &body, true).await
}

/// The link a bitlink id (`domain/back-half`) names, if the key may see it.
async fn named(state: &AppState, key: &ApiKey, id: &str) -> Result<Link, BitlyError> {
    let id = id
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let Some((domain, back_half)) = id.split_once('/') else {
        return Err(BitlyError::not_found());
    };
    if !domain.eq_ignore_ascii_case(&own_domain(state)) {
        return Err(BitlyError::not_found());
    }
    visible(state, key, back_half)
        .await?
        .ok_or_else(BitlyError::not_found)
}

async fn expand(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let m = body_object(&body)?;
    let Some(id) = text(&m, "bitlink_id")?.flatten() else {
        return Err(BitlyError::invalid(
            "bitlink_id",
            "The value provided is invalid.",
        ));
    };
    let l = named(&state, &key, &id).await?;
    Ok(axum::Json(json!({
        "link": state.short_url(&l.slug),
        "id": bitlink_id(&state, &l),
        "long_url": l.target.as_str(),
        "created_at": bitly_time(l.created_at),
        "deeplinks": [],
    }))
    .into_response())
}

/// `/v4/bitlinks/{domain}/{back-half}[/clicks[/summary]]`, the bitlink
/// percent-encoded as one segment (as most clients send it) or not.
async fn bitlink(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Answer {
    let key = key_of(&state, &headers).await?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() < 2 {
        return Err(BitlyError::not_found());
    }
    let id = format!("{}/{}", parts[0], parts[1]);
    let what = parts[2..].join("/");
    let link = named(&state, &key, &id).await?;
    match (method, what.as_str()) {
        (Method::GET, "") => Ok(axum::Json(bitlink_object(&state, &key, &link)).into_response()),
        (Method::PATCH, "") => update(&state, &key, link, &body).await,
        (Method::GET, "clicks") => clicks(&state, &link, raw.as_deref(), false).await,
        (Method::GET, "clicks/summary") => clicks(&state, &link, raw.as_deref(), true).await,
        (_, "" | "clicks" | "clicks/summary") => Err(BitlyError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "This route does not answer this method.",
        )),
        _ => Err(BitlyError::not_found()),
    }
}

/// PATCH: `title`, `tags`, `long_url`; `archived` only false (hop has no
/// archive); the read-only fields a client echoes back are ignored.
async fn update(state: &AppState, key: &ApiKey, link: Link, body: &[u8]) -> Answer {
    let m = body_object(body)?;
    match m.get("archived") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(_) => {
            return Err(BitlyError::invalid(
                "archived",
                "hop does not archive links (archived must be false)",
            ));
        }
    }
    let changes = LinkChanges {
        url: text(&m, "long_url")?.flatten(),
        title: text(&m, "title")?,
        tags: tags(&m)?,
        ..LinkChanges::default()
    };
    match crate::service::links::update(state, link, changes).await {
        Ok(l) => Ok(axum::Json(bitlink_object(state, key, &l)).into_response()),
        Err(e) => Err(link_error(e)),
    }
}

/// A clicks unit: its length, or `None` for a calendar month.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Unit {
    fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "minute" => Unit::Minute,
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
        }
    }
    /// The start of the unit holding `t` (UTC; weeks start on Monday).
    fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let day = t.date_naive();
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|x| x.and_utc()).unwrap_or(t);
        match self {
            Unit::Minute => DateTime::from_timestamp(t.timestamp() / 60 * 60, 0).unwrap_or(t),
            Unit::Hour => DateTime::from_timestamp(t.timestamp() / 3600 * 3600, 0).unwrap_or(t),
            Unit::Day => midnight(day),
            Unit::Week => {
                midnight(day - Duration::days(day.weekday().num_days_from_monday() as i64))
            }
            Unit::Month => midnight(day.with_day(1).unwrap_or(day)),
        }
    }
    /// The start of the unit `n` units before the one starting at `t`.
    fn back(self, t: DateTime<Utc>, n: i64) -> DateTime<Utc> {
        match self {
            Unit::Minute => t - Duration::minutes(n),
            Unit::Hour => t - Duration::hours(n),
            Unit::Day => t - Duration::days(n),
            Unit::Week => t - Duration::weeks(n),
            Unit::Month => {
                let months = t.year() as i64 * 12 + t.month0() as i64 - n;
                NaiveDate::from_ymd_opt((months / 12) as i32, (months % 12) as u32 + 1, 1)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|x| x.and_utc())
                    .unwrap_or(t)
            }
        }
    }
}

/// `GET …/clicks` (`link_clicks`, newest unit first) and `…/clicks/summary`
/// (`total_clicks`): `unit` (default day), `units` (default -1: since the
/// link was made), `unit_reference` (default now). Human clicks, exact,
/// from the same counters as hop's stats.
async fn clicks(state: &AppState, link: &Link, raw: Option<&str>, summary: bool) -> Answer {
    let q: HashMap<String, String> = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let unit = match q.get("unit") {
        None => Unit::Day,
        Some(u) => Unit::parse(u)
            .ok_or_else(|| BitlyError::invalid("unit", "The value provided is invalid."))?,
    };
    let units: i64 = match q.get("units") {
        None => -1,
        Some(u) => u
            .parse::<i64>()
            .ok()
            .filter(|n| *n == -1 || (1..=MAX_BUCKETS).contains(n))
            .ok_or_else(|| BitlyError::invalid("units", "The value provided is invalid."))?,
    };
    let now = Utc::now();
    let reference = match q.get("unit_reference") {
        None => now,
        Some(r) => DateTime::parse_from_str(r, "%Y-%m-%dT%H:%M:%S%z")
            .or_else(|_| DateTime::parse_from_rfc3339(r))
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| BitlyError::invalid("unit_reference", "The value provided is invalid."))?,
    };
    // The units counted: the one holding the reference and the units - 1
    // before it; with -1, back to the one the link was made in.
    let last = unit.floor(reference);
    let first = if units == -1 {
        unit.floor(link.created_at.min(reference))
    } else {
        unit.back(last, units - 1)
    };
    let mut starts = vec![first];
    while let Some(&s) = starts.last() {
        let next = unit.back(s, -1);
        if next > last {
            break;
        }
        starts.push(next);
        if starts.len() as i64 > MAX_BUCKETS {
            return Err(BitlyError::invalid(
                "units",
                "Too many units; ask for fewer or a larger unit.",
            ));
        }
    }
    let end = unit.back(last, -1);
    let interval = match unit {
        Unit::Minute => Interval::Minute,
        Unit::Hour => Interval::Hour,
        Unit::Day | Unit::Week | Unit::Month => Interval::Day,
    };
    let sq = StatsQuery {
        range: TimeRange {
            from: first.timestamp_millis(),
            to: end.timestamp_millis(),
        },
        interval,
        tz: chrono_tz::UTC,
        include_bots: false,
        top: 1,
        minute_since: StatsQuery::minute_since_now(),
        now: now.timestamp_millis(),
    };
    if sq.bucket_estimate() > MAX_BUCKETS {
        return Err(BitlyError::invalid(
            "units",
            "Too many units; ask for fewer or a larger unit.",
        ));
    }
    let stats = link_stats(state.store.as_ref(), link.id, &sq).await?;
    let mut per: HashMap<i64, u64> = HashMap::new();
    for (start, n) in &stats.series {
        let at = DateTime::<Utc>::from_timestamp_millis(*start).unwrap_or_default();
        *per.entry(unit.floor(at).timestamp_millis()).or_default() += n;
    }
    let mut out = json!({
        "units": units,
        "unit": unit.name(),
        "unit_reference": bitly_time(reference),
    });
    if summary {
        out["total_clicks"] = json!(stats.total_clicks);
    } else {
        out["link_clicks"] = Value::Array(
            starts
                .iter()
                .rev()
                .map(|s| {
                    json!({
                        "clicks": per.get(&s.timestamp_millis()).copied().unwrap_or(0),
                        "date": bitly_time(*s),
                    })
                })
                .collect(),
        );
    }
    Ok(axum::Json(out).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn units_floor_and_step_as_bitly_counts_them() {
        let t = Utc.with_ymd_and_hms(2026, 3, 18, 13, 47, 12).unwrap();
        let s = |t: DateTime<Utc>| bitly_time(t);
        assert_eq!(s(Unit::Hour.floor(t)), "2026-03-18T13:00:00+0000");
        assert_eq!(s(Unit::Week.floor(t)), "2026-03-16T00:00:00+0000");
        assert_eq!(s(Unit::Month.floor(t)), "2026-03-01T00:00:00+0000");
        let m = Unit::Month.floor(t);
        assert_eq!(s(Unit::Month.back(m, 3)), "2025-12-01T00:00:00+0000");
        assert_eq!(s(Unit::Month.back(m, -1)), "2026-04-01T00:00:00+0000");
        assert_eq!(
            s(Unit::Day.back(Unit::Day.floor(t), 2)),
            "2026-03-16T00:00:00+0000"
        );
        assert_eq!(Unit::parse("fortnight"), None);
    }
}
