//! Runs the store conformance suite against every backend: in-memory,
//! SQLite and PostgreSQL (a private server started for this test binary),
//! those two when built with their cargo features.

use std::sync::Arc;

use hop::store::Store;

mod memory {
    use super::*;

    async fn make() -> (Arc<dyn Store>, ()) {
        (Arc::new(hop::store::memory::MemoryStore::default()), ())
    }

    hop::store_conformance!(make);
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;

    async fn make() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = hop::store::sqlite::SqliteStore::open(
            &dir.path().join("hop.db"),
            hop::store::DEFAULT_SQLITE_CACHE_MIB,
            true,
        )
        .await
        .unwrap();
        (Arc::new(store), dir)
    }

    hop::store_conformance!(make);
}

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
#[allow(dead_code)]
mod pg_support;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    /// A migrated store on a fresh database of the shared private server.
    async fn open_store() -> hop::store::postgres::PgStore {
        let server = tokio::task::spawn_blocking(pg_support::PgServer::shared)
            .await
            .unwrap();
        let db = tokio::task::spawn_blocking(|| pg_support::PgServer::shared().create_db())
            .await
            .unwrap();
        hop::store::postgres::PgStore::open(&server.url(&db), true)
            .await
            .unwrap()
    }

    async fn make() -> (Arc<dyn Store>, ()) {
        (Arc::new(open_store().await), ())
    }

    hop::store_conformance!(make);

    /// hop's sessions run without JIT: with statistics, a stats read's
    /// estimated cost passes `jit_above_cost` and PostgreSQL compiled each
    /// one before running it (700 ms for a 2 ms read at 2M clicks).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_run_without_jit() {
        let store = open_store().await;
        let server_default: String =
            sqlx::query_scalar("SELECT boot_val FROM pg_settings WHERE name = 'jit'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(
            server_default, "on",
            "the server's default, which hop overrides"
        );
        for _ in 0..3 {
            let jit: String = sqlx::query_scalar("SHOW jit")
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(jit, "off");
        }
    }
}

