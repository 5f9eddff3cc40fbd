//! The delivery loop: fans the outbox out every `--webhook-batch-wait`,
//! leases due messages and POSTs them, each delivery a task of its own so
//! a slow endpoint holds up only its own messages (at most
//! `--webhook-per-endpoint` of them in flight here). Runs wherever clicks
//! are stored: `hop serve` (embedded) and every `hop worker` (cluster),
//! which share the work through the store's leases.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::endpoints::literal_allowed;
use super::{PlanSettings, backoff, now_ms, plan, signature};
use crate::metrics::names;
use crate::public_host::{is_forbidden_ip, is_forbidden_name};
use crate::store::Store;
use crate::store::webhooks::{Attempt, Endpoint, FanOut, Message, Outcome};

/// Most outbox rows one fan-out looks at (the store also stops at about
/// 20 000 clicks).
const FAN_OUT_ROWS: usize = 500;
/// Bytes of an answer kept in the delivery log.
const RESPONSE_EXCERPT: usize = 1024;

/// How deliveries go (`--webhook-*` flags, see `config::WebhookArgs`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub allow_private: bool,
    pub batch_size: u32,
    pub batch_wait: Duration,
    pub timeout: Duration,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub retry_for: Duration,
    pub disable_after: Duration,
    pub keep: Duration,
    pub concurrency: usize,
    pub per_endpoint: usize,
}

