//! Wiring: `Application::build(config)` opens the store, starts the click
//! writer and binds the listener (port 0 works, see [`Application::port`]);
//! `run_until(shutdown)` serves until the future resolves, then drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::{LinkCache, LinkTiers, LocalCache, SharedLinkCache, SharedTier};
use crate::clicks::{BatchWriter, ClickQueue, ClickRecorder, ClickSink, Enricher, LiveFeed};
#[cfg(feature = "redis")]
use crate::config::ClusterArgs;
use crate::config::{ServeConfig, WorkerConfig};
use crate::ratelimit::{Limiter, LocalLimiter};
use crate::session::StoredSessions;
use crate::state::{AppState, RedirectMetrics, StateInner};
use crate::store::{Store, StoreConfig, redact_url};

pub struct Application {
    listener: TcpListener,
    /// `/metrics` on an address of its own (`--metrics-listen`).
    metrics_listener: Option<TcpListener>,
    /// Raw clicks older than this are deleted hourly (zero: kept).
    raw_retention: Duration,
    /// A client must send a request's headers within this (slowloris).
    header_timeout: Duration,
    /// Connections served at once (0: no cap).
    max_connections: usize,
    state: AppState,
    /// Click writer (embedded) or stream appender, subscription listener
    /// and worker (cluster): stopped and awaited after the HTTP server.
    background: Vec<JoinHandle<()>>,
    stop_writer: CancellationToken,
}

impl Application {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Application> {
        // Before anything opens or starts (the store, its migrations).
        #[cfg(not(feature = "redis"))]
        if config.cluster.redis_url.is_some() {
            anyhow::bail!(NO_REDIS)
        }
        let prometheus = crate::metrics::install();
        let store_config =
            StoreConfig::parse(&config.database.database_url).map_err(anyhow::Error::msg)?;
        let store = store_config
            .open(!config.no_migrate)
            .await
            .with_context(|| format!("opening {}", redact_url(&config.database.database_url)))?;
        let geo = if config.no_track_geo {
            tracing::info!("--no-track-geo: countries and cities are not recorded");
            None
        } else {
            Some(crate::clicks::geo::open_configured(
                &config.geoip_db,
                &config.geoip_update_path,
            )?)
        };
        let takedowns = Arc::new(
            crate::takedown::Takedowns::load(store.clone())
                .await
                .context("reading domain takedowns")?,
        );
        let live = Arc::new(LiveFeed::new(4096));
        let cache: Arc<dyn LinkCache> = Arc::new(LocalCache::new(
            config.cache_capacity,
            Duration::from_secs(config.cache_ttl_secs),
            Duration::from_secs(config.negative_cache_ttl_secs),
        ));
        let geo_credit = geo
            .as_ref()
            .is_some_and(|g| g.source().credits_ip_location_db());
        let enricher = Arc::new(Enricher::new(geo));
        let stop_writer = CancellationToken::new();
        let mut background = Vec::new();
        let limits = crate::ratelimit::Limits {
            create: config.rate_create,
            auth_failures: config.rate_auth_failures,
            api: config.rate_api,
            link_secret: config.rate_link_secret,
            password_failures: config.rate_password_failures,
            password_link_failures: config.rate_password_link_failures,
        };
        let node = NodeParts {
            store: &store,
            enricher: &enricher,
            cache: &cache,
            live: &live,
            takedowns: &takedowns,
            stop: &stop_writer,
        };
        let (clicks, cluster): (Arc<dyn ClickSink>, Option<ClusterParts>) =
            match &config.cluster.redis_url {
                None => {
                    // Embedded: click log (or, with memory://, a queue) →
                    // batch writer → store, in this process.
                    let writer = BatchWriter {
                        recorder: ClickRecorder {
                            store: store.clone(),
                            enricher: enricher.clone(),
                        },
                        batch_size: config.click_batch_size.max(1),
                        max_wait: Duration::from_millis(config.click_batch_wait_ms),
                        target_write: Duration::from_millis(config.click_batch_target_ms),
                        live: live.clone(),
                        delay: Duration::from_millis(config.click_writer_delay_ms),
                    };
                    let stop = stop_writer.clone();
                    // Webhooks are delivered where clicks are stored.
                    background.push(tokio::spawn(
                        crate::webhooks::deliver::Deliverer::new(
                            store.clone(),
                            worker_name(None),
                            config.webhooks.settings(),
                        )?
                        .run(stop_writer.clone()),
                    ));
                    match click_log_config(&config) {
                        Some(log) => {
                            // Below serving in priority: the log holds what
                            // the writer has not stored yet.
                            let (sink, reader) = open_click_log(&log, &enricher)?;
                            background.push(
                                crate::clicks::writer::spawn_writer_thread(writer, reader, stop)
                                    .context("starting the click writer")?,
                            );
                            (sink, None)
                        }
                        None => {
                            let (queue, rx) = ClickQueue::new(config.click_queue_capacity);
                            background.push(
                                crate::clicks::writer::spawn_writer_thread(writer, rx, stop)
                                    .context("starting the click writer")?,
                            );
                            (Arc::new(queue), None)
                        }
                    }
                }
                Some(url) => {
                    // Cluster: buffer → Redis stream → workers → store.
                    let parts = join_cluster(url, &config, limits, node, &mut background).await?;
                    (parts.clicks.clone(), Some(parts))
                }
            };

