//! `GET /api/v1/links/{slug}/live`: a server-sent events stream of the link's
//! clicks as they are stored, and of its running totals.
//!
//! Events, in order:
//! - `totals` first (and after clicks, at most every 250 ms, from a store
//!   read the link's streams share): all-time
//!   `clicks` (humans) and `clicks_with_bots`, read from the store, so they
//!   are exact whatever the client missed;
//! - `resync` when the client reconnects (it sent `Last-Event-ID`) or fell
//!   behind: clicks may have been missed, re-read the stats;
//! - `click` per stored click, with the node's increasing sequence number as
//!   the event id.
//!
//! Streams are capped per link, per client and per node (see
//! [`crate::slots`]): beyond the first two a 429, beyond the last a 503.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use futures::{FutureExt, Stream};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use utoipa::{IntoParams, ToSchema};

use super::access::{self, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{AppQuery, PeerAddr, bounded_param, parse_bool};
use super::limits::client_key;
use super::stats::dimension_key;
use crate::clicks::{ClickTotals, LiveClick};
use crate::domain::{Dimension, EnrichedClick, LinkId};
use crate::metrics::names;
use crate::slots::{Full, LiveSlot};
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Shortest gap between two `totals` events of one stream.
const TOTALS_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveTotals {
    /// All-time human clicks.
    pub clicks: u64,
    /// All-time clicks including bots.
    pub clicks_with_bots: u64,
}

/// A stored click event.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveClickBody {
    /// The node's sequence number of this event.
    pub seq: u64,
    #[serde(flatten)]
    pub click: ClickBody,
}

/// One click, enriched.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClickBody {
    /// The click's event id (as in the CSV export): the same click seen
    /// twice (on load and live) has the same id.
    pub event_id: String,
    /// RFC 3339, milliseconds.
    pub at: String,
    pub bot: bool,
    pub country: Option<String>,
    pub city: Option<String>,
    pub browser: String,
    pub os: String,
    pub device: String,
    pub referrer: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub region: String,
    /// Smart links: the rule that sent the visit (`default`: none held,
    /// `fallback`: sent to the fallback URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Smart links: the variant of a split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The breakdown value this click adds to, per breakdown of the stats
    /// answer (`countries`, `cities`, …): the same keys the stats use.
    pub breakdown: BTreeMap<String, String>,
}

impl From<&LiveClick> for LiveClickBody {
    fn from(l: &LiveClick) -> Self {
        LiveClickBody {
            seq: l.seq,
            click: ClickBody::from(&l.click),
        }
    }
}

