//! The store conformance suite: behaviour every backend must show. Backends
//! run it with [`crate::store_conformance!`], which expands to one test per
//! case. The in-memory store (raw clicks only) is the reference: rollup
//! answers must equal raw answers over the same aligned range, and whole
//! stats answers must equal a brute-force reference (`stats_reference`).

mod stats_reference;

use std::collections::HashMap;

use chrono::{Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

use crate::domain::{
    DeviceType, Dimension, EnrichedClick, KeyId, Link, LinkId, RedirectStatus, Route, Slug,
    TargetUrl, Utm,
};
use crate::stats::{Interval, LinkStats, StatsQuery, link_stats};
use crate::store::{ClickTotals, Conflict, LinkQuery, Resolution, Store, TimeRange};

pub use stats_reference::{stats_equal_reference, widened};

/// Expands to one `#[tokio::test]` per conformance case. `$make` is an async
/// closure returning `(Arc<dyn Store>, guard)`; the guard (a temp dir, a
/// server) lives as long as the test.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            insert_and_get, slug_conflict_is_a_value, slugs_are_case_sensitive,
            list_newest_first_with_filters, list_text_filter_is_literal, update_link,
            smart_link_fields_round_trip, delete_removes_clicks,
            variant_segments_count_like_a_link_of_their_own, claim_click_limits, api_keys, record_is_idempotent,
            a_click_twice_in_one_batch_counts_once, clicks_of_unknown_links_are_skipped,
            rollups_agree_with_raw, bots_are_separable,
            export_pages_in_order, sessions_expire_and_are_replaced, one_time_records_are_taken_once,
            retention_keeps_rollups,
            purge_removes_a_links_clicks, reports_and_domains, takedowns_add_list_and_lift,
            stats_equal_reference, retention_and_pruning_keep_every_answer,
            stats_answers_are_one_snapshot, sealing_while_writing_loses_nothing,
            counted_clicks_count_like_clicks);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = ($make)().await;
                $crate::testing::$case(&*store).await;
            }
        )*
    };
}

/// Midnight UTC on a fixed day, so bucket arithmetic in cases is readable.
fn base_ms() -> i64 {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis()
}

pub fn link(slug: &str, owner: Option<i64>) -> Link {
    let now = Utc::now();
    Link {
        id: LinkId::generate(now, &mut rand::rng()),
        slug: Slug::parse(slug).unwrap(),
        target: TargetUrl::parse(&format!("https://example.com/{slug}"), &[]).unwrap(),
        title: Some(format!("Title of {slug}")),
        tags: vec!["all".into()],
        created_at: now,
        updated_at: now,
        expires_at: None,
        max_clicks: None,
        redirect_status: RedirectStatus::Found,
        disabled: false,
        owner: owner.map(KeyId),
        secret_hash: Some([7; 32]),
        rules: Default::default(),
        fallback_url: None,
        password_hash: None,
        preview: None,
    }
}

async fn insert(store: &dyn Store, link: &Link) {
    store.insert_link(link).await.unwrap().unwrap();
}

pub fn click(link: LinkId, at: i64, rng: &mut impl Rng) -> EnrichedClick {
    const COUNTRIES: [&str; 4] = ["GB", "US", "DE", "FR"];
    const BROWSERS: [&str; 3] = ["Chrome", "Firefox", "Safari"];
    let bot = rng.random_ratio(1, 10);
    EnrichedClick {
        event_id: Uuid::new_v4(),
        link_id: link,
        at,
        bot,
        country: rng
            .random_ratio(9, 10)
            .then(|| COUNTRIES[rng.random_range(0..4)].into()),
        city: rng.random_ratio(1, 2).then(|| "Bracknell".into()),
        browser: BROWSERS[rng.random_range(0..3)].into(),
        os: "Linux".into(),
        device: if bot {
            DeviceType::Bot
        } else {
            DeviceType::Desktop
        },
        referrer_host: rng
            .random_ratio(1, 2)
            .then(|| "news.ycombinator.com".into()),
        utm: Utm {
            source: rng.random_ratio(1, 3).then(|| "newsletter".into()),
            medium: None,
            campaign: rng.random_ratio(1, 5).then(|| "spring".into()),
        },
        // The visitor hash covers the user agent, and bot-ness is a function of
        // the user agent: one visitor is never both bot and human.
        visitor: rng.random_range(0..40) * 2 + i64::from(bot),
        region: "local".into(),
        // A smart link's route on some clicks: a rule alone, or with the
        // variant of its split.
        route: match rng.random_range(0..6) {
            0 => Route {
                rule: Some("eu".into()),
                variant: None,
            },
            1 => Route {
                rule: Some("ab".into()),
                variant: Some(["a", "b"][rng.random_range(0..2)].into()),
            },
            2 => Route {
                rule: Some("fallback".into()),
                variant: None,
            },
            _ => Route::default(),
        },
    }
}