        let public_base = config.public_url.as_str().trim_end_matches('/').to_owned();
        let own_hosts = config
            .public_url
            .host_str()
            .map(|h| vec![h.to_owned()])
            .unwrap_or_default();
        let (links, limiter, takedown_notices) = match cluster {
            Some(parts) => {
                let shared = SharedTier {
                    cache: parts.shared,
                    ttl: Duration::from_secs(config.cache_ttl_secs),
                    negative_ttl: Duration::from_secs(config.negative_cache_ttl_secs),
                };
                (
                    LinkTiers::new(cache, Some(shared)),
                    parts.limiter,
                    Some(parts.takedown_notices),
                )
            }
            None => {
                let limiter: Arc<dyn Limiter> = Arc::new(LocalLimiter::new(limits));
                (LinkTiers::new(cache, None), limiter, None)
            }
        };
        let blocklist = Arc::new(crate::blocklist::Blocklist::load(
            config.blocklist.as_deref(),
        )?);
        let sessions = Arc::new(StoredSessions::new(
            store.clone(),
            Duration::from_secs(config.session_idle_hours.max(1) * 3600),
            Duration::from_secs(config.session_max_hours.max(1) * 3600),
        ));
        let state = AppState::new(StateInner {
            store,
            links,
            takedown_notices,
            clicks,
            live,
            sessions,
            secure_cookies: config.public_url.scheme() == "https",
            shutdown: CancellationToken::new(),
            public_base,
            own_hosts,
            trusted_proxies: config.trusted_proxies.clone(),
            limiter,
            target_guard: config.refuse_private_targets.then(|| {
                Arc::new(crate::public_host::TargetGuard::new(
                    16,
                    Duration::from_secs(2),
                ))
            }),
            ipv6_prefix: config.rate_ipv6_prefix,
            live_slots: crate::slots::LiveSlots::new(crate::slots::LiveCaps {
                per_link: config.live_streams_per_link,
                per_client: config.live_streams_per_client,
                per_node: config.live_streams_max,
            }),
            live_totals: crate::clicks::TotalsReads::new(),
            webhooks: crate::state::WebhookPolicy {
                allow_private: config.webhooks.webhooks_allow_private,
                retry_for: config.webhooks.webhook_retry_for,
            },
            compat: crate::state::CompatApis {
                yourls: config.compat_yourls,
                shlink: config.compat_shlink,
                dub: config.compat_dub,
                bitly: config.compat_bitly,
            },
            blocklist,
            takedowns,
            request_timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
            tracking: crate::state::Tracking {
                no_referrer: config.no_track_referrer,
                no_user_agent: config.no_track_ua,
                honor_dnt: config.honor_dnt,
                geo_credit,
            },
            anonymous_links: config.anonymous_links,
            region: config.region.clone(),
            prometheus,
            metrics_on_main: config.metrics_listen.is_none(),
            redirect_metrics: RedirectMetrics::new(),
            enricher: enricher.clone(),
        });
        // One node alone (no Redis) on a store written by other regions too:
        // it follows the store's link feed itself. In cluster mode a worker
        // does, for every node.
        if config.cluster.redis_url.is_none()
            && let Some(mut feed) = state.store.link_feed()
        {
            let state = state.clone();
            background.push(tokio::spawn(async move {
                loop {
                    let wait = crate::cache::feed_round(&mut *feed, |slug| {
                        let state = state.clone();
                        async move { state.invalidate_link(&slug).await }
                    })
                    .await;
                    tokio::select! {
                        _ = state.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }));
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr} (metrics)"))?,
            ),
            None => None,
        };
        Ok(Application {
            metrics_listener,
            raw_retention: config.raw_retention,
            header_timeout: Duration::from_secs(config.header_timeout_secs.max(1)),
            max_connections: config.max_connections,
            listener,
            state,
            background,
            stop_writer,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Where `/metrics` is served when it has its own listener.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, finishes in-flight requests, then
    /// writes every queued click before returning.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            raw_retention: retention,
            header_timeout,
            max_connections,
            listener,
            metrics_listener,
            state,
            background,
            stop_writer,
        } = self;
        let upkeep_state = state.clone();
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            for n in 0u64.. {
                tick.tick().await;
                upkeep_state.prometheus.run_upkeep();
                upkeep_state.blocklist.reload_if_changed();
                upkeep_state.links.resend_invalidations().await;
                // Normally reloaded on change (and in cluster mode on every
                // node by pub/sub); this catches a missed message.
                if let Err(e) = upkeep_state.takedowns.reload().await {
                    tracing::warn!(error = %e, "reloading takedowns failed");
                }
                // Closed breakdown buckets become packs (a second of work
                // at most per tick).
                let now = chrono::Utc::now().timestamp_millis();
                match crate::store::pack::seal_closed(
                    &*upkeep_state.store,
                    now,
                    Duration::from_secs(1),
                )
                .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(buckets = n, "closed buckets sealed"),
                    Err(e) => tracing::warn!(error = %e, "sealing closed buckets failed"),
                }
                // Hourly: forget expired sessions, delete old raw clicks and
                // minute rollups.
                if n % 720 == 0 {
                    let now = chrono::Utc::now().timestamp_millis();
                    if let Err(e) = upkeep_state.store.purge_sessions(now).await {
                        tracing::warn!(error = %e, "purging expired sessions failed");
                    }
                    if !retention.is_zero() {
                        let cutoff = now - retention.as_millis() as i64;
                        match upkeep_state.store.delete_raw_clicks_before(cutoff).await {
                            Ok(0) => {}
                            Ok(n) => {
                                tracing::info!(clicks = n, "retention: old raw clicks deleted")
                            }
                            Err(e) => tracing::warn!(error = %e, "retention run failed"),
                        }
                    }
                    // Minute rollups serve the recent window only.
                    let before =
                        now - crate::stats::MINUTE_WINDOW_MS - crate::stats::MINUTE_PRUNE_SLACK_MS;
                    match upkeep_state.store.prune_minute_rollups(before).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(rows = n, "old minute rollups pruned"),
                        Err(e) => tracing::warn!(error = %e, "pruning minute rollups failed"),
                    }
                }
            }
        });
        let stop_streams = state.shutdown.clone();
        #[cfg(unix)]
        let sighup = {
            let blocklist = state.blocklist.clone();
            tokio::spawn(async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                while hup.recv().await.is_some() {
                    blocklist.reload();
                }
            })
        };
        let metrics_server = metrics_listener.map(|l| {
            let app = crate::http::metrics_router(state.clone());
            let stop = state.shutdown.clone();
            tokio::spawn(async move {
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
            })
        });
        let app = crate::http::router(state.clone());
        tracing::info!(addr = %listener.local_addr()?, "hop listening");
        serve(
            listener,
            app,
            state,
            header_timeout,
            max_connections,
            async move {
                shutdown.await;
                // Live streams never end by themselves.
                stop_streams.cancel();
            },
        )
        .await;
        upkeep.abort();
        if let Some(m) = metrics_server {
            m.abort();
        }
        #[cfg(unix)]
        sighup.abort();
        tracing::info!("http server stopped; draining clicks");
        stop_writer.cancel();
        for task in background {
            task.await?;
        }
        Ok(())
    }
}

