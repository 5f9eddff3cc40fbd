//! Two regions of one Global Table, simulated: the same table in two
//! regions of a local DynamoDB server (moto keeps regions apart by the
//! signing region), with a test-only replicator between them
//! (`support/replicator.rs`, last-writer-wins per item). Each test proves
//! one rule of docs/multi-region.md.

#![cfg(feature = "dynamodb")]

#[path = "support/dynamo.rs"]
#[allow(dead_code)]
mod dynamo_support;
#[path = "support/redis.rs"]
#[allow(dead_code)]
mod redis_support;
#[path = "support/replicator.rs"]
mod replicator;

use hop::domain::{EnrichedClick, LinkId};
use hop::store::dynamo::DynamoStore;
use hop::store::dynamo::sdk::types::AttributeValue;
use hop::store::memory::MemoryStore;
use hop::store::{ClickStore, LinkStore};
use rand::{SeedableRng, rngs::StdRng};

use dynamo_support::{BASE, DAY, MotoServer, open, same_answers};
use replicator::Replicator;

const A: &str = "eu-west-1";
const B: &str = "us-east-1";

struct Regions {
    a: DynamoStore,
    b: DynamoStore,
    replicator: Replicator,
    table: String,
    _server: MotoServer,
}

async fn regions() -> Regions {
    two_regions(None, false).await
}

/// Two regions whose claims are decided in `claims` (`&claims=` in the
/// URL), or each in its own (`None`); with `slots`, A draws random slugs
/// from slot 0 and B from slot 1 (`&slot=`).
async fn two_regions(claims: Option<&str>, slots: bool) -> Regions {
    let server = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let table = "hop-global".to_owned();
    let url = |region: &str| {
        let mut url = server.table_url(&table, region);
        if let Some(home) = claims {
            url.push_str(&format!("&claims={home}"));
        }
        if slots {
            url.push_str(&format!("&slot={}", u8::from(region == B)));
        }
        url
    };
    let a = open(&url(A)).await.with_visitor_settle(0);
    let b = open(&url(B)).await.with_visitor_settle(0);
    let replicator = Replicator::new(&table, a.client().clone(), b.client().clone());
    Regions {
        a,
        b,
        replicator,
        table,
        _server: server,
    }
}

/// `n` clicks of a link in one region, spread over two days (no two clicks
/// of different seeds at the same millisecond), by the visitor `who` says.
fn clicks_by(
    link: LinkId,
    n: i64,
    seed: u64,
    region: &str,
    who: impl Fn(i64, &EnrichedClick) -> i64,
) -> Vec<EnrichedClick> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let mut c = hop::testing::click(
                link,
                BASE + (i * 7_919_000 + seed as i64) % (2 * DAY),
                &mut rng,
            );
            c.region = region.to_owned();
            c.visitor = who(i, &c);
            c
        })
        .collect()
}

/// `n` clicks of a link in one region.
fn clicks(link: LinkId, n: i64, seed: u64, region: &str) -> Vec<EnrichedClick> {
    // Visitors of different regions are different people here; the same
    // person in both regions is another test's matter.
    clicks_by(link, n, seed, region, |_, c| {
        c.visitor * 2 + i64::from(region == B)
    })
}

async fn write_batches(store: &DynamoStore, clicks: &[EnrichedClick]) -> u64 {
    let mut new = 0;
    for batch in clicks.chunks(50) {
        new += store.record_clicks(batch).await.unwrap();
    }
    new
}

