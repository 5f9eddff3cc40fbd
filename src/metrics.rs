//! Prometheus metrics: names in one place, the recorder installed once per
//! process, and the handles the redirect uses kept ready (no lookups on the
//! hot path). Labels are route templates, never slugs.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub mod names {
    pub const REDIRECT_DURATION: &str = "hop_redirect_duration_seconds";
    pub const HTTP_REQUESTS: &str = "hop_http_requests_total";
    pub const HTTP_DURATION: &str = "hop_http_request_duration_seconds";
    pub const CACHE_HITS: &str = "hop_cache_hits_total";
    pub const CACHE_MISSES: &str = "hop_cache_misses_total";
    pub const QUEUE_DEPTH: &str = "hop_click_queue_depth";
    pub const BACKLOG_BYTES: &str = "hop_click_log_bytes";
    pub const BACKLOG_OLDEST: &str = "hop_click_backlog_oldest_seconds";
    pub const CLICKS_STORED: &str = "hop_clicks_stored_total";
    pub const CLICKS_DROPPED: &str = "hop_clicks_dropped_total";
    pub const CLICKS_LOST: &str = "hop_clicks_lost_total";
    pub const STORE_DURATION: &str = "hop_store_duration_seconds";
    pub const LIVE_STREAMS: &str = "hop_live_streams";
    /// Written by the `/metrics` handler itself (per node, per scrape).
    pub const STORE_UP: &str = "hop_store_up";
    pub const REDIS_UP: &str = "hop_redis_up";
    pub const BUILD_INFO: &str = "hop_build_info";
    pub const FEED_INVALIDATIONS: &str = "hop_link_feed_invalidations_total";
    /// Webhook delivery attempts, by outcome (`delivered`, `retry`, `dead`).
    pub const WEBHOOK_ATTEMPTS: &str = "hop_webhook_attempts_total";
    pub const WEBHOOK_DURATION: &str = "hop_webhook_delivery_duration_seconds";
    /// Outbox rows not yet fanned out; pending and dead messages.
    pub const WEBHOOK_OUTBOX: &str = "hop_webhook_outbox_rows";
    pub const WEBHOOK_PENDING: &str = "hop_webhook_pending_messages";
    pub const WEBHOOK_DEAD: &str = "hop_webhook_dead_messages";
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder (once) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
                0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding hop);
            // then this handle simply renders nothing of theirs.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            // Series that stay at zero on a healthy node exist from the
            // start, so dashboards and alerts see 0, not "no data".
            metrics::counter!(names::CLICKS_LOST).increment(0);
            metrics::counter!(names::CLICKS_DROPPED).increment(0);
            metrics::gauge!(names::LIVE_STREAMS).increment(0.0);
            metrics::gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => crate::COMMIT)
                .set(1.0);
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        names::REDIRECT_DURATION,
        Unit::Seconds,
        "Time to answer a redirect"
    );
    describe_counter!(
        names::HTTP_REQUESTS,
        "HTTP requests by route template and status"
    );
    describe_histogram!(
        names::HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by route template"
    );
    describe_counter!(
        names::CACHE_HITS,
        "Link lookups answered by the in-process cache"
    );
    describe_counter!(names::CACHE_MISSES, "Link lookups that went to the store");
    describe_gauge!(
        names::QUEUE_DEPTH,
        "Clicks answered and not yet stored (click log or in-process queue)"
    );
    describe_gauge!(
        names::BACKLOG_BYTES,
        Unit::Bytes,
        "Bytes of the click log (on disk and buffered)"
    );
    describe_gauge!(
        names::BACKLOG_OLDEST,
        Unit::Seconds,
        "Age of the oldest click in the click log that is not yet stored"
    );
    describe_counter!(
        names::CLICKS_STORED,
        "Clicks newly stored (replays not counted)"
    );
    describe_counter!(
        names::CLICKS_DROPPED,
        "Clicks dropped because the queue or the click log was full"
    );
    describe_counter!(
        names::CLICKS_LOST,
        "Clicks that could not be stored before shutdown"
    );
    describe_gauge!(names::LIVE_STREAMS, "Open live (SSE) dashboard streams");
    describe_counter!(
        names::FEED_INVALIDATIONS,
        "Slugs invalidated because the link feed reported them written \
         (another region's writes, replicated)"
    );
    describe_counter!(
        names::WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts by outcome (delivered, retry, dead)"
    );
    describe_histogram!(
        names::WEBHOOK_DURATION,
        Unit::Seconds,
        "Time a webhook endpoint took to answer (or to fail)"
    );
    describe_gauge!(
        names::WEBHOOK_OUTBOX,
        "Webhook outbox rows (link changes, click batches) not yet fanned out"
    );
    describe_gauge!(
        names::WEBHOOK_PENDING,
        "Webhook messages waiting for delivery (new or being retried)"
    );
    describe_gauge!(
        names::WEBHOOK_DEAD,
        "Webhook messages dead-lettered (out of retries), kept for replay"
    );
    describe_gauge!(
        names::BUILD_INFO,
        "Always 1; its labels say the version and the commit built from"
    );
    describe_histogram!(
        names::STORE_DURATION,
        Unit::Seconds,
        "Store operation latency by op"
    );
}
