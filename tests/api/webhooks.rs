//! Webhooks (`/api/v1/webhooks`): endpoints and their rules, events
//! signed the Standard Webhooks way, batched, delivered once per
//! `webhook-id`; retries, dead letters, disabling, replays, rotation.
//! Embedded, and in cluster mode (two in-process workers share the
//! deliveries), and on DynamoDB.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{FIREFOX, TestApp, error_code};
use crate::receiver_support::{Mode, Receiver, verifies};

/// Quick deliveries: fan-out every 50 ms, retries from 50 ms, a second
/// to answer.
fn fast(c: &mut hop::config::ServeConfig) {
    c.webhooks.webhooks_allow_private = true;
    c.webhooks.webhook_batch_wait = Duration::from_millis(50);
    c.webhooks.webhook_backoff = Duration::from_millis(50);
    c.webhooks.webhook_backoff_max = Duration::from_millis(200);
    c.webhooks.webhook_timeout = Duration::from_secs(1);
    c.webhooks.webhook_batch_size = 10;
}

async fn register(app: &TestApp, key: &str, body: Value) -> Value {
    let res = app
        .api(Method::POST, "/api/v1/webhooks", Some(key), Some(body))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    let res = app.api(Method::GET, path, Some(key), None).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.json().await.unwrap()
}