/// Clicks of one link arrive in both regions at once, with replication
/// running meanwhile: each region writes counters of its own, so both
/// regions end with the exact sum. The control, one counter item that
/// both regions `ADD` to, loses increments to last-writer-wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_region_counters_add_up_while_a_shared_counter_loses() {
    let mut r = regions().await;
    let l = hop::testing::link("everywhere", None);
    r.a.insert_link(&l).await.unwrap().unwrap();
    r.replicator.sync().await;
    assert_eq!(
        r.b.link_by_slug(&l.slug).await.unwrap().map(|x| x.id),
        Some(l.id),
        "the link reached the other region"
    );
    let in_a = clicks(l.id, 300, 1, A);
    let in_b = clicks(l.id, 300, 2, B);
    let reference = MemoryStore::default();
    reference.insert_link(&l).await.unwrap().unwrap();
    reference.record_clicks(&in_a).await.unwrap();
    reference.record_clicks(&in_b).await.unwrap();

    let add = |store: &DynamoStore| {
        let client = store.client().clone();
        let table = r.table.clone();
        async move {
            for _ in 0..100 {
                client
                    .update_item()
                    .table_name(&table)
                    .key("pk", AttributeValue::S("CONTROL".into()))
                    .key("sk", AttributeValue::S("shared".into()))
                    .update_expression("ADD v :one")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .send()
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        }
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let replicating = async {
        let mut conflicts = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            conflicts += r.replicator.sync().await.1;
            // About as often as Global Tables replicate (under a second).
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        conflicts
    };
    let writing = async {
        let (x, y) = tokio::join!(write_batches(&r.a, &in_a), write_batches(&r.b, &in_b));
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (x, y)
    };
    let ((new_a, new_b), _) = tokio::join!(writing, replicating);
    assert_eq!((new_a, new_b), (300, 300));
    r.replicator.sync().await;
    // The control: both regions add to one item between two replications.
    tokio::join!(add(&r.a), add(&r.b));
    r.replicator.sync().await;
    r.replicator.sync().await;

    for (name, store) in [(A, &r.a), (B, &r.b)] {
        assert_eq!(
            store.link_totals(l.id).await.unwrap().with_bots,
            600,
            "totals read in {name}"
        );
        same_answers(store, &reference, l.id, name).await;
    }
    let shared = |store: &DynamoStore| {
        let client = store.client().clone();
        let table = r.table.clone();
        async move {
            let item = client
                .get_item()
                .table_name(&table)
                .key("pk", AttributeValue::S("CONTROL".into()))
                .key("sk", AttributeValue::S("shared".into()))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            match &item["v"] {
                AttributeValue::N(v) => v.parse::<u64>().unwrap(),
                other => panic!("{other:?}"),
            }
        }
    };
    let (in_a_now, in_b_now) = (shared(&r.a).await, shared(&r.b).await);
    assert_eq!(in_a_now, in_b_now, "the regions agree on the control");
    assert_eq!(
        in_a_now, 100,
        "200 increments, 100 kept: last-writer-wins lost the rest"
    );
}

/// A region cut off from the other keeps counting its own clicks (replays
/// included, counted once); when the cut heals, both regions count every
/// click exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_cut_off_keeps_counting_and_heals_exactly() {
    let mut r = regions().await;
    let l = hop::testing::link("cut", None);
    r.a.insert_link(&l).await.unwrap().unwrap();
    r.replicator.sync().await;
    let in_a = clicks(l.id, 200, 3, A);
    let in_b = clicks(l.id, 250, 4, B);
    // The cut: no replication from here.
    assert_eq!(write_batches(&r.a, &in_a).await, 200);
    assert_eq!(write_batches(&r.b, &in_b).await, 250);
    assert_eq!(write_batches(&r.b, &in_b[100..]).await, 0, "a replay");
    let own = |clicks: &[EnrichedClick]| {
        let reference = MemoryStore::default();
        let clicks = clicks.to_vec();
        let l = l.clone();
        async move {
            reference.insert_link(&l).await.unwrap().unwrap();
            reference.record_clicks(&clicks).await.unwrap();
            reference
        }
    };
    same_answers(&r.a, &own(&in_a).await, l.id, "A, cut off").await;
    same_answers(&r.b, &own(&in_b).await, l.id, "B, cut off").await;
    // A region seals and prunes on its own meanwhile.
    assert!(r.b.seal_rollups(i64::MAX, 1, 1000).await.unwrap() > 0);

    // Healed.
    r.replicator.sync().await;
    let all: Vec<EnrichedClick> = in_a.iter().chain(&in_b).cloned().collect();
    let reference = own(&all).await;
    for (name, store) in [(A, &r.a), (B, &r.b)] {
        assert_eq!(
            store.link_totals(l.id).await.unwrap().with_bots,
            450,
            "totals in {name}"
        );
        same_answers(store, &reference, l.id, name).await;
    }
}