/// The HTTP/1.1 server: like `axum::serve`, plus a deadline for request
/// headers (slow clients cannot hold connections open), a bound on their
/// size and on open connections. Stops accepting when `shutdown` resolves,
/// then lets open connections finish their requests.
///
/// At `max_connections` it stops accepting until a connection closes, as
/// mini-redis does: the kernel's listen backlog holds newcomers, who are
/// served in turn (or time out, or are refused by the kernel once the
/// backlog is full). Accepting only to close at once would cost a
/// handshake per attempt, spin the loop under a flood and still tell the
/// client nothing it can act on.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    state: AppState,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits =
        (max_connections > 0).then(|| Arc::new(tokio::sync::Semaphore::new(max_connections)));
    tokio::pin!(shutdown);
    loop {
        // Held by the connection's task for as long as it is open.
        let permit = match &permits {
            Some(permits) => tokio::select! {
                permit = permits.clone().acquire_owned() => permit.ok(),
                _ = &mut shutdown => break,
            },
            None => None,
        };
        let (stream, peer) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off a bit.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Redirects first, then the router (see `http::front`).
        let service = crate::http::front::Front::new(app.clone(), state.clone(), peer);
        let service = hyper_util::service::TowerToHyperService::new(service);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(crate::http::ops::MAX_HEAD_BUFFER)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

fn worker_name(given: Option<&str>) -> String {
    match given {
        Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
        _ => {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "hop".into());
            format!(
                "{host}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            )
        }
    }
}

/// What a node's cluster wiring borrows from the rest of it.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
struct NodeParts<'a> {
    store: &'a Arc<dyn Store>,
    enricher: &'a Arc<Enricher>,
    cache: &'a Arc<dyn LinkCache>,
    live: &'a Arc<LiveFeed>,
    takedowns: &'a Arc<crate::takedown::Takedowns>,
    stop: &'a CancellationToken,
}

