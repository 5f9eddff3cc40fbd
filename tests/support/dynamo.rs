//! A private DynamoDB server for tests: moto, single-threaded (see
//! scripts/moto-server.py), on a free port, from the venv that
//! scripts/test.sh makes (target/moto, or `HOP_TEST_MOTO_PYTHON`); or,
//! with `HOP_TEST_DYNAMO=dynoxide`, dynoxide (scripts/dynoxide.sh). Each
//! test takes a table of its own.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct MotoServer {
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("HOP_TEST_MOTO_PYTHON") {
        return p.into();
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/moto/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/moto.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The second server, dynoxide, when `HOP_TEST_DYNAMO=dynoxide`.
fn dynoxide() -> Option<std::path::PathBuf> {
    if std::env::var("HOP_TEST_DYNAMO").ok()?.as_str() != "dynoxide" {
        return None;
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dynoxide/bin/dynoxide");
    assert!(
        p.exists(),
        "{} is missing: run scripts/dynoxide.sh (scripts/test.sh does)",
        p.display()
    );
    Some(p)
}

impl MotoServer {
    /// moto, or with `HOP_TEST_DYNAMO=dynoxide` dynoxide (in memory; one
    /// namespace for every region, so not for the two-region tests).
    pub fn start() -> MotoServer {
        let port = free_port();
        // Its log, for when a test fails: target/moto-PORT.log.
        let log = std::fs::File::create(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("target/moto-{port}.log")),
        )
        .expect("log file");
        let mut cmd = match dynoxide() {
            Some(bin) => {
                let mut cmd = Command::new(bin);
                cmd.args(["serve", "--host", "127.0.0.1", "--log", "quiet", "--port"]);
                cmd
            }
            None => {
                let mut cmd = Command::new(python());
                cmd.arg(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/moto-server.py"),
                );
                cmd
            }
        };
        let child = cmd
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("the DynamoDB server starts");
        let server = MotoServer {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// A server shared by every test of this test binary, stopped by a
    /// watchdog when the binary exits (statics are never dropped).
    pub fn shared() -> &'static MotoServer {
        static SHARED: std::sync::OnceLock<MotoServer> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let server = MotoServer::start();
            let script = format!(
                "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill {moto} 2>/dev/null",
                me = std::process::id(),
                moto = server.child.as_ref().expect("running").id(),
            );
            // Outlives this process by design (then reparented to init).
            #[allow(clippy::zombie_processes)]
            Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("watchdog starts");
            server
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL of `table` in `region` (a region's replica of a table).
    pub fn table_url(&self, table: &str, region: &str) -> String {
        format!(
            "dynamodb://{table}?region={region}&endpoint={}",
            self.endpoint()
        )
    }

    /// The URL of a table no other test uses, in `region`.
    pub fn url(&self, region: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "dynamodb://hop-{}-{}?region={region}&endpoint={}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            self.endpoint()
        )
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One day, in ms.
pub const DAY: i64 = 86_400_000;
/// 2026-03-01T00:00:00Z: the first of the two days the helpers below ask about.
pub const BASE: i64 = 1_772_323_200_000;

/// A migrated DynamoDB store at a `dynamodb://` URL.
pub async fn open(url: &str) -> hop::store::dynamo::DynamoStore {
    let hop::store::StoreConfig::Dynamo(config) = hop::store::StoreConfig::parse(url).unwrap()
    else {
        panic!("a dynamodb URL: {url}");
    };
    hop::store::dynamo::DynamoStore::open(&config, true)
        .await
        .unwrap()
}

/// The store answers as the in-memory reference does over two days from
/// [`BASE`], at every interval, with and without bots (`what` names the
/// case in a failure).
pub async fn same_answers(
    store: &dyn hop::store::ClickStore,
    reference: &hop::store::memory::MemoryStore,
    link: hop::domain::LinkId,
    what: &str,
) {
    use hop::stats::{Interval, StatsQuery, link_stats};
    for interval in [Interval::Minute, Interval::Hour, Interval::Day] {
        for include_bots in [false, true] {
            let q = StatsQuery {
                range: hop::store::TimeRange {
                    from: BASE,
                    to: BASE + 2 * DAY,
                },
                interval,
                tz: chrono_tz::UTC,
                include_bots,
                top: 1000,
                minute_since: i64::MIN,
                now: i64::MAX,
            };
            if q.bucket_estimate() > hop::stats::MAX_BUCKETS {
                continue;
            }
            assert_eq!(
                link_stats(store, link, &q).await.unwrap(),
                link_stats(reference, link, &q).await.unwrap(),
                "{what}: {interval:?}, bots {include_bots}"
            );
        }
    }
}
