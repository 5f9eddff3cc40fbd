//! `hop import` against real formats: a YOURLS database on this machine's
//! MariaDB server (YOURLS's own table definitions, realistic rows with bots,
//! empty referrers and IPv6 addresses), a `mariadb-dump` of it, and a plain
//! CSV, each imported by the real binary into a SQLite store. Totals per
//! link and per day equal the source's; running again adds nothing, also
//! after retention deleted the raw clicks.
//!
//! The MariaDB server is a private one, started here in a temporary
//! directory (`mariadb-install-db`, `mariadbd` from Debian's
//! mariadb-server) on a free port and stopped at the end; or, with
//! `HOP_TEST_MYSQL=user@host:port`, a running one (a database of the
//! test's own is made there and dropped).
#![cfg(all(feature = "sqlite", feature = "mysql"))]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use hop::domain::{Dimension, Slug};
use hop::stats::{Interval, LinkStats, StatsQuery, link_stats};
use hop::store::{Store, StoreConfig, TimeRange};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::Value;

const DAY: i64 = 86_400_000;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// YOURLS 1.9's tables, as `includes/functions-install.php` creates them.
const YOURLS_TABLES: &str = "
CREATE TABLE IF NOT EXISTS `yourls_url` (
 `keyword` varchar(100) BINARY NOT NULL,
 `url` text BINARY NOT NULL,
 `title` text CHARACTER SET utf8mb4,
 `timestamp` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
 `ip` varchar(41) NOT NULL,
 `clicks` INT(10) UNSIGNED NOT NULL,
 PRIMARY KEY (`keyword`),
 KEY `ip` (`ip`),
 KEY `timestamp` (`timestamp`)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE IF NOT EXISTS `yourls_log` (
 `click_id` int(11) NOT NULL auto_increment,
 `click_time` datetime NOT NULL,
 `shorturl` varchar(100) BINARY NOT NULL,
 `referrer` varchar(200) NOT NULL,
 `user_agent` varchar(255) NOT NULL,
 `ip_address` varchar(41) NOT NULL,
 `country_code` char(2) NOT NULL,
 PRIMARY KEY (`click_id`),
 KEY `shorturl` (`shorturl`)
) AUTO_INCREMENT=1 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
";

/// A private MariaDB server, killed (by its PID) when dropped.
struct Server {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=normal"])
            .args(["--skip-test-db", "--user=root"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db (Debian's mariadb-server)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let daemon = ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("mariadbd");
        let child = Command::new(daemon)
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=32M"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .expect("mariadbd");
        let server = Server {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..300 {
            let up = Command::new("mariadb")
                .args(["-uroot", "-h127.0.0.1", &format!("-P{port}")])
                .args(["-e", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("MariaDB did not start on port {port}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database of the test's own: on its private server, or on the one
/// `HOP_TEST_MYSQL` names (dropped there at the end).
struct Database {
    name: String,
    user: String,
    host: String,
    port: String,
    server: Option<Server>,
}

impl Database {
    fn create(tag: &str) -> Database {
        let name = format!("hop_import_{tag}_{}", std::process::id());
        let db = match std::env::var("HOP_TEST_MYSQL") {
            Ok(spec) => {
                let bad = "HOP_TEST_MYSQL is user@host:port";
                let (user, addr) = spec.split_once('@').expect(bad);
                let (host, port) = addr.split_once(':').expect(bad);
                Database {
                    name,
                    user: user.into(),
                    host: host.into(),
                    port: port.into(),
                    server: None,
                }
            }
            Err(_) => {
                let server = Server::start();
                Database {
                    name,
                    user: "root".into(),
                    host: "127.0.0.1".into(),
                    port: server.port.to_string(),
                    server: Some(server),
                }
            }
        };
        db.sql(
            None,
            &format!("DROP DATABASE IF EXISTS {0}; CREATE DATABASE {0}", db.name),
        );
        db
    }

    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.args(["-u", &self.user, "-h", &self.host, "-P", &self.port]);
        c.arg("--default-character-set=utf8mb4");
        c
    }

    fn sql(&self, db: Option<&str>, sql: &str) {
        let mut c = self.client();
        if let Some(db) = db {
            c.arg(db);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .spawn()
            .expect("the mariadb client (Debian's mariadb-client)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "SQL failed");
    }

    fn url(&self) -> String {
        format!(
            "mysql://{}@{}:{}/{}",
            self.user, self.host, self.port, self.name
        )
    }

    fn dump(&self, to: &std::path::Path) {
        let out = Command::new("mariadb-dump")
            .args(["-u", &self.user, "-h", &self.host, "-P", &self.port])
            .args([&self.name, "yourls_url", "yourls_log"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(to, out.stdout).unwrap();
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.server.is_none() {
            let _ = self
                .client()
                .args(["-e", &format!("DROP DATABASE IF EXISTS {}", self.name)])
                .output();
        }
    }
}

/// A source link and what its clicks should give.
#[derive(Default, Debug)]
struct Expect {
    counter: u64,
    total: u64,
    humans: u64,
    days: BTreeMap<i64, u64>,
    referrers: BTreeMap<String, u64>,
    countries: BTreeMap<String, u64>,
}

/// Fills the YOURLS tables with rows as YOURLS writes them; returns what
/// each keyword's clicks should give.
fn fill(db: &Database) -> BTreeMap<String, Expect> {
    let mut rng = StdRng::seed_from_u64(18);
    let start = 1_704_067_200_000i64; // 2024-01-01
    let links: &[(&str, &str, &str, u64)] = &[
        ("abc", "https://example.com/a?x=1&y=2", "Plain", 1200),
        (
            "xyz9",
            "https://example.org/it's",
            "It\\'s \"quoted\" — ünïcode",
            800,
        ),
        ("stats", "https://example.net/reserved", "", 50),
        ("taken", "https://example.net/yourls-taken", "", 70),
        ("legacy", "https://example.com/legacy", "", 0),
        ("Mixed_Case-1", "https://example.com/case", "", 30),
        ("js", "javascript:alert(1)", "", 5),
    ];
    let mut expect: BTreeMap<String, Expect> = BTreeMap::new();
    let mut rows = Vec::new();
    for (keyword, _, _, n) in links {
        for _ in 0..*n {
            rows.push((keyword.to_string(), start + rng.random_range(0..500 * DAY)));
        }
    }
    for _ in 0..20 {
        rows.push(("gone".to_string(), start + rng.random_range(0..500 * DAY)));
    }
    rows.sort_by_key(|r| r.1);
    let mut sql = String::from(YOURLS_TABLES);
    for (keyword, url, title, n) in links {
        // YOURLS's own counter: its log's count, except for `legacy`,
        // counted while logging was off.
        let counter = if *keyword == "legacy" { 10 } else { *n };
        sql.push_str(&format!(
            "INSERT INTO yourls_url VALUES ('{keyword}', '{}', '{title}', '2023-12-01 10:00:00', '203.0.113.9', {counter});\n",
            url.replace('\'', "\\'")
        ));
        expect.insert(
            keyword.to_string(),
            Expect {
                counter,
                ..Expect::default()
            },
        );
    }
    let geo = hop::clicks::geo::GeoDb::bundled().unwrap();
    let mut values = Vec::new();
    for (keyword, at) in &rows {
        let (ua, human) = match rng.random_range(0..10) {
            0..=3 => (CHROME, true),
            4..=6 => (IPHONE, true),
            7 | 8 => (GOOGLEBOT, false),
            _ => ("-", false),
        };
        let (referrer, host) = match rng.random_range(0..3) {
            0 => ("direct", "direct"),
            1 => ("https://www.google.com/search?q=hop", "google.com"),
            _ => (
                "https://news.ycombinator.com/item?id=1",
                "news.ycombinator.com",
            ),
        };
        let country = ["", "FR", "DE", "US"][rng.random_range(0..4)];
        let ip = match rng.random_range(0..3) {
            0 => format!("192.0.2.{}", rng.random_range(1..255)),
            1 => format!("2001:db8::{:x}", rng.random_range(1..0xffff)),
            _ => format!("198.51.100.{}", rng.random_range(1..255)),
        };
        let time = chrono::DateTime::from_timestamp_millis(*at)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S");
        values.push(format!(
            "('{time}', '{keyword}', '{referrer}', '{ua}', '{ip}', '{country}')"
        ));
        if let Some(e) = expect.get_mut(keyword) {
            e.total += 1;
            e.humans += u64::from(human);
            // hop counts the second the click was logged (whole seconds).
            *e.days.entry(at.div_euclid(DAY) * DAY).or_default() += 1;
            *e.referrers.entry(host.into()).or_default() += 1;
            // YOURLS's country, else where hop's own database puts the
            // address (as for a live click).
            let country = match country {
                "" => geo
                    .lookup(ip.parse().unwrap())
                    .country
                    .unwrap_or_else(|| "unknown".into()),
                cc => cc.to_owned(),
            };
            *e.countries.entry(country).or_default() += 1;
        }
    }
    for chunk in values.chunks(500) {
        sql.push_str(&format!(
            "INSERT INTO yourls_log (click_time, shorturl, referrer, user_agent, ip_address, country_code) VALUES {};\n",
            chunk.join(",")
        ));
    }
    db.sql(Some(&db.name), &sql);
    expect
}

fn hop(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hop"))
        .args(args)
        .env_remove("HOP_DATABASE_URL")
        .env_remove("HOP_GEOIP_DB")
        .env("HOP_GEOIP_UPDATE_PATH", "/nonexistent/geoip.mmdb")
        .output()
        .unwrap()
}

/// Runs `hop import …` and returns its JSON summary.
fn import(args: &[&str]) -> Value {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = hop(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hop {all:?}: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)))
}

async fn open(url: &str) -> std::sync::Arc<dyn Store> {
    StoreConfig::parse(url).unwrap().open(true).await.unwrap()
}

fn whole(include_bots: bool) -> StatsQuery {
    let now = chrono::Utc::now().timestamp_millis();
    StatsQuery {
        range: TimeRange {
            from: 1_700_000_000_000,
            to: now,
        },
        interval: Interval::Day,
        tz: "UTC".parse().unwrap(),
        include_bots,
        top: 100,
        minute_since: StatsQuery::minute_since_now(),
        now,
    }
}

async fn stats_of(store: &dyn Store, slug: &str, include_bots: bool) -> LinkStats {
    let link = store
        .link_by_slug(&Slug::parse_path(slug).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no link {slug}"));
    link_stats(store, link.id, &whole(include_bots))
        .await
        .unwrap()
}

fn top(s: &LinkStats, d: Dimension) -> BTreeMap<String, u64> {
    s.top
        .get(&d)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Every number of `slug` in hop against what its YOURLS rows give.
async fn check_link(store: &dyn Store, slug: &str, e: &Expect) {
    let all = stats_of(store, slug, true).await;
    assert_eq!(all.total_clicks, e.total, "{slug}: total");
    let days: BTreeMap<i64, u64> = all.series.iter().copied().filter(|d| d.1 > 0).collect();
    assert_eq!(days, e.days, "{slug}: per day");
    assert_eq!(
        top(&all, Dimension::Referrer),
        e.referrers,
        "{slug}: referrers"
    );
    assert_eq!(
        top(&all, Dimension::Country),
        e.countries,
        "{slug}: countries"
    );
    assert!(
        (all.unique_visitors > 0) == (e.total > 0) && all.unique_visitors <= e.total,
        "{slug}: {} visitors",
        all.unique_visitors
    );
    let humans = stats_of(store, slug, false).await;
    assert_eq!(humans.total_clicks, e.humans, "{slug}: humans");
    if e.total > 0 {
        let devices = top(&all, Dimension::Device);
        assert!(
            devices.get("bot").copied().unwrap_or(0) > 0,
            "{slug}: {devices:?}"
        );
        assert!(
            devices.get("mobile").copied().unwrap_or(0) > 0,
            "{slug}: {devices:?}"
        );
    }
}

fn num(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yourls_database_and_its_dump_import_every_click_once() {
    let db = Database::create("yourls");
    let expect = fill(&db);
    let dir = tempfile::tempdir().unwrap();
    let a_path = dir.path().join("a.db");
    let a = format!("sqlite://{}", a_path.display());

    // hop already has `taken`.
    let store = open(&a).await;
    let out = hop(&["migrate", "--database-url", &a]);
    assert!(out.status.success());
    insert_link(&*store, "taken", "https://hop.example/mine").await;

    let from = db.url();
    let args = ["yourls", "--from", &from, "--database-url", &a];
    let first = import(&args);
    assert_eq!(num(&first, "links_read"), 7, "{first}");
    assert_eq!(num(&first, "links_created"), 4, "{first}");
    let skipped: Vec<&str> = first["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["js", "stats", "taken"], "{first}");
    let imported = ["abc", "xyz9", "legacy", "Mixed_Case-1"];
    let logged: u64 = imported.iter().map(|k| expect[*k].total).sum();
    assert_eq!(num(&first, "clicks_new"), logged, "{first}");
    assert_eq!(num(&first, "clicks_skipped"), 50 + 70 + 5 + 20, "{first}");
    assert_eq!(num(&first, "hop_clicks"), logged);
    assert_eq!(
        num(&first, "source_clicks"),
        imported.iter().map(|k| expect[*k].counter).sum::<u64>()
    );
    assert_eq!(
        num(&first, "mismatched_links"),
        1,
        "legacy counted without a log"
    );
    assert_eq!(first["mismatches"][0]["key"], "legacy");
    for k in imported {
        check_link(&*store, k, &expect[k]).await;
    }
    let xyz = store
        .link_by_slug(&Slug::parse_path("xyz9").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(xyz.title.as_deref(), Some("It's \"quoted\" — ünïcode"));
    assert_eq!(xyz.target.as_str(), "https://example.org/it's");
    assert_eq!(
        xyz.created_at.to_rfc3339(),
        "2023-12-01T10:00:00+00:00",
        "created when YOURLS made it"
    );

    // Again: nothing new. Then again once retention took every raw click
    // (the marks, not the event ids, tell what is there).
    let second = import(&args);
    assert_eq!(num(&second, "links_existing"), 4, "{second}");
    assert_eq!(num(&second, "links_created"), 0, "{second}");
    assert_eq!(num(&second, "clicks_new"), 0, "{second}");
    let gone = store
        .delete_raw_clicks_before(chrono::Utc::now().timestamp_millis())
        .await
        .unwrap();
    assert_eq!(gone, logged);
    let third = import(&args);
    assert_eq!(num(&third, "clicks_new"), 0, "{third}");
    assert_eq!(num(&third, "hop_clicks"), logged, "{third}");
    for k in imported {
        check_link(&*store, k, &expect[k]).await;
    }

    // Overwrite takes `taken` now, with its clicks from the first; the
    // others' are not written twice; `stats` stays hop's word.
    let fourth = import(&[&args[..], &["--on-conflict", "overwrite"]].concat());
    assert_eq!(num(&fourth, "links_overwritten"), 1, "{fourth}");
    assert_eq!(num(&fourth, "clicks_new"), 70, "{fourth}");
    check_link(&*store, "taken", &expect["taken"]).await;
    let taken = store
        .link_by_slug(&Slug::parse_path("taken").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.target.as_str(), "https://example.net/yourls-taken");
    for k in imported {
        check_link(&*store, k, &expect[k]).await;
    }

    // The dump, into a second store where `taken` and `stats` get a suffix:
    // every answer the same as from the database.
    let dump = dir.path().join("yourls.sql");
    db.dump(&dump);
    let b = format!("sqlite://{}", dir.path().join("b.db").display());
    let b_store = open(&b).await;
    insert_link(&*b_store, "taken", "https://hop.example/mine").await;
    let dumped = import(&[
        "yourls",
        "--dump",
        dump.to_str().unwrap(),
        "--database-url",
        &b,
        "--on-conflict",
        "suffix",
    ]);
    assert_eq!(num(&dumped, "links_created"), 4, "{dumped}");
    assert_eq!(num(&dumped, "links_renamed"), 2, "{dumped}");
    for k in imported {
        assert_eq!(
            stats_of(&*b_store, k, true).await.total_clicks,
            stats_of(&*store, k, true).await.total_clicks
        );
        check_link(&*b_store, k, &expect[k]).await;
    }
    check_link(&*b_store, "taken-2", &expect["taken"]).await;
    check_link(&*b_store, "stats-2", &expect["stats"]).await;
    let again = import(&[
        "yourls",
        "--dump",
        dump.to_str().unwrap(),
        "--database-url",
        &b,
        "--on-conflict",
        "suffix",
    ]);
    assert_eq!(num(&again, "links_existing"), 6, "{again}");
    assert_eq!(num(&again, "clicks_new"), 0, "{again}");

    // The addresses YOURLS kept went into visitor hashes only.
    drop(store);
    drop(b_store);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sql") {
            continue;
        }
        // A -wal or -shm file may go as its store closes.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for ip in ["192.0.2.", "198.51.100.", "2001:db8:"] {
            assert!(
                !bytes.windows(ip.len()).any(|w| w == ip.as_bytes()),
                "{ip} in {}",
                path.display()
            );
        }
    }
}

async fn insert_link(store: &dyn Store, slug: &str, url: &str) {
    let now = chrono::Utc::now();
    let link = hop::domain::Link {
        id: hop::domain::LinkId::generate(now, &mut rand::rng()),
        slug: Slug::parse(slug).unwrap(),
        target: hop::domain::TargetUrl::parse(url, &[]).unwrap(),
        title: None,
        tags: vec![],
        created_at: now,
        updated_at: now,
        expires_at: None,
        max_clicks: None,
        redirect_status: hop::domain::RedirectStatus::Found,
        disabled: false,
        owner: None,
        secret_hash: None,
        rules: Default::default(),
        fallback_url: None,
        password_hash: None,
        preview: None,
    };
    store.insert_link(&link).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_plain_csv_of_links_imports_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hop.db").display());
    let csv = dir.path().join("links.csv");
    std::fs::write(
        &csv,
        "\u{feff}url,slug,title,tags,created_at,expires_at,clicks\n\
         https://example.com/1,one,\"First, with a comma\",\"news,2024\",2024-01-02T03:04:05Z,,7\n\
         https://example.com/2,,'=not a formula,,2024-01-02 03:04:05,2099-01-01,\n\
         https://example.com/2,,second of the same URL,,,,\n\
         not a url,bad,,,,,\n\
         https://example.com/3,has space,,,,,\n",
    )
    .unwrap();
    let path = csv.to_str().unwrap();
    let first = import(&["csv", path, "--database-url", &db]);
    assert_eq!(num(&first, "links_created"), 3, "{first}");
    assert_eq!(first["skipped"].as_array().unwrap().len(), 2, "{first}");
    let store = open(&db).await;
    let one = store
        .link_by_slug(&Slug::parse_path("one").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.title.as_deref(), Some("First, with a comma"));
    assert_eq!(one.tags, ["news", "2024"]);
    assert_eq!(one.created_at.to_rfc3339(), "2024-01-02T03:04:05+00:00");
    let all = store
        .list_links(&hop::store::LinkQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let formula = all
        .iter()
        .find(|l| l.title.as_deref() == Some("=not a formula"))
        .expect("the export's quote taken off");
    assert_eq!(
        formula.expires_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2099-01-01T00:00:00+00:00")
    );
    let second = import(&["csv", path, "--database-url", &db]);
    assert_eq!(num(&second, "links_created"), 0, "{second}");
    assert_eq!(num(&second, "links_existing"), 3, "{second}");

    // Refusals are clear, not a panic.
    let out = hop(&["import", "csv", "/nonexistent.csv", "--database-url", &db]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.csv"));
    let out = hop(&[
        "import",
        "yourls",
        "--dump",
        path,
        "--prefix",
        "x;drop",
        "--database-url",
        &db,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prefix"));
}

/// A Shlink REST API v3 as its docs and source answer it, for what the
/// importer reads: `GET /rest/v3/short-urls` (paged, `itemsPerPage` capped
/// at 2 here so paging is exercised) and
/// `GET /rest/v3/short-urls/{shortCode}/visits` (newest first,
/// `startDate`/`endDate` inclusive, `domain`, pages of at most 7), behind
/// `X-Api-Key`, with Shlink's problem+json errors.
mod shlink_fixture {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use serde_json::{Value, json};

    #[derive(Clone)]
    pub struct Visit {
        pub at: i64,
        pub referer: &'static str,
        pub ua: &'static str,
        pub country: Option<&'static str>,
        pub bot: bool,
    }

    pub struct ShortUrl {
        pub code: &'static str,
        pub domain: Option<&'static str>,
        pub long_url: &'static str,
        pub tags: Vec<&'static str>,
        pub created: i64,
        pub visits: Vec<Visit>,
    }

    #[derive(Default)]
    pub struct Data {
        pub urls: Vec<ShortUrl>,
        /// Answer 500 once to this (code, page).
        pub fail_once: Option<(&'static str, u32)>,
    }

    pub type Shared = Arc<Mutex<Data>>;

    fn atom(ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S+00:00")
            .to_string()
    }

    fn problem(status: StatusCode, kind: &str, detail: &str) -> Response {
        (
            status,
            [("content-type", "application/problem+json")],
            json!({"type": format!("https://shlink.io/api/error/{kind}"), "title": kind,
                   "detail": detail, "status": status.as_u16()})
            .to_string(),
        )
            .into_response()
    }

    fn paging(q: &std::collections::HashMap<String, String>, cap: usize) -> (usize, usize) {
        let page = q
            .get("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1usize)
            .max(1);
        let per = q
            .get("itemsPerPage")
            .and_then(|p| p.parse().ok())
            .unwrap_or(10usize)
            .clamp(1, cap);
        (page, per)
    }

    fn authorized(h: &HeaderMap) -> bool {
        h.get("x-api-key").is_some_and(|k| k == "shlink-key")
    }

    async fn short_urls(
        State(d): State<Shared>,
        h: HeaderMap,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> Response {
        if !authorized(&h) {
            return problem(
                StatusCode::UNAUTHORIZED,
                "invalid-api-key",
                "Provided API key does not exist or is invalid.",
            );
        }
        let d = d.lock().unwrap();
        let (page, per) = paging(&q, 2);
        let all: Vec<Value> = d
            .urls
            .iter()
            .map(|u| {
                json!({
                    "shortCode": u.code,
                    "shortUrl": format!("https://{}/{}", u.domain.unwrap_or("s.test"), u.code),
                    "longUrl": u.long_url,
                    "deviceLongUrls": {"android": null, "ios": null, "desktop": null},
                    "dateCreated": atom(u.created),
                    "tags": u.tags,
                    "meta": {"validSince": null, "validUntil": null, "maxVisits": null},
                    "domain": u.domain,
                    "title": null,
                    "crawlable": false,
                    "forwardQuery": true,
                    "hasRedirectRules": false,
                    "visitsSummary": {
                        "total": u.visits.len(),
                        "nonBots": u.visits.iter().filter(|v| !v.bot).count(),
                        "bots": u.visits.iter().filter(|v| v.bot).count(),
                    },
                })
            })
            .collect();
        let pages = all.len().div_ceil(per).max(1);
        let data: Vec<Value> = all
            .iter()
            .skip((page - 1) * per)
            .take(per)
            .cloned()
            .collect();
        axum::Json(json!({"shortUrls": {"data": data, "pagination": {
            "currentPage": page, "pagesCount": pages, "itemsPerPage": per,
            "itemsInCurrentPage": data.len(), "totalItems": all.len()}}}))
        .into_response()
    }

    async fn visits(
        State(d): State<Shared>,
        h: HeaderMap,
        Path(code): Path<String>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> Response {
        if !authorized(&h) {
            return problem(
                StatusCode::UNAUTHORIZED,
                "invalid-api-key",
                "Provided API key does not exist or is invalid.",
            );
        }
        let mut d = d.lock().unwrap();
        let (page, per) = paging(&q, 7);
        if d.fail_once == Some((leak(&code), page as u32)) {
            d.fail_once = None;
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", "boom");
        }
        let domain = q.get("domain").map(String::as_str);
        let Some(url) = d.urls.iter().find(|u| u.code == code && u.domain == domain) else {
            return problem(StatusCode::NOT_FOUND, "short-url-not-found", "No URL found");
        };
        let date = |k: &str| {
            q.get(k).map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .expect("an ATOM date")
                    .timestamp_millis()
            })
        };
        let (from, to) = (date("startDate"), date("endDate"));
        let mut all: Vec<&Visit> = url
            .visits
            .iter()
            .filter(|v| from.is_none_or(|f| v.at >= f) && to.is_none_or(|t| v.at <= t))
            .collect();
        all.sort_by_key(|v| std::cmp::Reverse(v.at));
        let pages = all.len().div_ceil(per).max(1);
        let data: Vec<Value> = all
            .iter()
            .skip((page - 1) * per)
            .take(per)
            .map(|v| {
                json!({
                    "referer": v.referer,
                    "date": atom(v.at),
                    "userAgent": v.ua,
                    "visitLocation": v.country.map(|c| json!({
                        "countryCode": c, "countryName": "", "regionName": "", "cityName": "Somewhere",
                        "latitude": 0.0, "longitude": 0.0, "timezone": "UTC", "isEmpty": false})),
                    "potentialBot": v.bot,
                    "visitedUrl": "",
                })
            })
            .collect();
        axum::Json(json!({"visits": {"data": data, "pagination": {
            "currentPage": page, "pagesCount": pages, "itemsPerPage": per,
            "itemsInCurrentPage": data.len(), "totalItems": all.len()}}}))
        .into_response()
    }

    fn leak(s: &str) -> &'static str {
        match s {
            "alpha" => "alpha",
            "beta" => "beta",
            _ => "other",
        }
    }

    /// Serves `data` on a free port; returns the base URL.
    pub async fn serve(data: Shared) -> String {
        let app = axum::Router::new()
            .route("/rest/v3/short-urls", axum::routing::get(short_urls))
            .route(
                "/rest/v3/short-urls/{code}/visits",
                axum::routing::get(visits),
            )
            .with_state(data);
        super::serve_fixture(app).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shlink_api_visits_import_once_and_go_on_after_a_failure() {
    use shlink_fixture::{Data, ShortUrl, Visit};
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    let mut rng = StdRng::seed_from_u64(7);
    let mut visits = |n: usize| -> Vec<Visit> {
        (0..n)
            .map(|_| Visit {
                at: now - rng.random_range(120..200 * 86_400) * 1000,
                referer: ["", "https://www.google.com/", "https://t.co/x"][rng.random_range(0..3)],
                ua: [CHROME, IPHONE, GOOGLEBOT][rng.random_range(0..3)],
                country: [None, Some("ES"), Some("DE")][rng.random_range(0..3)],
                bot: rng.random_ratio(1, 5),
            })
            .collect()
    };
    let data = std::sync::Arc::new(std::sync::Mutex::new(Data {
        urls: vec![
            ShortUrl {
                code: "alpha",
                domain: None,
                long_url: "https://example.com/alpha",
                tags: vec!["launch", "2024"],
                created: now - 300 * 86_400_000,
                visits: visits(30),
            },
            ShortUrl {
                code: "beta",
                domain: None,
                long_url: "https://example.com/beta",
                tags: vec![],
                created: now - 250 * 86_400_000,
                visits: vec![],
            },
            ShortUrl {
                code: "gamma",
                domain: Some("other.test"),
                long_url: "https://example.com/gamma",
                tags: vec![],
                created: now - 200 * 86_400_000,
                visits: visits(12),
            },
        ],
        fail_once: Some(("alpha", 3)),
    }));
    let base = shlink_fixture::serve(data.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hop.db").display());
    let run = |key: &'static str| {
        let (base, db) = (base.clone(), db.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                hop(&[
                    "import",
                    "shlink",
                    "--from",
                    &base,
                    "--api-key",
                    key,
                    "--database-url",
                    &db,
                    "--settle-secs",
                    "1",
                    "--json",
                ])
            })
            .await
            .unwrap()
        }
    };

    // A wrong key: Shlink's refusal, said.
    let out = run("wrong").await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The third page of alpha's visits fails once: the run stops there,
    // and the next goes on from that page.
    let out = run("shlink-key").await;
    assert!(!out.status.success(), "the failing page stops the run");
    let out = run("shlink-key").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(num(&second, "links_existing"), 3, "{second}");
    assert_eq!(num(&second, "hop_clicks"), 42, "{second}");
    assert_eq!(num(&second, "source_clicks"), 42, "{second}");
    assert_eq!(num(&second, "mismatched_links"), 0, "{second}");

    let store = open(&db).await;
    let expect = |code: &str, include_bots: bool| {
        let d = data.lock().unwrap();
        let u = d.urls.iter().find(|u| u.code == code).unwrap();
        let mut days: BTreeMap<i64, u64> = BTreeMap::new();
        // Shlink's flag, and hop's own user agent check, make bots.
        for v in u
            .visits
            .iter()
            .filter(|v| include_bots || !(v.bot || v.ua == GOOGLEBOT))
        {
            *days.entry(v.at.div_euclid(DAY) * DAY).or_default() += 1;
        }
        days
    };
    for (code, include_bots) in [("alpha", true), ("alpha", false), ("gamma", true)] {
        let s = stats_of(&*store, code, include_bots).await;
        let days: BTreeMap<i64, u64> = s.series.iter().copied().filter(|d| d.1 > 0).collect();
        assert_eq!(days, expect(code, include_bots), "{code} {include_bots}");
    }
    let alpha = store
        .link_by_slug(&Slug::parse_path("alpha").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alpha.tags, ["launch", "2024"]);
    let s = stats_of(&*store, "alpha", true).await;
    let countries = top(&s, Dimension::Country);
    let want_es = data.lock().unwrap().urls[0]
        .visits
        .iter()
        .filter(|v| v.country == Some("ES"))
        .count() as u64;
    assert_eq!(countries.get("ES").copied().unwrap_or(0), want_es);

    // New visits since: only they are added; then nothing.
    {
        let mut d = data.lock().unwrap();
        for i in 0..5 {
            d.urls[0].visits.push(Visit {
                at: chrono::Utc::now().timestamp_millis() / 1000 * 1000 + i * 10,
                referer: "",
                ua: CHROME,
                country: None,
                bot: false,
            });
        }
    }
    // They are after the last window's end (a second before that run);
    // the next window ends a second before the next run.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let out = run("shlink-key").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let third: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(num(&third, "hop_clicks"), 47, "{third}");
    let out = run("shlink-key").await;
    let fourth: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(num(&fourth, "clicks_new"), 0, "{fourth}");
    assert_eq!(num(&fourth, "hop_clicks"), 47, "{fourth}");
}

#[tokio::test]
async fn shlink_web_client_csv_imports_totals_as_counted_clicks() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hop.db").display());
    let csv = dir.path().join("short-urls.csv");
    std::fs::write(
        &csv,
        "createdAt,domain,shortCode,shortUrl,longUrl,title,tags,visits\n\
         2024-01-02T03:04:05+00:00,,abc,https://s.test/abc,https://example.com/a,A title,tag1|tag2,17\n\
         2024-02-02T00:00:00+00:00,other.test,xyz,https://other.test/xyz,https://example.com/x,,,0\n",
    )
    .unwrap();
    let path = csv.to_str().unwrap();
    let first = import(&["shlink", "--csv", path, "--database-url", &db]);
    assert_eq!(num(&first, "links_created"), 2, "{first}");
    assert_eq!(num(&first, "clicks_counted"), 17, "{first}");
    assert_eq!(num(&first, "source_clicks"), 17, "{first}");
    assert_eq!(num(&first, "hop_clicks"), 17, "{first}");
    let store = open(&db).await;
    let s = stats_of(&*store, "abc", true).await;
    assert_eq!(s.total_clicks, 17);
    assert_eq!(s.unique_visitors, 0, "counted clicks have no visitors");
    assert_eq!(
        s.series
            .iter()
            .copied()
            .filter(|d| d.1 > 0)
            .collect::<Vec<_>>(),
        [(1_704_153_600_000, 17)],
        "on the day the link was made"
    );
    assert_eq!(top(&s, Dimension::Country).get("unknown"), Some(&17));
    let abc = store
        .link_by_slug(&Slug::parse_path("abc").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(abc.tags, ["tag1", "tag2"]);
    assert_eq!(abc.title.as_deref(), Some("A title"));
    let again = import(&["shlink", "--csv", path, "--database-url", &db]);
    assert_eq!(num(&again, "clicks_counted"), 0, "{again}");
    assert_eq!(num(&again, "hop_clicks"), 17, "{again}");
}

/// Bitly's API v4 as its docs give it, for what the importer reads:
/// `GET /v4/user`, `GET /v4/groups/{guid}/bitlinks` (pages of 2 here, with
/// `pagination.next`), and per bitlink `/clicks`, `/countries` and
/// `/referrers` with `unit=day&units=-1`, behind a bearer token.
mod bitly_fixture {
    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use serde_json::{Value, json};
    use std::collections::HashMap;
    use std::sync::Arc;

    pub struct Link {
        pub id: &'static str,
        pub custom: Option<&'static str>,
        pub long_url: &'static str,
        pub days: Vec<(i64, u64)>,
        pub countries: Vec<(&'static str, u64)>,
        pub referrers: Vec<(&'static str, u64)>,
    }

    fn day(ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S+0000")
            .to_string()
    }

    fn denied(h: &HeaderMap) -> Option<Response> {
        (h.get("authorization").is_none_or(|a| a != "Bearer bitly-token")).then(|| {
            (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"message": "FORBIDDEN", "resource": "bitlinks", "description": "You are currently forbidden to access this resource."})),
            )
                .into_response()
        })
    }

    pub async fn serve(links: Vec<Link>) -> String {
        let links = Arc::new(links);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let b = base.clone();
        let app = axum::Router::new()
            .route(
                "/v4/user",
                axum::routing::get(|h: HeaderMap| async move {
                    denied(&h).unwrap_or_else(|| {
                        axum::Json(json!({"login": "me", "default_group_guid": "Bg1"})).into_response()
                    })
                }),
            )
            .route(
                "/v4/groups/{guid}/bitlinks",
                axum::routing::get(
                    move |State(links): State<Arc<Vec<Link>>>,
                          h: HeaderMap,
                          Path(guid): Path<String>,
                          Query(q): Query<HashMap<String, String>>| async move {
                        if let Some(r) = denied(&h) {
                            return r;
                        }
                        assert_eq!(guid, "Bg1");
                        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                        let size = 2;
                        let data: Vec<Value> = links
                            .iter()
                            .skip((page - 1) * size)
                            .take(size)
                            .map(|l| json!({
                                "created_at": "2023-06-01T10:00:00+0000",
                                "id": l.id,
                                "link": format!("https://{}", l.id),
                                "custom_bitlinks": l.custom.map(|c| vec![c]).unwrap_or_default(),
                                "long_url": l.long_url,
                                "title": "",
                                "archived": false,
                                "tags": ["imported"],
                                "deeplinks": [],
                                "references": {"group": "https://api-ssl.bitly.com/v4/groups/Bg1"},
                            }))
                            .collect();
                        let next = if page * size < links.len() {
                            format!("{b}/v4/groups/Bg1/bitlinks?page={}&size={size}", page + 1)
                        } else {
                            String::new()
                        };
                        axum::Json(json!({"links": data, "pagination": {
                            "prev": "", "next": next, "size": size, "page": page, "total": links.len()}}))
                        .into_response()
                    },
                ),
            )
            .route(
                "/v4/bitlinks/{domain}/{hash}/{facet}",
                axum::routing::get(
                    |State(links): State<Arc<Vec<Link>>>,
                     h: HeaderMap,
                     Path((domain, hash, facet)): Path<(String, String, String)>,
                     Query(q): Query<HashMap<String, String>>| async move {
                        if let Some(r) = denied(&h) {
                            return r;
                        }
                        assert_eq!(q.get("unit").map(String::as_str), Some("day"));
                        let id = format!("{domain}/{hash}");
                        let Some(l) = links.iter().find(|l| l.id == id) else {
                            return (StatusCode::NOT_FOUND, axum::Json(json!({"message": "NOT_FOUND"}))).into_response();
                        };
                        match facet.as_str() {
                            "clicks" => {
                                let mut days = l.days.clone();
                                days.sort_by_key(|d| std::cmp::Reverse(d.0));
                                axum::Json(json!({"link_clicks": days.iter().map(|(d, n)| json!({"clicks": n, "date": day(*d)})).collect::<Vec<_>>(),
                                    "units": -1, "unit": "day", "unit_reference": day(0)})).into_response()
                            }
                            "countries" | "referrers" => {
                                let list = if facet == "countries" { &l.countries } else { &l.referrers };
                                axum::Json(json!({"metrics": list.iter().map(|(v, n)| json!({"value": v, "clicks": n})).collect::<Vec<_>>(),
                                    "units": -1, "unit": "day", "facet": facet})).into_response()
                            }
                            _ => (StatusCode::NOT_FOUND, axum::Json(json!({"message": "NOT_FOUND"}))).into_response(),
                        }
                    },
                ),
            )
            .with_state(links);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitly_links_and_daily_clicks_import_as_counted_clicks() {
    let mut rng = StdRng::seed_from_u64(4);
    let start = 1_700_006_400_000i64 / DAY * DAY;
    let days: Vec<(i64, u64)> = (0..40)
        .map(|i| (start + i * DAY, rng.random_range(0..9)))
        .collect();
    let total: u64 = days.iter().map(|d| d.1).sum();
    let links = vec![
        bitly_fixture::Link {
            id: "bit.ly/3abcDEF",
            custom: Some("https://bit.ly/launch"),
            long_url: "https://example.com/launch",
            days: days.clone(),
            countries: vec![("US", 30), ("DE", 10)],
            referrers: vec![("direct", 20), ("www.google.com", 15)],
        },
        bitly_fixture::Link {
            id: "bit.ly/2xyz",
            custom: None,
            long_url: "https://example.com/quiet",
            days: vec![],
            countries: vec![],
            referrers: vec![],
        },
        bitly_fixture::Link {
            id: "bit.ly/9qqq",
            custom: None,
            long_url: "https://example.com/other",
            days: vec![(start, 4)],
            countries: vec![("FR", 4)],
            referrers: vec![],
        },
    ];
    let api = bitly_fixture::serve(links).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hop.db").display());
    let args = |token: &str| {
        vec![
            "bitly".to_owned(),
            "--api".into(),
            api.clone(),
            "--token".into(),
            token.into(),
            "--database-url".into(),
            db.clone(),
        ]
    };
    let refused = hop(&[&["import".to_owned()][..], &args("nope")]
        .concat()
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("FORBIDDEN"));

    let a = args("bitly-token");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let first = import(&a);
    assert_eq!(num(&first, "links_created"), 3, "{first}");
    assert_eq!(num(&first, "clicks_counted"), total + 4, "{first}");
    assert_eq!(num(&first, "source_clicks"), total + 4, "{first}");
    assert_eq!(num(&first, "hop_clicks"), total + 4, "{first}");

    let store = open(&db).await;
    let s = stats_of(&*store, "launch", true).await;
    let got: BTreeMap<i64, u64> = s.series.iter().copied().filter(|d| d.1 > 0).collect();
    let want: BTreeMap<i64, u64> = days.iter().copied().filter(|d| d.1 > 0).collect();
    assert_eq!(got, want, "every day as Bitly counted it");
    assert_eq!(s.unique_visitors, 0);
    let countries = top(&s, Dimension::Country);
    assert_eq!(countries["US"], 30);
    assert_eq!(countries["DE"], 10);
    assert_eq!(countries["unknown"], total - 40);
    let referrers = top(&s, Dimension::Referrer);
    assert_eq!(referrers["google.com"], 15);
    assert_eq!(referrers["direct"], 20);
    assert!(
        store
            .link_by_slug(&Slug::parse_path("2xyz").unwrap())
            .await
            .unwrap()
            .is_some()
    );

    let again = import(&a);
    assert_eq!(num(&again, "clicks_counted"), 0, "{again}");
    assert_eq!(num(&again, "hop_clicks"), total + 4, "{again}");
}

/// Dub's API as its docs give it, for what the importer reads: `GET
/// /links` (a bare array, `page` and `pageSize` up to 100) and `GET
/// /analytics` (`event=clicks`, `groupBy` count, timeseries, countries,
/// devices, browsers, os, referers; `interval=all`, whose time series Dub
/// gives per month), behind `Authorization: Bearer`, with Dub's error
/// shape.
mod dub_fixture {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use serde_json::{Value, json};
    use std::collections::HashMap;
    use std::sync::Arc;

    pub struct Link {
        pub id: String,
        pub key: String,
        pub months: Vec<(i64, u64)>,
        pub groups: HashMap<&'static str, Vec<(&'static str, u64)>>,
    }

    fn denied(h: &HeaderMap) -> Option<Response> {
        (h.get("authorization").is_none_or(|a| a != "Bearer dub_token")).then(|| {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": {"code": "unauthorized", "message": "Unauthorized: Invalid API key.",
                    "doc_url": "https://dub.co/docs/api-reference/errors#unauthorized"}})),
            )
                .into_response()
        })
    }

    pub async fn serve(links: Vec<Link>) -> String {
        let links = Arc::new(links);
        let app = axum::Router::new()
            .route(
                "/links",
                axum::routing::get(
                    |State(links): State<Arc<Vec<Link>>>,
                     h: HeaderMap,
                     Query(q): Query<HashMap<String, String>>| async move {
                        if let Some(r) = denied(&h) {
                            return r;
                        }
                        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                        let size: usize = q
                            .get("pageSize")
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(100)
                            .min(100);
                        let data: Vec<Value> = links
                            .iter()
                            .skip((page - 1) * size)
                            .take(size)
                            .map(|l| json!({
                                "id": l.id, "domain": "dub.sh", "key": l.key,
                                "url": format!("https://example.com/{}", l.key),
                                "shortLink": format!("https://dub.sh/{}", l.key),
                                "title": null, "tags": [{"id": "tag_1", "name": "campaign", "color": "blue"}],
                                "createdAt": "2023-01-15T10:00:00.000Z", "expiresAt": null,
                                "clicks": l.months.iter().map(|m| m.1).sum::<u64>(),
                            }))
                            .collect();
                        axum::Json(Value::Array(data)).into_response()
                    },
                ),
            )
            .route(
                "/analytics",
                axum::routing::get(
                    |State(links): State<Arc<Vec<Link>>>,
                     h: HeaderMap,
                     Query(q): Query<HashMap<String, String>>| async move {
                        if let Some(r) = denied(&h) {
                            return r;
                        }
                        assert_eq!(q.get("interval").map(String::as_str), Some("all"));
                        let Some(l) = links.iter().find(|l| Some(&l.id) == q.get("linkId")) else {
                            return (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": "not_found", "message": "Link not found.", "doc_url": ""}}))).into_response();
                        };
                        let group = q.get("groupBy").map(String::as_str).unwrap_or("count");
                        let body = match group {
                            "count" => json!({"clicks": l.months.iter().map(|m| m.1).sum::<u64>()}),
                            "timeseries" => Value::Array(
                                l.months
                                    .iter()
                                    .map(|(at, n)| json!({
                                        "start": chrono::DateTime::from_timestamp_millis(*at).unwrap()
                                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                                        "clicks": n}))
                                    .collect(),
                            ),
                            other => {
                                let field = match other {
                                    "countries" => "country",
                                    "devices" => "device",
                                    "browsers" => "browser",
                                    "referers" => "referer",
                                    _ => "os",
                                };
                                Value::Array(
                                    l.groups
                                        .get(other)
                                        .cloned()
                                        .unwrap_or_default()
                                        .iter()
                                        .map(|(v, n)| json!({field: v, "clicks": n}))
                                        .collect(),
                                )
                            }
                        };
                        axum::Json(body).into_response()
                    },
                ),
            )
            .with_state(links);
        super::serve_fixture(app).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dub_links_and_analytics_import_as_counted_clicks() {
    // Months (Dub's grain for all time) of one busy link; 102 quiet links
    // beside it, so the links come in two pages.
    let month = |m: u32| {
        chrono::NaiveDate::from_ymd_opt(2024, m, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    };
    let months = vec![
        (month(2), 40),
        (month(3), 0),
        (month(4), 25),
        (month(5), 35),
    ];
    let mut links = vec![dub_fixture::Link {
        id: "link_busy".into(),
        key: "busy".into(),
        months: months.clone(),
        groups: [
            ("countries", vec![("US", 60), ("FR", 30)]),
            ("devices", vec![("Desktop", 70), ("Mobile", 30)]),
            ("browsers", vec![("Chrome", 100)]),
            ("os", vec![("Mac OS", 50), ("Windows", 50)]),
            ("referers", vec![("(direct)", 80), ("google.com", 20)]),
        ]
        .into_iter()
        .collect(),
    }];
    for i in 0..102 {
        links.push(dub_fixture::Link {
            id: format!("link_q{i}"),
            key: format!("quiet-{i}"),
            months: vec![],
            groups: Default::default(),
        });
    }
    let api = dub_fixture::serve(links).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hop.db").display());
    let refused = hop(&[
        "import",
        "dub",
        "--api",
        &api,
        "--token",
        "nope",
        "--database-url",
        &db,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unauthorized"));

    let args = [
        "dub",
        "--api",
        &api,
        "--token",
        "dub_token",
        "--database-url",
        &db,
    ];
    let first = import(&args);
    assert_eq!(num(&first, "links_created"), 103, "{first}");
    assert_eq!(num(&first, "clicks_counted"), 100, "{first}");
    assert_eq!(num(&first, "source_clicks"), 100, "{first}");
    assert_eq!(num(&first, "hop_clicks"), 100, "{first}");
    let store = open(&db).await;
    let s = stats_of(&*store, "busy", true).await;
    let got: BTreeMap<i64, u64> = s.series.iter().copied().filter(|d| d.1 > 0).collect();
    let want: BTreeMap<i64, u64> = months.iter().copied().filter(|m| m.1 > 0).collect();
    assert_eq!(got, want, "Dub's months, on their first days");
    assert_eq!(s.unique_visitors, 0);
    let device = top(&s, Dimension::Device);
    assert_eq!((device["desktop"], device["mobile"]), (70, 30));
    let referrer = top(&s, Dimension::Referrer);
    assert_eq!((referrer["direct"], referrer["google.com"]), (80, 20));
    let country = top(&s, Dimension::Country);
    assert_eq!(
        (country["US"], country["FR"], country["unknown"]),
        (60, 30, 10)
    );
    assert_eq!(top(&s, Dimension::Os)["Mac OS"], 50);
    let busy = store
        .link_by_slug(&Slug::parse_path("busy").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(busy.tags, ["campaign"]);
    let again = import(&args);
    assert_eq!(num(&again, "links_existing"), 103, "{again}");
    assert_eq!(num(&again, "clicks_counted"), 0, "{again}");
}

/// Kutt's API as its source answers it (`server/queries/visit.queries.js`,
/// `server/utils/utils.js`): visits are hourly rows; `GET
/// /api/v2/links/{id}/stats` buckets them relative to now with date-fns's
/// `differenceInHours`, `differenceInDays` and `differenceInMonths`
/// (`lastDay` 24, `lastWeek` 7, `lastMonth` 30, `lastYear` 12), each view
/// at `length − diff − 1`, with per-period breakdowns; `GET /api/v2/links`
/// pages by `limit` and `skip`; `X-API-KEY`.
mod kutt_fixture {
    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use chrono::{DateTime, Months, Utc};
    use serde_json::{Value, json};
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    /// One hourly row: (hour, total, browser, os, country, referrer).
    pub type Row = (
        DateTime<Utc>,
        u64,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );

    pub struct Link {
        pub id: &'static str,
        pub address: &'static str,
        pub created: DateTime<Utc>,
        pub visit_count: u64,
        pub rows: Vec<Row>,
    }

    /// date-fns `differenceInMonths(now, at)`: whole months back.
    pub fn months_back(now: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
        (0..240)
            .take_while(|m| {
                now.checked_sub_months(Months::new(*m))
                    .is_some_and(|b| b >= at)
            })
            .last()
            .map_or(-1, i64::from)
    }

    /// How far back a time is in one period's unit.
    type Diff = Box<dyn Fn(DateTime<Utc>) -> i64>;

    pub fn stats(l: &Link, now: DateTime<Utc>) -> Value {
        let periods: [(&str, usize, i64, Diff); 4] = [
            ("lastDay", 24, 0, Box::new(move |at| (now - at).num_hours())),
            ("lastWeek", 7, 7, Box::new(move |at| (now - at).num_days())),
            (
                "lastMonth",
                30,
                30,
                Box::new(move |at| (now - at).num_days()),
            ),
            ("lastYear", 12, 0, Box::new(move |at| months_back(now, at))),
        ];
        let mut out = serde_json::Map::new();
        for (name, len, days, diff) in periods {
            let from = match name {
                "lastDay" => now - chrono::Duration::hours(24),
                "lastYear" => now.checked_sub_months(Months::new(12)).unwrap(),
                _ => now - chrono::Duration::days(days),
            };
            let mut views = vec![0u64; len];
            let mut total = 0;
            let mut dims: [BTreeMap<&str, u64>; 4] = Default::default();
            for (at, n, b, o, c, r) in &l.rows {
                if *at <= from {
                    continue;
                }
                let d = diff(*at);
                let index = len as i64 - d - 1;
                if index < 0 || index >= len as i64 {
                    continue;
                }
                views[index as usize] += n;
                total += n;
                for (i, v) in [*b, *o, *c, *r].into_iter().enumerate() {
                    *dims[i].entry(v).or_default() += n;
                }
            }
            let list = |m: &BTreeMap<&str, u64>| {
                m.iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect::<Vec<_>>()
            };
            out.insert(
                name.into(),
                json!({"stats": {"browser": list(&dims[0]), "os": list(&dims[1]),
                    "country": list(&dims[2]), "referrer": list(&dims[3])},
                    "views": views, "total": total}),
            );
        }
        out.insert("updatedAt".into(), json!(now.to_rfc3339()));
        out.insert("id".into(), json!(l.id));
        out.insert("visit_count".into(), json!(l.visit_count));
        Value::Object(out)
    }

    fn denied(h: &HeaderMap) -> Option<Response> {
        (h.get("x-api-key").is_none_or(|k| k != "kutt-key")).then(|| {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "Unauthorized."})),
            )
                .into_response()
        })
    }

    pub async fn serve(links: Vec<Link>, now: DateTime<Utc>) -> String {
        let links = Arc::new(links);
        let app = axum::Router::new()
            .route(
                "/api/v2/links",
                axum::routing::get(
                    |State(links): State<Arc<Vec<Link>>>,
                     h: HeaderMap,
                     Query(q): Query<HashMap<String, String>>| async move {
                        if let Some(r) = denied(&h) {
                            return r;
                        }
                        let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(10).min(50);
                        let skip: usize = q.get("skip").and_then(|v| v.parse().ok()).unwrap_or(0);
                        let data: Vec<Value> = links
                            .iter()
                            .skip(skip)
                            .take(limit)
                            .map(|l| json!({"id": l.id, "address": l.address, "banned": false,
                                "created_at": l.created.to_rfc3339(), "updated_at": l.created.to_rfc3339(),
                                "description": null, "expire_in": null, "link": format!("https://kutt.test/{}", l.address),
                                "password": false, "target": format!("https://example.com/{}", l.address),
                                "visit_count": l.visit_count}))
                            .collect();
                        axum::Json(json!({"total": links.len(), "limit": limit, "skip": skip, "data": data}))
                            .into_response()
                    },
                ),
            )
            .route(
                "/api/v2/links/{id}/stats",
                axum::routing::get(
                    move |State(links): State<Arc<Vec<Link>>>, h: HeaderMap, Path(id): Path<String>| async move {
                        if let Some(r) = denied(&h) {
                            return r;
                        }
                        match links.iter().find(|l| l.id == id) {
                            Some(l) => axum::Json(stats(l, now)).into_response(),
                            None => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "Link could not be found."}))).into_response(),
                        }
                    },
                ),
            )
            .with_state(links);
        super::serve_fixture(app).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kutt_stats_import_as_counted_clicks_in_kutts_own_buckets() {
    use chrono::{DurationRound, Months};
    // Now as Kutt answered (updatedAt), mid-hour; rows on the hours of
    // the last 400 days, so some are older than Kutt's year.
    let now = chrono::Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap()
        - chrono::Duration::minutes(23);
    let mut rng = StdRng::seed_from_u64(11);
    let mut rows = Vec::new();
    for h in (1..400 * 24).step_by(7) {
        let at = (now - chrono::Duration::hours(h))
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap();
        rows.push((
            at,
            rng.random_range(1..5u64),
            ["chrome", "firefox", "safari"][rng.random_range(0..3)],
            ["windows", "macos", "android"][rng.random_range(0..3)],
            ["fr", "de", "unknown"][rng.random_range(0..3)],
            ["direct", "news[dot]ycombinator[dot]com"][rng.random_range(0..2)],
        ));
    }
    let visit_count: u64 = rows.iter().map(|r| r.1).sum();
    let created = now - chrono::Duration::days(420);
    let link = kutt_fixture::Link {
        id: "5f6e7d8c-0000-4000-8000-000000000001",
        address: "kutted",
        created,
        visit_count,
        rows: rows.clone(),
    };
    let want = kutt_fixture::stats(&link, now);
    let mut links = vec![link];
    for i in 0..55 {
        links.push(kutt_fixture::Link {
            id: Box::leak(format!("5f6e7d8c-0000-4000-8000-1{i:011}").into_boxed_str()),
            address: Box::leak(format!("quiet{i}").into_boxed_str()),
            created,
            visit_count: 0,
            rows: vec![],
        });
    }
    let base = kutt_fixture::serve(links, now).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hop.db").display());
    let refused = hop(&[
        "import",
        "kutt",
        "--from",
        &base,
        "--api-key",
        "nope",
        "--database-url",
        &db,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"));
    let args = [
        "kutt",
        "--from",
        &base,
        "--api-key",
        "kutt-key",
        "--database-url",
        &db,
    ];
    let first = import(&args);
    assert_eq!(num(&first, "links_created"), 56, "{first}");
    assert_eq!(num(&first, "clicks_counted"), visit_count, "{first}");
    assert_eq!(num(&first, "hop_clicks"), visit_count, "{first}");
    assert_eq!(num(&first, "mismatched_links"), 0, "{first}");

    // Every Kutt bucket holds in hop what Kutt says it holds.
    let store = open(&db).await;
    let id = store
        .link_by_slug(&Slug::parse_path("kutted").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let sum = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        let store = store.clone();
        async move {
            store
                .series(
                    id,
                    hop::store::Resolution::Minute,
                    TimeRange {
                        from: from.timestamp_millis(),
                        to: to.timestamp_millis(),
                    },
                    true,
                )
                .await
                .unwrap()
                .iter()
                .map(|b| b.1)
                .sum::<u64>()
        }
    };
    let view = |p: &str, i: usize| want[p]["views"][i].as_u64().unwrap();
    for diff in 0..24i64 {
        let end = now - chrono::Duration::hours(diff);
        let got = sum(end - chrono::Duration::hours(1), end).await;
        assert_eq!(got, view("lastDay", (23 - diff) as usize), "hour {diff}");
    }
    for diff in 1..30i64 {
        let end = now - chrono::Duration::days(diff);
        let got = sum(end - chrono::Duration::days(1), end).await;
        assert_eq!(got, view("lastMonth", (29 - diff) as usize), "day {diff}");
    }
    for m in 0..12u32 {
        let end = now.checked_sub_months(Months::new(m)).unwrap();
        let start = now.checked_sub_months(Months::new(m + 1)).unwrap();
        assert_eq!(
            sum(start, end).await,
            view("lastYear", (11 - m) as usize),
            "month {m}"
        );
    }
    let s = stats_of(&*store, "kutted", true).await;
    let browsers = top(&s, Dimension::Browser);
    let year_chrome = want["lastYear"]["stats"]["browser"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "chrome")
        .unwrap()["value"]
        .as_u64()
        .unwrap();
    assert_eq!(browsers["Chrome"], year_chrome);
    let year_total = want["lastYear"]["total"].as_u64().unwrap();
    assert_eq!(
        top(&s, Dimension::Referrer)["news.ycombinator.com"]
            + top(&s, Dimension::Referrer)["direct"]
            + top(&s, Dimension::Referrer)
                .get("unknown")
                .copied()
                .unwrap_or(0),
        visit_count
    );
    assert!(
        year_total < visit_count,
        "some visits are older than Kutt's year"
    );
    let again = import(&args);
    assert_eq!(num(&again, "clicks_counted"), 0, "{again}");
}

/// Serves a fixture API on a free loopback port; returns its base URL.
async fn serve_fixture(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}
