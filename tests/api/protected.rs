//! Password-protected links through the real server: the form instead of
//! the redirect (for GET, HEAD and bots alike), a right and a wrong
//! password, the CSRF check, the limits on wrong passwords, one-time access
//! tokens, and the password removed.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{FIREFOX, GOOGLEBOT, TestApp, error_code};

const TARGET: &str = "https://example.com/members-only";

/// The CSRF token of a served form: the cookie it set and the hidden
/// field it holds (the same value).
fn csrf_of(set_cookie: Option<String>, body: &str) -> String {
    let field = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form has a csrf field")
        .to_owned();
    if let Some(cookie) = set_cookie {
        assert!(
            cookie.starts_with(&format!("hop_csrf={field};")),
            "{cookie}"
        );
    }
    field
}

/// A GET of `/slug` as a browser from `ip`.
async fn visit(app: &TestApp, path: &str, ip: &str) -> Response {
    app.client
        .get(app.any_url(path))
        .header("user-agent", FIREFOX)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap()
}

/// Posts `password` to the form of `path` from `ip`, with a valid CSRF
/// token (unless `csrf` is false).
async fn post_password(
    app: &TestApp,
    path: &str,
    ip: &str,
    password: &str,
    csrf: bool,
) -> Response {
    let form = visit(app, path, ip).await;
    assert_eq!(form.status(), StatusCode::OK);
    let cookie = form
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let token = csrf_of(cookie, &form.text().await.unwrap());
    let mut req = app
        .client
        .post(app.any_url(path))
        .header("user-agent", FIREFOX)
        .header("x-forwarded-for", ip)
        .header(COOKIE, format!("hop_csrf={token}"));
    let sent = if csrf { token.as_str() } else { "forged" };
    req = req.form(&[("password", password), ("csrf", sent)]);
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_password_protects_the_target_until_it_is_given() {
    let app = TestApp::spawn().await;
    let link = app
        .create(json!({"url": TARGET, "slug": "vault", "password": "open sesame"}))
        .await;
    assert_eq!(link["password_protected"], true);
    assert!(link.get("password").is_none(), "never shown: {link}");
    assert!(!link.to_string().contains("argon2"), "nor its hash");

    // GET, HEAD and a crawler all get the form, never the target.
    for (method, ua) in [
        (Method::GET, FIREFOX),
        (Method::HEAD, FIREFOX),
        (Method::GET, GOOGLEBOT),
    ] {
        let res = app
            .client
            .request(method.clone(), app.any_url("/vault"))
            .header("user-agent", ua)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{method} {ua}");
        assert!(res.headers().get(LOCATION).is_none());
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(res.headers()["x-robots-tag"], "noindex");
        let body = res.text().await.unwrap();
        assert!(
            !body.contains("members-only"),
            "{method} {ua}: target in the page"
        );
        if method == Method::GET {
            assert!(body.contains("type=\"password\""), "{body}");
        }
    }

    // A wrong password: the form again, saying so; no click.
    let res = post_password(&app, "/vault", "198.51.100.1", "open says me", true).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(LOCATION).is_none());
    assert!(res.text().await.unwrap().contains("not right"));
    // A forged CSRF token: refused before the password is looked at.
    let res = post_password(&app, "/vault", "198.51.100.1", "open sesame", false).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // The right one: redirected (303: followed with a GET) and counted.
    let res = post_password(
        &app,
        "/vault?utm_source=mail",
        "198.51.100.1",
        "open sesame",
        true,
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], TARGET);
    let stats = app.wait_for_clicks("vault", "", 1).await;
    assert_eq!(stats["top"]["utm_sources"][0]["value"], "mail");

    // Removed: the link redirects again at once.
    let res = app
        .api(
            Method::PATCH,
            "/api/v1/links/vault",
            Some(&app.admin_key),
            Some(json!({"password": null})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["password_protected"], false);
    let res = visit(&app, "/vault", "198.51.100.1").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()[LOCATION], TARGET);
    // And a POST to a link without a password is not a way in to anything.
    let res = app
        .client
        .post(app.any_url("/vault"))
        .form(&[("password", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn wrong_passwords_are_limited_per_client_and_per_link() {
    let app = TestApp::spawn_with(|c| {
        c.rate_password_failures = "3/min".parse().unwrap();
        c.rate_password_link_failures = "5/min".parse().unwrap();
    })
    .await;
    app.create(json!({"url": TARGET, "slug": "guarded", "password": "right one"}))
        .await;
    for _ in 0..3 {
        let res = post_password(&app, "/guarded", "203.0.113.5", "wrong", true).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // The client is out of tries: even the right password waits.
    let res = post_password(&app, "/guarded", "203.0.113.5", "right one", true).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    // On every protected link: guessing many links is no faster.
    app.create(json!({"url": TARGET, "slug": "guarded2", "password": "other one"}))
        .await;
    let res = post_password(&app, "/guarded2", "203.0.113.5", "other one", true).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client still may, until the link's own allowance (5) is
    // spent by guesses spread over addresses.
    let res = post_password(&app, "/guarded", "203.0.113.6", "right one", true).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    for ip in ["203.0.113.7", "203.0.113.8"] {
        let res = post_password(&app, "/guarded", ip, "wrong", true).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = post_password(&app, "/guarded", "203.0.113.9", "right one", true).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn an_access_token_opens_the_link_once() {
    let app = TestApp::spawn().await;
    app.create(json!({"url": TARGET, "slug": "shared", "password": "hunter22"}))
        .await;
    app.create(json!({"url": TARGET, "slug": "open"})).await;
    let issue = |slug: &'static str, body: Value| {
        let app = &app;
        async move {
            app.api(
                Method::POST,
                &format!("/api/v1/links/{slug}/access-tokens"),
                Some(&app.admin_key),
                Some(body),
            )
            .await
        }
    };
    let res = issue("shared", json!({"expires_in": 3600})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let token: Value = res.json().await.unwrap();
    let url = token["url"].as_str().unwrap();
    let path = &url[url.find("/shared").unwrap()..];
    assert!(path.starts_with("/shared?hop_access=hpa_"), "{path}");

    // Tried on another protected link, it opens nothing and stays valid.
    app.create(json!({"url": TARGET, "slug": "other", "password": "hunter33"}))
        .await;
    let res = visit(&app, &path.replacen("/shared", "/other", 1), "192.0.2.1").await;
    assert_eq!(res.status(), StatusCode::OK);

    // A HEAD does not use it up; the first GET does, and is a click.
    let res = app.client.head(app.any_url(path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = visit(&app, path, "192.0.2.1").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()[LOCATION], TARGET);
    app.wait_for_clicks("shared", "", 1).await;
    let res = visit(&app, path, "192.0.2.1").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("has been used already"));

    // Bad asks.
    let res = issue("shared", json!({"expires_in": 5})).await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::BAD_REQUEST, "invalid_expires_in".into())
    );
    let res = issue("open", json!({})).await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::CONFLICT, "link_not_protected".into())
    );
    let res = app
        .api(
            Method::POST,
            "/api/v1/links/shared/access-tokens",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_passwords_are_refused() {
    let app = TestApp::spawn().await;
    for bad in [json!("abc"), json!("x".repeat(129)), json!("tab\there")] {
        let res = app
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&app.admin_key),
                Some(json!({"url": TARGET, "password": bad})),
            )
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, "invalid_password".into()),
            "{bad}"
        );
    }
}
