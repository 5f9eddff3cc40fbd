//! Cluster mode with real processes: a private PostgreSQL and redis-server,
//! several `hop serve` nodes and `hop worker` processes (the built binary),
//! and faults: a worker killed with SIGKILL, Redis restarted, PostgreSQL
//! stopped under load.

#[path = "support/postgres.rs"]
#[allow(dead_code)]
mod pg_support;
#[path = "support/receiver.rs"]
#[allow(dead_code)]
mod receiver_support;
#[path = "support/redis.rs"]
#[allow(dead_code)]
mod redis_support;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hop::auth::{KEY_PREFIX, Token};
use hop::store::KeyStore;
use pg_support::PgServer;
use redis_support::RedisServer;
use reqwest::StatusCode;
use serde_json::{Value, json};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The secret every process of a test cluster shares.
const CLUSTER_KEY: &str = "test-cluster-key-0123456789abcdef0123456789abcdef";

/// A hop process (node or worker), killed on drop.
struct Hop {
    child: tokio::process::Child,
    base: String,
}

impl Hop {
    fn command(db: &str, redis: &Redis) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"));
        if let Some(ca) = &redis.ca_file {
            cmd.env("HOP_REDIS_CA_FILE", ca);
        }
        let redis = &redis.url;
        cmd.env("HOP_DATABASE_URL", db)
            .env("HOP_REDIS_URL", redis)
            .env("HOP_CLUSTER_KEY", CLUSTER_KEY)
            .env("HOP_LOG", "error")
            .env("HOP_CLAIM_IDLE_MS", "2000")
            // Webhooks to the tests' own receivers, quickly retried.
            .env("HOP_WEBHOOKS_ALLOW_PRIVATE", "true")
            .env("HOP_WEBHOOK_BATCH_WAIT", "100ms")
            .env("HOP_WEBHOOK_BACKOFF", "100ms")
            .env("HOP_WEBHOOK_BACKOFF_MAX", "1s")
            .env("HOP_WEBHOOK_TIMEOUT", "1s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        cmd
    }

    async fn node(db: &str, redis: &Redis) -> Hop {
        let port = free_port();
        let child = Self::command(db, redis)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--public-url", "http://hop.test", "--no-migrate"])
            .args(["--trusted-proxies", "127.0.0.0/8"])
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if reqwest::get(format!("{base}/healthz")).await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "node did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Hop { child, base }
    }

    fn worker(db: &str, redis: &Redis, name: &str) -> Hop {
        let child = Self::command(db, redis)
            .args(["worker", "--no-migrate", "--worker-name", name])
            .spawn()
            .unwrap();
        Hop {
            child,
            base: String::new(),
        }
    }

    async fn kill9(&mut self) {
        self.child.kill().await.unwrap();
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.child.id().expect("running") as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
    }
}

/// How the processes reach Redis.
#[derive(Clone)]
struct Redis {
    url: String,
    /// CA of a TLS Redis (`rediss://`).
    ca_file: Option<std::path::PathBuf>,
}

struct Cluster {
    pg: PgServer,
    redis: RedisServer,
    reach: Redis,
    db_url: String,
    key: String,
    nodes: Vec<Hop>,
    workers: Vec<Hop>,
    client: reqwest::Client,
}

impl Cluster {
    async fn start(nodes: usize, workers: usize) -> Cluster {
        let redis = RedisServer::start();
        let reach = Redis {
            url: redis.url(),
            ca_file: None,
        };
        Self::start_on(redis, reach, nodes, workers).await
    }