/// `n` clicks of a link in one region by 60 people who click in both
/// regions.
fn shared_clicks(link: LinkId, n: i64, seed: u64, region: &str) -> Vec<EnrichedClick> {
    // One visitor is never both bot and human (as in hop, where the hash
    // covers the user agent).
    clicks_by(link, n, seed, region, |i, c| {
        (i * 7 + seed as i64) % 30 * 2 + i64::from(c.bot)
    })
}

/// Unique visitors of `link` over `[from, to)`, humans and all.
async fn visitors(store: &dyn ClickStore, link: LinkId, from: i64, to: i64) -> (u64, u64) {
    let mut out = [0; 2];
    for (i, include_bots) in [false, true].into_iter().enumerate() {
        let q = hop::stats::StatsQuery {
            range: hop::store::TimeRange { from, to },
            interval: hop::stats::Interval::Day,
            tz: chrono_tz::UTC,
            include_bots,
            top: 10,
            minute_since: i64::MIN,
            now: i64::MAX,
        };
        out[i] = hop::stats::link_stats(store, link, &q)
            .await
            .unwrap()
            .unique_visitors;
    }
    (out[0], out[1])
}

/// The same people click in both regions. Each region counts the first
/// clicks it sees, so a person of both is counted twice until the sealers
/// reconcile (the control); then exactly one region counts each visitor,
/// the one with the earliest first click, and every answer in both
/// regions is the reference's. Replication delivering the to-seal marks
/// before the visitor items (a reconciliation that sees nothing yet) and
/// later clicks in the region that yielded change nothing of that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_visitors_stay_exact_across_regions() {
    let mut r = regions().await;
    let l = hop::testing::link("people", None);
    r.a.insert_link(&l).await.unwrap().unwrap();
    r.replicator.sync().await;
    let in_a = shared_clicks(l.id, 240, 5, A);
    let in_b = shared_clicks(l.id, 240, 6, B);
    let reference = MemoryStore::default();
    reference.insert_link(&l).await.unwrap().unwrap();
    reference.record_clicks(&in_a).await.unwrap();
    reference.record_clicks(&in_b).await.unwrap();
    let (x, y) = tokio::join!(write_batches(&r.a, &in_a), write_batches(&r.b, &in_b));
    assert_eq!((x, y), (240, 240));
    let day = (BASE, BASE + DAY);
    let want = visitors(&reference, l.id, day.0, day.1).await;

    // The marks and heads arrive first: nothing to reconcile with yet.
    r.replicator.sync_where(|pk| !pk.starts_with("V#")).await;
    for store in [&r.a, &r.b] {
        store.seal_rollups(i64::MAX, 1, 1000).await.unwrap();
    }
    r.replicator.sync().await;
    let (twice, _) = visitors(&r.a, l.id, day.0, day.1).await;
    assert!(
        twice > want.0,
        "the control: before reconciling, people of both regions count twice ({twice} > {})",
        want.0
    );

    // The sealers' next passes reconcile; their corrections replicate.
    for store in [&r.a, &r.b] {
        store.seal_rollups(i64::MAX, 1, 1000).await.unwrap();
    }
    r.replicator.sync().await;
    for (name, store) in [(A, &r.a), (B, &r.b)] {
        assert_eq!(visitors(store, l.id, day.0, day.1).await, want, "{name}");
        same_answers(store, &reference, l.id, name).await;
    }

    // More clicks in B, some earlier than A's first clicks of the same
    // people: B now counts some of them, A yields them.
    let mut late = shared_clicks(l.id, 60, 7, B);
    for c in &mut late {
        c.at -= 3_600_000;
        c.event_id = uuid::Uuid::new_v4();
    }
    late.retain(|c| c.at >= BASE);
    reference.record_clicks(&late).await.unwrap();
    write_batches(&r.b, &late).await;
    r.replicator.sync().await;
    for _ in 0..2 {
        for store in [&r.a, &r.b] {
            store.seal_rollups(i64::MAX, 1, 1000).await.unwrap();
        }
        r.replicator.sync().await;
    }
    // A newcomer seen in A, replicated, then in B: B's click write finds
    // A's earlier first click and yields at once, before any sealer runs.
    let mut rng = StdRng::seed_from_u64(8);
    let mut newcomer = hop::testing::click(l.id, BASE + 3_600_000 + 1, &mut rng);
    newcomer.bot = false;
    newcomer.visitor = 1_000;
    newcomer.region = A.to_owned();
    let mut again = newcomer.clone();
    again.event_id = uuid::Uuid::new_v4();
    again.at += 3_600_000;
    again.region = B.to_owned();
    reference
        .record_clicks(&[newcomer.clone(), again.clone()])
        .await
        .unwrap();
    write_batches(&r.a, &[newcomer]).await;
    r.replicator.sync().await;
    write_batches(&r.b, &[again]).await;
    r.replicator.sync().await;
    for (name, store) in [(A, &r.a), (B, &r.b)] {
        same_answers(store, &reference, l.id, name).await;
        // An unaligned range, read partly from the visitor items.
        let (from, to) = (BASE + 37 * 60_000 + 5, BASE + DAY + 3 * 3_600_000 + 11);
        assert_eq!(
            visitors(store, l.id, from, to).await,
            visitors(&reference, l.id, from, to).await,
            "{name}, unaligned"
        );
    }
}