/// What delivers: the store, the HTTP client and the settings.
pub struct Deliverer {
    pub store: Arc<dyn Store>,
    /// Who holds the leases this one takes (the worker's name).
    pub worker: String,
    pub client: reqwest::Client,
    pub settings: Settings,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn Store>,
        worker: String,
        settings: Settings,
    ) -> anyhow::Result<Deliverer> {
        Ok(Deliverer {
            client: client(&settings)?,
            worker,
            store,
            settings,
        })
    }

    /// Runs until `stop`, then waits for the deliveries in flight (their
    /// timeout bounds the wait).
    pub async fn run(self, stop: CancellationToken) {
        if !self.store.has_webhooks() {
            return;
        }
        let me = Arc::new(self);
        let mut in_flight: JoinSet<String> = JoinSet::new();
        let mut busy: HashMap<String, usize> = HashMap::new();
        let tick = me
            .settings
            .batch_wait
            .clamp(Duration::from_millis(50), Duration::from_millis(250));
        let mut last_fan_out = Instant::now() - me.settings.batch_wait;
        let mut last_prune = Instant::now() - Duration::from_secs(3600);
        let mut last_gauges = Instant::now() - Duration::from_secs(60);
        loop {
            if last_fan_out.elapsed() >= me.settings.batch_wait {
                last_fan_out = Instant::now();
                me.fan_out_all().await;
            }
            let room = me
                .settings
                .concurrency
                .max(1)
                .saturating_sub(in_flight.len());
            if room > 0 {
                me.start_deliveries(room, &mut busy, &mut in_flight).await;
            }
            if last_prune.elapsed() >= Duration::from_secs(3600) {
                last_prune = Instant::now();
                let before = now_ms() - me.settings.keep.as_millis() as i64;
                if let Err(e) = me.store.prune_webhooks(before).await {
                    tracing::warn!(error = %e, "pruning old webhook messages failed");
                }
            }
            if last_gauges.elapsed() >= Duration::from_secs(10) {
                last_gauges = Instant::now();
                if let Ok((outbox, pending, dead)) = me.store.webhook_backlog().await {
                    metrics::gauge!(names::WEBHOOK_OUTBOX).set(outbox as f64);
                    metrics::gauge!(names::WEBHOOK_PENDING).set(pending as f64);
                    metrics::gauge!(names::WEBHOOK_DEAD).set(dead as f64);
                }
            }
            let sleep = tokio::time::sleep(tick);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = sleep => {}
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    finished(&mut busy, done);
                }
            }
            while let Some(done) = in_flight.try_join_next() {
                finished(&mut busy, done);
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// Fans the whole outbox out, a transaction of rows at a time.
    async fn fan_out_all(&self) {
        let settings = self.settings.clone();
        let planner = move |f: FanOut<'_>| {
            plan(
                f,
                PlanSettings {
                    batch_size: settings.batch_size as usize,
                    retry_for: settings.retry_for.as_millis() as i64,
                    now: now_ms(),
                },
            )
        };
        loop {
            match self
                .store
                .fan_out(&self.worker, now_ms(), FAN_OUT_ROWS, &planner)
                .await
            {
                // Until the outbox is empty (or what is left is taken).
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook fan-out failed; retrying");
                    return;
                }
            }
        }
    }

    async fn start_deliveries(
        self: &Arc<Self>,
        room: usize,
        busy: &mut HashMap<String, usize>,
        in_flight: &mut JoinSet<String>,
    ) {
        let now = now_ms();
        // Longer than any attempt takes, so no two workers send a message
        // at once; short enough that a dead worker's messages go out soon.
        let lease = self.settings.timeout + self.settings.timeout.max(Duration::from_secs(5));
        let busy_ids: Vec<String> = busy.keys().cloned().collect();
        let claimed = match self
            .store
            .claim_messages(
                &self.worker,
                now,
                now + lease.as_millis() as i64,
                &busy_ids,
                self.settings.per_endpoint.max(1),
                room,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook messages failed");
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        let mut endpoints: HashMap<String, Arc<Endpoint>> = HashMap::new();
        for m in claimed {
            let endpoint = match endpoints.get(&m.endpoint_id) {
                Some(e) => e.clone(),
                None => match self.store.endpoint(&m.endpoint_id).await {
                    Ok(Some(e)) => {
                        let e = Arc::new(e);
                        endpoints.insert(e.id.clone(), e.clone());
                        e
                    }
                    // Deleted meanwhile (its messages went with it), or
                    // the store is away: the lease runs out, and then it
                    // is tried again.
                    _ => continue,
                },
            };
            *busy.entry(m.endpoint_id.clone()).or_default() += 1;
            let me = self.clone();
            in_flight.spawn(async move {
                me.deliver(&endpoint, &m).await;
                m.endpoint_id
            });
        }
    }

    /// One attempt at one message, logged and settled.
    async fn deliver(&self, e: &Endpoint, m: &Message) {
        let started = Instant::now();
        let at = now_ms();
        let (status, error, response) = self.post(e, m).await;
        let latency = started.elapsed();
        metrics::histogram!(names::WEBHOOK_DURATION).record(latency.as_secs_f64());
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        let outcome = if ok {
            Outcome::Delivered
        } else if at >= m.retry_until {
            Outcome::Dead
        } else {
            let wait = backoff(
                m.attempts,
                self.settings.backoff,
                self.settings.backoff_max,
                &mut rand::rng(),
            );
            Outcome::Retry((at + wait.as_millis() as i64).min(m.retry_until))
        };
        metrics::counter!(names::WEBHOOK_ATTEMPTS, "outcome" => match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry(_) => "retry",
            Outcome::Dead => "dead",
        })
        .increment(1);
        let error = error.or_else(|| (!ok).then(|| format!("answered {}", status.unwrap_or(0))));
        let attempt = Attempt {
            id: 0,
            endpoint_id: e.id.clone(),
            message_id: m.id.clone(),
            at,
            attempt: m.attempts,
            status,
            latency_ms: latency.as_millis() as u64,
            error: error.clone(),
            response,
        };
        let reason = format!(
            "every delivery failed for {}; the last: {}",
            humantime::format_duration(self.settings.disable_after),
            error.as_deref().unwrap_or("?")
        );
        if let Err(err) = self
            .store
            .record_attempt(
                &attempt,
                outcome,
                self.settings.disable_after.as_millis() as i64,
                &reason,
            )
            .await
        {
            // The lease runs out and the message goes again, with the
            // same id: the receiver deduplicates it.
            tracing::warn!(error = %err, "recording a webhook attempt failed");
        }
    }

    /// POSTs a message: (status, error, first bytes of the answer).
    async fn post(
        &self,
        e: &Endpoint,
        m: &Message,
    ) -> (Option<u16>, Option<String>, Option<String>) {
        let Ok(url) = url::Url::parse(&e.url) else {
            return (None, Some("the endpoint URL does not parse".into()), None);
        };
        if !self.settings.allow_private && !url.host().is_some_and(|h| literal_allowed(&h)) {
            return (
                None,
                Some("refused: the endpoint's address is not on the public internet".into()),
                None,
            );
        }
        let now = chrono::Utc::now();
        let timestamp = now.timestamp();
        let sig = signature(e, &m.id, timestamp, &m.body, now.timestamp_millis());
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &m.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", sig)
            .body(m.body.clone())
            .send()
            .await;
        match sent {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let mut excerpt = Vec::new();
                while excerpt.len() < RESPONSE_EXCERPT {
                    match resp.chunk().await {
                        Ok(Some(c)) => excerpt.extend_from_slice(&c),
                        _ => break,
                    }
                }
                excerpt.truncate(RESPONSE_EXCERPT);
                let text = String::from_utf8_lossy(&excerpt).into_owned();
                (Some(status), None, (!text.is_empty()).then_some(text))
            }
            Err(err) => (None, Some(describe(&err)), None),
        }
    }
}

fn finished(busy: &mut HashMap<String, usize>, done: Result<String, tokio::task::JoinError>) {
    if let Ok(endpoint) = done
        && let Some(n) = busy.get_mut(&endpoint)
    {
        *n -= 1;
        if *n == 0 {
            busy.remove(&endpoint);
        }
    }
}

fn describe(err: &reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = format!("{what}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text.chars().take(500).collect()
}

/// The delivery client: no redirects followed (a receiver's 3xx is a
/// failure to look at, not an address to go to), the timeout, and unless
/// private addresses are allowed, a resolver that answers only public
/// addresses, so what is connected to is what was checked (DNS rebinding
/// cannot slip a private address in between).
fn client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("hop-webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30));
    if !settings.allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    Ok(builder.build()?)
}

/// Resolves a name and refuses it unless every address is public (the
/// rule of [`crate::public_host`]).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if is_forbidden_name(&host) {
                return Err("refused: the endpoint's host name is local or special-use".into());
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((format!("{host}."), 0))
                .await?
                .collect();
            if addrs.is_empty() {
                return Err("the endpoint's host name does not resolve".into());
            }
            if addrs.iter().any(|a| is_forbidden_ip(a.ip())) {
                return Err("refused: the endpoint's host resolves to a private address".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
