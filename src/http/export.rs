//! Raw clicks out: one link's clicks as CSV (`/links/{slug}/clicks.csv`).

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::Deserialize;
use utoipa::IntoParams;

use super::access;
use super::access::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{AppQuery, parse_bool};
use super::stats::parse_range;
use crate::domain::EnrichedClick;
use crate::state::AppState;
use crate::store::ExportCursor;

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

fn csv_rows(clicks: &[EnrichedClick], header: bool) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if header {
        let _ = w.write_record(CSV_HEADER);
    }
    for c in clicks {
        let time = DateTime::from_timestamp_millis(c.at)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        fn text(v: Option<&str>) -> Cow<'_, str> {
            spreadsheet_safe(v.unwrap_or(""))
        }
        let row = [
            Cow::Owned(c.event_id.to_string()),
            Cow::Owned(time),
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
            Cow::Owned(format!("{:016x}", c.visitor)),
            text(Some(&c.region)),
            text(c.route.rule.as_deref()),
            text(c.route.variant.as_deref()),
        ];
        let _ = w.write_record(row.iter().map(|cell| cell.as_bytes()));
    }
    w.into_inner().unwrap_or_default()
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
                let bytes = csv_rows(&page, header);
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