/// The slugs `feed` names within 10 s, until it names `want`.
async fn feed_names(feed: &mut Box<dyn hop::store::LinkFeed>, want: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if feed
            .changed()
            .await
            .unwrap()
            .iter()
            .any(|s| s.as_str() == want)
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// An edit in one region reaches the other's reads with replication, and
/// the other region's link feed (its replica's stream) names the slug, as
/// it does for a delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reaches_the_other_region() {
    let mut r = regions().await;
    let mut l = hop::testing::link("edited", None);
    r.a.insert_link(&l).await.unwrap().unwrap();
    r.replicator.sync().await;
    let mut feed = r.a.link_feed().expect("DynamoDB has a link feed");
    assert!(feed.changed().await.unwrap().is_empty(), "starts from now");
    l.target = hop::domain::TargetUrl::parse("https://example.org/new", &[]).unwrap();
    l.title = Some("New".into());
    assert!(r.b.update_link(&l).await.unwrap(), "edited in B");
    let in_a = r.a.link_by_slug(&l.slug).await.unwrap().unwrap();
    assert_eq!(
        in_a.target.as_str(),
        "https://example.com/edited",
        "not yet"
    );
    r.replicator.sync().await;
    let in_a = r.a.link_by_slug(&l.slug).await.unwrap().unwrap();
    assert_eq!(in_a.target.as_str(), "https://example.org/new");
    assert_eq!(in_a.title.as_deref(), Some("New"));
    assert!(
        feed_names(&mut feed, l.slug.as_str()).await,
        "the edit is fed"
    );
    assert!(r.b.delete_link(&l.slug).await.unwrap());
    r.replicator.sync().await;
    assert!(r.a.link_by_slug(&l.slug).await.unwrap().is_none());
    assert!(
        feed_names(&mut feed, l.slug.as_str()).await,
        "the delete is fed"
    );
}

/// A hop process of region A, killed on drop.
struct Process {
    _child: tokio::process::Child,
}