/// What cluster mode gives a node in place of the embedded parts.
struct ClusterParts {
    /// The click stream's appender.
    clicks: Arc<dyn ClickSink>,
    /// The shared link tier.
    shared: Arc<dyn SharedLinkCache>,
    /// Rate limits counted in Redis, for every node together.
    limiter: Arc<dyn Limiter>,
    takedown_notices: Arc<dyn crate::takedown::TakedownNotices>,
}

/// Where the embedded writer's click log is: `--click-log-dir`, or with
/// SQLite `clicks/` beside the database file (none with `memory://`).
fn click_log_config(config: &ServeConfig) -> Option<crate::clicks::LogConfig> {
    let dir = config.click_log_dir.clone().or_else(|| {
        let path = config.database.database_url.strip_prefix("sqlite://")?;
        let path = path.split('?').next()?;
        let parent = std::path::Path::new(path).parent()?;
        // (`sqlite://:memory:` is refused when the URL is parsed.)
        (!path.is_empty()).then(|| parent.join("clicks"))
    })?;
    Some(crate::clicks::LogConfig {
        dir,
        max_bytes: config.click_log_max_bytes,
        flush_every: Duration::from_millis(config.click_log_flush_ms),
    })
}

/// Opens the click log; clicks a crash left in it are stored first.
fn open_click_log(
    log: &crate::clicks::LogConfig,
    enricher: &Arc<Enricher>,
) -> anyhow::Result<(Arc<dyn ClickSink>, crate::clicks::log::LogReader)> {
    let (sink, reader, recovered) = crate::clicks::ClickLog::open(log, enricher.clone())
        .with_context(|| format!("opening the click log in {}", log.dir.display()))?;
    if recovered.clicks > 0 {
        tracing::info!(
            clicks = recovered.clicks,
            dir = %log.dir.display(),
            "storing clicks left in the click log"
        );
    }
    Ok((Arc::new(sink), reader))
}

