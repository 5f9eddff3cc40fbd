//! `hop copy`: a SQLite store with keys, links, sessions, reports,
//! takedowns, raw clicks, sealed and unsealed rollups, variant segments and
//! clicks whose raw rows retention already took, copied into a private
//! PostgreSQL by the real binary: every answer is the same afterwards.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[path = "support/postgres.rs"]
#[allow(dead_code)]
mod pg_support;

use hop::domain::{KeyId, LinkId};
use hop::stats::{Interval, LinkStats, MINUTE_WINDOW_MS, StatsQuery, link_stats};
use hop::store::{LinkQuery, Store, StoreConfig, TimeRange};
use rand::{Rng, SeedableRng, rngs::StdRng};

const DAY: i64 = 86_400_000;

/// Everything a user could ask of a store, for comparing two.
#[derive(Debug, PartialEq)]
struct Everything {
    links: Vec<hop::domain::Link>,
    keys: Vec<hop::store::ApiKey>,
    reports: Vec<hop::store::Report>,
    takedowns: Vec<hop::store::Takedown>,
    sessions: Vec<Option<(String, i64)>>,
    stats: Vec<LinkStats>,
    totals: Vec<hop::store::ClickTotals>,
    raw: Vec<hop::domain::EnrichedClick>,
    webhooks: Vec<hop::store::webhooks::Endpoint>,
    messages: Vec<hop::store::webhooks::Message>,
    outbox: u64,
}

