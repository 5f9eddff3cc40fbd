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

use crate::cache::LocalCache;
use crate::clicks::geo::GeoDb;
use crate::clicks::{BatchWriter, ClickQueue, Enricher, LiveFeed};
use crate::config::ServeConfig;
use crate::session::StoredSessions;
use crate::state::{AppState, RedirectMetrics, StateInner};
use crate::store::StoreConfig;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    writer: JoinHandle<()>,
    stop_writer: CancellationToken,
}

impl Application {
    pub async fn build(config: ServeConfig) -> anyhow::Result<Application> {
        let prometheus = crate::metrics::install();
        let store_config =
            StoreConfig::parse(&config.database.database_url).map_err(anyhow::Error::msg)?;
        let store = store_config
            .open(!config.no_migrate)
            .await
            .with_context(|| {
                format!(
                    "opening {}",
                    crate::store::redact_url(&config.database.database_url)
                )
            })?;
        let geo = if config.geoip_db.is_empty() {
            tracing::info!("no GeoIP database: countries and cities will be unknown");
            None
        } else {
            let db = GeoDb::open(&config.geoip_db)?;
            tracing::info!(files = ?db.paths().collect::<Vec<_>>(), "GeoIP databases loaded");
            Some(db)
        };
        let (queue, rx) = ClickQueue::new(config.click_queue_capacity);
        let live = Arc::new(LiveFeed::new(4096));
        let writer = BatchWriter {
            store: store.clone(),
            enricher: Arc::new(Enricher::new(geo)),
            batch_size: config.click_batch_size.max(1),
            max_wait: Duration::from_millis(config.click_batch_wait_ms),
            live: live.clone(),
        };
        let stop_writer = CancellationToken::new();
        let writer = tokio::spawn(writer.run(rx, stop_writer.clone()));

        let public_base = config.public_url.as_str().trim_end_matches('/').to_owned();
        let own_hosts = config
            .public_url
            .host_str()
            .map(|h| vec![h.to_owned()])
            .unwrap_or_default();
        let sessions = Arc::new(StoredSessions::new(
            store.clone(),
            Duration::from_secs(config.session_idle_hours.max(1) * 3600),
        ));
        let state = AppState::new(StateInner {
            store,
            cache: Arc::new(LocalCache::new(
                config.cache_capacity,
                Duration::from_secs(config.cache_ttl_secs),
                Duration::from_secs(config.negative_cache_ttl_secs),
            )),
            clicks: Arc::new(queue),
            live,
            sessions,
            secure_cookies: config.public_url.scheme() == "https",
            shutdown: CancellationToken::new(),
            public_base,
            own_hosts,
            trusted_proxies: config.trusted_proxies.clone(),
            anonymous_links: config.anonymous_links,
            region: config.region.clone(),
            prometheus,
            redirect_metrics: RedirectMetrics::new(),
        });
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Ok(Application {
            listener,
            state,
            writer,
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
            listener,
            state,
            writer,
            stop_writer,
        } = self;
        let upkeep_state = state.clone();
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            for n in 0u64.. {
                tick.tick().await;
                upkeep_state.prometheus.run_upkeep();
                // Hourly: forget expired sessions.
                if n % 720 == 0 {
                    let now = chrono::Utc::now().timestamp_millis();
                    if let Err(e) = upkeep_state.store.purge_sessions(now).await {
                        tracing::warn!(error = %e, "purging expired sessions failed");
                    }
                }
            }
        });
        let stop_streams = state.shutdown.clone();
        let app = crate::http::router(state);
        tracing::info!(addr = %listener.local_addr()?, "hop listening");
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Live streams never end by themselves.
            stop_streams.cancel();
        })
        .await?;
        upkeep.abort();
        tracing::info!("http server stopped; draining clicks");
        stop_writer.cancel();
        writer.await?;
        Ok(())
    }
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
