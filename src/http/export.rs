//! Raw clicks out: one link's as CSV (`/links/{slug}/clicks.csv`), and every
//! link's a key can see, streamed as CSV or NDJSON (`/clicks.csv`,
//! `/clicks.ndjson`).

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access;
use super::access::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{AppQuery, parse_bool};
use super::stats::{default_from, parse_instant, parse_range};
use crate::domain::EnrichedClick;
use crate::state::AppState;
use crate::store::{ExportCursor, LinkQuery, TimeRange};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Start, RFC 3339 (default: the link's creation).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub from: Option<String>,
    /// End, RFC 3339, exclusive (default: now).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub to: Option<String>,
    /// Include bots' clicks (default false).
    #[param(value_type = Option<bool>)]
    pub include_bots: Option<String>,
}

const CSV_HEADER: [&str; 16] = [
    "event_id",
    "time",
    "country",
    "city",
    "browser",
    "os",
    "device",
    "bot",
    "referrer_host",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "visitor",
    "region",
    "rule",
    "variant",
];
const EXPORT_PAGE: usize = 5000;

/// A cell that a spreadsheet will not run as a formula (CSV injection, as
/// OWASP describes it): text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return gets a leading `'`, which spreadsheets show as text.
/// Values come from visitors (UTM parameters, referrers, user agents).
pub fn spreadsheet_safe(value: &str) -> Cow<'_, str> {
    match value.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{value}")),
        _ => Cow::Borrowed(value),
    }
}

/// Clicks as CSV rows (with the header first when `header`); with a slug,
/// every row starts with it (the export of many links).
fn csv_rows(clicks: &[EnrichedClick], header: bool, slug: Option<&str>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if header {
        let slug_column = slug.map(|_| "slug");
        let _ = w.write_record(slug_column.iter().chain(CSV_HEADER.iter()));
    }
    for c in clicks {
        fn text(v: Option<&str>) -> Cow<'_, str> {
            spreadsheet_safe(v.unwrap_or(""))
        }
        let row = [
            Cow::Owned(c.event_id.to_string()),
            Cow::Owned(rfc3339_ms(c.at)),
            text(c.country.as_deref()),
            text(c.city.as_deref()),
            text(Some(&c.browser)),
            text(Some(&c.os)),
            Cow::Borrowed(c.device.as_str()),
            Cow::Borrowed(if c.bot { "true" } else { "false" }),
            text(c.referrer_host.as_deref()),
            text(c.utm.source.as_deref()),
            text(c.utm.medium.as_deref()),
            text(c.utm.campaign.as_deref()),
            Cow::Owned(visitor_hex(c.visitor)),
            text(Some(&c.region)),
            text(c.route.rule.as_deref()),
            text(c.route.variant.as_deref()),
        ];
        let slug_cell = slug.map(|s| spreadsheet_safe(s));
        let _ = w.write_record(
            slug_cell
                .iter()
                .chain(row.iter())
                .map(|cell| cell.as_bytes()),
        );
    }
    w.into_inner().unwrap_or_default()
}

