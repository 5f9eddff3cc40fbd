//! `AppState`: what every request handler shares.

use std::ops::Deref;
use std::sync::Arc;

use ipnet::IpNet;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::LinkTiers;
use crate::clicks::{ClickSink, LiveFeed};
use crate::domain::{Link, Slug};
use crate::metrics::names;
use crate::session::SessionStore;
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

pub struct StateInner {
    /// The backend for links, keys and clicks.
    pub store: Arc<dyn Store>,
    /// The cache tiers in front of `store` for the redirect path (in
    /// process; in cluster mode also shared, carrying invalidations to
    /// every node).
    pub links: LinkTiers,
    /// Cluster mode: tells every other node of takedown changes.
    pub takedown_notices: Option<Arc<dyn crate::takedown::TakedownNotices>>,
    /// Where the redirect hands clicks over without waiting.
    pub clicks: Arc<dyn ClickSink>,
    /// Stored, enriched clicks, for live dashboards.
    pub live: Arc<LiveFeed>,
    /// Browser sessions of the web UI.
    pub sessions: Arc<dyn SessionStore>,
    /// Whether cookies are marked `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Fires when the server begins shutting down, so endless responses
    /// (live streams) end and graceful shutdown is not held up by them.
    pub shutdown: CancellationToken,
    /// Base of every short URL, without trailing slash.
    pub public_base: String,
    /// Hosts that are hop itself: refused as targets (loops).
    pub own_hosts: Vec<String>,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Whether links may be created without an API key.
    pub anonymous_links: bool,
    /// Longest time to produce a response (see `ops::request_timeout`).
    pub request_timeout: std::time::Duration,
    /// `--refuse-private-targets`: targets must be on the public internet
    /// (SSRF-style abuse of scanners and previewers that follow links),
    /// checked at creation, edit and redirect.
    pub target_guard: Option<Arc<crate::public_host::TargetGuard>>,
    /// Webhook rules the API applies (delivery has its own copy).
    pub webhooks: WebhookPolicy,
    /// Blocked target domains.
    pub blocklist: Arc<crate::blocklist::Blocklist>,
    /// Domains admins took down (kept in the store, mirrored here).
    pub takedowns: Arc<crate::takedown::Takedowns>,
    /// What the redirect records of a click.
    pub tracking: Tracking,
    /// Rate limits (in process, or shared through Redis in cluster mode).
    pub limiter: Arc<dyn crate::ratelimit::Limiter>,
    /// Bits of an IPv6 address that name one client for limits and caps:
    /// one subscriber usually holds a whole /64.
    pub ipv6_prefix: u8,
    /// Live streams open on this node, capped per link, client and node.
    pub live_slots: Arc<crate::slots::LiveSlots>,
    /// Reads of links' totals, shared by the live streams of each link.
    pub live_totals: crate::clicks::TotalsReads<crate::clicks::ClickTotals>,
    /// Region stamped on every click this node serves.
    pub region: String,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// Whether `/metrics` is answered on the main listener (not when it has
    /// an address of its own, `--metrics-listen`).
    pub metrics_on_main: bool,
    /// Hot-path metric handles, resolved once.
    pub redirect_metrics: RedirectMetrics,
    /// The click pipeline's geo lookup and user agent parser, for the
    /// rules of smart links (the same answers clicks get).
    pub enricher: Arc<crate::clicks::Enricher>,
    /// Other shorteners' APIs that are switched on.
    pub compat: CompatApis,
}

/// Which of other shorteners' APIs are answered (`--compat-*`; see
/// `http::compat`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CompatApis {
    pub yourls: bool,
    pub shlink: bool,
    pub dub: bool,
    pub bitly: bool,
}

/// What the webhook API needs of the delivery settings.
#[derive(Debug, Clone, Copy)]
pub struct WebhookPolicy {
    /// `--webhooks-allow-private`.
    pub allow_private: bool,
    /// `--webhook-retry-for`: the retry window a replay starts.
    pub retry_for: std::time::Duration,
}

/// Privacy switches: what the redirect keeps of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracking {
    pub no_referrer: bool,
    pub no_user_agent: bool,
    /// `DNT: 1` / `Sec-GPC: 1` clicks are counted anonymously.
    pub honor_dnt: bool,
    /// Countries come from ip-location-db's data (embedded, or installed by
    /// `hop geoip update`), whose sources ask for credit where they are
    /// shown; not with the operator's own `--geoip-db`.
    pub geo_credit: bool,
}

pub struct RedirectMetrics {
    pub latency: metrics::Histogram,
}

impl RedirectMetrics {
    pub fn new() -> RedirectMetrics {
        RedirectMetrics {
            latency: metrics::histogram!(names::REDIRECT_DURATION),
        }
    }
}

impl Default for RedirectMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: StateInner) -> AppState {
        AppState(Arc::new(inner))
    }

    /// The link behind a slug: the cache tiers first, then the store.
    pub async fn resolve(&self, slug: &Slug) -> Result<Option<Arc<Link>>, StoreError> {
        self.links.resolve(self.store.as_ref(), slug).await
    }

    /// After an edit or delete: this node's cache at once, and in cluster
    /// mode the shared tier and every other node's cache.
    pub async fn invalidate_link(&self, slug: &Slug) {
        self.links.invalidate(slug).await
    }

    /// After a takedown is added or lifted: this node's set at once, and in
    /// cluster mode every other node's.
    pub async fn takedowns_changed(&self) {
        if let Err(e) = self.takedowns.reload().await {
            tracing::warn!(error = %e, "reloading takedowns failed");
        }
        if let Some(notices) = &self.takedown_notices {
            notices.announce().await;
        }
    }

    pub fn short_url(&self, slug: &Slug) -> String {
        format!("{}/{}", self.public_base, slug)
    }
}
