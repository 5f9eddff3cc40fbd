//! `/api/v1/links/{slug}/stats`, and `/clicks` (purge).

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access;
use super::access::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{AppQuery, bounded_param, parse_bool};
use crate::domain::{Dimension, Link};
use crate::state::AppState;
use crate::stats::{Bucketer, Interval, MAX_BUCKETS, StatsQuery, link_stats};
use crate::store::TimeRange;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Start, RFC 3339 (default: the start of the UTC day the link was
    /// created). Honoured to the minute (to the quarter hour when older than
    /// two days); the answer's `from` says what was counted.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub from: Option<String>,
    /// End, RFC 3339, exclusive (default: now). Raised to the next whole
    /// minute (quarter hour when older than two days); the answer's `to`
    /// says what was counted.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub to: Option<String>,
    /// `minute`, `hour` or `day` (default: chosen from the range).
    #[param(value_type = Option<IntervalParam>)]
    pub interval: Option<String>,
    /// IANA time zone of the buckets (default UTC), e.g. `Europe/Paris`.
    #[param(value_type = Option<TimeZone>)]
    pub tz: Option<String>,
    /// Count bots too (default false).
    #[param(value_type = Option<bool>)]
    pub include_bots: Option<String>,
    /// Entries per breakdown, 1–100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub top: Option<String>,
    /// Only the clicks that went to this variant of an A/B split (its id):
    /// every number of the answer (clicks, unique visitors, series,
    /// breakdowns) is that variant's.
    #[param(pattern = r"^[a-z0-9_-]{1,32}$")]
    pub variant: Option<String>,
}

/// A time zone of the stats buckets: every IANA name the server knows
/// (case-sensitive). The document lists them all, with `x-enum-varnames`
/// giving each a distinct identifier: generators otherwise derive the
/// identifier from the name, and `GMT+0`, `GMT-0` and `GMT0` (or
/// `Etc/GMT+1` and `Etc/GMT-1`) would become one.
pub struct TimeZone;

impl utoipa::PartialSchema for TimeZone {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = || chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
        let identifiers = names().map(tz_identifier).collect::<Vec<_>>();
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some("IANA time zone name, e.g. `Europe/Paris`"))
            .enum_values(Some(names()))
            .extensions(Some(
                utoipa::openapi::extensions::ExtensionsBuilder::new()
                    .add("x-enum-varnames", identifiers)
                    .build(),
            ))
            .into()
    }
}

impl ToSchema for TimeZone {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TimeZone")
    }
}

/// A zone name as a code identifier: `Etc/GMT+1` is `ETC_GMT_PLUS_1`,
/// `America/Port-au-Prince` is `AMERICA_PORT_AU_PRINCE`; the sign of an
/// offset is spelled out, since it is all that tells some zones apart.
fn tz_identifier(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        let digit_next = chars.peek().is_some_and(char::is_ascii_digit);
        match c {
            '+' => out.push_str("_PLUS_"),
            '-' if digit_next => out.push_str("_MINUS_"),
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
            _ => out.push('_'),
        }
    }
    out
}

/// Bucket size of a time series (`Interval` in the document, where the
/// `Param` suffix would only leak into generated clients).
#[derive(ToSchema)]
#[schema(as = Interval, rename_all = "lowercase")]
#[allow(dead_code)] // documents the accepted values
pub enum IntervalParam {
    Minute,
    Hour,
    Day,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    /// Bucket start in the requested time zone.
    pub start: String,
    pub clicks: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    pub value: String,
    pub clicks: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsBody {
    pub slug: String,
    /// Start of the range counted: `from` as asked, floored to the minute
    /// (to the quarter hour when older than two days).
    pub from: DateTime<Utc>,
    /// End of the range counted, exclusive: `to` as asked, raised to the
    /// next whole minute (quarter hour when older than two days).
    pub to: DateTime<Utc>,
    pub interval: String,
    pub tz: String,
    pub include_bots: bool,
    /// The variant asked for (`variant=`): the answer is its clicks only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub total_clicks: u64,
    pub unique_visitors: u64,
    pub series: Vec<Bucket>,
    /// Breakdowns: countries, cities, referrers, browsers, oses, devices,
    /// utm_sources, utm_mediums, utm_campaigns, and for smart links rules
    /// (the rule that sent each click: its id, `default` when none held,
    /// `fallback` for clicks sent to the fallback URL) and variants (the
    /// variant of a split).
    pub top: BTreeMap<String, Vec<Entry>>,
}

pub fn dimension_key(d: Dimension) -> &'static str {
    match d {
        Dimension::Country => "countries",
        Dimension::City => "cities",
        Dimension::Referrer => "referrers",
        Dimension::Browser => "browsers",
        Dimension::Os => "oses",
        Dimension::Device => "devices",
        Dimension::UtmSource => "utm_sources",
        Dimension::UtmMedium => "utm_mediums",
        Dimension::UtmCampaign => "utm_campaigns",
        Dimension::Rule => "rules",
        Dimension::Variant => "variants",
    }
}

fn parse_instant(name: &str, s: &str) -> Result<i64, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request("invalid_range", format!("{name} must be an RFC 3339 time"))
        })
}

/// Where a range without `from` starts: the start of the UTC day the link
/// was made. No click is older, and a day boundary reads one rollup row
/// where the creation minute would read the first minutes one by one.
pub(super) fn default_from(link: &Link, to: i64) -> i64 {
    crate::store::Resolution::Day
        .floor(link.created_at.timestamp_millis())
        .min(to - 1)
}