/// Cluster mode: connects to Redis and starts the stream appender, the
/// subscription listener and (with `--with-worker`) a click worker.
#[cfg(feature = "redis")]
async fn join_cluster(
    url: &str,
    config: &ServeConfig,
    limits: crate::ratelimit::Limits,
    node: NodeParts<'_>,
    background: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<ClusterParts> {
    use crate::cluster::{self, Redis};
    let seal = config.cluster.sealer()?;
    let ca = config.cluster.redis_ca_file.as_deref();
    let redis = Redis::connect(url, seal, ca)
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    let (sink, rx) = ClickQueue::new(config.click_queue_capacity);
    background.push(tokio::spawn(cluster::run_appender(
        redis.clone(),
        rx,
        config.cluster.stream_maxlen,
        node.stop.clone(),
    )));
    background.push(tokio::spawn(cluster::listen(
        redis.clone(),
        node.cache.clone(),
        node.live.clone(),
        node.takedowns.clone(),
        node.stop.clone(),
    )));
    if config.with_worker {
        let recorder = ClickRecorder {
            store: node.store.clone(),
            enricher: node.enricher.clone(),
        };
        let worker = click_worker(
            &config.cluster,
            recorder,
            worker_name(None),
            config.click_batch_size,
            node.store.link_feed(),
        )
        .await?;
        background.push(tokio::spawn(worker.run(node.stop.clone())));
        background.push(tokio::spawn(
            crate::webhooks::deliver::Deliverer::new(
                node.store.clone(),
                worker_name(None),
                config.webhooks.settings(),
            )?
            .run(node.stop.clone()),
        ));
    }
    Ok(ClusterParts {
        clicks: Arc::new(sink),
        shared: redis.clone(),
        limiter: Arc::new(cluster::limits::SharedLimiter::new(limits, redis.clone())),
        takedown_notices: redis,
    })
}

#[cfg(not(feature = "redis"))]
async fn join_cluster(
    _url: &str,
    _config: &ServeConfig,
    _limits: crate::ratelimit::Limits,
    _node: NodeParts<'_>,
    _background: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<ClusterParts> {
    unreachable!("Application::build refuses --redis-url without the redis feature")
}

#[cfg(not(feature = "redis"))]
const NO_REDIS: &str = "--redis-url: hop was built without the redis feature";

#[cfg(feature = "redis")]
/// A click worker (`hop worker`, or `hop serve --with-worker`) on a Redis
/// connection of its own: its blocking stream reads would otherwise hold up
/// the node's appends and cache lookups.
async fn click_worker(
    cluster: &ClusterArgs,
    recorder: ClickRecorder,
    consumer: String,
    batch_size: usize,
    link_feed: Option<Box<dyn crate::store::LinkFeed>>,
) -> anyhow::Result<crate::cluster::Worker> {
    let Some(url) = &cluster.redis_url else {
        anyhow::bail!("hop worker needs --redis-url (HOP_REDIS_URL)");
    };
    let redis =
        crate::cluster::Redis::connect(url, cluster.sealer()?, cluster.redis_ca_file.as_deref())
            .await
            .with_context(|| format!("connecting to {}", redact_url(url)))?;
    Ok(crate::cluster::Worker {
        redis,
        recorder,
        consumer,
        claim_idle: Duration::from_millis(cluster.claim_idle_ms),
        batch_size: batch_size.max(1),
        link_feed,
    })
}

/// `hop worker`: stores clicks from the Redis stream until `shutdown`, then
/// finishes the batch in hand (unfinished entries stay pending for others).
pub async fn run_worker(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    #[cfg(not(feature = "redis"))]
    {
        let _ = (config, shutdown);
        anyhow::bail!(NO_REDIS)
    }
    #[cfg(feature = "redis")]
    run_cluster_worker(config, shutdown).await
}

/// `hop worker`'s body (cluster mode only).
#[cfg(feature = "redis")]
async fn run_cluster_worker(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let prometheus = crate::metrics::install();
    if let Some(addr) = config.listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let app = axum::Router::new()
            .route(
                "/healthz",
                axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
            )
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let p = prometheus.clone();
                    async move { p.render() }
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    let store = StoreConfig::parse(&config.database.database_url)
        .map_err(anyhow::Error::msg)?
        .open(!config.no_migrate)
        .await
        .with_context(|| format!("opening {}", redact_url(&config.database.database_url)))?;
    let link_feed = store.link_feed();
    let name = worker_name(config.worker_name.as_deref());
    let deliverer = crate::webhooks::deliver::Deliverer::new(
        store.clone(),
        name.clone(),
        config.webhooks.settings(),
    )?;
    let recorder = ClickRecorder {
        store,
        enricher: Arc::new(Enricher::new(Some(crate::clicks::geo::open_configured(
            &config.geoip_db,
            &config.geoip_update_path,
        )?))),
    };
    let worker = click_worker(
        &config.cluster,
        recorder,
        name,
        config.click_batch_size,
        link_feed,
    )
    .await?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    let webhooks = tokio::spawn(deliverer.run(stop.clone()));
    shutdown.await;
    stop.cancel();
    task.await?;
    webhooks.await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
