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