pub async fn insert_and_get(store: &dyn Store) {
    let l = link("hello", Some(1));
    insert(store, &l).await;
    let got = store.link_by_slug(&l.slug).await.unwrap().unwrap();
    assert_eq!(got.id, l.id);
    assert_eq!(got.target, l.target);
    assert_eq!(got.title, l.title);
    assert_eq!(got.tags, l.tags);
    assert_eq!(got.owner, l.owner);
    assert_eq!(got.secret_hash, l.secret_hash);
    assert_eq!(
        got.created_at.timestamp_millis(),
        l.created_at.timestamp_millis()
    );
    assert!(
        store
            .link_by_slug(&Slug::parse("nope").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    store.ping().await.unwrap();
}

pub async fn slug_conflict_is_a_value(store: &dyn Store) {
    let a = link("taken", None);
    insert(store, &a).await;
    let mut b = link("taken", None);
    assert_eq!(
        store.insert_link(&b).await.unwrap(),
        Err(Conflict::SlugTaken)
    );
    b.slug = Slug::parse("free").unwrap();
    b.id = a.id;
    assert_eq!(store.insert_link(&b).await.unwrap(), Err(Conflict::IdTaken));
    // The loser changed nothing.
    let got = store.link_by_slug(&a.slug).await.unwrap().unwrap();
    assert_eq!(got.target, a.target);
}

pub async fn slugs_are_case_sensitive(store: &dyn Store) {
    insert(store, &link("abc", None)).await;
    insert(store, &link("ABC", None)).await;
    let lower = store
        .link_by_slug(&Slug::parse("abc").unwrap())
        .await
        .unwrap()
        .unwrap();
    let upper = store
        .link_by_slug(&Slug::parse("ABC").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(lower.id, upper.id);
}

pub async fn list_newest_first_with_filters(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut l = link(&format!("l{i}"), Some(if i % 2 == 0 { 1 } else { 2 }));
        l.id = LinkId(1_000 + i);
        if i % 3 == 0 {
            l.tags.push("three".into());
        }
        insert(store, &l).await;
        ids.push(l.id);
    }
    let all = store
        .list_links(&LinkQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|l| l.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );

    let page1 = store
        .list_links(&LinkQuery {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let page2 = store
        .list_links(&LinkQuery {
            limit: 3,
            before: Some(page1[2].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page1.len(), 3);
    assert_eq!(
        page2.iter().map(|l| l.id.0).collect::<Vec<_>>(),
        vec![1003, 1002, 1001]
    );

    let mine = store
        .list_links(&LinkQuery {
            owner: Some(KeyId(2)),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|l| l.id.0).collect::<Vec<_>>(),
        vec![1005, 1003, 1001]
    );

    let tagged = store
        .list_links(&LinkQuery {
            tag: Some("three".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        tagged.iter().map(|l| l.id.0).collect::<Vec<_>>(),
        vec![1006, 1003, 1000]
    );

    let text = store
        .list_links(&LinkQuery {
            text: Some("TITLE OF L4".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(text.iter().map(|l| l.id.0).collect::<Vec<_>>(), vec![1004]);
}

pub async fn list_text_filter_is_literal(store: &dyn Store) {
    let mut l = link("pct", None);
    l.title = Some("100% real".into());
    insert(store, &l).await;
    insert(store, &link("other", None)).await;
    for (needle, want) in [("100%", 1), ("%", 1), ("_", 0), ("example.com/pct", 1)] {
        let got = store
            .list_links(&LinkQuery {
                text: Some(needle.into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.len(), want, "needle {needle:?}");
    }
}

pub async fn update_link(store: &dyn Store) {
    let mut l = link("edit", None);
    insert(store, &l).await;
    l.target = TargetUrl::parse("https://example.org/new", &[]).unwrap();
    l.tags = vec!["fresh".into()];
    l.title = None;
    l.disabled = true;
    l.max_clicks = Some(5);
    l.expires_at = Some(Utc::now() + Duration::days(1));
    l.redirect_status = RedirectStatus::PermanentRedirect;
    assert!(store.update_link(&l).await.unwrap());
    let got = store.link_by_slug(&l.slug).await.unwrap().unwrap();
    assert_eq!(got.target.as_str(), "https://example.org/new");
    assert_eq!(got.title, None);
    assert!(got.disabled);
    assert_eq!(got.max_clicks, Some(5));
    assert_eq!(got.redirect_status, RedirectStatus::PermanentRedirect);
    let by_old_tag = store
        .list_links(&LinkQuery {
            tag: Some("all".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_old_tag.is_empty());
    let by_new_tag = store
        .list_links(&LinkQuery {
            tag: Some("fresh".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_new_tag.len(), 1);
    let ghost = link("ghost", None);
    assert!(!store.update_link(&ghost).await.unwrap());
}

/// A link's rules (every kind of condition, a split) and fallback URL are
/// stored, listed, replaced and cleared like its other fields.
pub async fn smart_link_fields_round_trip(store: &dyn Store) {
    use crate::domain::rules::{RuleSpec, Rules};
    let specs: Vec<RuleSpec> = serde_json::from_str(
        r#"[
            {"id":"eu","if":[{"country":["DE","AT"]},{"city":["Wien"]},{"device":["mobile"]},
                {"os":["android"]},{"browser":["Chrome"]},{"language":["de"]},
                {"query":{"name":"ref","equals":"x y"}},{"ip":["203.0.113.0/24","2001:db8::/32"]},
                {"time":{"from":"2026-01-01T00:00:00Z","days":["mon","sat"],"hours":{"from":22,"to":6},"tz":"Europe/Vienna"}},
                {"referrer":["example.org"]}],
             "target":"https://example.de/"},
            {"id":"ab","split":[{"id":"a","target":"https://a.example/","weight":3},
                {"id":"b","target":"https://b.example/?q=1","weight":1}]}
        ]"#,
    )
    .unwrap();
    let rules = Rules::parse(&specs, &[]).unwrap();
    let mut l = link("smart", Some(1));
    l.rules = rules.clone();
    l.fallback_url = Some(TargetUrl::parse("https://example.com/over", &[]).unwrap());
    l.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into());
    l.preview = Some(crate::domain::LinkPreview {
        title: Some("Spring sale".into()),
        description: Some("Two lines\nof text".into()),
        image: Some(TargetUrl::parse("https://cdn.example.com/card.png", &[]).unwrap()),
    });
    insert(store, &l).await;
    let smart = |x: &Link| {
        (
            x.id,
            x.rules.clone(),
            x.fallback_url.clone(),
            x.password_hash.clone(),
            x.preview.clone(),
        )
    };
    let got = store.link_by_slug(&l.slug).await.unwrap().unwrap();
    assert_eq!(smart(&got), smart(&l), "as inserted");
    let listed = store
        .list_links(&LinkQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let got = listed.iter().find(|x| x.id == l.id).unwrap();
    assert_eq!(smart(got), smart(&l), "as listed");

    l.rules = Rules::parse(&specs[1..], &[]).unwrap();
    l.fallback_url = None;
    l.password_hash = None;
    l.preview = None;
    assert!(store.update_link(&l).await.unwrap());
    let got = store.link_by_slug(&l.slug).await.unwrap().unwrap();
    assert_eq!(smart(&got), smart(&l), "replaced");
    l.rules = Rules::default();
    assert!(store.update_link(&l).await.unwrap());
    let got = store.link_by_slug(&l.slug).await.unwrap().unwrap();
    assert!(got.rules.is_empty(), "cleared");
}

pub async fn delete_removes_clicks(store: &dyn Store) {
    let l = link("gone", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(1);
    let clicks: Vec<_> = (0..10)
        .map(|i| click(l.id, base_ms() + i, &mut rng))
        .collect();
    assert_eq!(store.record_clicks(&clicks).await.unwrap(), 10);
    assert!(store.delete_link(&l.slug).await.unwrap());
    assert!(!store.delete_link(&l.slug).await.unwrap());
    assert!(store.link_by_slug(&l.slug).await.unwrap().is_none());
    // The slug can be taken again, and starts from zero.
    let again = link("gone", None);
    insert(store, &again).await;
    let totals = store.click_totals(&[again.id, l.id], true).await.unwrap();
    assert_eq!(totals.get(&again.id).copied().unwrap_or(0), 0);
    assert_eq!(totals.get(&l.id).copied().unwrap_or(0), 0);
    // Replaying the old clicks stores nothing: their link is gone.
    assert_eq!(store.record_clicks(&clicks).await.unwrap(), 0);
}

/// A variant's segment counts that variant's clicks as a link of their own
/// would: every stats answer of it equals a control link's that was sent
/// only those clicks; replays count once; the link's own count is not
/// changed; deleting the link (or its clicks) takes the segments too.
pub async fn variant_segments_count_like_a_link_of_their_own(store: &dyn Store) {
    let l = link("split", None);
    let control = link("control", None);
    insert(store, &l).await;
    insert(store, &control).await;
    let mut rng = StdRng::seed_from_u64(16);
    let clicks: Vec<_> = (0..600)
        .map(|_| {
            click(
                l.id,
                base_ms() - rng.random_range(0..3 * 86_400_000),
                &mut rng,
            )
        })
        .collect();
    let of_b: Vec<EnrichedClick> = clicks
        .iter()
        .filter(|c| c.route.variant.as_deref() == Some("b"))
        .map(|c| EnrichedClick {
            event_id: Uuid::new_v4(),
            link_id: control.id,
            ..c.clone()
        })
        .collect();
    assert!(of_b.len() > 20, "{}", of_b.len());
    let mut stored = 0;
    for batch in clicks.chunks(150) {
        stored += store.record_clicks(batch).await.unwrap();
    }
    assert_eq!(stored, 600, "the link's own clicks, not their copies");
    assert_eq!(store.record_clicks(&clicks[..150]).await.unwrap(), 0);
    store.record_clicks(&of_b).await.unwrap();
    let segment = l.id.variant_segment("b");
    for (interval, bots) in [(Interval::Day, true), (Interval::Hour, false)] {
        let q = StatsQuery {
            range: TimeRange {
                from: base_ms() - 4 * 86_400_000,
                to: base_ms() + 60_000,
            },
            interval,
            tz: chrono_tz::Europe::Berlin,
            include_bots: bots,
            top: 100,
            minute_since: base_ms() - 1,
            now: i64::MAX,
        };
        let got = link_stats(store, segment, &q).await.unwrap();
        let want = link_stats(store, control.id, &q).await.unwrap();
        assert_eq!(got, want, "{interval:?}");
        assert!(got.total_clicks > 0 && got.unique_visitors > 0);
    }
    assert_eq!(
        store.link_totals(segment).await.unwrap(),
        store.link_totals(control.id).await.unwrap()
    );
    assert_eq!(store.link_totals(l.id).await.unwrap().with_bots, 600);

    assert!(store.delete_link(&l.slug).await.unwrap());
    assert_eq!(store.link_totals(segment).await.unwrap().with_bots, 0);
    let q = StatsQuery {
        range: TimeRange {
            from: base_ms() - 4 * 86_400_000,
            to: base_ms() + 60_000,
        },
        interval: Interval::Day,
        tz: chrono_tz::UTC,
        include_bots: true,
        top: 100,
        minute_since: base_ms() - 1,
        now: i64::MAX,
    };
    assert_eq!(
        link_stats(store, segment, &q).await.unwrap().total_clicks,
        0
    );
}

pub async fn claim_click_limits(store: &dyn Store) {
    let l = link("limited", None);
    insert(store, &l).await;
    for _ in 0..3 {
        assert!(store.claim_click(l.id, 3).await.unwrap());
    }
    assert!(!store.claim_click(l.id, 3).await.unwrap());
    // Raising the limit lets clicks through again.
    assert!(store.claim_click(l.id, 4).await.unwrap());
    assert!(!store.claim_click(LinkId(42), 3).await.unwrap());
}

pub async fn api_keys(store: &dyn Store) {
    let a = store.insert_key("ci", [1; 32], false).await.unwrap();
    let b = store.insert_key("root", [2; 32], true).await.unwrap();
    assert_ne!(a.id, b.id);
    let got = store.key_by_hash(&[2; 32]).await.unwrap().unwrap();
    assert_eq!(got.name, "root");
    assert!(got.admin);
    assert!(got.revoked_at.is_none());
    assert!(store.key_by_hash(&[3; 32]).await.unwrap().is_none());
    assert!(store.revoke_key(a.id).await.unwrap());
    assert!(!store.revoke_key(a.id).await.unwrap());
    assert!(
        store
            .key_by_hash(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(store.list_keys().await.unwrap().len(), 2);
}

pub async fn record_is_idempotent(store: &dyn Store) {
    let l = link("twice", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(2);
    let clicks: Vec<_> = (0..250)
        .map(|i| click(l.id, base_ms() + i * 1000, &mut rng))
        .collect();
    let humans = clicks.iter().filter(|c| !c.bot).count() as u64;
    assert_eq!(store.record_clicks(&clicks[..100]).await.unwrap(), 100);
    // A replay overlapping what is stored counts only the new part.
    assert_eq!(store.record_clicks(&clicks[50..]).await.unwrap(), 150);
    assert_eq!(store.record_clicks(&clicks).await.unwrap(), 0);
    let totals = store.click_totals(&[l.id], true).await.unwrap();
    assert_eq!(totals[&l.id], 250);
    assert_eq!(
        store.click_totals(&[l.id], false).await.unwrap()[&l.id],
        humans
    );
    let day = TimeRange {
        from: base_ms(),
        to: base_ms() + 86_400_000,
    };
    for res in [Resolution::Raw, Resolution::QuarterHour, Resolution::Minute] {
        let sum: u64 = store
            .series(l.id, res, day, true)
            .await
            .unwrap()
            .iter()
            .map(|b| b.1)
            .sum();
        assert_eq!(sum, 250, "{res:?}");
    }
}

/// A stream append retried after an ambiguous failure (Redis died after
/// writing the entry, before answering) leaves one click in the stream twice,
/// usually next to each other, so in one batch: it is stored and counted once.
pub async fn a_click_twice_in_one_batch_counts_once(store: &dyn Store) {
    let l = link("echoed", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(5);
    let clicks: Vec<_> = (0..40)
        .map(|i| click(l.id, base_ms() + i * 1000, &mut rng))
        .collect();
    // Doubled inside the batch, once adjacent and once far apart.
    let mut batch = clicks.clone();
    batch.insert(3, clicks[3].clone());
    batch.push(clicks[10].clone());
    assert_eq!(store.record_clicks(&batch).await.unwrap(), 40);
    // And a batch of nothing but one stored click, twice.
    let again = vec![clicks[0].clone(), clicks[0].clone()];
    assert_eq!(store.record_clicks(&again).await.unwrap(), 0);
    assert_eq!(store.click_totals(&[l.id], true).await.unwrap()[&l.id], 40);
    let day = TimeRange {
        from: base_ms(),
        to: base_ms() + 86_400_000,
    };
    let reads = crate::store::StatsReads {
        series: vec![(Resolution::Minute, day)],
        dims: vec![(Resolution::Minute, day)],
        visitors: vec![],
    };
    let stats = store.stats_rows(l.id, &reads, true, 10).await.unwrap();
    assert_eq!(stats.series.iter().map(|b| b.1).sum::<u64>(), 40);
    let devices: u64 = stats
        .dims
        .iter()
        .filter(|d| d.dim == Dimension::Device)
        .map(|d| d.clicks)
        .sum();
    assert_eq!(devices, 40, "breakdowns count it once too");
}

pub async fn clicks_of_unknown_links_are_skipped(store: &dyn Store) {
    let l = link("known", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(3);
    let batch = vec![
        click(l.id, base_ms(), &mut rng),
        click(LinkId(99), base_ms(), &mut rng),
    ];
    assert_eq!(store.record_clicks(&batch).await.unwrap(), 1);
}

/// Rollups at every resolution agree with a raw scan of the same range, and
/// the totals do not depend on how clicks were split into batches.
pub async fn rollups_agree_with_raw(store: &dyn Store) {
    let l = link("rolled", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(4);
    let span = 3 * 86_400_000i64;
    let clicks: Vec<_> = (0..3000)
        .map(|_| click(l.id, base_ms() + rng.random_range(0..span), &mut rng))
        .collect();
    let mut rest = &clicks[..];
    while !rest.is_empty() {
        let n = rng.random_range(1..400).min(rest.len());
        store.record_clicks(&rest[..n]).await.unwrap();
        rest = &rest[n..];
    }
    for bots in [false, true] {
        let want = clicks.iter().filter(|c| bots || !c.bot).count() as u64;
        let all = TimeRange {
            from: base_ms(),
            to: base_ms() + span,
        };
        for res in [Resolution::Raw, Resolution::Minute, Resolution::QuarterHour] {
            let series = store.series(l.id, res, all, bots).await.unwrap();
            assert_eq!(series.iter().map(|b| b.1).sum::<u64>(), want, "{res:?}");
            assert!(series.windows(2).all(|w| w[0].0 < w[1].0), "series sorted");
        }
        // Quarter-hour buckets equal the raw minutes regrouped.
        let raw = store
            .series(l.id, Resolution::Raw, all, bots)
            .await
            .unwrap();
        let mut regrouped: HashMap<i64, u64> = HashMap::new();
        for (m, n) in raw {
            *regrouped
                .entry(Resolution::QuarterHour.floor(m))
                .or_default() += n;
        }
        let quarters: HashMap<i64, u64> = store
            .series(l.id, Resolution::QuarterHour, all, bots)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(quarters, regrouped);

        let day2 = TimeRange {
            from: base_ms() + 86_400_000,
            to: base_ms() + 2 * 86_400_000,
        };
        let quarters = TimeRange {
            from: base_ms() + 5 * 3_600_000 + 45 * 60_000,
            to: base_ms() + 9 * 3_600_000 + 15 * 60_000,
        };
        let minutes = TimeRange {
            from: base_ms() + 5 * 3_600_000 + 7 * 60_000,
            to: base_ms() + 7 * 3_600_000 + 53 * 60_000,
        };
        for (res, range) in [
            (Resolution::Day, all),
            (Resolution::Day, day2),
            (Resolution::QuarterHour, quarters),
            (Resolution::Minute, minutes),
        ] {
            let mut rolled = store.dimensions(l.id, res, range, bots).await.unwrap();
            let mut raw = store
                .dimensions(l.id, Resolution::Raw, range, bots)
                .await
                .unwrap();
            rolled.sort_by(|a, b| (a.dim, &a.value).cmp(&(b.dim, &b.value)));
            raw.sort_by(|a, b| (a.dim, &a.value).cmp(&(b.dim, &b.value)));
            assert_eq!(rolled, raw, "{res:?} {range:?}");
            let countries: u64 = raw
                .iter()
                .filter(|d| d.dim == Dimension::Country)
                .map(|d| d.clicks)
                .sum();
            let expected = clicks
                .iter()
                .filter(|c| (bots || !c.bot) && c.at >= range.from && c.at < range.to)
                .count() as u64;
            assert_eq!(countries, expected, "every click has a country value");
        }
        // A visitor is a (day, hash) pair counted at its first click that day.
        let mut first: HashMap<(i64, i64), i64> = HashMap::new();
        for c in clicks.iter().filter(|c| bots || !c.bot) {
            let at = first
                .entry((Resolution::Day.floor(c.at), c.visitor))
                .or_insert(c.at);
            *at = (*at).min(c.at);
        }
        let quarters_in_day2 = TimeRange {
            from: day2.from + 3 * 3_600_000 + 30 * 60_000,
            to: day2.from + 17 * 3_600_000 + 45 * 60_000,
        };
        let minutes_in_day2 = TimeRange {
            from: day2.from + 3 * 3_600_000 + 31 * 60_000,
            to: day2.from + 5 * 3_600_000 + 59 * 60_000,
        };
        let ragged = TimeRange {
            from: day2.from + 1_234_567,
            to: day2.to + 7_654_321,
        };
        for (res, range) in [
            (Resolution::Day, all),
            (Resolution::Day, day2),
            (Resolution::QuarterHour, quarters_in_day2),
            (Resolution::Minute, minutes_in_day2),
            (Resolution::Raw, ragged),
            (Resolution::Raw, all),
        ] {
            let want = first
                .values()
                .filter(|at| **at >= range.from && **at < range.to)
                .count() as u64;
            assert_eq!(
                store.visitors(l.id, res, range, bots).await.unwrap(),
                want,
                "{res:?} {range:?}"
            );
        }
        let week = Resolution::Week.floor(base_ms());
        let week = TimeRange {
            from: week,
            to: week + Resolution::Week.grain_ms(),
        };
        let mut rolled = store
            .dimensions(l.id, Resolution::Week, week, bots)
            .await
            .unwrap();
        let mut raw = store
            .dimensions(l.id, Resolution::Raw, week, bots)
            .await
            .unwrap();
        rolled.sort_by(|a, b| (a.dim, &a.value).cmp(&(b.dim, &b.value)));
        raw.sort_by(|a, b| (a.dim, &a.value).cmp(&(b.dim, &b.value)));
        assert_eq!(rolled, raw, "week rollup");
        assert_eq!(
            rolled
                .iter()
                .filter(|d| d.dim == Dimension::Device)
                .map(|d| d.clicks)
                .sum::<u64>(),
            clicks.iter().filter(|c| bots || !c.bot).count() as u64
        );
    }
}

pub async fn bots_are_separable(store: &dyn Store) {
    let l = link("bots", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(5);
    let mut clicks: Vec<_> = (0..20)
        .map(|i| click(l.id, base_ms() + i, &mut rng))
        .collect();
    for (i, c) in clicks.iter_mut().enumerate() {
        c.bot = i < 5;
        c.device = if c.bot {
            DeviceType::Bot
        } else {
            DeviceType::Mobile
        };
    }
    store.record_clicks(&clicks).await.unwrap();
    let day = TimeRange {
        from: base_ms(),
        to: base_ms() + 86_400_000,
    };
    let dims = store
        .dimensions(l.id, Resolution::Day, day, false)
        .await
        .unwrap();
    let devices: Vec<_> = dims.iter().filter(|d| d.dim == Dimension::Device).collect();
    assert_eq!(devices.len(), 1);
    assert_eq!(
        (devices[0].value.as_str(), devices[0].clicks),
        ("mobile", 15)
    );
    let with_bots = store
        .dimensions(l.id, Resolution::Day, day, true)
        .await
        .unwrap();
    let bot_row = with_bots
        .iter()
        .find(|d| d.dim == Dimension::Device && d.value == "bot")
        .unwrap();
    assert_eq!(bot_row.clicks, 5);
}

pub async fn export_pages_in_order(store: &dyn Store) {
    let l = link("export", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(6);
    // Several clicks share a millisecond: the cursor must still not skip any.
    let clicks: Vec<_> = (0..57)
        .map(|i| click(l.id, base_ms() + i / 4, &mut rng))
        .collect();
    store.record_clicks(&clicks).await.unwrap();
    let range = TimeRange {
        from: base_ms(),
        to: base_ms() + 1000,
    };
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .export_clicks(l.id, range, true, after, 10)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|c| (c.at, c.event_id));
        got.extend(page);
    }
    assert_eq!(got.len(), 57);
    assert!(
        got.windows(2)
            .all(|w| (w[0].at, w[0].event_id) < (w[1].at, w[1].event_id))
    );
    let mut want = clicks.clone();
    want.sort_by_key(|c| (c.at, c.event_id));
    assert_eq!(
        got, want,
        "exported clicks are the stored ones, field for field"
    );
}

pub async fn sessions_expire_and_are_replaced(store: &dyn Store) {
    let (a, b) = ([7u8; 32], [8u8; 32]);
    assert_eq!(store.load_session(&a, 1_000).await.unwrap(), None);
    store.save_session(&a, "{\"x\":1}", 2_000).await.unwrap();
    store.save_session(&b, "{}", 5_000).await.unwrap();
    assert_eq!(
        store.load_session(&a, 1_000).await.unwrap(),
        Some(("{\"x\":1}".to_owned(), 2_000))
    );
    // Expired at its expiry time.
    assert_eq!(store.load_session(&a, 2_000).await.unwrap(), None);
    // Saving again replaces data and expiry.
    store.save_session(&a, "{\"x\":2}", 9_000).await.unwrap();
    assert_eq!(
        store.load_session(&a, 3_000).await.unwrap(),
        Some(("{\"x\":2}".to_owned(), 9_000))
    );
    assert_eq!(store.purge_sessions(6_000).await.unwrap(), 1, "b expired");
    assert!(store.load_session(&b, 0).await.unwrap().is_none());
    store.remove_session(&a).await.unwrap();
    assert!(store.load_session(&a, 0).await.unwrap().is_none());
    store.remove_session(&a).await.unwrap();
}

/// A record taken is gone: of many takers at once exactly one gets it; an
/// expired one is nobody's (and is removed all the same).
pub async fn one_time_records_are_taken_once(store: &dyn Store) {
    let (a, b) = ([21u8; 32], [22u8; 32]);
    store.save_session(&a, "once", 5_000).await.unwrap();
    let takers = (0..8).map(|_| store.take_session(&a, 1_000));
    let got: Vec<Option<String>> = futures::future::join_all(takers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        got.iter().filter(|g| g.as_deref() == Some("once")).count(),
        1,
        "{got:?}"
    );
    assert_eq!(got.iter().filter(|g| g.is_none()).count(), 7);
    assert!(store.load_session(&a, 0).await.unwrap().is_none());
    store.save_session(&b, "late", 5_000).await.unwrap();
    assert_eq!(store.take_session(&b, 5_000).await.unwrap(), None);
    assert!(store.load_session(&b, 0).await.unwrap().is_none());
}

pub async fn retention_keeps_rollups(store: &dyn Store) {
    let l = link("kept", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(7);
    let day = 86_400_000;
    // 10 clicks on day 0, 5 on day 2.
    let mut clicks: Vec<_> = (0..10)
        .map(|i| click(l.id, base_ms() + i * 1000, &mut rng))
        .collect();
    clicks.extend((0..5).map(|i| click(l.id, base_ms() + 2 * day + i * 1000, &mut rng)));
    assert_eq!(store.record_clicks(&clicks).await.unwrap(), 15);
    let all = TimeRange {
        from: base_ms(),
        to: base_ms() + 3 * day,
    };
    let before = store
        .export_clicks(l.id, all, true, None, 100)
        .await
        .unwrap();
    assert_eq!(before.len(), 15);
    assert_eq!(
        store
            .delete_raw_clicks_before(base_ms() + day)
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        store
            .delete_raw_clicks_before(base_ms() + day)
            .await
            .unwrap(),
        0
    );
    let after = store
        .export_clicks(l.id, all, true, None, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 5, "raw clicks before the cutoff are gone");
    if store.keeps_rollups() {
        let totals = store.click_totals(&[l.id], true).await.unwrap();
        assert_eq!(totals[&l.id], 15, "rollups keep counting them");
        let daily = store
            .series(l.id, Resolution::QuarterHour, all, true)
            .await
            .unwrap();
        assert_eq!(daily.iter().map(|(_, n)| n).sum::<u64>(), 15);
    }
}

/// An import's counted clicks (no raw clicks): in series, breakdowns and
/// totals at the minute of their bucket, never in unique visitors, added to
/// live clicks; the mark set with them.
pub async fn counted_clicks_count_like_clicks(store: &dyn Store) {
    use crate::store::CountedClicks;
    let day = 86_400_000;
    let only = link("counted", None);
    let both = link("counted-live", None);
    insert(store, &only).await;
    insert(store, &both).await;
    let counted = |l: LinkId, at: i64, bot: bool, n: u64, dims: &[(Dimension, &str, u64)]| {
        CountedClicks {
            link: l,
            at,
            bot,
            clicks: n,
            dims: dims
                .iter()
                .map(|(d, v, k)| (*d, v.to_string(), *k))
                .collect(),
        }
        .complete()
    };
    let mut counts = Vec::new();
    for l in [only.id, both.id] {
        counts.push(counted(
            l,
            base_ms(),
            false,
            10,
            &[
                (Dimension::Country, "FR", 6),
                (Dimension::Country, "DE", 3),
                (Dimension::Browser, "Chrome", 10),
            ],
        ));
        counts.push(counted(l, base_ms() + day, true, 4, &[]));
    }
    counts.push(counted(LinkId(12345), base_ms(), false, 5, &[]));
    store
        .record_counts(&counts, Some(("test:counted", "{\"through\":1}")))
        .await
        .unwrap();
    assert_eq!(
        store.import_mark("test:counted").await.unwrap().as_deref(),
        Some("{\"through\":1}"),
        "the mark is set with the counts"
    );
    let mut rng = StdRng::seed_from_u64(18);
    let live: Vec<_> = (0..5)
        .map(|i| click(both.id, base_ms() + 3_600_000 + i * 1000, &mut rng))
        .collect();
    store.record_clicks(&live).await.unwrap();

    let q = |include_bots: bool, from: i64| StatsQuery {
        range: TimeRange {
            from,
            to: base_ms() + 3 * day,
        },
        interval: Interval::Day,
        tz: "UTC".parse().unwrap(),
        include_bots,
        top: 100,
        minute_since: StatsQuery::minute_since_now(),
        now: Utc::now().timestamp_millis(),
    };
    let s = link_stats(store, only.id, &q(true, base_ms()))
        .await
        .unwrap();
    assert_eq!(s.total_clicks, 14);
    assert_eq!(s.unique_visitors, 0, "counted clicks have no visitors");
    assert_eq!(&s.series[..2], &[(base_ms(), 10), (base_ms() + day, 4)]);
    let top = |s: &LinkStats, d: Dimension| s.top.get(&d).cloned().unwrap_or_default();
    // FR 6, DE 3 and the bucket of 4 bots no country: unknown 1 + 4.
    assert_eq!(
        top(&s, Dimension::Country),
        [
            ("FR".to_owned(), 6),
            ("unknown".into(), 5),
            ("DE".into(), 3)
        ]
    );
    assert_eq!(
        top(&s, Dimension::Browser),
        [("Chrome".to_owned(), 10), ("unknown".into(), 4)]
    );
    let humans = link_stats(store, only.id, &q(false, base_ms()))
        .await
        .unwrap();
    assert_eq!(humans.total_clicks, 10);
    // A range from after the first bucket's minute leaves it out.
    let later = link_stats(store, only.id, &q(true, base_ms() + 900_000))
        .await
        .unwrap();
    assert_eq!(later.total_clicks, 4);

    let with_live = link_stats(store, both.id, &q(true, base_ms()))
        .await
        .unwrap();
    let live_only = live.len() as u64;
    assert_eq!(with_live.total_clicks, 14 + live_only);
    assert!(with_live.unique_visitors >= 1 && with_live.unique_visitors <= live_only);
    let totals = store.click_totals(&[only.id, both.id], true).await.unwrap();
    assert_eq!(totals[&only.id], 14);
    assert_eq!(totals[&both.id], 14 + live_only);
    assert_eq!(
        store.click_totals(&[only.id], false).await.unwrap()[&only.id],
        10
    );

    store.purge_clicks(only.id).await.unwrap();
    assert_eq!(
        store.click_totals(&[only.id], true).await.unwrap()[&only.id],
        0
    );
}

pub async fn purge_removes_a_links_clicks(store: &dyn Store) {
    let (a, b) = (link("purged", None), link("untouched", None));
    insert(store, &a).await;
    insert(store, &b).await;
    let mut rng = StdRng::seed_from_u64(8);
    let clicks: Vec<_> = (0..6)
        .map(|i| {
            click(
                if i % 2 == 0 { a.id } else { b.id },
                base_ms() + i,
                &mut rng,
            )
        })
        .collect();
    assert_eq!(store.record_clicks(&clicks).await.unwrap(), 6);
    // Sealed buckets go too.
    let sealed = store
        .seal_rollups(i64::MAX, u64::MAX, usize::MAX)
        .await
        .unwrap();
    assert!(sealed > 0 || !store.keeps_rollups());
    assert_eq!(store.purge_clicks(a.id).await.unwrap(), 3);
    let totals = store.click_totals(&[a.id, b.id], true).await.unwrap();
    assert_eq!(totals.get(&a.id).copied().unwrap_or(0), 0);
    assert_eq!(totals[&b.id], 3);
    let range = TimeRange {
        from: base_ms(),
        to: base_ms() + 1000,
    };
    assert_eq!(
        store
            .visitors(a.id, Resolution::Raw, range, true)
            .await
            .unwrap(),
        0
    );
    assert!(
        store.link_by_slug(&a.slug).await.unwrap().is_some(),
        "the link stays"
    );
    assert_eq!(store.purge_clicks(a.id).await.unwrap(), 0);
    // Nothing of it is left at any grain, minute rollups and totals too.
    assert_eq!(
        store.link_totals(a.id).await.unwrap(),
        ClickTotals::default()
    );
    assert_eq!(store.link_totals(b.id).await.unwrap().with_bots, 3);
    for interval in [Interval::Minute, Interval::Hour, Interval::Day] {
        let q = StatsQuery {
            range: TimeRange {
                from: base_ms() - 8 * 86_400_000,
                to: base_ms() + 60_000,
            },
            interval,
            tz: chrono_tz::UTC,
            include_bots: true,
            top: 100,
            minute_since: base_ms() - 1,
            now: i64::MAX,
        };
        if q.bucket_estimate() > crate::stats::MAX_BUCKETS {
            continue;
        }
        let stats = link_stats(store, a.id, &q).await.unwrap();
        assert_eq!(stats.total_clicks, 0);
        assert_eq!(stats.unique_visitors, 0);
        assert!(stats.top.values().all(Vec::is_empty), "{:?}", stats.top);
    }
}

/// Raw-click retention and minute-rollup pruning change no answer: every
/// total, series, breakdown and visitor count over ranges honoured to the
/// quarter hour (as edges older than the minute window are) stays the same,
/// in zones with :30 and :45 offsets too.
pub async fn retention_and_pruning_keep_every_answer(store: &dyn Store) {
    let l = link("compacted", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(12);
    let day = 86_400_000;
    let clicks: Vec<_> = (0..4000)
        .map(|_| click(l.id, base_ms() + rng.random_range(0..4 * day), &mut rng))
        .collect();
    for batch in clicks.chunks(333) {
        store.record_clicks(batch).await.unwrap();
    }
    // The first three days' buckets are sealed, the rest stay rows.
    let sealed = store
        .seal_rollups(base_ms() + 3 * day, u64::MAX, usize::MAX)
        .await
        .unwrap();
    assert!(sealed > 0 || !store.keeps_rollups());
    // "Now" is the end of day 4: edges before day 2 are quarter-hour
    // precise, and the minute rows before day 2 (less the slack) are pruned.
    let minute_since = base_ms() + 2 * day;
    let mut queries = Vec::new();
    for _ in 0..24 {
        let a = base_ms() - day + rng.random_range(0..6 * day);
        let b = base_ms() - day + rng.random_range(0..6 * day);
        let interval = [Interval::Minute, Interval::Hour, Interval::Day][rng.random_range(0..3)];
        let tz: chrono_tz::Tz = ["UTC", "Asia/Kolkata", "Australia/Eucla", "America/New_York"]
            [rng.random_range(0..4)]
        .parse()
        .unwrap();
        let q = StatsQuery {
            range: TimeRange {
                from: a.min(b),
                to: a.max(b),
            },
            interval,
            tz,
            include_bots: rng.random_bool(0.5),
            top: 100,
            minute_since,
            now: i64::MAX,
        };
        if q.bucket_estimate() <= crate::stats::MAX_BUCKETS {
            queries.push(q);
        }
    }
    async fn answers(store: &dyn Store, link: LinkId, queries: &[StatsQuery]) -> Vec<LinkStats> {
        let mut out = Vec::new();
        for q in queries {
            out.push(link_stats(store, link, q).await.unwrap());
        }
        out
    }
    let before = answers(store, l.id, &queries).await;
    let totals = store.link_totals(l.id).await.unwrap();
    assert_eq!(totals.with_bots, 4000);

    store
        .delete_raw_clicks_before(base_ms() + 3 * day)
        .await
        .unwrap();
    let pruned = store
        .prune_minute_rollups(minute_since - crate::stats::MINUTE_PRUNE_SLACK_MS)
        .await
        .unwrap();
    if store.keeps_rollups() {
        assert!(pruned > 0, "minute rows before the window are pruned");
        let after = answers(store, l.id, &queries).await;
        for (q, (b, a)) in queries.iter().zip(before.iter().zip(&after)) {
            assert_eq!(b, a, "{q:?}");
        }
        assert_eq!(store.link_totals(l.id).await.unwrap(), totals);
        let old_minutes = TimeRange {
            from: base_ms(),
            to: base_ms() + day,
        };
        assert!(
            store
                .dimensions(l.id, Resolution::Minute, old_minutes, true)
                .await
                .unwrap()
                .is_empty(),
            "breakdown minutes of day 0 are gone"
        );
        assert_eq!(
            store
                .visitors(l.id, Resolution::Minute, old_minutes, true)
                .await
                .unwrap(),
            0,
            "visitor minutes of day 0 are gone"
        );
    }
}

/// All numbers of one answer come from one snapshot: while batches commit,
/// every answer's total equals the sum of each breakdown that every click
/// has a value for, and counts whole batches only.
pub async fn stats_answers_are_one_snapshot(store: &dyn Store) {
    let l = link("snapshot", None);
    insert(store, &l).await;
    let mut rng = StdRng::seed_from_u64(13);
    const BATCH: usize = 50;
    let batches: Vec<Vec<EnrichedClick>> = (0..60)
        .map(|i| {
            (0..BATCH)
                .map(|j| {
                    let mut c = click(l.id, base_ms() + i * 60_000 + j as i64, &mut rng);
                    c.bot = false;
                    c
                })
                .collect()
        })
        .collect();
    let q = StatsQuery {
        range: TimeRange {
            from: base_ms(),
            to: base_ms() + 3_600_000,
        },
        interval: Interval::Minute,
        tz: chrono_tz::UTC,
        include_bots: false,
        top: 100,
        minute_since: i64::MIN,
        now: i64::MAX,
    };
    let writing = async {
        for batch in &batches {
            store.record_clicks(batch).await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    let reading = async {
        let mut seen = Vec::new();
        for _ in 0..200 {
            let s = link_stats(store, l.id, &q).await.unwrap();
            for dim in [Dimension::Country, Dimension::Browser, Dimension::Device] {
                let sum: u64 = s.top[&dim].iter().map(|(_, n)| n).sum();
                assert_eq!(sum, s.total_clicks, "{dim:?} against the total");
            }
            assert_eq!(s.total_clicks % BATCH as u64, 0, "whole batches only");
            seen.push(s.total_clicks);
            tokio::task::yield_now().await;
        }
        seen
    };
    let ((), seen) = futures::join!(writing, reading);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "counts never go back"
    );
    let last = link_stats(store, l.id, &q).await.unwrap();
    assert_eq!(last.total_clicks, (60 * BATCH) as u64);
}

/// Two sealers (as two nodes run) seal the buckets, open ones included,
/// while batches keep adding to them: every count survives. In PostgreSQL
/// the three run on separate connections, so this exercises the claim on
/// the to-do row and the `DELETE … RETURNING` of the rows.
pub async fn sealing_while_writing_loses_nothing(store: &dyn Store) {
    let l = link("sealed-live", None);
    insert(store, &l).await;
    let reference = crate::store::memory::MemoryStore::default();
    crate::store::LinkStore::insert_link(&reference, &l)
        .await
        .unwrap()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(14);
    let batches: Vec<Vec<EnrichedClick>> = (0..40)
        .map(|_| {
            (0..60)
                .map(|_| click(l.id, base_ms() + rng.random_range(0..20 * 60_000), &mut rng))
                .collect()
        })
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let writing = async {
        for batch in &batches {
            store.record_clicks(batch).await.unwrap();
            crate::store::ClickStore::record_clicks(&reference, batch)
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let sealing = async || {
        let mut sealed = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            sealed += store.seal_rollups(i64::MAX, 1, 20).await.unwrap();
            tokio::task::yield_now().await;
        }
        sealed
    };
    let ((), a, b) = futures::join!(writing, sealing(), sealing());
    assert!(a + b > 0 || !store.keeps_rollups(), "nothing sealed");
    for final_seal in [false, true] {
        if final_seal {
            store.seal_rollups(i64::MAX, 1, usize::MAX).await.unwrap();
        }
        for interval in [Interval::Minute, Interval::Hour] {
            let q = StatsQuery {
                range: TimeRange {
                    from: base_ms() - 3_600_000,
                    to: base_ms() + 7_200_000,
                },
                interval,
                tz: chrono_tz::UTC,
                include_bots: true,
                top: 1000,
                minute_since: i64::MIN,
                now: i64::MAX,
            };
            assert_eq!(
                link_stats(store, l.id, &q).await.unwrap(),
                link_stats(&reference, l.id, &q).await.unwrap(),
                "{interval:?}, after a last sealing: {final_seal}"
            );
        }
    }
}

pub async fn reports_and_domains(store: &dyn Store) {
    let l = link("reported", None);
    insert(store, &l).await;
    let a = store
        .insert_report(
            "reported",
            Some(l.id),
            "phishing",
            Some("asks for my bank password"),
        )
        .await
        .unwrap();
    let b = store
        .insert_report("nosuch", None, "spam", None)
        .await
        .unwrap();
    assert!(b.id > a.id);
    let all = store.list_reports(None, 10).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [b.id, a.id]);
    assert_eq!(all[1].link_id, Some(l.id));
    assert_eq!(all[1].details.as_deref(), Some("asks for my bank password"));
    let older = store.list_reports(Some(b.id), 10).await.unwrap();
    assert_eq!(older.len(), 1);

    // Links by target domain: the domain and its subdomains, not lookalikes.
    let mut targets = Vec::new();
    for (slug, url) in [
        ("d1", "https://evil.example/a"),
        ("d2", "https://login.EVIL.example/b"),
        ("d3", "https://notevil.example/"),
        ("d4", "https://example.com/?next=evil.example"),
    ] {
        let mut x = link(slug, None);
        x.target = TargetUrl::parse(url, &[]).unwrap();
        insert(store, &x).await;
        targets.push(x);
    }
    let mut hits: Vec<String> = store
        .links_to_domain("evil.example")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.slug.to_string())
        .collect();
    hits.sort();
    assert_eq!(hits, ["d1", "d2"]);
    assert!(store.links_to_domain("100%_evil").await.unwrap().is_empty());
}

pub async fn takedowns_add_list_and_lift(store: &dyn Store) {
    assert!(store.list_takedowns().await.unwrap().is_empty());
    assert!(
        store
            .add_takedown("evil.example", "phishing")
            .await
            .unwrap()
    );
    assert!(store.add_takedown("bad.test", "malware").await.unwrap());
    // Taking down twice keeps the first reason.
    assert!(!store.add_takedown("evil.example", "spam").await.unwrap());
    let all = store.list_takedowns().await.unwrap();
    let names: Vec<(&str, &str)> = all
        .iter()
        .map(|t| (t.domain.as_str(), t.reason.as_str()))
        .collect();
    assert_eq!(
        names,
        [("bad.test", "malware"), ("evil.example", "phishing")]
    );
    assert!((Utc::now() - all[0].created_at).num_seconds().abs() < 60);
    assert!(store.remove_takedown("evil.example").await.unwrap());
    assert!(!store.remove_takedown("evil.example").await.unwrap());
    let left: Vec<String> = store
        .list_takedowns()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.domain)
        .collect();
    assert_eq!(left, ["bad.test"]);
}