/// Upgrading a store written before minute rollups (breakdowns and visitors
/// at hour grain, no `link_totals`) keeps every answer: the data is written
/// by today's code, taken back to the old layout by SQL, then migrated again.
/// One old hour lost half its raw clicks to retention: its counts stay whole
/// (at its first quarter hour), and ranges that do not cut it are unchanged.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod upgrade {
    use hop::domain::LinkId;
    use hop::stats::{Interval, LinkStats, MINUTE_WINDOW_MS, StatsQuery, link_stats};
    use hop::store::{Store, TimeRange};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 86_400_000;

    /// Back to the layout of the migrations before minute rollups.
    /// Today's hour rows are what the old layout had, so only the finer
    /// grains and the newer tables go.
    const TO_HOURS: [&str; 5] = [
        "DELETE FROM rollup_dims WHERE res IN (1, 5, 15)",
        "DELETE FROM rollup_visitors WHERE res IN (1, 5, 15)",
        "DROP TABLE link_totals",
        "DELETE FROM _sqlx_migrations
         WHERE description IN ('minute rollups', 'hour rollups', 'five minute rollups')",
        // Retention took half of one old hour's raw clicks.
        "DELETE FROM clicks WHERE link_id = $1 AND at >= $2 AND at < $2 + 1800000",
    ];

    pub struct Case {
        pub link: LinkId,
        pub cut_hour: i64,
        queries: Vec<StatsQuery>,
        pub before: Vec<LinkStats>,
        pub totals: hop::store::ClickTotals,
    }

    pub fn statements() -> &'static [&'static str] {
        &TO_HOURS
    }

    /// Writes five days of clicks up to now and answers odd queries.
    pub async fn write(store: &dyn Store) -> Case {
        let l = hop::testing::link("upgraded", None);
        store.insert_link(&l).await.unwrap().unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let mut rng = StdRng::seed_from_u64(21);
        let clicks: Vec<_> = (0..5000)
            .map(|_| hop::testing::click(l.id, now - rng.random_range(1..5 * DAY), &mut rng))
            .collect();
        for batch in clicks.chunks(500) {
            store.record_clicks(batch).await.unwrap();
        }
        let cut_hour = (now - 4 * DAY).div_euclid(HOUR) * HOUR;
        let minute_since = now - MINUTE_WINDOW_MS;
        let mut queries = Vec::new();
        while queries.len() < 30 {
            let a = now - rng.random_range(0..6 * DAY);
            let b = now - rng.random_range(0..6 * DAY);
            let (from, to) = (a.min(b), a.max(b));
            let cuts = |t: i64| t >= cut_hour && t < cut_hour + HOUR;
            if cuts(from) || cuts(to) {
                continue;
            }
            let q = StatsQuery {
                range: TimeRange { from, to },
                interval: [Interval::Minute, Interval::Hour, Interval::Day][rng.random_range(0..3)],
                tz: ["UTC", "Asia/Kolkata", "Australia/Eucla"][rng.random_range(0..3)]
                    .parse()
                    .unwrap(),
                include_bots: rng.random_bool(0.5),
                top: 100,
                minute_since,
                now,
            };
            if q.bucket_estimate() <= hop::stats::MAX_BUCKETS {
                queries.push(q);
            }
        }
        let before = answers(store, l.id, &queries).await;
        Case {
            link: l.id,
            cut_hour,
            queries,
            before,
            totals: store.link_totals(l.id).await.unwrap(),
        }
    }

    async fn answers(store: &dyn Store, link: LinkId, queries: &[StatsQuery]) -> Vec<LinkStats> {
        let mut out = Vec::new();
        for q in queries {
            out.push(link_stats(store, link, q).await.unwrap());
        }
        out
    }

    /// The migrated store answers as before.
    pub async fn check(store: &dyn Store, case: &Case) {
        let after = answers(store, case.link, &case.queries).await;
        for ((q, b), a) in case.queries.iter().zip(&case.before).zip(&after) {
            assert_eq!(b, a, "{q:?}");
        }
        assert_eq!(store.link_totals(case.link).await.unwrap(), case.totals);
        assert!(case.before.iter().any(|s| s.total_clicks > 0));
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_upgrade_keeps_every_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hop.db");
        let open = || {
            hop::store::sqlite::SqliteStore::open(&path, hop::store::DEFAULT_SQLITE_CACHE_MIB, true)
        };
        let store = open().await.unwrap();
        let case = write(&store).await;
        drop(store);
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        for sql in statements() {
            let q = sqlx::query(*sql);
            let q = if sql.contains("$1") {
                q.bind(case.link.0).bind(case.cut_hour)
            } else {
                q
            };
            q.execute(&pool).await.unwrap();
        }
        pool.close().await;
        check(&open().await.unwrap(), &case).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_upgrade_keeps_every_answer() {
        let server = tokio::task::spawn_blocking(super::pg_support::PgServer::shared)
            .await
            .unwrap();
        let db = tokio::task::spawn_blocking(|| super::pg_support::PgServer::shared().create_db())
            .await
            .unwrap();
        let url = server.url(&db);
        let store = hop::store::postgres::PgStore::open(&url, true)
            .await
            .unwrap();
        let case = write(&store).await;
        drop(store);
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        for sql in statements() {
            let q = sqlx::query(*sql);
            let q = if sql.contains("$1") {
                q.bind(case.link.0).bind(case.cut_hour)
            } else {
                q
            };
            q.execute(&pool).await.unwrap();
        }
        pool.close().await;
        check(
            &hop::store::postgres::PgStore::open(&url, true)
                .await
                .unwrap(),
            &case,
        )
        .await;
    }
}

#[cfg(feature = "dynamodb")]
#[path = "support/dynamo.rs"]
#[allow(dead_code)]
mod dynamo_support;

#[cfg(feature = "dynamodb")]
mod dynamodb {
    use super::*;

    async fn make() -> (Arc<dyn Store>, ()) {
        let server = tokio::task::spawn_blocking(dynamo_support::MotoServer::shared)
            .await
            .unwrap();
        let config = hop::store::StoreConfig::parse(&server.url("eu-west-1")).unwrap();
        (config.open(true).await.unwrap(), ())
    }

    hop::store_conformance!(make);
}