    /// A cluster on a Redis server started by the caller, reached as
    /// `reach` says (a password, TLS).
    async fn start_on(redis: RedisServer, reach: Redis, nodes: usize, workers: usize) -> Cluster {
        let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
        let db = pg.create_db();
        let db_url = pg.url(&db);
        // Migrate once, and make an admin key, before the processes start.
        let store = hop::store::postgres::PgStore::open(&db_url, true)
            .await
            .unwrap();
        let token = Token::generate(KEY_PREFIX);
        store.insert_key("admin", token.hash(), true).await.unwrap();
        let mut cluster = Cluster {
            pg,
            db_url,
            key: token.expose().to_owned(),
            nodes: Vec::new(),
            workers: Vec::new(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            redis,
            reach,
        };
        for _ in 0..nodes {
            let node = Hop::node(&cluster.db_url, &cluster.reach).await;
            cluster.nodes.push(node);
        }
        for i in 0..workers {
            let w = Hop::worker(&cluster.db_url, &cluster.reach, &format!("w{i}"));
            cluster.workers.push(w);
        }
        cluster
    }

    fn node(&self, i: usize) -> &str {
        &self.nodes[i].base
    }

    async fn create(&self, node: usize, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/links", self.node(node)))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn redirect(&self, node: usize, slug: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/{slug}", self.node(node)))
            .header("user-agent", FIREFOX)
            .send()
            .await
            .unwrap()
    }

    async fn total(&self, node: usize, slug: &str) -> u64 {
        let stats: Value = self
            .client
            .get(format!("{}/api/v1/links/{slug}/stats", self.node(node)))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["total_clicks"].as_u64().unwrap_or(0)
    }

    /// The value of an unlabelled series on node `n`'s `/metrics`.
    async fn metric(&self, n: usize, name: &str) -> Option<f64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.node(n)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits until the stats count `n` clicks (and never more).
    async fn wait_total(&self, slug: &str, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.total(0, slug).await;
            assert!(got <= n, "counted {got} clicks, more than the {n} served");
            if got == n {
                return;
            }
            assert!(Instant::now() < deadline, "counted {got} of {n} clicks");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Raw clicks stored for the link, and how many distinct event ids.
    async fn raw_clicks(&self) -> (i64, i64) {
        let pool = sqlx::PgPool::connect(&self.db_url).await.unwrap();
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM clicks")
            .fetch_one(&pool)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_share_links_edits_and_live_clicks() {
    let c = Cluster::start(3, 2).await;

    // Created on node 1, redirects on node 3 at once.
    let res = c
        .create(
            0,
            json!({"url": "https://example.com/v1", "slug": "shared"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = c.redirect(2, "shared").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "https://example.com/v1");
    // Every node has it cached now.
    for n in 0..3 {
        assert_eq!(c.redirect(n, "shared").await.status(), StatusCode::FOUND);
    }

    // Edited on node 2: nodes 1 and 3 follow the new target.
    let res = c
        .client
        .patch(format!("{}/api/v1/links/shared", c.node(1)))
        .bearer_auth(&c.key)
        .json(&json!({"url": "https://example.com/v2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let edited = Instant::now();
    // Every redirect is a click; count them, the loop may take several.
    let mut served = 4;
    for n in [0, 2] {
        loop {
            let res = c.redirect(n, "shared").await;
            served += 1;
            if res.headers()["location"] == "https://example.com/v2" {
                break;
            }
            assert!(
                edited.elapsed() < Duration::from_secs(2),
                "node {n} still redirects to the old target"
            );
        }
    }
    eprintln!("edit reached nodes 1 and 3 in {:?}", edited.elapsed());

    // Deleted on node 3: gone everywhere.
    c.create(0, json!({"url": "https://example.com/tmp", "slug": "temp"}))
        .await;
    for n in 0..3 {
        assert_eq!(c.redirect(n, "temp").await.status(), StatusCode::FOUND);
    }
    let res = c
        .client
        .delete(format!("{}/api/v1/links/temp", c.node(2)))
        .bearer_auth(&c.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for n in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(2);
        while c.redirect(n, "temp").await.status() != StatusCode::NOT_FOUND {
            assert!(
                Instant::now() < deadline,
                "node {n} still serves a deleted link"
            );
        }
    }

    // A dashboard stream on node 1 sees clicks served by node 2.
    let mut live = c
        .client
        .get(format!("{}/api/v1/links/shared/live", c.node(0)))
        .bearer_auth(&c.key)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let mut buf = String::new();
    // The stream starts with the totals.
    while !buf.contains("event: totals") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), live.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    for i in 0..3 {
        let res = c
            .client
            .get(format!("{}/shared?utm_source=node2-{i}", c.node(1)))
            .header("user-agent", FIREFOX)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(0..3).all(|i| buf.contains(&format!("\"utm_source\":\"node2-{i}\""))) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, live.chunk())
            .await
            .expect("clicks from node 2 reach node 1's stream")
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    // Counted exactly: every redirect of `shared` so far, 3 from node 2 last.
    c.wait_total("shared", served + 3, Duration::from_secs(20))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_counts_through_a_killed_worker_and_a_redis_restart() {
    let mut c = Cluster::start(3, 2).await;
    let res = c
        .create(0, json!({"url": "https://example.com/", "slug": "hot"}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);

    const TOTAL: u64 = 20_000;
    let sent = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let bases: Vec<String> = c.nodes.iter().map(|n| n.base.clone()).collect();
    let mut load = Vec::new();
    for t in 0..32u64 {
        let (client, bases, sent, ok) = (c.client.clone(), bases.clone(), sent.clone(), ok.clone());
        load.push(tokio::spawn(async move {
            loop {
                let i = sent.fetch_add(1, Ordering::Relaxed);
                if i >= TOTAL {
                    break;
                }
                let base = &bases[((i + t) % 3) as usize];
                // A refused connection (never answered) is retried; an
                // answered redirect is a click and must be counted once.
                loop {
                    match client
                        .get(format!("{base}/hot"))
                        .header("user-agent", FIREFOX)
                        .send()
                        .await
                    {
                        Ok(res) => {
                            assert_eq!(res.status(), StatusCode::FOUND);
                            ok.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }
        }));
    }

    // Faults while the load runs.
    while sent.load(Ordering::Relaxed) < TOTAL / 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Killed while it holds entries: frozen (SIGSTOP) until XPENDING shows
    // some delivered to it and not acknowledged, then SIGKILL. Its entries
    // must then be claimed by the others.
    let mut r = redis_conn(&c.redis.url()).await;
    let pending_of_w0 = |r: &mut redis::aio::MultiplexedConnection| {
        let mut r = r.clone();
        async move {
            let reply: redis::Value = redis::cmd("XPENDING")
                .arg("hop:clicks")
                .arg("hop-workers")
                .arg("-")
                .arg("+")
                .arg(100_000)
                .arg("w0")
                .query_async(&mut r)
                .await
                .unwrap();
            match reply {
                redis::Value::Array(entries) => entries.len(),
                _ => 0,
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let held = loop {
        c.workers[0].signal(nix::sys::signal::Signal::SIGSTOP);
        let n = pending_of_w0(&mut r).await;
        if n > 0 {
            break n;
        }
        c.workers[0].signal(nix::sys::signal::Signal::SIGCONT);
        assert!(Instant::now() < deadline, "worker 0 never held entries");
        tokio::time::sleep(Duration::from_millis(3)).await;
    };
    c.workers[0].kill9().await;
    eprintln!("worker 0 killed holding {held} entries");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w = Hop::worker(&c.db_url, &c.reach, "w0-restarted");
    c.workers.push(w);
    while sent.load(Ordering::Relaxed) < TOTAL / 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A crash, not a clean stop: with `appendfsync always` nothing
    // acknowledged to a node is lost.
    c.redis.kill9();
    let down = Instant::now();
    // Nodes keep answering and say Redis is down.
    loop {
        let ready = c
            .client
            .get(format!("{}/readyz", c.node(0)))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "still ready without Redis");
        let ready: Value = ready.json().await.unwrap();
        if ready["redis"] == "down" {
            assert_eq!(c.metric(0, "hop_redis_up").await, Some(0.0));
            assert_eq!(c.metric(0, "hop_store_up").await, Some(1.0));
            break;
        }
        assert!(
            down.elapsed() < Duration::from_secs(5),
            "readyz never reported redis down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    c.redis.start_again();

    for task in load {
        task.await.unwrap();
    }
    assert_eq!(
        ok.load(Ordering::Relaxed),
        TOTAL,
        "every redirect answered 302"
    );
    c.wait_total("hot", TOTAL, Duration::from_secs(90)).await;
    let mut r = redis_conn(&c.redis.url()).await;
    assert_eq!(
        pending_of_w0(&mut r).await,
        0,
        "worker 0's entries were claimed"
    );
    let (rows, distinct) = c.raw_clicks().await;
    assert_eq!(
        (rows, distinct),
        (TOTAL as i64, TOTAL as i64),
        "no click twice"
    );
    // Nothing was dropped on the way.
    let metrics = c
        .client
        .get(format!("{}/metrics", c.node(0)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("hop_clicks_dropped_total") && !l.ends_with(" 0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_outage_keeps_cached_links_and_fails_creates_fast() {
    let c = Cluster::start(2, 1).await;
    c.create(0, json!({"url": "https://example.com/", "slug": "steady"}))
        .await;
    for n in 0..2 {
        assert_eq!(c.redirect(n, "steady").await.status(), StatusCode::FOUND);
    }
    c.wait_total("steady", 2, Duration::from_secs(20)).await;

    tokio::task::block_in_place(|| c.pg.stop());
    for i in 0..200 {
        let res = c.redirect(i % 2, "steady").await;
        assert_eq!(res.status(), StatusCode::FOUND, "cached link served");
    }
    let started = Instant::now();
    let res = c.create(1, json!({"url": "https://example.com/new"})).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
    let ready: Value = c
        .client
        .get(format!("{}/readyz", c.node(0)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["error"]["code"], "store_unavailable");
    // And /metrics says so, for the alert.
    assert_eq!(c.metric(0, "hop_store_up").await, Some(0.0));
    assert_eq!(c.metric(0, "hop_redis_up").await, Some(1.0));

    tokio::task::block_in_place(|| c.pg.start_again());
    // The clicks served during the outage were waiting in the stream.
    c.wait_total("steady", 202, Duration::from_secs(60)).await;
    let res = c
        .create(
            1,
            json!({"url": "https://example.com/new", "slug": "after"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(c.metric(1, "hop_store_up").await, Some(1.0));
}

/// A client of the test Redis (for what an attacker with write access
/// does).
async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    // Patient: it is used while the machine is loaded on purpose.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// Whoever can write to Redis cannot point a slug elsewhere, move a cached
/// entry to another slug, replay an expired one, or add clicks: nodes and
/// workers refuse what was not signed with the cluster key, which Redis
/// never holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_writers_cannot_forge_links_or_clicks() {
    use hop::store::LinkStore;
    let c = Cluster::start(2, 1).await;
    let slugs = [
        "real",
        "f-unsigned",
        "f-otherkey",
        "f-moved",
        "f-expired",
        "f-script",
        "ctl",
    ];
    for slug in slugs {
        let res = c
            .create(
                0,
                json!({"url": format!("https://example.com/{slug}"), "slug": slug}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let store = hop::store::postgres::PgStore::open(&c.db_url, false)
        .await
        .unwrap();
    let entry = |slug: &'static str| {
        let store = &store;
        async move {
            let link = store
                .link_by_slug(&hop::domain::Slug::parse(slug).unwrap())
                .await
                .unwrap()
                .unwrap();
            serde_json::to_string(&link).unwrap().replace(
                &format!("https://example.com/{slug}"),
                "https://evil.example/",
            )
        }
    };
    let ours = hop::seal::Sealer::new(CLUSTER_KEY.as_bytes()).unwrap();
    let theirs = hop::seal::Sealer::new(&[0x42; 32]).unwrap();
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 600_000;
    let key = |slug: &str| format!("hop:link:{slug}");
    let forged = [
        (
            "f-unsigned",
            format!("{later}:{}", entry("f-unsigned").await),
        ),
        (
            "f-otherkey",
            theirs.seal(
                &key("f-otherkey"),
                &format!("{later}:{}", entry("f-otherkey").await),
            ),
        ),
        (
            // Sealed for another slug's key, then moved here.
            "f-moved",
            ours.seal(&key("real"), &format!("{later}:{}", entry("f-moved").await)),
        ),
        (
            "f-expired",
            ours.seal(
                &key("f-expired"),
                &format!("1000:{}", entry("f-expired").await),
            ),
        ),
        (
            "f-script",
            ours.seal(
                &key("f-script"),
                &format!("{later}:{}", entry("f-script").await)
                    .replace("https://evil.example/", "javascript:alert(1)"),
            ),
        ),
        // The control: sealed right, so the node follows it.
        (
            "ctl",
            ours.seal(&key("ctl"), &format!("{later}:{}", entry("ctl").await)),
        ),
    ];
    let mut r = redis_conn(&c.redis.url()).await;
    for (slug, value) in &forged {
        let _: () = redis::AsyncCommands::set(&mut r, key(slug), value)
            .await
            .unwrap();
    }
    // Node 2 has none of them in its own cache: it reads Redis.
    for (slug, _) in &forged {
        let res = c.redirect(1, slug).await;
        let want = if *slug == "ctl" {
            "https://evil.example/".to_owned()
        } else {
            format!("https://example.com/{slug}")
        };
        assert_eq!(res.headers()["location"], want.as_str(), "{slug}");
    }
    assert_eq!(c.redirect(1, "real").await.status(), StatusCode::FOUND);

    // Clicks appended straight to the stream are dropped by the worker.
    let pool = sqlx::PgPool::connect(&c.db_url).await.unwrap();
    let (link_id,): (i64,) = sqlx::query_as("SELECT id FROM links WHERE slug = 'real'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let event = json!({
        "event_id": "0190a0a0-0000-7000-8000-000000000001",
        "link_id": link_id, "at": now, "ip": "203.0.113.9",
        "user_agent": FIREFOX, "referrer": null, "utm": {},
        "region": "local", "withheld": false
    });
    for _ in 0..5 {
        let _: String = redis::cmd("XADD")
            .arg("hop:clicks")
            .arg("*")
            .arg("e")
            .arg(event.to_string())
            .query_async(&mut r)
            .await
            .unwrap();
    }
    // Served: every forged slug once, `real` twice.
    assert_eq!(c.redirect(0, "real").await.status(), StatusCode::FOUND);
    c.wait_total("real", 2, Duration::from_secs(20)).await;
    // Nothing else is ever counted, and the forged entries are gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (raw, _) = c.raw_clicks().await;
        assert!(raw <= 8, "{raw} clicks stored, 8 served");
        if raw == 8 {
            break;
        }
        assert!(Instant::now() < deadline, "{raw} of 8 clicks stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.total(0, "real").await, 2);
    assert_eq!(c.raw_clicks().await.0, 8);
    let left: u64 = redis::cmd("XLEN")
        .arg("hop:clicks")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(left, 0, "forged entries left in the stream");
}

/// Redis with a password (the default user) or an ACL user of its own, and
/// Redis over TLS with a private CA: the cluster works through each, and a
/// node with the wrong password or without the CA does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_auth_acl_users_and_tls() {
    let password = RedisServer::start_with(&["--requirepass", "S3cretPW"]);
    let acl = RedisServer::start_with(&[
        "--user",
        "hop",
        "on",
        ">Hop-ACL-pw",
        "~hop:*",
        "&hop:*",
        "+@all",
    ]);
    let (tls, ca) = RedisServer::start_tls();
    let cases = [
        (
            format!("redis://:S3cretPW@127.0.0.1:{}/", password.port),
            None,
            password,
        ),
        (
            format!("redis://hop:Hop-ACL-pw@127.0.0.1:{}/", acl.port),
            None,
            acl,
        ),
        (tls.url(), Some(ca.clone()), tls),
    ];
    for (url, ca_file, server) in cases {
        let reach = Redis {
            url: url.clone(),
            ca_file: ca_file.clone(),
        };
        let c = Cluster::start_on(server, reach.clone(), 2, 1).await;
        let res = c
            .create(0, json!({"url": "https://example.com/", "slug": "through"}))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        for n in [0, 1, 0] {
            assert_eq!(c.redirect(n, "through").await.status(), StatusCode::FOUND);
        }
        c.wait_total("through", 3, Duration::from_secs(20)).await;
        // A wrong password, or TLS without the CA: the node refuses to start.
        let wrong = match &ca_file {
            Some(_) => Redis {
                url: url.clone(),
                ca_file: None,
            },
            None => Redis {
                url: url
                    .replace(":S3cretPW@", ":nope@")
                    .replace(":Hop-ACL-pw@", ":nope@"),
                ca_file: None,
            },
        };
        let out = Hop::command(&c.db_url, &wrong)
            .args(["serve", "--listen", "127.0.0.1:0", "--no-migrate"])
            .stderr(Stdio::piped())
            .output();
        assert_ne!(
            wrong.url == url,
            wrong.ca_file == ca_file,
            "{url}: nothing wrong"
        );
        let out = tokio::time::timeout(Duration::from_secs(20), out)
            .await
            .unwrap_or_else(|_| panic!("{url}: a node that cannot reach Redis gives up"))
            .unwrap();
        assert!(!out.status.success(), "{url}: started anyway");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !said.contains("S3cretPW") && !said.contains("Hop-ACL-pw"),
            "{said}"
        );
    }
}

/// An edit made while Redis is down: nodes that cached the old link keep
/// it (their subscription is gone), and once Redis is back they drop their
/// whole cache and the editing node resends its invalidation, so every
/// node follows the edit within seconds (not after the cache TTL).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_during_a_redis_outage_reach_every_node_when_it_returns() {
    let mut c = Cluster::start(2, 1).await;
    c.create(
        0,
        json!({"url": "https://example.com/v1", "slug": "outage"}),
    )
    .await;
    // As for a link made more than 10 s ago: no creation tombstone, so the
    // first redirect fills the shared tier too.
    let mut r = redis_conn(&c.redis.url()).await;
    let _: () = redis::AsyncCommands::del(&mut r, "hop:inval:outage")
        .await
        .unwrap();
    for n in 0..2 {
        let res = c.redirect(n, "outage").await;
        assert_eq!(res.headers()["location"], "https://example.com/v1");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis::AsyncCommands::exists::<_, bool>(&mut r, "hop:link:outage")
        .await
        .unwrap()
    {
        assert!(
            Instant::now() < deadline,
            "the shared tier never had the link"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Dead before the edit: the editing node cannot send its invalidation.
    c.redis.kill9();
    let res = c
        .client
        .patch(format!("{}/api/v1/links/outage", c.node(1)))
        .bearer_auth(&c.key)
        .json(&json!({"url": "https://example.com/v2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Node 1 still has the old link in its own cache: nothing reached it.
    let res = c.redirect(0, "outage").await;
    assert_eq!(res.headers()["location"], "https://example.com/v1");
    c.redis.start_again();
    let back = Instant::now();
    loop {
        let res = c.redirect(0, "outage").await;
        if res.headers()["location"] == "https://example.com/v2" {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "node 1 still serves the link edited during the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "the edit reached node 1 {:?} after redis came back",
        back.elapsed()
    );
    // And it stays edited (the shared tier lost the old entry too).
    for n in [0, 1, 0, 1] {
        let res = c.redirect(n, "outage").await;
        assert_eq!(res.headers()["location"], "https://example.com/v2");
    }
}

/// A node that read a link from the store just before another node edited
/// it cannot put the old link back into the shared cache: the edit leaves a
/// tombstone that the cache fill checks (in one Lua script).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racing_load_cannot_recache_an_edited_link() {
    use hop::cache::CachedLink;
    let server = RedisServer::start();
    let seal = || hop::seal::Sealer::new(CLUSTER_KEY.as_bytes()).unwrap();
    let editor = hop::cluster::Redis::connect(&server.url(), seal(), None)
        .await
        .unwrap();
    let loader = hop::cluster::Redis::connect(&server.url(), seal(), None)
        .await
        .unwrap();
    let link = |slug: &str| {
        let mut l = hop::testing::link(slug, None);
        l.target = hop::domain::TargetUrl::parse("https://example.com/old", &[]).unwrap();
        CachedLink::Found(std::sync::Arc::new(l))
    };
    let ttl = Duration::from_secs(60);
    // No edit: the fill lands.
    loader.cache_link("calm", &link("calm"), ttl).await;
    assert!(matches!(
        loader.cached_link("calm").await,
        Some(CachedLink::Found(_))
    ));
    // Edited (invalidated) just after the loader read the old version.
    editor.invalidate("raced").await;
    loader.cache_link("raced", &link("raced"), ttl).await;
    assert!(
        loader.cached_link("raced").await.is_none(),
        "the old link went back into the shared cache"
    );
    let mut r = redis_conn(&server.url()).await;
    let ttl_left: i64 = redis::cmd("TTL")
        .arg("hop:inval:raced")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!((1..=10).contains(&ttl_left), "tombstone for {ttl_left} s");
}

/// The webhook proof: a receiver that answers 500 at random, hangs past
/// the timeout, and goes away for a while; 20 000 clicks over four links
/// through two nodes and two workers, one of them SIGKILLed while it holds
/// leased messages. Every stored click is delivered, in exactly one
/// message (the set of delivered event ids equals the stored event ids),
/// and every request's signature verifies with the Standard Webhooks
/// reference library from PyPI (scripts/verify-webhooks.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_deliver_every_click_once_through_a_killed_worker() {
    use receiver_support::{Mode, Receiver};
    let verifier =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/webhooks-venv/bin/python");
    assert!(
        verifier.exists(),
        "run scripts/webhooks-verifier.sh (scripts/test.sh does)"
    );
    let mut c = Cluster::start(2, 2).await;
    let mut rx = Receiver::start().await;
    rx.set(Mode::Flaky);
    let res = c
        .client
        .post(format!("{}/api/v1/webhooks", c.node(0)))
        .bearer_auth(&c.key)
        .json(&json!({"url": rx.url(), "events": ["click"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let slugs = ["wa", "wb", "wc", "wd"];
    for slug in slugs {
        let res = c
            .create(0, json!({"url": "https://example.com/", "slug": slug}))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    const TOTAL: u64 = 20_000;
    let sent = Arc::new(AtomicU64::new(0));
    let bases: Vec<String> = c.nodes.iter().map(|n| n.base.clone()).collect();
    let mut load = Vec::new();
    for t in 0..32u64 {
        let (client, bases, sent) = (c.client.clone(), bases.clone(), sent.clone());
        load.push(tokio::spawn(async move {
            loop {
                let i = sent.fetch_add(1, Ordering::Relaxed);
                if i >= TOTAL {
                    break;
                }
                let res = client
                    .get(format!(
                        "{}/{}",
                        bases[((i + t) % 2) as usize],
                        slugs[(i % 4) as usize]
                    ))
                    .header("user-agent", FIREFOX)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::FOUND);
            }
        }));
    }

    // Worker 0 killed while it holds leased messages: frozen until the
    // store shows some leased to it, then SIGKILL.
    let pool = sqlx::PgPool::connect(&c.db_url).await.unwrap();
    while sent.load(Ordering::Relaxed) < TOTAL / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        c.workers[0].signal(nix::sys::signal::Signal::SIGSTOP);
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM webhook_messages
             WHERE leased_by = 'w0' AND state = 'pending'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if n > 0 {
            break n;
        }
        c.workers[0].signal(nix::sys::signal::Signal::SIGCONT);
        assert!(Instant::now() < deadline, "worker 0 never held a message");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    c.workers[0].kill9().await;
    eprintln!("worker 0 killed holding {held} messages");

    // The receiver goes away for two seconds and comes back.
    while sent.load(Ordering::Relaxed) < TOTAL * 2 / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rx.away();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rx.back().await;
    for task in load {
        task.await.unwrap();
    }
    for slug in slugs {
        c.wait_total(slug, TOTAL / 4, Duration::from_secs(60)).await;
    }

    let stored: std::collections::BTreeSet<String> =
        sqlx::query_scalar::<_, Vec<u8>>("SELECT event_id FROM clicks")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|b| uuid::Uuid::from_slice(&b).unwrap().to_string())
            .collect();
    assert_eq!(stored.len() as u64, TOTAL);
    rx.set(Mode::Ok);
    rx.wait_for(Duration::from_secs(120), "every click delivered", |r| {
        r.delivered_clicks().0.len() as u64 == TOTAL
    })
    .await;
    let (delivered, twice) = rx.delivered_clicks();
    assert_eq!(delivered, stored, "delivered event ids = stored event ids");
    assert_eq!(twice, 0, "an event came in two different messages");
    let all = rx.all();
    let failed = all
        .iter()
        .filter(|r| !(200..300).contains(&r.answered))
        .count();
    let messages = rx.delivered().len();
    eprintln!(
        "{} requests for {messages} messages ({failed} answered 500 or hung)",
        all.len()
    );
    assert!(failed > 0, "the receiver never failed");

    // Every request, retries included, verified by the reference library.
    let file = tempfile::NamedTempFile::new().unwrap();
    receiver_support::dump(&all, file.path());
    let out = std::process::Command::new(&verifier)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify-webhooks.py"))
        .arg(&secret)
        .arg(file.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        said.trim(),
        format!("verified {} of {}", all.len(), all.len())
    );
}