async fn everything(store: &dyn Store, ids: &[LinkId], queries: &[StatsQuery]) -> Everything {
    let links = store
        .list_links(&LinkQuery {
            limit: 1000,
            ..LinkQuery::default()
        })
        .await
        .unwrap();
    let mut stats = Vec::new();
    let mut totals = Vec::new();
    let mut raw = Vec::new();
    for id in ids {
        for q in queries {
            stats.push(link_stats(store, *id, q).await.unwrap());
        }
        totals.push(store.link_totals(*id).await.unwrap());
        let all = TimeRange {
            from: 0,
            to: i64::MAX,
        };
        raw.extend(
            store
                .export_clicks(*id, all, true, None, 100_000)
                .await
                .unwrap(),
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut sessions = Vec::new();
    for i in 0..3u8 {
        sessions.push(store.load_session(&[i; 32], now).await.unwrap());
    }
    let webhooks = store.list_endpoints(None).await.unwrap();
    let mut messages = Vec::new();
    for e in &webhooks {
        messages.extend(
            store
                .list_messages(&e.id, None, None, 10_000)
                .await
                .unwrap(),
        );
    }
    Everything {
        webhooks,
        messages,
        outbox: store.webhook_backlog().await.unwrap().0,
        links,
        keys: store.list_keys().await.unwrap(),
        reports: store.list_reports(None, 100).await.unwrap(),
        takedowns: store.list_takedowns().await.unwrap(),
        sessions,
        stats,
        totals,
        raw,
    }
}

/// Every user-visible thing of `a` equals `b`'s (`what`: which copy).
fn assert_same(a: &Everything, b: &Everything, what: &str) {
    assert_eq!(a.links, b.links, "{what}");
    assert_eq!(a.keys, b.keys, "{what}");
    assert_eq!(a.reports, b.reports, "{what}");
    assert_eq!(a.takedowns, b.takedowns, "{what}");
    assert_eq!(a.webhooks, b.webhooks, "{what}");
    assert_eq!(a.messages, b.messages, "{what}");
    assert_eq!(a.outbox, b.outbox, "{what}");
    assert_eq!(a.sessions, b.sessions, "{what}");
    assert_eq!(a.totals, b.totals, "{what}");
    assert_eq!(a.raw, b.raw, "{what}");
    for (i, (x, y)) in a.stats.iter().zip(&b.stats).enumerate() {
        assert_eq!(x, y, "answer {i}, {what}");
    }
}

/// Writes a week of a shortener's life into `store`; returns the ids to
/// ask about (links and variant segments) and the queries.
async fn write(store: &dyn Store) -> (Vec<LinkId>, Vec<StatsQuery>) {
    let admin = store.insert_key("admin", [1; 32], true).await.unwrap();
    let user = store.insert_key("user", [2; 32], false).await.unwrap();
    let gone = store.insert_key("gone", [3; 32], false).await.unwrap();
    assert!(store.revoke_key(gone.id).await.unwrap());
    // A webhook endpoint for every event since the epoch: the outbox fills.
    let mut endpoint = webhook(admin.id);
    endpoint.created_at = 0;
    store.insert_endpoint(&endpoint).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut rng = StdRng::seed_from_u64(5);
    let mut ids = Vec::new();
    let mut segments = Vec::new();
    for (i, owner) in [Some(admin.id), Some(user.id), None]
        .into_iter()
        .enumerate()
    {
        let mut l = hop::testing::link(&format!("copied-{i}"), owner.map(|k: KeyId| k.0));
        l.created_at = chrono::DateTime::from_timestamp_millis(now - 8 * DAY).unwrap();
        l.tags = vec!["spring".into(), format!("t{i}")];
        l.max_clicks = (i == 1).then_some(10);
        l.password_hash = (i == 2).then(|| "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        store.insert_link(&l).await.unwrap().unwrap();
        ids.push(l.id);
        // Clicks over a week, some of them variants of a split.
        let clicks: Vec<_> = (0..3000)
            .map(|_| hop::testing::click(l.id, now - rng.random_range(1..7 * DAY), &mut rng))
            .collect();
        for batch in clicks.chunks(400) {
            store.record_clicks(batch).await.unwrap();
        }
        for variant in clicks.iter().filter_map(|c| c.route.variant.clone()) {
            let segment = l.id.variant_segment(&variant);
            if !segments.contains(&segment) {
                segments.push(segment);
            }
        }
    }
    assert!(!segments.is_empty());
    // The three links first (the second has a click limit), then the
    // variant segments.
    ids.append(&mut segments);
    assert!(store.claim_click(ids[1], 10).await.unwrap());
    assert!(store.claim_click(ids[1], 10).await.unwrap());
    // Retention took the raw clicks of the first four days: only the
    // rollups know them now.
    assert!(store.delete_raw_clicks_before(now - 3 * DAY).await.unwrap() > 0);
    // Breakdown and visitor minutes pruned before the minute window (and
    // its slack), as the upkeep does.
    assert!(
        store
            .prune_minute_rollups(now - MINUTE_WINDOW_MS - hop::stats::MINUTE_PRUNE_SLACK_MS)
            .await
            .unwrap()
            > 0
    );
    // Some buckets sealed, the newest not.
    assert!(
        store
            .seal_rollups(now - 2 * DAY, u64::MAX, 10_000)
            .await
            .unwrap()
            > 0
    );
    store
        .save_session(&[0; 32], "{\"key\":1}", now + DAY)
        .await
        .unwrap();
    store
        .save_session(&[1; 32], "{\"access\":\"copied-2\"}", now + DAY)
        .await
        .unwrap();
    store
        .insert_report("copied-0", Some(ids[0]), "spam", Some("looks odd"))
        .await
        .unwrap();
    store.add_takedown("bad.example", "phishing").await.unwrap();
    // Some of the outbox fanned out into messages, the rest waiting.
    assert_eq!(fan_out(store, 1).await, 1);

    let minute_since = now - MINUTE_WINDOW_MS;
    let mut queries = vec![StatsQuery {
        range: TimeRange {
            from: now - 8 * DAY,
            to: now,
        },
        interval: Interval::Day,
        tz: "UTC".parse().unwrap(),
        include_bots: true,
        top: 100,
        minute_since,
        now,
    }];
    while queries.len() < 12 {
        let a = now - rng.random_range(0..8 * DAY);
        let b = now - rng.random_range(0..8 * DAY);
        let q = StatsQuery {
            range: TimeRange {
                from: a.min(b),
                to: a.max(b),
            },
            interval: [Interval::Minute, Interval::Hour, Interval::Day][rng.random_range(0..3)],
            tz: ["UTC", "Asia/Kolkata", "America/New_York"][rng.random_range(0..3)]
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
    (ids, queries)
}

fn webhook(owner: KeyId) -> hop::store::webhooks::Endpoint {
    hop::store::webhooks::Endpoint {
        id: hop::webhooks::new_endpoint_id(),
        owner: Some(owner),
        instance_wide: true,
        url: "http://127.0.0.1:9/hook".into(),
        description: Some("copied".into()),
        events: hop::domain::webhook::EventType::ALL.to_vec(),
        scope_tag: None,
        scope_links: None,
        secret: hop::webhooks::new_secret(),
        previous_secret: Some(hop::webhooks::new_secret()),
        previous_until: Some(5),
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: 1,
        updated_at: 1,
    }
}

/// One fan-out of up to `rows` outbox rows, as the delivery loop makes it.
async fn fan_out(store: &dyn Store, rows: usize) -> usize {
    let now = chrono::Utc::now().timestamp_millis();
    let plan = |f: hop::store::webhooks::FanOut<'_>| {
        hop::webhooks::plan(
            f,
            hop::webhooks::PlanSettings {
                batch_size: 100,
                retry_for: DAY,
                now,
            },
        )
    };
    store.fan_out("test", now, rows, &plan).await.unwrap()
}

fn hop_copy(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hop"))
        .arg("copy")
        .args(args)
        .env_remove("HOP_DATABASE_URL")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_copied_into_postgres_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("hop.db").display());
    let pg_url = tokio::task::spawn_blocking(|| {
        let server = pg_support::PgServer::shared();
        server.url(&server.create_db())
    })
    .await
    .unwrap();

    let source = StoreConfig::parse(&sqlite_url)
        .unwrap()
        .open(true)
        .await
        .unwrap();
    let (ids, queries) = write(&*source).await;
    let before = everything(&*source, &ids, &queries).await;
    assert!(before.stats.iter().any(|s| s.total_clicks > 0));
    assert!(before.raw.len() < 9000, "retention took some raw clicks");
    drop(source);

    let out = hop_copy(&["--from", &sqlite_url, "--to", &pg_url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("secret"),
        "URLs are shown redacted: {stderr}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    for name in [
        "links",
        "clicks",
        "rollup_packs",
        "rollup_dims",
        "visitors",
        "sessions",
    ] {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {table}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], cells[2], "every row new: {line}");
        assert_ne!(cells[1], "0", "{line}");
    }

    let target = StoreConfig::parse(&pg_url)
        .unwrap()
        .open(true)
        .await
        .unwrap();
    let after = everything(&*target, &ids, &queries).await;
    assert_same(&before, &after, "copied");
    // The click limit's count came along: 8 more claims, then no more.
    for _ in 0..8 {
        assert!(target.claim_click(ids[1], 10).await.unwrap());
    }
    assert!(!target.claim_click(ids[1], 10).await.unwrap());
    // New keys and reports get ids after the copied ones.
    let key = target.insert_key("new", [9; 32], false).await.unwrap();
    assert!(before.keys.iter().all(|k| k.id.0 < key.id.0), "{key:?}");
    let report = target
        .insert_report("copied-1", None, "other", None)
        .await
        .unwrap();
    assert!(before.reports.iter().all(|r| r.id < report.id));
    // The webhook outbox came along, and goes on: the target fans it out
    // into messages of every raw click (and link event) the source had.
    assert!(before.outbox > 0 && !before.messages.is_empty());
    while fan_out(&*target, 500).await > 0 {}
    let id = &before.webhooks[0].id;
    let messages = target.list_messages(id, None, None, 10_000).await.unwrap();
    let clicks: u32 = messages
        .iter()
        .filter(|m| m.event_type == hop::domain::webhook::EventType::Click)
        .map(|m| m.events)
        .sum();
    assert_eq!(clicks as usize, before.raw.len());
    let mut extra = hop::testing::link("after-copy", None);
    extra.created_at = chrono::Utc::now();
    target.insert_link(&extra).await.unwrap().unwrap();
    assert!(target.delete_link(&extra.slug).await.unwrap());
    assert_eq!(target.webhook_backlog().await.unwrap().0, 2);
    drop(target);

    // Into a store that is not empty: refused, unless resuming, which
    // writes nothing new.
    let out = hop_copy(&["--from", &sqlite_url, "--to", &pg_url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--resume"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hop_copy(&["--from", &sqlite_url, "--to", &pg_url, "--resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let clicks = table
        .lines()
        .find(|l| l.starts_with("clicks "))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(clicks[2], "0", "{table}");
    let target = StoreConfig::parse(&pg_url)
        .unwrap()
        .open(true)
        .await
        .unwrap();
    assert_eq!(
        everything(&*target, &ids, &queries).await.stats,
        after.stats
    );
    drop(target);

    // And back, PostgreSQL into a new SQLite file: the same again (with the
    // key and report made in PostgreSQL since).
    let back_url = format!("sqlite://{}", dir.path().join("back.db").display());
    let out = hop_copy(&["--from", &pg_url, "--to", &back_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = StoreConfig::parse(&back_url)
        .unwrap()
        .open(true)
        .await
        .unwrap();
    let again = everything(&*back, &ids, &queries).await;
    assert_eq!(again.stats, before.stats);
    assert_eq!(again.raw, before.raw);
    assert_eq!(again.totals, before.totals);
    assert_eq!(again.links, before.links);
    assert_eq!(again.keys.len(), before.keys.len() + 1);
    assert_eq!(again.reports.len(), before.reports.len() + 1);
}

#[tokio::test]
async fn stores_that_cannot_be_copied_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("hop.db").display());
    let out = hop_copy(&["--from", "memory://", "--to", &sqlite_url]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SQLite, PostgreSQL and DynamoDB"),
        "{stderr}"
    );
    let out = hop_copy(&["--from", "sqlite:///nonexistent/x.db", "--to", &sqlite_url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no database at"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let empty = format!("sqlite://{}", dir.path().join("empty.db").display());
    hop::store::StoreConfig::parse(&empty)
        .unwrap()
        .open(true)
        .await
        .unwrap();
    let out = hop_copy(&["--from", &empty, "--to", &sqlite_url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to copy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hop_copy(&["--from", &sqlite_url, "--to", &sqlite_url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("same store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "dynamodb")]
#[path = "support/dynamo.rs"]
#[allow(dead_code)]
mod dynamo_support;

/// The same week, copied into DynamoDB (moto) by the real binary: rollups
/// become deltas (minutes in the minute window, quarter hours before), and
/// every answer is the same; and back out into SQLite, the same again. A
/// resumed copy into DynamoDB is refused.
#[cfg(feature = "dynamodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_copied_into_dynamodb_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("hop.db").display());
    let dynamo_url =
        tokio::task::spawn_blocking(|| dynamo_support::MotoServer::shared().url("eu-west-1"))
            .await
            .unwrap();
    let source = StoreConfig::parse(&sqlite_url)
        .unwrap()
        .open(true)
        .await
        .unwrap();
    let (ids, queries) = write(&*source).await;
    let before = everything(&*source, &ids, &queries).await;
    assert!(before.raw.len() < 9000, "retention took some raw clicks");
    drop(source);

    let out = hop_copy(&["--from", &sqlite_url, "--to", &dynamo_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = StoreConfig::parse(&dynamo_url)
        .unwrap()
        .open(true)
        .await
        .unwrap();
    let after = everything(&*target, &ids, &queries).await;
    assert_same(&before, &after, "copied");
    // And out again, DynamoDB into a new SQLite file: its items become
    // rows of every SQL grain, and every answer is still the same.
    let back_url = format!("sqlite://{}", dir.path().join("back.db").display());
    let out = hop_copy(&["--from", &dynamo_url, "--to", &back_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = StoreConfig::parse(&back_url)
        .unwrap()
        .open(true)
        .await
        .unwrap();
    let again = everything(&*back, &ids, &queries).await;
    assert_same(&before, &again, "after the way back");
    // The click limit's count came back too.
    for _ in 0..8 {
        assert!(back.claim_click(ids[1], 10).await.unwrap());
    }
    assert!(!back.claim_click(ids[1], 10).await.unwrap());
    drop(back);
    for _ in 0..8 {
        assert!(target.claim_click(ids[1], 10).await.unwrap());
    }
    assert!(!target.claim_click(ids[1], 10).await.unwrap());
    let key = target.insert_key("new", [9; 32], false).await.unwrap();
    assert!(before.keys.iter().all(|k| k.id.0 < key.id.0), "{key:?}");
    let report = target
        .insert_report("copied-1", None, "other", None)
        .await
        .unwrap();
    assert!(before.reports.iter().all(|r| r.id < report.id));
    // The outbox goes on: a message for every raw click the source had.
    while fan_out(&*target, 500).await > 0 {}
    let id = &before.webhooks[0].id;
    let messages = target.list_messages(id, None, None, 10_000).await.unwrap();
    let clicks: u32 = messages
        .iter()
        .filter(|m| m.event_type == hop::domain::webhook::EventType::Click)
        .map(|m| m.events)
        .sum();
    assert_eq!(clicks as usize, before.raw.len());
    // New clicks count on top of the copied ones.
    let mut rng = StdRng::seed_from_u64(9);
    let now = chrono::Utc::now().timestamp_millis();
    let more: Vec<_> = (0..50)
        .map(|_| hop::testing::click(ids[0], now - 1_000, &mut rng))
        .collect();
    assert_eq!(target.record_clicks(&more).await.unwrap(), 50);
    assert_eq!(
        target.link_totals(ids[0]).await.unwrap().with_bots,
        before.totals[0].with_bots + 50
    );
    drop(target);

    let out = hop_copy(&["--from", &sqlite_url, "--to", &dynamo_url, "--resume"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be resumed"), "{stderr}");
    let out = hop_copy(&["--from", &sqlite_url, "--to", &dynamo_url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