/// Waits until hop has recorded `n` messages of endpoint `id` delivered
/// (the receiver may have answered a moment before).
pub(crate) async fn wait_delivered(app: &TestApp, key: &str, id: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let path = format!("/api/v1/webhooks/{id}/messages?state=delivered&limit=200");
        let page = get(app, key, &path).await;
        if page["messages"].as_array().unwrap().len() >= n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn refused(app: &TestApp, key: &str, body: Value) -> (StatusCode, String) {
    error_code(
        app.api(Method::POST, "/api/v1/webhooks", Some(key), Some(body))
            .await,
    )
    .await
}

#[tokio::test]
async fn private_endpoints_and_bad_registrations_are_refused() {
    let app = TestApp::spawn().await;
    let key = app.admin_key.clone();
    for (body, code) in [
        (
            json!({"url": "http://127.0.0.1:9/hook", "events": ["click"]}),
            "private_url",
        ),
        (
            json!({"url": "http://localhost/hook", "events": ["click"]}),
            "private_url",
        ),
        (
            json!({"url": "http://[::1]/hook", "events": ["click"]}),
            "private_url",
        ),
        (
            json!({"url": "http://169.254.169.254/latest", "events": ["click"]}),
            "private_url",
        ),
        (
            json!({"url": "http://10.1.2.3/hook", "events": ["click"]}),
            "private_url",
        ),
        (
            json!({"url": "ftp://1.1.1.1/hook", "events": ["click"]}),
            "invalid_url",
        ),
        (
            json!({"url": "https://u:p@1.1.1.1/hook", "events": ["click"]}),
            "invalid_url",
        ),
        (
            json!({"url": "not a url", "events": ["click"]}),
            "invalid_url",
        ),
        (
            json!({"url": "https://1.1.1.1/hook", "events": []}),
            "invalid_events",
        ),
        (
            json!({"url": "https://1.1.1.1/hook", "events": ["clicks"]}),
            "invalid_events",
        ),
        (
            json!({"url": "https://1.1.1.1/hook", "events": ["click"], "secret": "whsec_short"}),
            "invalid_secret",
        ),
        (
            json!({"url": "https://1.1.1.1/hook", "events": ["click"], "scope": {"links": ["nope"]}}),
            "invalid_scope",
        ),
        (
            json!({"url": "https://1.1.1.1/hook", "events": ["click"], "scope": {"tag": "a", "links": ["b"]}}),
            "invalid_scope",
        ),
        (
            json!({"url": "https://1.1.1.1/hook", "events": ["click"], "extra": 1}),
            "invalid_body",
        ),
    ] {
        let (status, got) = refused(&app, &key, body.clone()).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::BAD_REQUEST, code),
            "{body}"
        );
    }
    let res = app
        .api(
            Method::POST,
            "/api/v1/webhooks",
            None,
            Some(json!({"url": "https://1.1.1.1/hook", "events": ["click"]})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Nothing was registered.
    assert_eq!(
        get(&app, &key, "/api/v1/webhooks").await["webhooks"],
        json!([])
    );
}

#[tokio::test]
async fn endpoints_are_registered_seen_by_their_key_changed_and_deleted() {
    let app = TestApp::spawn_with(fast).await;
    let rx = Receiver::start().await;
    let user = app.create_key("user", false).await;
    let other = app.create_key("other", false).await;
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&user),
            Some(json!({"url": "https://example.com/", "slug": "wh-own"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let made = register(
        &app,
        &user,
        json!({"url": rx.url(), "events": ["link.updated", "click", "click"],
               "description": "crm", "scope": {"links": ["wh-own"]}}),
    )
    .await;
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(made["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(made["events"], json!(["click", "link.updated"]));
    assert_eq!(made["scope"]["links"], json!(["wh-own"]));
    // The secret is shown once.
    let path = format!("/api/v1/webhooks/{id}");
    let shown = get(&app, &user, &path).await;
    assert!(shown.get("secret").is_none());
    assert_eq!(shown["description"], "crm");

    // Another key sees nothing of it; an admin sees it.
    let res = app.api(Method::GET, &path, Some(&other), None).await;
    assert_eq!(error_code(res).await.1, "webhook_not_found");
    assert_eq!(
        get(&app, &other, "/api/v1/webhooks").await["webhooks"],
        json!([])
    );
    let all = get(&app, &app.admin_key, "/api/v1/webhooks").await;
    assert_eq!(all["webhooks"][0]["id"], id.as_str());
    // A link another key owns cannot be in its scope; instance-wide is
    // for admins.
    let (_, code) = refused(
        &app,
        &other,
        json!({"url": rx.url(), "events": ["click"], "scope": {"links": ["wh-own"]}}),
    )
    .await;
    assert_eq!(code, "invalid_scope");
    let (status, _) = refused(
        &app,
        &other,
        json!({"url": rx.url(), "events": ["click"], "instance_wide": true}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Changed: events, scope (a tag), paused and resumed.
    let res = app
        .api(
            Method::PATCH,
            &path,
            Some(&user),
            Some(json!({"events": ["link.deleted"], "scope": {"tag": "crm"}, "enabled": false, "description": ""})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["events"], json!(["link.deleted"]));
    assert_eq!(changed["scope"], json!({"tag": "crm", "links": null}));
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["disabled_reason"], "disabled by its owner");
    assert_eq!(changed["description"], Value::Null);
    let res = app
        .api(
            Method::PATCH,
            &path,
            Some(&user),
            Some(json!({"enabled": true})),
        )
        .await;
    let resumed: Value = res.json().await.unwrap();
    assert_eq!(
        (
            resumed["enabled"].clone(),
            resumed["disabled_reason"].clone()
        ),
        (json!(true), Value::Null)
    );
    let res = app
        .api(
            Method::PATCH,
            &path,
            Some(&user),
            Some(json!({"url": "http://[::1"})),
        )
        .await;
    assert_eq!(error_code(res).await.1, "invalid_url");

    // Deleted by its key, and gone.
    let res = app.api(Method::DELETE, &path, Some(&other), None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app.api(Method::DELETE, &path, Some(&user), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.api(Method::GET, &path, Some(&user), None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Click and link events of the endpoint's links (not others'), signed,
/// in batches of at most 10, every stored click exactly once; a rotated
/// secret signs alongside the new one for its grace period.
#[tokio::test]
async fn events_arrive_signed_batched_and_once() {
    let app = TestApp::spawn_with(fast).await;
    let rx = Receiver::start().await;
    let user = app.create_key("user", false).await;
    let made = register(
        &app,
        &user,
        json!({"url": rx.url(), "events": ["click", "link.created", "link.updated", "link.deleted", "link.exhausted"]}),
    )
    .await;
    let id = made["id"].as_str().unwrap().to_owned();
    let secret = made["secret"].as_str().unwrap().to_owned();
    let create = |slug: &'static str, key: String, extra: Value| {
        let app = &app;
        async move {
            let mut body = json!({"url": "https://example.com/", "slug": slug});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let res = app
                .api(Method::POST, "/api/v1/links", Some(&key), Some(body))
                .await;
            assert_eq!(res.status(), StatusCode::CREATED);
        }
    };
    create("wh-a", user.clone(), json!({})).await;
    create("wh-lim", user.clone(), json!({"max_clicks": 2})).await;
    // The admin's link is not the user's endpoint's.
    create("wh-admin", app.admin_key.clone(), json!({})).await;
    for i in 0..25 {
        let res = app.click_as("/wh-a", FIREFOX, &format!("10.0.0.{i}")).await;
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    for _ in 0..3 {
        app.click("/wh-lim").await;
        app.click("/wh-admin").await;
    }
    let res = app
        .api(
            Method::PATCH,
            "/api/v1/links/wh-a",
            Some(&user),
            Some(json!({"title": "A"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    app.wait_for_clicks("wh-a", "", 25).await;

    // What the export says was stored is what was delivered.
    let export = app
        .api(
            Method::GET,
            "/api/v1/clicks.ndjson?include_bots=true",
            Some(&user),
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    let stored: BTreeSet<String> = export
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(stored.len(), 27);
    rx.wait_for(Duration::from_secs(30), "every click", |r| {
        r.delivered_clicks().0 == stored
    })
    .await;
    let kinds = |r: &Receiver| -> Vec<(String, String)> {
        let mut k: Vec<(String, String)> = r
            .delivered()
            .values()
            .map(|b| serde_json::from_str::<Value>(b).unwrap())
            .filter(|v| v["type"] != "click")
            .map(|v| {
                (
                    v["type"].as_str().unwrap().to_owned(),
                    v["data"]["link"]["slug"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        k.sort();
        k
    };
    let want = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut w: Vec<(String, String)> = [
            ("link.created", "wh-a"),
            ("link.created", "wh-lim"),
            ("link.exhausted", "wh-lim"),
            ("link.updated", "wh-a"),
        ]
        .iter()
        .chain(extra)
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        w.sort();
        w
    };
    rx.wait_for(Duration::from_secs(10), "the link events", |r| {
        kinds(r) == want(&[])
    })
    .await;
    let (_, twice) = rx.delivered_clicks();
    assert_eq!(twice, 0, "a click came in two messages");
    for r in rx.all() {
        assert!(verifies(&secret, &r), "signature of {}", r.id);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        if body["type"] == "click" {
            let clicks = body["data"]["clicks"].as_array().unwrap();
            assert!((1..=10).contains(&clicks.len()));
            assert!(clicks.iter().all(|c| c["slug"] != "wh-admin"));
            if clicks.len() == 1 {
                // A lone click's message id is its event id.
                assert_eq!(clicks[0]["event_id"], r.id.as_str());
            }
        } else {
            assert_eq!(body["data"]["event_id"], r.id.as_str());
        }
    }
    // The log and the messages say so too (once hop has recorded the
    // answers the receiver already gave).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let messages = get(&app, &user, &format!("/api/v1/webhooks/{id}/messages")).await;
        let messages = messages["messages"].as_array().unwrap().clone();
        assert!(!messages.is_empty());
        if messages.iter().all(|m| m["state"] == "delivered") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{messages:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Paged two at a time, the same messages as in one page.
    let all = get(
        &app,
        &user,
        &format!("/api/v1/webhooks/{id}/messages?limit=200"),
    )
    .await;
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/webhooks/{id}/messages?limit=2{cursor}");
        let page = get(&app, &user, &path).await;
        let ids = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].clone());
        paged.extend(ids);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let ids: Vec<Value> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(paged, ids);
    let path = format!("/api/v1/webhooks/{id}/messages?cursor=12");
    let res = app.api(Method::GET, &path, Some(&user), None).await;
    assert_eq!(error_code(res).await.1, "invalid_query");
    let attempts = get(
        &app,
        &user,
        &format!("/api/v1/webhooks/{id}/attempts?limit=200"),
    )
    .await;
    assert!(
        attempts["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == 204)
    );

    // Rotated with a grace period: both secrets verify the next ones.
    let res = app
        .api(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&user),
            Some(json!({"grace_seconds": 3600})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_valid_until"].is_string());
    let before = rx.all().len();
    let res = app
        .api(Method::DELETE, "/api/v1/links/wh-a", Some(&user), None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    rx.wait_for(Duration::from_secs(10), "link.deleted", |r| {
        kinds(r) == want(&[("link.deleted", "wh-a")])
    })
    .await;
    for r in &rx.all()[before..] {
        assert!(verifies(&secret, r) && verifies(&new_secret, r));
    }
    // Without a grace period, only the new one.
    let res = app
        .api(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&user),
            Some(json!({"grace_seconds": 0})),
        )
        .await;
    let newest = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = rx.all().len();
    create("wh-b", user.clone(), json!({})).await;
    rx.wait_for(Duration::from_secs(10), "link.created", |r| {
        r.all().len() > before
    })
    .await;
    let last = rx.all().pop().unwrap();
    assert!(verifies(&newest, &last) && !verifies(&new_secret, &last));
    let res = app
        .api(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&user),
            Some(json!({"grace_seconds": 9999999})),
        )
        .await;
    assert_eq!(error_code(res).await.1, "invalid_grace");
}

/// An endpoint that fails: retried with the same id and body, then
/// dead-lettered; failing long enough, disabled with the reason; its
/// messages wait while it is, go out when it is enabled again; a replay
/// sends a dead message again, with its id unchanged.
#[tokio::test]
async fn failing_endpoints_are_retried_dead_lettered_disabled_and_replayed() {
    let app = TestApp::spawn_with(|c| {
        fast(c);
        c.webhooks.webhook_retry_for = Duration::from_millis(1500);
        c.webhooks.webhook_disable_after = Duration::from_secs(2);
    })
    .await;
    let rx = Receiver::start().await;
    rx.set(Mode::Fail);
    let key = app.admin_key.clone();
    let made = register(
        &app,
        &key,
        json!({"url": rx.url(), "events": ["link.created", "link.updated"]}),
    )
    .await;
    let id = made["id"].as_str().unwrap().to_owned();
    app.create_slug("wh-fail", "https://example.com/").await;

    // Retried (same id every time), then dead.
    let msgs = format!("/api/v1/webhooks/{id}/messages");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let m = get(&app, &key, &format!("{msgs}?state=dead")).await;
        if let Some(m) = m["messages"].as_array().unwrap().first() {
            break m.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dead_id = dead["id"].as_str().unwrap().to_owned();
    assert!(dead["attempts"].as_u64().unwrap() >= 3, "{dead}");
    assert_eq!(dead["last_status"], 500);
    assert!(rx.all().iter().all(|r| r.id == dead_id));
    let log = get(
        &app,
        &key,
        &format!("/api/v1/webhooks/{id}/attempts?message={dead_id}"),
    )
    .await;
    let log = log["attempts"].as_array().unwrap();
    assert_eq!(log.len() as u64, dead["attempts"].as_u64().unwrap());
    assert!(
        log.iter()
            .all(|a| a["status"] == 500 && a["error"] == "answered 500")
    );

    // Failing for 2 s: disabled, with the reason.
    let path = format!("/api/v1/webhooks/{id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let disabled = loop {
        let e = get(&app, &key, &path).await;
        if e["enabled"] == false {
            break e;
        }
        // Something to fail on meanwhile.
        let res = app
            .api(
                Method::PATCH,
                "/api/v1/links/wh-fail",
                Some(&key),
                Some(json!({"title": "t"})),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(tokio::time::Instant::now() < deadline, "not disabled");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let reason = disabled["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("answered 500"), "{reason}");
    assert!(disabled["failing_since"].is_string());

    // While disabled, nothing is tried; its messages wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tried = rx.all().len();
    let res = app
        .api(
            Method::PATCH,
            "/api/v1/links/wh-fail",
            Some(&key),
            Some(json!({"title": "waiting"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.all().len(), tried, "delivered to a disabled endpoint");

    // Fixed and enabled: the waiting one arrives.
    rx.set(Mode::Ok);
    let res = app
        .api(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    rx.wait_for(Duration::from_secs(10), "the waiting message", |r| {
        r.delivered().values().any(|b| b.contains("\"waiting\""))
    })
    .await;

    // Replayed: the dead letter, with its own id and body.
    let at: chrono::DateTime<chrono::Utc> = dead["at"].as_str().unwrap().parse().unwrap();
    let res = app
        .api(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/replay"),
            Some(&key),
            Some(json!({"from": (at - chrono::Duration::seconds(1)).to_rfc3339(), "to": (at + chrono::Duration::milliseconds(1)).to_rfc3339()})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.json::<Value>().await.unwrap()["replayed"], 1);
    rx.wait_for(Duration::from_secs(10), "the replayed dead letter", |r| {
        r.delivered().contains_key(&dead_id)
    })
    .await;
    let first_try = rx.all().into_iter().find(|r| r.id == dead_id).unwrap();
    assert_eq!(rx.delivered()[&dead_id], first_try.body);
    // One message by id, and bad replays.
    let res = app
        .api(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/replay"),
            Some(&key),
            Some(json!({"message_id": dead_id})),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["replayed"], 1);
    for body in [
        json!({}),
        json!({"from": "2030-01-01T00:00:00Z", "to": "2029-01-01T00:00:00Z"}),
        json!({"message_id": dead_id, "from": "2030-01-01T00:00:00Z"}),
    ] {
        let res = app
            .api(
                Method::POST,
                &format!("/api/v1/webhooks/{id}/replay"),
                Some(&key),
                Some(body),
            )
            .await;
        assert_eq!(error_code(res).await.1, "invalid_replay");
    }
}

/// A revoked key's endpoints send nothing more, not even what was
/// waiting.
#[tokio::test]
async fn a_revoked_keys_endpoints_go_quiet() {
    let app = TestApp::spawn_with(fast).await;
    let rx = Receiver::start().await;
    let user = app.create_key("leaving", false).await;
    register(
        &app,
        &user,
        json!({"url": rx.url(), "events": ["link.created", "link.updated"]}),
    )
    .await;
    let create = |slug: &str| {
        app.api(
            Method::POST,
            "/api/v1/links",
            Some(&user),
            Some(json!({"url": "https://example.com/", "slug": slug})),
        )
    };
    assert_eq!(create("wh-before").await.status(), StatusCode::CREATED);
    rx.wait_for(Duration::from_secs(10), "link.created", |r| {
        r.delivered().len() == 1
    })
    .await;
    // Revoked while a message waits to be retried.
    rx.set(Mode::Fail);
    let res = app
        .api(
            Method::PATCH,
            "/api/v1/links/wh-before",
            Some(&user),
            Some(json!({"title": "t"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    rx.wait_for(Duration::from_secs(10), "a failed attempt", |r| {
        r.all().len() >= 2
    })
    .await;
    let keys = app.store.list_keys().await.unwrap();
    let key = keys.iter().find(|k| k.name == "leaving").unwrap();
    assert!(app.store.revoke_key(key.id).await.unwrap());
    // An attempt already under way fails; then the receiver would take
    // anything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    rx.set(Mode::Ok);
    let link = hop::testing::link("wh-after", Some(key.id.0));
    app.store.insert_link(&link).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tried = rx.all().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.all().len(), tried, "still sending");
    assert_eq!(
        rx.delivered().len(),
        1,
        "only what came before the revocation"
    );
}

/// A slow endpoint (answers after 5 s, past the 1 s timeout) holds up
/// only itself: another endpoint's events arrive meanwhile.
#[tokio::test]
async fn a_slow_endpoint_does_not_hold_up_another() {
    let app = TestApp::spawn_with(fast).await;
    let slow = Receiver::start().await;
    slow.set(Mode::Slow);
    let quick = Receiver::start().await;
    let key = app.admin_key.clone();
    register(&app, &key, json!({"url": slow.url(), "events": ["click"]})).await;
    register(&app, &key, json!({"url": quick.url(), "events": ["click"]})).await;
    app.create_slug("wh-slow", "https://example.com/").await;
    for _ in 0..40 {
        app.click("/wh-slow").await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = tokio::time::Instant::now();
    quick
        .wait_for(
            Duration::from_secs(10),
            "the quick endpoint's clicks",
            |r| r.delivered_clicks().0.len() == 40,
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(slow.delivered().is_empty());
}

/// `hop webhooks`: create (secret printed once), list, update, messages,
/// log, replay, rotate, delete, through the API.
#[tokio::test]
async fn the_cli_manages_endpoints() {
    let app = TestApp::spawn_with(fast).await;
    let rx = Receiver::start().await;
    let url = rx.url();
    let cli = |args: Vec<String>| {
        let app = &app;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, out, err) = crate::smart::hop_cli(app, &args, "").await;
            assert!(ok, "hop {args:?}: {err}");
            (out, err)
        }
    };
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let (out, err) = cli(s(&[
        "webhooks",
        "create",
        &url,
        "--event",
        "link.created",
        "--description",
        "cli",
    ]))
    .await;
    let made: Value = serde_json::from_str(&out).unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(made["secret"].as_str().unwrap().starts_with("whsec_"));
    assert!(err.contains("shown this once"));
    let (out, _) = cli(s(&["webhooks", "list"])).await;
    assert_eq!(out, format!("{id}\tenabled\tlink.created\t{url}\n"));
    let (out, _) = cli(s(&[
        "webhooks",
        "update",
        &id,
        "--event",
        "link.created",
        "--event",
        "link.deleted",
        "--disable",
    ]))
    .await;
    let changed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(changed["events"], json!(["link.created", "link.deleted"]));
    assert_eq!(changed["enabled"], false);
    cli(s(&["webhooks", "update", &id, "--enable"])).await;
    app.create_slug("wh-cli", "https://example.com/").await;
    rx.wait_for(Duration::from_secs(10), "link.created", |r| {
        r.delivered().len() == 1
    })
    .await;
    let msg_id = rx.delivered().keys().next().unwrap().clone();
    wait_delivered(&app, &app.admin_key, &id, 1).await;
    let (out, _) = cli(s(&["webhooks", "messages", &id, "--state", "delivered"])).await;
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["messages"][0]["id"], msg_id.as_str());
    assert_eq!(
        page["messages"][0]["payload"]["data"]["link"]["slug"],
        "wh-cli"
    );
    let (out, _) = cli(s(&["webhooks", "log", &id, "--message", &msg_id])).await;
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["attempts"][0]["status"], 204);
    let (out, _) = cli(s(&["webhooks", "replay", &id, "--message", &msg_id])).await;
    assert_eq!(out.trim(), "1 messages will be sent again");
    rx.wait_for(Duration::from_secs(10), "the replay", |r| {
        r.all().len() == 2
    })
    .await;
    assert_eq!(rx.all()[1].id, msg_id);
    let (out, _) = cli(s(&[
        "webhooks",
        "rotate-secret",
        &id,
        "--grace-seconds",
        "0",
    ]))
    .await;
    let rotated: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(rotated["secret"], made["secret"]);
    cli(s(&["webhooks", "delete", &id])).await;
    let (ok, _, err) = crate::smart::hop_cli(&app, &["webhooks", "show", &id], "").await;
    assert!(!ok && err.contains("webhook_not_found"), "{err}");
}