/// A query's `from` (if given) and `to` (default: now), `from` not after
/// `to`; `from == to` is a valid, empty range.
pub(super) fn parse_bounds(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<i64>, i64), ApiError> {
    let to = match to {
        Some(s) => parse_instant("to", s)?,
        None => Utc::now().timestamp_millis() + 1,
    };
    let from = from.map(|s| parse_instant("from", s)).transpose()?;
    if from.is_some_and(|f| f > to) {
        return Err(ApiError::bad_request(
            "invalid_range",
            "from must not be after to",
        ));
    }
    Ok((from, to))
}

/// `[from, to)` of one link: [`parse_bounds`], from the start of its
/// creation day when no `from` is given.
pub(super) fn parse_range(
    link: &Link,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<TimeRange, ApiError> {
    let (from, to) = parse_bounds(from, to)?;
    Ok(TimeRange {
        from: from.unwrap_or_else(|| default_from(link, to)),
        to,
    })
}

/// Whether `v` can name a variant (`[a-z0-9_-]{1,32}`).
fn is_variant_id(v: &str) -> bool {
    (1..=crate::domain::rules::MAX_ID_LEN).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn parse_query(link: &Link, p: &StatsParams) -> Result<StatsQuery, ApiError> {
    let range = parse_range(link, p.from.as_deref(), p.to.as_deref())?;
    let interval = match p.interval.as_deref() {
        None => Interval::auto(range),
        Some(s) => Interval::parse(s).ok_or_else(|| {
            ApiError::bad_request("invalid_interval", "interval must be minute, hour or day")
        })?,
    };
    let tz: Tz = p.tz.as_deref().unwrap_or("UTC").parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_timezone",
            "tz must be an IANA time zone, e.g. Europe/Paris",
        )
    })?;
    let top = bounded_param("top", p.top.as_deref(), 10, 1..=100)?;
    let now = Utc::now().timestamp_millis();
    let q = StatsQuery {
        range,
        interval,
        tz,
        include_bots: parse_bool("include_bots", p.include_bots.as_deref())?,
        top,
        minute_since: now - crate::stats::MINUTE_WINDOW_MS,
        now,
    };
    if q.bucket_estimate() > MAX_BUCKETS {
        return Err(ApiError::bad_request(
            "too_many_buckets",
            format!(
                "this range has more than {MAX_BUCKETS} {} buckets; use a coarser interval",
                interval.as_str()
            ),
        ));
    }
    Ok(q)
}

#[utoipa::path(get, operation_id = "get_link_stats", path = "/links/{slug}/stats", tag = "stats",
    params(("slug" = String, Path, description = "The link's slug"), StatsParams),
    responses(
        (status = 200, description = "Exact stats from rollups", body = StatsBody),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn link_stats_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    AppQuery(params): AppQuery<StatsParams>,
) -> Result<Json<StatsBody>, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    let q = parse_query(&link, &params)?;
    // A variant's clicks are counted under its segment too.
    let subject = match params.variant.as_deref() {
        None => link.id,
        Some(v) if is_variant_id(v) => link.id.variant_segment(v),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_variant",
                "variant must be a variant id: 1 to 32 of a-z, 0-9, _ and -",
            ));
        }
    };
    let started = std::time::Instant::now();
    let stats = link_stats(state.store.as_ref(), subject, &q).await?;
    metrics::histogram!(crate::metrics::names::STORE_DURATION, "op" => "stats")
        .record(started.elapsed().as_secs_f64());
    let bucketer = Bucketer {
        tz: q.tz,
        interval: q.interval,
    };
    Ok(Json(StatsBody {
        slug: link.slug.to_string(),
        from: DateTime::from_timestamp_millis(stats.range.from).unwrap_or_default(),
        to: DateTime::from_timestamp_millis(stats.range.to).unwrap_or_default(),
        interval: q.interval.as_str().to_owned(),
        tz: q.tz.name().to_owned(),
        include_bots: q.include_bots,
        variant: params.variant.clone(),
        total_clicks: stats.total_clicks,
        unique_visitors: stats.unique_visitors,
        series: stats
            .series
            .iter()
            .map(|(start, clicks)| Bucket {
                start: bucketer.format(*start),
                clicks: *clicks,
            })
            .collect(),
        top: stats
            .top
            .into_iter()
            .map(|(dim, entries)| {
                let entries = entries
                    .into_iter()
                    .map(|(value, clicks)| Entry { value, clicks })
                    .collect();
                (dimension_key(dim).to_owned(), entries)
            })
            .collect(),
    }))
}

#[utoipa::path(delete, operation_id = "purge_link_clicks", path = "/links/{slug}/clicks", tag = "stats",
    params(("slug" = String, Path, description = "The link's slug")),
    responses(
        (status = 204, description = "Every click of the link deleted, raw and rolled up; the link stays"),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn purge_clicks(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    let n = state.store.purge_clicks(link.id).await?;
    tracing::info!(link.slug = %link.slug, clicks = n, "clicks purged");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generators name enum members after `x-enum-varnames`: one clash and
    /// a client fails to generate (or silently loses a zone).
    #[test]
    fn every_time_zone_has_its_own_identifier() {
        let mut seen = std::collections::HashMap::new();
        for tz in chrono_tz::TZ_VARIANTS {
            let id = tz_identifier(tz.name());
            assert!(
                id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{id}"
            );
            // Compared without separators, as some generators re-case them.
            if let Some(other) = seen.insert(id.replace('_', ""), tz.name()) {
                panic!("{} and {other} share the identifier {id}", tz.name());
            }
        }
        assert_eq!(tz_identifier("Etc/GMT+1"), "ETC_GMT_PLUS_1");
        assert_eq!(tz_identifier("Etc/GMT-1"), "ETC_GMT_MINUS_1");
        assert_eq!(
            tz_identifier("America/Port-au-Prince"),
            "AMERICA_PORT_AU_PRINCE"
        );
    }
}