fn hop_process(db: &str, redis: &str, args: &[&str]) -> Process {
    Process {
        _child: tokio::process::Command::new(env!("CARGO_BIN_EXE_hop"))
            .env("HOP_DATABASE_URL", db)
            .env("HOP_REDIS_URL", redis)
            .env(
                "HOP_CLUSTER_KEY",
                "test-cluster-key-0123456789abcdef0123456789abcdef",
            )
            .env("HOP_LOG", "error")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    }
}

/// Where a redirect of `slug` on `base` goes.
async fn location(client: &reqwest::Client, base: &str, slug: &str) -> String {
    let r = client.get(format!("{base}/{slug}")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// An edit in B reaches the redirects of A's node, whose in-process and
/// Redis caches hold the old target (TTL 300 s): A's worker follows A's
/// link feed and invalidates them within a second or two of replication.
/// The control, before that worker runs: replicated, the store has the
/// new target, and the caches still serve the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reaches_the_other_regions_redirects_through_its_caches() {
    let mut r = regions().await;
    let redis = tokio::task::spawn_blocking(redis_support::RedisServer::start)
        .await
        .unwrap();
    let db = format!(
        "dynamodb://{}?region={A}&endpoint={}",
        r.table,
        r._server.endpoint()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let _node = hop_process(
        &db,
        &redis.url(),
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--no-migrate",
        ],
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "node did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut l = hop::testing::link("cached", None);
    r.a.insert_link(&l).await.unwrap().unwrap();
    r.replicator.sync().await;
    assert_eq!(
        location(&client, &base, "cached").await,
        "https://example.com/cached"
    );

    l.target = hop::domain::TargetUrl::parse("https://example.org/moved", &[]).unwrap();
    assert!(r.b.update_link(&l).await.unwrap(), "edited in B");
    r.replicator.sync().await;
    assert_eq!(
        r.a.link_by_slug(&l.slug)
            .await
            .unwrap()
            .unwrap()
            .target
            .as_str(),
        "https://example.org/moved",
        "replicated to A's replica"
    );
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(
            location(&client, &base, "cached").await,
            "https://example.com/cached",
            "the control: A's caches know nothing of it"
        );
    }

    let _worker = hop_process(&db, &redis.url(), &["worker", "--no-migrate"]);
    // The feed starts from now: the next edit is the one it sees.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    l.target = hop::domain::TargetUrl::parse("https://example.org/again", &[]).unwrap();
    assert!(r.b.update_link(&l).await.unwrap(), "edited in B again");
    r.replicator.sync().await;
    let replicated = std::time::Instant::now();
    loop {
        let now = location(&client, &base, "cached").await;
        if now == "https://example.org/again" {
            break;
        }
        assert!(
            replicated.elapsed() < std::time::Duration::from_secs(10),
            "A's redirect still goes to {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// One custom slug asked for in both regions at once: the claims region
/// decides, so exactly one wins and the other is told at once. The control,
/// each region deciding for itself, says yes to both and replication then
/// silently replaces one link with the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_slug_raced_in_both_regions_has_one_winner() {
    for claimed in [true, false] {
        let mut r = two_regions(claimed.then_some(A), false).await;
        let mut in_a = hop::testing::link("race", None);
        let mut in_b = hop::testing::link("race", None);
        in_a.target = hop::domain::TargetUrl::parse("https://a.example/", &[]).unwrap();
        in_b.target = hop::domain::TargetUrl::parse("https://b.example/", &[]).unwrap();
        let (x, y) = tokio::join!(r.a.insert_link(&in_a), r.b.insert_link(&in_b));
        let (x, y) = (x.unwrap(), y.unwrap());
        r.replicator.sync().await;
        let seen_a = r.a.link_by_slug(&in_a.slug).await.unwrap().unwrap();
        let seen_b = r.b.link_by_slug(&in_a.slug).await.unwrap().unwrap();
        assert_eq!(seen_a.id, seen_b.id, "the regions agree");
        if claimed {
            assert!(
                x.is_ok() != y.is_ok(),
                "exactly one region wins the slug: {x:?} {y:?}"
            );
            let (winner, loser) = if x.is_ok() { (&in_a, y) } else { (&in_b, x) };
            assert_eq!(
                loser,
                Err(hop::store::Conflict::SlugTaken),
                "the loser is told"
            );
            assert_eq!(seen_a.id, winner.id);
        } else {
            assert_eq!((x, y), (Ok(()), Ok(())), "the control: both told yes");
            // Last-writer-wins kept B's (the replicator takes B's write as
            // the later): the link A's user was given now goes elsewhere.
            assert_eq!(seen_a.id, in_b.id);
            assert_eq!(seen_a.target.as_str(), "https://b.example/");
        }
    }
}

/// Random slugs: each region draws from a slot of its own (`slot=`), so
/// the very same random draws in both regions give two different slugs,
/// and each region creates its links alone: even with claims decided in A,
/// B's link is not in A's replica before replication (so B creates links
/// while cut off from A). After replication both links stand. The control,
/// without slots and claims: the same draws give one slug twice, both
/// regions say yes, and replication silently replaces one link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_slugs_never_collide_across_regions() {
    for slots in [true, false] {
        let mut r = two_regions(slots.then_some(A), slots).await;
        let draw = |store: &DynamoStore, target: &str| {
            // Both regions' random number generators give the same draws.
            let mut rng = StdRng::seed_from_u64(42);
            let mut l = hop::testing::link("unused", None);
            l.slug = store.random_slug(&mut rng);
            l.target = hop::domain::TargetUrl::parse(target, &[]).unwrap();
            l
        };
        let in_a = draw(&r.a, "https://a.example/");
        let in_b = draw(&r.b, "https://b.example/");
        assert_eq!(
            in_a.slug == in_b.slug,
            !slots,
            "{} / {}",
            in_a.slug,
            in_b.slug
        );
        let (x, y) = tokio::join!(r.a.insert_random_link(&in_a), r.b.insert_random_link(&in_b));
        assert_eq!((x.unwrap(), y.unwrap()), (Ok(()), Ok(())), "both told yes");
        if slots {
            assert!(
                r.a.link_by_slug(&in_b.slug).await.unwrap().is_none(),
                "decided in B alone, not in the claims region"
            );
        }
        r.replicator.sync().await;
        for (name, store) in [(A, &r.a), (B, &r.b)] {
            let a = store.link_by_slug(&in_a.slug).await.unwrap().unwrap();
            let b = store.link_by_slug(&in_b.slug).await.unwrap().unwrap();
            if slots {
                assert_eq!((a.id, b.id), (in_a.id, in_b.id), "{name}: both stand");
            } else {
                assert_eq!((a.id, b.id), (in_b.id, in_b.id), "{name}: one replaced");
            }
        }
    }
}

/// A link limited to 50 clicks, clicked 40 times in each region at once:
/// with claims decided in one region exactly 50 are served. The control,
/// each region counting its own, serves 80.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_limit_holds_across_regions() {
    for claimed in [true, false] {
        let mut r = two_regions(claimed.then_some(A), false).await;
        let mut l = hop::testing::link("limited", None);
        l.max_clicks = Some(50);
        r.a.insert_link(&l).await.unwrap().unwrap();
        r.replicator.sync().await;
        async fn claims(store: &DynamoStore, id: LinkId) -> u32 {
            let mut granted = 0;
            for _ in 0..40 {
                granted += u32::from(store.claim_click(id, 50).await.unwrap());
            }
            granted
        }
        let (x, y) = tokio::join!(claims(&r.a, l.id), claims(&r.b, l.id));
        r.replicator.sync().await;
        if claimed {
            assert_eq!(x + y, 50, "exactly the limit: {x} + {y}");
        } else {
            assert_eq!(x + y, 80, "the control serves past the limit: {x} + {y}");
        }
    }
}
