//! Cluster mode with real processes: a private PostgreSQL and redis-server,
//! several `hop serve` nodes and `hop worker` processes (the built binary),
//! and faults: a worker killed with SIGKILL, Redis restarted, PostgreSQL
//! stopped under load.

#[path = "support/postgres.rs"]
#[allow(dead_code)]
mod pg_support;
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

/// A hop process (node or worker), killed on drop.
struct Hop {
    child: tokio::process::Child,
    base: String,
}

impl Hop {
    fn command(db: &str, redis: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"));
        cmd.env("HOP_DATABASE_URL", db)
            .env("HOP_REDIS_URL", redis)
            .env("HOP_LOG", "error")
            .env("HOP_CLAIM_IDLE_MS", "2000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        cmd
    }

    async fn node(db: &str, redis: &str) -> Hop {
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

    fn worker(db: &str, redis: &str, name: &str) -> Hop {
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
}

struct Cluster {
    pg: PgServer,
    redis: RedisServer,
    db_url: String,
    key: String,
    nodes: Vec<Hop>,
    workers: Vec<Hop>,
    client: reqwest::Client,
}

impl Cluster {
    async fn start(nodes: usize, workers: usize) -> Cluster {
        let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
        let redis = RedisServer::start();
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
        };
        for _ in 0..nodes {
            let node = Hop::node(&cluster.db_url, &cluster.redis.url()).await;
            cluster.nodes.push(node);
        }
        for i in 0..workers {
            let w = Hop::worker(&cluster.db_url, &cluster.redis.url(), &format!("w{i}"));
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
    c.workers[0].kill9().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w = Hop::worker(&c.db_url, &c.redis.url(), "w0-restarted");
    c.workers.push(w);
    while sent.load(Ordering::Relaxed) < TOTAL / 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.redis.stop();
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
}
