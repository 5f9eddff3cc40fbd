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
        // Clicks as the old layouts knew them: no smart link routes.
        let clicks: Vec<_> = (0..5000)
            .map(|_| hop::domain::EnrichedClick {
                route: Default::default(),
                ..hop::testing::click(l.id, now - rng.random_range(1..5 * DAY), &mut rng)
            })
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

/// What only the DynamoDB store does: leases, orphans of dead writers,
/// several writers at once, and sealing's delayed deletes.
#[cfg(feature = "dynamodb")]
mod dynamodb_only {
    use std::sync::Arc;

    use hop::domain::{EnrichedClick, LinkId};
    use hop::store::dynamo::DynamoStore;
    use hop::store::memory::MemoryStore;
    use hop::store::{ClickStore, LinkStore, TimeRange};
    use rand::{SeedableRng, rngs::StdRng};

    use super::dynamo_support::{BASE, DAY, MotoServer, open, same_answers};

    async fn url() -> String {
        let server = tokio::task::spawn_blocking(MotoServer::shared)
            .await
            .unwrap();
        server.url("eu-west-1")
    }

    fn clicks(link: LinkId, n: i64, seed: u64) -> Vec<EnrichedClick> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| hop::testing::click(link, BASE + i * 7_000 % (2 * DAY), &mut rng))
            .collect()
    }

    /// A writer dies after staging part of a batch: its lease expires, the
    /// next writer takes the link over, and every click counts once when
    /// it comes again, the dead writer's raw items overwritten.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_dying_mid_batch_loses_nothing() {
        let store = open(&url().await).await;
        let l = hop::testing::link("dies", None);
        store.insert_link(&l).await.unwrap().unwrap();
        let reference = MemoryStore::default();
        reference.insert_link(&l).await.unwrap().unwrap();
        let all = clicks(l.id, 300, 1);
        store.stage_and_die(&all[..200]).await.unwrap();
        // Nothing of it counts.
        assert_eq!(store.link_totals(l.id).await.unwrap().with_bots, 0);
        same_answers(&store, &reference, l.id, "one region").await;
        // The clicks come again, split otherwise (a stream re-read).
        assert_eq!(store.record_clicks(&all[100..300]).await.unwrap(), 200);
        assert_eq!(store.record_clicks(&all[..100]).await.unwrap(), 100);
        assert_eq!(store.record_clicks(&all).await.unwrap(), 0, "replay");
        reference.record_clicks(&all).await.unwrap();
        assert_eq!(store.link_totals(l.id).await.unwrap().with_bots, 300);
        same_answers(&store, &reference, l.id, "one region").await;
        let exported = store
            .export_clicks(
                l.id,
                TimeRange {
                    from: BASE,
                    to: BASE + 2 * DAY,
                },
                true,
                None,
                1000,
            )
            .await
            .unwrap();
        assert_eq!(exported.len(), 300, "each click once in the export");
    }

    /// Two nodes write batches of one link at once, replays included: the
    /// lease makes them take turns, and the counts are exact.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_writers_of_one_link_count_exactly() {
        let url = url().await;
        let a = Arc::new(open(&url).await);
        let b = Arc::new(open(&url).await);
        let l = hop::testing::link("shared", None);
        a.insert_link(&l).await.unwrap().unwrap();
        let reference = MemoryStore::default();
        reference.insert_link(&l).await.unwrap().unwrap();
        let all = clicks(l.id, 400, 2);
        reference.record_clicks(&all).await.unwrap();
        let write = |store: Arc<DynamoStore>, batches: Vec<Vec<EnrichedClick>>| {
            tokio::spawn(async move {
                let mut new = 0;
                for batch in batches {
                    new += store.record_clicks(&batch).await.unwrap();
                }
                new
            })
        };
        // Overlapping halves, in batches of 50: every click at least once.
        let batches = |from: usize, to: usize| -> Vec<Vec<EnrichedClick>> {
            all[from..to].chunks(50).map(|c| c.to_vec()).collect()
        };
        let (x, y) = tokio::join!(
            write(a.clone(), batches(0, 250)),
            write(b.clone(), batches(150, 400))
        );
        assert_eq!(x.unwrap() + y.unwrap(), 400, "each click new once");
        assert_eq!(a.link_totals(l.id).await.unwrap().with_bots, 400);
        same_answers(&*b, &reference, l.id, "two writers").await;
    }

    /// Sealing packs a day and, once no read can still need them, deletes
    /// the deltas and older packs: the answers never change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sealed_deltas_are_deleted_after_the_grace() {
        let url = url().await;
        let store = open(&url).await.with_seal_grace(0);
        let l = hop::testing::link("packed", None);
        store.insert_link(&l).await.unwrap().unwrap();
        let reference = MemoryStore::default();
        reference.insert_link(&l).await.unwrap().unwrap();
        let all = clicks(l.id, 300, 3);
        for batch in all.chunks(30) {
            store.record_clicks(batch).await.unwrap();
        }
        reference.record_clicks(&all).await.unwrap();
        let items = |store: &DynamoStore| {
            let client = store.client().clone();
            let table = store.table().to_owned();
            async move {
                client
                    .query()
                    .table_name(table)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(
                        ":pk",
                        hop::store::dynamo::sdk::types::AttributeValue::S(format!("D#{}", l.id.0)),
                    )
                    .consistent_read(true)
                    .send()
                    .await
                    .unwrap()
                    .count
            }
        };
        let before = items(&store).await;
        assert!(before >= 10, "a delta per batch and day: {before}");
        assert!(store.seal_rollups(i64::MAX, 1, 1000).await.unwrap() > 0);
        same_answers(&store, &reference, l.id, "one region").await;
        // The next pass deletes what the packs cover.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        store.seal_rollups(i64::MAX, 1, 1000).await.unwrap();
        let after = items(&store).await;
        assert!(after <= 4, "one pack per day left, not {after}");
        same_answers(&store, &reference, l.id, "one region").await;
        // More clicks on a sealed day, sealed again.
        let more = clicks(l.id, 50, 4);
        store.record_clicks(&more).await.unwrap();
        reference.record_clicks(&more).await.unwrap();
        store.seal_rollups(i64::MAX, 1, 1000).await.unwrap();
        same_answers(&store, &reference, l.id, "one region").await;
    }

    /// Webhooks on DynamoDB: a node that last read "no endpoint wants
    /// clicks" still writes the outbox once another node registers one (the
    /// publishing transaction checks); an outbox item whose messages do not
    /// fit one transaction is fanned out with ids derived from it, so doing
    /// it again (a fan-out that died before deleting the item) adds
    /// nothing; the click limit's last claim writes `link.exhausted`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhook_events_are_exact_across_nodes_and_redone_fan_outs() {
        use hop::domain::webhook::EventType;
        use hop::store::dynamo::sdk::types::AttributeValue;
        use hop::store::webhooks::{Endpoint, FanOut, WebhookStore};

        let url = url().await;
        let a = open(&url).await;
        let b = open(&url).await;
        let l = hop::testing::link("hooked", None);
        a.insert_link(&l).await.unwrap().unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let early: Vec<EnrichedClick> = (0..3)
            .map(|i| hop::testing::click(l.id, BASE + i, &mut rng))
            .collect();
        // Node a learns that nobody wants clicks.
        assert_eq!(a.record_clicks(&early).await.unwrap(), 3);
        let endpoint = Endpoint {
            id: "wh_0123456789abcdefghijklmnop".into(),
            owner: None,
            instance_wide: true,
            url: "https://example.com/hook".into(),
            description: None,
            events: vec![EventType::Click, EventType::LinkExhausted],
            scope_tag: None,
            scope_links: None,
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            previous_secret: None,
            previous_until: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: 0,
            updated_at: 0,
        };
        b.insert_endpoint(&endpoint).await.unwrap();
        // 250 clicks in one batch: 125 messages of two, more than one
        // transaction holds.
        let clicks: Vec<EnrichedClick> = (0..250)
            .map(|i| hop::testing::click(l.id, BASE + 1_000 + i, &mut rng))
            .collect();
        assert_eq!(a.record_clicks(&clicks).await.unwrap(), 250);
        let outbox = a
            .client()
            .scan()
            .table_name(a.table())
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(":p", AttributeValue::S("WO#".into()))
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        // The link's creation and the batch since the endpoint exists (the
        // three clicks before had no outbox to go to).
        assert_eq!(outbox.len(), 2, "{outbox:?}");
        let plan = |f: FanOut<'_>| {
            hop::webhooks::plan(
                f,
                hop::webhooks::PlanSettings {
                    batch_size: 2,
                    retry_for: 60_000,
                    now: BASE,
                },
            )
        };
        let now = chrono::Utc::now().timestamp_millis();
        assert_eq!(a.fan_out("w1", now, 100, &plan).await.unwrap(), 2);
        let messages = a
            .list_messages(&endpoint.id, None, None, 1_000)
            .await
            .unwrap();
        assert_eq!(messages.len(), 125);
        // The fan-out again, as if the first had died before deleting the
        // items: the same messages, none added.
        for item in &outbox {
            a.client()
                .put_item()
                .table_name(a.table())
                .set_item(Some(item.clone()))
                .send()
                .await
                .unwrap();
        }
        assert_eq!(a.fan_out("w2", now, 100, &plan).await.unwrap(), 2);
        let again = a
            .list_messages(&endpoint.id, None, None, 1_000)
            .await
            .unwrap();
        let ids = |m: &[hop::store::webhooks::Message]| -> std::collections::BTreeSet<String> {
            m.iter().map(|m| m.id.clone()).collect()
        };
        assert_eq!(ids(&again), ids(&messages));
        // Each stored click exactly once.
        let mut events: Vec<String> = again
            .iter()
            .flat_map(|m| {
                let body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
                body["data"]["clicks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["event_id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        events.sort();
        let mut want: Vec<String> = clicks.iter().map(|c| c.event_id.to_string()).collect();
        want.sort();
        assert_eq!(events, want);
        // A limit of two: the second claim is the last, and says so.
        let mut limited = hop::testing::link("limited", None);
        limited.max_clicks = Some(2);
        a.insert_link(&limited).await.unwrap().unwrap();
        assert!(a.claim_click(limited.id, 2).await.unwrap());
        assert!(b.claim_click(limited.id, 2).await.unwrap());
        assert!(!a.claim_click(limited.id, 2).await.unwrap());
        a.fan_out("w1", now, 100, &plan).await.unwrap();
        let exhausted = a
            .list_messages(&endpoint.id, None, None, 1_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.event_type == EventType::LinkExhausted)
            .collect::<Vec<_>>();
        assert_eq!(exhausted.len(), 1);
        assert!(exhausted[0].body.contains("\"limited\""));
    }

    /// A table made before webhooks (without their two indexes) gets them
    /// when a node opens it with migrations, and webhooks work on it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_from_before_webhooks_gets_their_indexes() {
        use hop::store::dynamo::sdk::types::{
            DeleteGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate,
        };
        use hop::store::webhooks::WebhookStore;

        let url = url().await;
        let old = open(&url).await;
        async fn indexes(store: &DynamoStore) -> Vec<String> {
            let t = store
                .client()
                .describe_table()
                .table_name(store.table())
                .send()
                .await
                .unwrap();
            let mut names: Vec<String> = t
                .table()
                .unwrap()
                .global_secondary_indexes()
                .iter()
                .filter_map(|g| g.index_name().map(str::to_owned))
                .collect();
            names.sort();
            names
        }
        for name in ["webhook-list", "webhook-due"] {
            old.client()
                .update_table()
                .table_name(old.table())
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder()
                        .delete(
                            DeleteGlobalSecondaryIndexAction::builder()
                                .index_name(name)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        assert_eq!(indexes(&old).await, ["links", "owner"]);
        let new = open(&url).await;
        assert_eq!(
            indexes(&new).await,
            ["links", "owner", "webhook-due", "webhook-list"]
        );
        let now = chrono::Utc::now().timestamp_millis();
        assert!(
            new.claim_messages("w", now, now + 1_000, &[], 4, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(new.webhook_backlog().await.unwrap(), (0, 0, 0));
    }
}