impl From<&EnrichedClick> for ClickBody {
    fn from(c: &EnrichedClick) -> Self {
        ClickBody {
            event_id: c.event_id.to_string(),
            at: DateTime::from_timestamp_millis(c.at)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            bot: c.bot,
            country: c.country.clone(),
            city: c.city.clone(),
            browser: c.browser.clone(),
            os: c.os.clone(),
            device: c.device.as_str().to_owned(),
            referrer: c.referrer_host.clone(),
            utm_source: c.utm.source.clone(),
            utm_medium: c.utm.medium.clone(),
            utm_campaign: c.utm.campaign.clone(),
            region: c.region.clone(),
            rule: c.route.rule.clone(),
            variant: c.route.variant.clone(),
            breakdown: Dimension::ALL
                .iter()
                .filter_map(|d| Some((dimension_key(*d).to_owned(), d.value_of(c)?)))
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentParams {
    /// How many, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Include bots' clicks (default false).
    #[param(value_type = Option<bool>)]
    pub include_bots: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecentClicks {
    /// Newest first.
    pub clicks: Vec<ClickBody>,
}

/// The link's latest stored clicks, newest first: what the dashboard's feed
/// shows on load, before live ones arrive (raw clicks, so none older than
/// the raw-click retention).
#[utoipa::path(get, operation_id = "get_recent_clicks", path = "/links/{slug}/clicks/recent", tag = "stats",
    params(("slug" = String, Path, description = "The link's slug"), RecentParams),
    responses(
        (status = 200, description = "The latest clicks, newest first", body = RecentClicks),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn recent_clicks(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    AppQuery(params): AppQuery<RecentParams>,
) -> Result<Json<RecentClicks>, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    let limit = bounded_param("limit", params.limit.as_deref(), 20, 1..=100)?;
    let include_bots = parse_bool("include_bots", params.include_bots.as_deref())?;
    let clicks = state
        .store
        .recent_clicks(link.id, include_bots, limit)
        .await?;
    Ok(Json(RecentClicks {
        clicks: clicks.iter().map(ClickBody::from).collect(),
    }))
}

/// One read of one row per bot flag (`link_totals`), whatever the clicks.
async fn read_totals(store: &dyn Store, link: LinkId) -> Result<ClickTotals, StoreError> {
    store.link_totals(link).await
}

impl From<ClickTotals> for LiveTotals {
    fn from(t: ClickTotals) -> LiveTotals {
        LiveTotals {
            clicks: t.humans,
            clicks_with_bots: t.with_bots,
        }
    }
}

/// `link`'s totals from a store read started at or after `since` (so that
/// it counts every click the stream learnt of by then), shared with the
/// link's other streams; None if the read failed.
async fn totals_since(state: &AppState, link: LinkId, since: Instant) -> Option<LiveTotals> {
    let store = state.store.clone();
    let read = move || {
        async move {
            read_totals(store.as_ref(), link)
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "reading live totals failed"))
                .ok()
        }
        .boxed()
    };
    state
        .live_totals
        .read(link, since, read)
        .await
        .map(LiveTotals::from)
}

fn totals_event(t: &LiveTotals) -> Event {
    Event::default()
        .event("totals")
        .json_data(t)
        .unwrap_or_default()
}

#[utoipa::path(get, operation_id = "stream_link_clicks", path = "/links/{slug}/live", tag = "stats",
    params(("slug" = String, Path, description = "The link's slug"),
        ("Last-Event-ID" = Option<String>, Header, description = "Sent by a reconnecting client")),
    responses(
        (status = 200, description = "text/event-stream of `totals` (LiveTotals), `click` (LiveClickBody) and `resync` events", content_type = "text/event-stream", body = String),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
        (status = 429, description = "Too many live streams open for this link or from this client (`too_many_streams`), or rate limited", body = ErrorBody),
        (status = 503, description = "This node has as many live streams open as it serves (`too_many_streams`)", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn live_clicks(
    State(state): State<AppState>,
    caller: Caller,
    PeerAddr(peer): PeerAddr,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let link = access::link(&state, &caller, &slug).await?;
    let client = client_key(&state, peer, &headers);
    let slot = match state.live_slots.take(link.id, &client) {
        Ok(slot) => slot,
        Err(full) => return Ok(streams_full(full)),
    };
    // Subscribe before reading the totals, so no click falls in between.
    let rx = state.live.subscribe();
    let first = LiveTotals::from(read_totals(state.store.as_ref(), link.id).await?);
    let resumed = headers.contains_key("last-event-id");
    let (tx, out) = mpsc::channel::<Event>(256);
    tokio::spawn(feed(state.clone(), link.id, rx, tx, first, resumed, slot));
    let stream = events(out);
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    // Proxies must not buffer the stream.
    res.headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static"));
    Ok(res)
}

/// The answer when a cap on open streams is reached. Streams end only when
/// closed, so the client is told to wait a little before it tries again.
fn streams_full(full: Full) -> Response {
    let (status, message) = match full {
        Full::Link => (
            StatusCode::TOO_MANY_REQUESTS,
            "this link has as many live streams open as it may; close one first",
        ),
        Full::Client => (
            StatusCode::TOO_MANY_REQUESTS,
            "your address has as many live streams open as it may; close one first",
        ),
        Full::Node => (
            StatusCode::SERVICE_UNAVAILABLE,
            "this server has as many live streams open as it serves; try again later",
        ),
    };
    let mut res = ApiError::new(status, "too_many_streams", message).into_response();
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

fn events(mut rx: mpsc::Receiver<Event>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|e| e.map(Ok)))
}

/// Forwards one link's clicks to one client until it goes away or the
/// server shuts down; its place among the open streams (`_slot`) is given
/// back then.
async fn feed(
    state: AppState,
    link: LinkId,
    mut rx: broadcast::Receiver<std::sync::Arc<LiveClick>>,
    tx: mpsc::Sender<Event>,
    first: LiveTotals,
    resumed: bool,
    _slot: LiveSlot,
) {
    let gauge = metrics::gauge!(names::LIVE_STREAMS);
    gauge.increment(1.0);
    let hello = totals_event(&first).retry(Duration::from_secs(1));
    let mut ok = tx.send(hello).await.is_ok();
    if ok && resumed {
        ok = tx
            .send(Event::default().event("resync").data("{}"))
            .await
            .is_ok();
    }
    // When the stream last learnt of a click (or that it missed some):
    // the totals it sends next must come from a read started after that.
    let mut dirty_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(TOTALS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while ok {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = tx.closed() => break,
            msg = rx.recv() => match msg {
                Ok(live) if live.click.link_id == link => {
                    let event = Event::default()
                        .event("click")
                        .id(live.seq.to_string())
                        .json_data(LiveClickBody::from(live.as_ref()))
                        .unwrap_or_default();
                    ok = tx.send(event).await.is_ok();
                    dirty_since = Some(Instant::now());
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    ok = tx.send(Event::default().event("resync").data("{}")).await.is_ok();
                    dirty_since = Some(Instant::now());
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick(), if dirty_since.is_some() => {
                if let Some(since) = dirty_since.take() {
                    match totals_since(&state, link, since).await {
                        Some(t) => ok = tx.send(totals_event(&t)).await.is_ok(),
                        None => dirty_since = Some(since),
                    }
                }
            }
        }
    }
    gauge.decrement(1.0);
}
