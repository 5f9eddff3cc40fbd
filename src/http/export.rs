//! Raw clicks out, streamed as CSV or NDJSON: one link's
//! (`/links/{slug}/clicks.csv`, `.ndjson`) and those of every link a key
//! can see (`/clicks.csv`, `/clicks.ndjson`).

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::access;
use super::access::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{AppQuery, parse_bool};
use super::qr::BinaryBody;
use super::stats::{default_from, parse_bounds, parse_range};
use crate::domain::{EnrichedClick, ExportedClick, Link, rfc3339_ms, visitor_hex};
use crate::state::AppState;
use crate::store::{LinkQuery, Store, StoreError, TimeRange};
use futures::StreamExt;

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
    export_link(state, caller, slug, params, Format::Csv).await
}

#[utoipa::path(get, operation_id = "export_link_clicks_ndjson", path = "/links/{slug}/clicks.ndjson", tag = "stats",
    params(("slug" = String, Path, description = "The link's slug"), ExportParams),
    responses(
        (status = 200, description = "Raw clicks, one JSON object per line, oldest first. Sent as \
            application/x-ndjson (application/octet-stream is listed for generators that only \
            read generic binary bodies).",
            content((ExportedClick = "application/x-ndjson"), (inline(BinaryBody) = "application/octet-stream"))),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn export_clicks_ndjson_of_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    AppQuery(params): AppQuery<ExportParams>,
) -> Result<Response, ApiError> {
    export_link(state, caller, slug, params, Format::Ndjson).await
}

async fn export_link(
    state: AppState,
    caller: Caller,
    slug: String,
    params: ExportParams,
    format: Format,
) -> Result<Response, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    let range = parse_range(&link, params.from.as_deref(), params.to.as_deref())?;
    let bots = parse_bool("include_bots", params.include_bots.as_deref())?;
    let filename = match format {
        Format::Csv => format!("{}-clicks.csv", link.slug),
        Format::Ndjson => format!("{}-clicks.ndjson", link.slug),
    };
    let export = Export {
        format,
        slug_column: false,
        from: Some(range.from),
        to: range.to,
        bots,
    };
    stream(&state, export, Links::One(Box::new(link)), &filename).await
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
            first. Streamed. Sent as application/x-ndjson (application/octet-stream is listed for \
            generators that only read generic binary bodies).",
            content((ExportedClick = "application/x-ndjson"), (inline(BinaryBody) = "application/octet-stream"))),
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

/// The clicks of every link `caller`'s key sees (or of one tag).
async fn export_all(
    state: AppState,
    caller: Caller,
    params: BulkExportParams,
    format: Format,
) -> Result<Response, ApiError> {
    let key = access::api_key(&state, &caller).await?;
    let (from, to) = parse_bounds(params.from.as_deref(), params.to.as_deref())?;
    let bots = parse_bool("include_bots", params.include_bots.as_deref())?;
    let query = LinkQuery {
        owner: if key.admin { None } else { Some(key.id) },
        tag: params.tag.filter(|t| !t.is_empty()),
        text: None,
        before: None,
        limit: LINK_PAGE,
    };
    let export = Export {
        format,
        slug_column: true,
        from,
        to,
        bots,
    };
    let filename = match format {
        Format::Csv => "clicks.csv",
        Format::Ndjson => "clicks.ndjson",
    };
    stream(&state, export, Links::Listed(query), filename).await
}

/// What an export writes.
#[derive(Debug, Clone, Copy)]
struct Export {
    format: Format,
    /// CSV: a `slug` column first (NDJSON objects always name their link).
    slug_column: bool,
    /// `None`: from the start of each link's creation day.
    from: Option<i64>,
    to: i64,
    bots: bool,
}

/// Whose clicks an export holds.
enum Links {
    One(Box<Link>),
    /// Every link of this listing, a page at a time.
    Listed(LinkQuery),
}

type Chunk = Result<Vec<u8>, StoreError>;

/// Streams an export. A task reads a page of links, then each link's
/// clicks a page at a time, and hands the encoded pages to the response
/// through a small channel: memory stays at a few pages whatever the
/// export's size, and a client that goes away ends the task at its next
/// page. The answer waits for the first page, so a store that is down gets
/// a proper error rather than a truncated file.
async fn stream(
    state: &AppState,
    export: Export,
    links: Links,
    filename: &str,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(PAGES_IN_FLIGHT);
    tokio::spawn(async move {
        if let Err(e) = produce(&*store, export, links, &tx).await {
            tracing::error!(error = %e, "export failed");
            let _ = tx.send(Err(e)).await;
        }
    });
    let first = match rx.recv().await {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => return Err(e.into()),
        None => Vec::new(),
    };
    let rest = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    let content_type = match export.format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Ndjson => "application/x-ndjson",
    };
    Ok((
        [
            (CONTENT_TYPE, content_type.to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The export task: every page, encoded, into `tx` (the CSV header with
/// the first). Returns early, without error, when the client is gone.
async fn produce(
    store: &dyn Store,
    export: Export,
    links: Links,
    tx: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<(), StoreError> {
    let slug_column = export.slug_column.then_some("");
    let mut pending = match export.format {
        Format::Csv => csv_rows(&[], true, slug_column),
        Format::Ndjson => Vec::new(),
    };
    let (mut page_of_links, mut query) = match links {
        Links::One(link) => (vec![*link], None),
        Links::Listed(query) => (store.list_links(&query).await?, Some(query)),
    };
    loop {
        for link in &page_of_links {
            let range = TimeRange {
                from: export.from.unwrap_or_else(|| default_from(link, export.to)),
                to: export.to,
            };
            let mut after = None;
            loop {
                let page = store
                    .export_clicks(link.id, range, export.bots, after, EXPORT_PAGE)
                    .await?;
                let slug = link.slug.as_str();
                match export.format {
                    Format::Csv => {
                        pending.extend(csv_rows(&page, false, export.slug_column.then_some(slug)))
                    }
                    Format::Ndjson => pending.extend(ndjson_rows(&page, slug)),
                }
                if !pending.is_empty() && tx.send(Ok(std::mem::take(&mut pending))).await.is_err() {
                    return Ok(());
                }
                if page.len() < EXPORT_PAGE {
                    break;
                }
                after = page.last().map(|c| (c.at, c.event_id));
            }
        }
        let Some(q) = query.as_mut() else { break };
        if page_of_links.len() < q.limit {
            break;
        }
        q.before = page_of_links.last().map(|l| l.id);
        page_of_links = store.list_links(q).await?;
    }
    // An export without a click is its header (or nothing).
    let _ = tx.send(Ok(pending)).await;
    Ok(())
}