fn rfc3339_ms(at: i64) -> String {
    DateTime::from_timestamp_millis(at)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn visitor_hex(visitor: i64) -> String {
    format!("{visitor:016x}")
}

#[utoipa::path(get, operation_id = "export_link_clicks", path = "/links/{slug}/clicks.csv", tag = "stats",
    params(("slug" = String, Path, description = "The link's slug"), ExportParams),
    responses(
        (status = 200, description = "Raw clicks as CSV, oldest first", content_type = "text/csv", body = String),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn export_clicks(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    AppQuery(params): AppQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    let range = parse_range(&link, params.from.as_deref(), params.to.as_deref())?;
    let bots = parse_bool("include_bots", params.include_bots.as_deref())?;
    // The first page is read before answering, so a store failure is a
    // proper error rather than a truncated file.
    let first = state
        .store
        .export_clicks(link.id, range, bots, None, EXPORT_PAGE)
        .await?;
    let store = state.store.clone();
    let id = link.id;
    let stream = futures::stream::unfold(
        (Some(first), None::<ExportCursor>, true),
        move |(page, after, header)| {
            let store = store.clone();
            async move {
                let page = match page {
                    Some(p) => p,
                    None => match store
                        .export_clicks(id, range, bots, after, EXPORT_PAGE)
                        .await
                    {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::error!(error = %e, "export failed mid-stream");
                            return Some((
                                Err(std::io::Error::other(e.to_string())),
                                (Some(Vec::new()), None, false),
                            ));
                        }
                    },
                };
                if page.is_empty() && !header {
                    return None;
                }
                let next = page.last().map(|c| (c.at, c.event_id));
                let done = page.len() < EXPORT_PAGE;
                let bytes = csv_rows(&page, header, None);
                let state = if done {
                    (Some(Vec::new()), None, false)
                } else {
                    (None, next, false)
                };
                Some((Ok::<_, std::io::Error>(bytes), state))
            }
        },
    );
    let filename = format!("attachment; filename=\"{}-clicks.csv\"", link.slug);
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (CONTENT_DISPOSITION, filename),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BulkExportParams {
    /// Start, RFC 3339 (default: the start of the UTC day each link was
    /// created, so every click).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub from: Option<String>,
    /// End, RFC 3339, exclusive (default: when the export started).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub to: Option<String>,
    /// Include bots' clicks (default false).
    #[param(value_type = Option<bool>)]
    pub include_bots: Option<String>,
    /// Only the links with this tag (default: every link the key can see).
    pub tag: Option<String>,
}

/// One click of an NDJSON export: a line holding one such object. The
/// fields are the CSV export's, under the same names, plus the link's
/// slug; absent values are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedClick<'a> {
    pub slug: &'a str,
    /// The click's event id (a UUIDv7): stable, unique, what webhooks and
    /// replays name the click by.
    #[schema(value_type = String, format = "uuid")]
    pub event_id: uuid::Uuid,
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    pub country: Option<&'a str>,
    pub city: Option<&'a str>,
    pub browser: &'a str,
    pub os: &'a str,
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub device: &'a str,
    pub bot: bool,
    pub referrer_host: Option<&'a str>,
    pub utm_source: Option<&'a str>,
    pub utm_medium: Option<&'a str>,
    pub utm_campaign: Option<&'a str>,
    /// The day's salted visitor hash, 16 hex digits (the same visitor on
    /// the same UTC day and link has the same value).
    pub visitor: String,
    pub region: &'a str,
    /// The smart-link rule that sent the visit (`default`, `fallback` or a
    /// rule id); `null` for a link without rules.
    pub rule: Option<&'a str>,
    /// The A/B variant the visit went to, if any.
    pub variant: Option<&'a str>,
}

impl<'a> ExportedClick<'a> {
    fn of(slug: &'a str, c: &'a EnrichedClick) -> Self {
        ExportedClick {
            slug,
            event_id: c.event_id,
            time: rfc3339_ms(c.at),
            country: c.country.as_deref(),
            city: c.city.as_deref(),
            browser: &c.browser,
            os: &c.os,
            device: c.device.as_str(),
            bot: c.bot,
            referrer_host: c.referrer_host.as_deref(),
            utm_source: c.utm.source.as_deref(),
            utm_medium: c.utm.medium.as_deref(),
            utm_campaign: c.utm.campaign.as_deref(),
            visitor: visitor_hex(c.visitor),
            region: &c.region,
            rule: c.route.rule.as_deref(),
            variant: c.route.variant.as_deref(),
        }
    }
}

fn ndjson_rows(clicks: &[EnrichedClick], slug: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(clicks.len() * 320);
    for c in clicks {
        // Serialising borrowed strings into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &ExportedClick::of(slug, c));
        out.push(b'\n');
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Ndjson,
}

/// Links read per page while exporting.
const LINK_PAGE: usize = 200;
/// Encoded pages held between the reader and a slow client: what bounds an
/// export's memory whatever its size.
const PAGES_IN_FLIGHT: usize = 4;

#[utoipa::path(get, operation_id = "export_clicks_csv", path = "/clicks.csv", tag = "stats",
    params(BulkExportParams),
    responses(
        (status = 200, description = "Raw clicks of every link the key can see (or of one tag) as CSV: \
            the per-link export's columns with the link's `slug` first. Grouped by link, newest link \
            first; each link's clicks oldest first. Streamed.", content_type = "text/csv", body = String),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn export_clicks_csv(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(params): AppQuery<BulkExportParams>,
) -> Result<Response, ApiError> {
    export_all(state, caller, params, Format::Csv).await
}

#[utoipa::path(get, operation_id = "export_clicks_ndjson", path = "/clicks.ndjson", tag = "stats",
    params(BulkExportParams),
    responses(
        (status = 200, description = "Raw clicks of every link the key can see (or of one tag), one \
            JSON object per line. Grouped by link, newest link first; each link's clicks oldest \
            first. Streamed.", content_type = "application/x-ndjson", body = ExportedClick),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn export_clicks_ndjson(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(params): AppQuery<BulkExportParams>,
) -> Result<Response, ApiError> {
    export_all(state, caller, params, Format::Ndjson).await
}

/// Streams the clicks of every link `caller`'s key sees. A task reads a
/// page of links, then each link's clicks a page at a time, and hands the
/// encoded pages to the response through a small channel: memory stays at
/// a few pages whatever the export's size, and a client that goes away
/// ends the task at its next page.
async fn export_all(
    state: AppState,
    caller: Caller,
    params: BulkExportParams,
    format: Format,
) -> Result<Response, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let to = match params.to.as_deref() {
        Some(s) => parse_instant("to", s)?,
        None => Utc::now().timestamp_millis() + 1,
    };
    let from = params
        .from
        .as_deref()
        .map(|s| parse_instant("from", s))
        .transpose()?;
    if from.is_some_and(|f| f > to) {
        return Err(ApiError::bad_request(
            "invalid_range",
            "from must not be after to",
        ));
    }
    let bots = parse_bool("include_bots", params.include_bots.as_deref())?;
    let mut query = LinkQuery {
        owner: if key.admin { None } else { Some(key.id) },
        tag: params.tag.filter(|t| !t.is_empty()),
        text: None,
        before: None,
        limit: LINK_PAGE,
    };
    // The first page of links is read before answering, so a store that is
    // down gets a proper error rather than an empty file.
    let first = state.store.list_links(&query).await?;
    let store = state.store.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(PAGES_IN_FLIGHT);
    tokio::spawn(async move {
        let send = |bytes| tx.send(Ok(bytes));
        if format == Format::Csv && send(csv_rows(&[], true, Some(""))).await.is_err() {
            return;
        }
        let mut links = first;
        loop {
            for link in &links {
                let range = TimeRange {
                    from: from.unwrap_or_else(|| default_from(link, to)),
                    to,
                };
                let mut after = None;
                loop {
                    let page = match store
                        .export_clicks(link.id, range, bots, after, EXPORT_PAGE)
                        .await
                    {
                        Ok(page) => page,
                        Err(e) => {
                            tracing::error!(error = %e, "export failed mid-stream");
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                            return;
                        }
                    };
                    let slug = link.slug.as_str();
                    let bytes = match format {
                        Format::Csv => csv_rows(&page, false, Some(slug)),
                        Format::Ndjson => ndjson_rows(&page, slug),
                    };
                    if !bytes.is_empty() && send(bytes).await.is_err() {
                        return;
                    }
                    if page.len() < EXPORT_PAGE {
                        break;
                    }
                    after = page.last().map(|c| (c.at, c.event_id));
                }
            }
            if links.len() < LINK_PAGE {
                return;
            }
            query.before = links.last().map(|l| l.id);
            links = match store.list_links(&query).await {
                Ok(links) => links,
                Err(e) => {
                    tracing::error!(error = %e, "export failed mid-stream");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let (content_type, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "clicks.csv"),
        Format::Ndjson => ("application/x-ndjson", "clicks.ndjson"),
    };
    Ok((
        [
            (CONTENT_TYPE, content_type.to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
