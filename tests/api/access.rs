use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn management_needs_a_valid_key() {
    let app = TestApp::spawn().await;
    app.create_slug("mine", "https://example.com/").await;
    let res = app.api(Method::GET, "/api/v1/links", None, None).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        error_code(res).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let res = app
        .api(Method::GET, "/api/v1/links", Some("hop_wrong"), None)
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
    let res = app
        .client
        .get(app.url("/api/v1/links"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
    for path in [
        "/api/v1/links/mine",
        "/api/v1/links/missing",
        "/api/v1/links/mine/stats",
    ] {
        let res = app.api(Method::GET, path, None, None).await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::UNAUTHORIZED, "unauthorized".into()),
            "{path}"
        );
        let res = app.api(Method::GET, path, Some("hop_wrong"), None).await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::UNAUTHORIZED, "invalid_credentials".into()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn regular_keys_see_only_their_own_links() {
    let app = TestApp::spawn().await;
    let alice = app.create_key("alice", false).await;
    let bob = app.create_key("bob", false).await;
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&alice),
            Some(json!({"url": "https://example.com/a", "slug": "alice1"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&bob),
            Some(json!({"url": "https://example.com/b", "slug": "bob1"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let list: Value = app
        .api(Method::GET, "/api/v1/links", Some(&alice), None)
        .await
        .json()
        .await
        .unwrap();
    let slugs: Vec<_> = list["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, vec!["alice1"]);
    let all: Value = app
        .api(Method::GET, "/api/v1/links", Some(&app.admin_key), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["links"].as_array().unwrap().len(),
        2,
        "admin sees every link"
    );

    // Bob's link and a link that does not exist look the same to Alice.
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"disabled": true}))),
        (Method::DELETE, None),
    ] {
        let theirs = app
            .api(
                method.clone(),
                "/api/v1/links/bob1",
                Some(&alice),
                body.clone(),
            )
            .await;
        let missing = app
            .api(method.clone(), "/api/v1/links/nobody", Some(&alice), body)
            .await;
        assert_eq!(
            error_code(theirs).await,
            (StatusCode::NOT_FOUND, "link_not_found".into())
        );
        assert_eq!(
            error_code(missing).await,
            (StatusCode::NOT_FOUND, "link_not_found".into())
        );
    }
    assert_eq!(
        app.click("/bob1").await.status(),
        StatusCode::FOUND,
        "bob's link untouched"
    );
    let res = app
        .api(
            Method::GET,
            "/api/v1/links/bob1/stats",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn anonymous_links_get_a_secret_that_unlocks_only_them() {
    let app = TestApp::spawn().await;
    app.create_slug("other", "https://example.com/").await;
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            None,
            Some(json!({"url": "https://example.com/anon"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let link: Value = res.json().await.unwrap();
    let slug = link["slug"].as_str().unwrap().to_owned();
    let secret = link["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("hls_"));

    let got = app
        .api(
            Method::GET,
            &format!("/api/v1/links/{slug}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(got.status(), StatusCode::OK);
    let got: Value = got.json().await.unwrap();
    assert!(got.get("secret").is_none(), "the secret is shown once");
    let res = app
        .api(
            Method::GET,
            &format!("/api/v1/links/{slug}/stats"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .api(
            Method::PATCH,
            &format!("/api/v1/links/{slug}"),
            Some(&secret),
            Some(json!({"title": "Mine"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Not for another link, existing or not, and not for listing.
    for path in [
        "/api/v1/links/other",
        "/api/v1/links/other/stats",
        "/api/v1/links/ghost",
    ] {
        let res = app.api(Method::GET, path, Some(&secret), None).await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::UNAUTHORIZED, "invalid_credentials".into()),
            "{path}"
        );
    }
    let res = app
        .api(Method::GET, "/api/v1/links", Some(&secret), None)
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let res = app
        .api(
            Method::GET,
            &format!("/api/v1/links/{slug}"),
            Some("hls_forged"),
            None,
        )
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
}

#[tokio::test]
async fn anonymous_creation_can_be_turned_off() {
    let app = TestApp::spawn_with(|c| c.anonymous_links = false).await;
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            None,
            Some(json!({"url": "https://example.com/"})),
        )
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&app.admin_key),
            Some(json!({"url": "https://example.com/"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn revoked_keys_stop_working() {
    let app = TestApp::spawn().await;
    let key = app.create_key("temp", false).await;
    assert_eq!(
        app.api(Method::GET, "/api/v1/links", Some(&key), None)
            .await
            .status(),
        StatusCode::OK
    );
    // As `hop keys revoke` does, in the database.
    let store = &app.store;
    let id = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "temp")
        .unwrap()
        .id;
    assert!(store.revoke_key(id).await.unwrap());
    let res = app
        .api(Method::GET, "/api/v1/links", Some(&key), None)
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
}

/// What an answer shows a caller: status, body, and headers (names of all
/// but the rate-limit ones; values of those that do not change from one
/// request to the next).
#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    body: String,
    headers: std::collections::BTreeMap<String, Vec<String>>,
}

async fn answer_of(res: reqwest::Response) -> Answer {
    let volatile =
        |name: &str| matches!(name, "date" | "x-request-id") || name.starts_with("ratelimit-");
    let mut headers = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (name, value) in res.headers() {
        // About the caller's allowance, not the link, and absent whenever a
        // shared limiter lets a request through unanswered (Redis slower
        // than 100 ms): not compared at all.
        if name.as_str().starts_with("ratelimit-") {
            continue;
        }
        let values = headers.entry(name.as_str().to_owned()).or_default();
        if !volatile(name.as_str()) {
            values.push(value.to_str().unwrap().to_owned());
        }
    }
    Answer {
        status: res.status(),
        headers,
        body: res.text().await.unwrap(),
    }
}

/// Callers with one kind of credential, the slugs they try, and the one
/// answer they all get.
struct Callers<'a> {
    who: &'a str,
    credential: Option<&'a str>,
    slugs: Vec<&'a str>,
    status: StatusCode,
    code: &'a str,
}

/// Every operation on one link: method, path under the link, body.
fn link_operations() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"title": "Taken over"}))),
        (Method::GET, "/stats", None),
        (Method::GET, "/clicks.csv", None),
        (Method::GET, "/qr.svg", None),
        (Method::GET, "/qr.png", None),
        (Method::GET, "/live", None),
        (Method::DELETE, "/clicks", None),
        (Method::DELETE, "", None),
    ]
}

/// No answer tells a caller whether a link it may not see exists. For every
/// link operation, callers who may not see a link get one answer (status,
/// error code and message, the same headers) whether the slug is someone
/// else's link, an anonymous link, a deleted link, one never made, or not a
/// slug at all. As docs/architecture.md says, the answer depends on the
/// credential only: an API key gets 404 `link_not_found`, a link secret
/// (forged, or another link's) 401 `invalid_credentials`, no credential
/// 401 `unauthorized`, so neither reveals which slugs exist. The owner's
/// calls succeed, so every path is a real operation.
#[tokio::test]
async fn no_answer_reveals_whether_a_link_exists() {
    let app = TestApp::spawn().await;
    let alice = app.create_key("alice", false).await;
    let bob = app.create_key("bob", false).await;
    let create = |key: Option<String>, slug: &'static str| {
        let app = &app;
        async move {
            let res = app
                .api(
                    Method::POST,
                    "/api/v1/links",
                    key.as_deref(),
                    Some(json!({"url": "https://example.com/", "slug": slug, "title": "Alice's"})),
                )
                .await;
            assert_eq!(res.status(), StatusCode::CREATED, "{slug}");
            res.json::<Value>().await.unwrap()
        }
    };
    create(Some(alice.clone()), "alices").await;
    let anon_a = create(None, "anon-a").await;
    let anon_b = create(None, "anon-b").await;
    create(Some(bob.clone()), "deleted").await;
    let res = app
        .api(Method::DELETE, "/api/v1/links/deleted", Some(&bob), None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.click("/alices").await.status(), StatusCode::FOUND);
    app.wait_for_clicks("alices", "", 1).await;
    let secret_a = anon_a["secret"].as_str().unwrap().to_owned();
    let secret_b = anon_b["secret"].as_str().unwrap().to_owned();
    // Right shape, wrong value.
    let forged = format!("hls_{}", "A".repeat(secret_a.len() - 4));

    let missing = ["never-was", "deleted", "bad~slug"];
    let groups = [
        Callers {
            who: "another user's API key",
            credential: Some(&bob),
            slugs: [&["alices", "anon-a"][..], &missing[..]].concat(),
            status: StatusCode::NOT_FOUND,
            code: "link_not_found",
        },
        Callers {
            who: "a valid key on a missing slug",
            credential: Some(&alice),
            slugs: missing.to_vec(),
            status: StatusCode::NOT_FOUND,
            code: "link_not_found",
        },
        Callers {
            who: "a wrong link secret",
            credential: Some(&forged),
            slugs: [&["anon-a", "alices"][..], &missing[..]].concat(),
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_credentials",
        },
        Callers {
            who: "another link's secret",
            credential: Some(&secret_b),
            slugs: [&["anon-a", "alices"][..], &missing[..]].concat(),
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_credentials",
        },
        Callers {
            who: "no credential",
            credential: None,
            slugs: [&["alices", "anon-a"][..], &missing[..]].concat(),
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
        },
    ];
    for (method, path, body) in link_operations() {
        // The answers one kind of credential gets, whoever holds it.
        let mut by_kind: std::collections::BTreeMap<(StatusCode, &str), (String, Answer)> =
            Default::default();
        for Callers {
            who,
            credential,
            slugs,
            status,
            code,
        } in &groups
        {
            for slug in slugs {
                let url = format!("/api/v1/links/{slug}{path}");
                let res = app
                    .api(method.clone(), &url, *credential, body.clone())
                    .await;
                let what = format!("{method} {url} with {who}");
                let answer = answer_of(res).await;
                assert_eq!(answer.status, *status, "{what}: {}", answer.body);
                let envelope: Value = serde_json::from_str(&answer.body).unwrap();
                assert_eq!(envelope["error"]["code"], *code, "{what}");
                match by_kind.get(&(*status, *code)) {
                    None => {
                        by_kind.insert((*status, *code), (what, answer));
                    }
                    Some((first, expected)) => {
                        assert_eq!(&answer, expected, "{what} differs from {first}");
                    }
                }
            }
        }
    }
    // Nothing was changed by those calls, and the owner may do each.
    let link: Value = app
        .api(Method::GET, "/api/v1/links/alices", Some(&alice), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(link["title"], "Alice's");
    assert_eq!(app.stats("alices", "").await["total_clicks"], 1);
    for (method, path, body) in link_operations() {
        let url = format!("/api/v1/links/alices{path}");
        let res = app.api(method.clone(), &url, Some(&alice), body).await;
        assert!(
            res.status().is_success(),
            "{method} {url} as the owner: {}",
            res.status()
        );
    }
    assert_eq!(app.click("/alices").await.status(), StatusCode::NOT_FOUND);
}
