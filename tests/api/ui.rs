//! The web UI over HTTP, as a browser without JavaScript uses it: forms with
//! CSRF tokens, field errors, sessions, the secret dashboard URL, edit and
//! delete, assets and error pages.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::TestApp;

/// A cookie-keeping client that does not follow redirects.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .expect("page has a CSRF field")
        + "name=\"csrf\" value=\"".len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn page(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let res = client.get(url).send().await.unwrap();
    let status = res.status();
    if status.is_success() {
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/html; charset=utf-8"
        );
    }
    (status, res.text().await.unwrap())
}

async fn post(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    client.post(url).form(form).send().await.unwrap()
}

async fn link_count(app: &TestApp) -> usize {
    let body: Value = app
        .api(Method::GET, "/api/v1/links", Some(&app.admin_key), None)
        .await
        .json()
        .await
        .unwrap();
    body["links"].as_array().unwrap().len()
}

#[tokio::test]
async fn shortening_without_javascript_shows_the_link_qr_and_secret_once() {
    let app = TestApp::spawn().await;
    let b = browser();
    let (status, html) = page(&b, &app.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<form method=\"post\" action=\"/\""));
    let csrf = csrf_of(&html);

    let res = post(
        &b,
        &app.url("/"),
        &[
            ("csrf", &csrf),
            ("url", "https://example.com/docs?a=1&b=2"),
            ("slug", "guide"),
            ("tz", "UTC"),
            ("expires_at", ""),
        ],
    )
    .await;
    let status = res.status();
    let html = res.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{html}");
    assert!(html.contains("http://hop.test/guide"), "short URL shown");
    assert!(
        html.contains("data-copy=\"http://hop.test/guide\""),
        "copy button"
    );
    assert!(html.contains("/api/v1/links/guide/qr.svg"), "QR code");
    assert!(html.contains("qr.png?download=1"), "PNG download");
    // Escaped once, not twice.
    assert!(html.contains("https://example.com/docs?a=1&amp;b=2"));
    let start = html
        .find("http://hop.test/links/guide?secret=hls_")
        .expect("secret dashboard URL");
    let secret_url = &html[start..start + html[start..].find('<').unwrap()];
    assert!(html.contains("shown <strong>once</strong>"));

    // The redirect works at once.
    let res = app.click("/guide").await;
    assert_eq!(
        res.headers()["location"],
        "https://example.com/docs?a=1&b=2"
    );

    // This browser may see the QR code and the dashboard right away.
    let res = b
        .get(app.url("/api/v1/links/guide/qr.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert!(res.text().await.unwrap().contains("<svg"));
    let res = b
        .get(app.url("/api/v1/links/guide/qr.png?download=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(&res.bytes().await.unwrap()[..4], b"\x89PNG");
    let (status, html) = page(&b, &app.url("/links/guide")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-slug=\"guide\""));

    // Another browser gets in with the secret URL (made local), which is
    // then dropped from the address bar.
    let other = browser();
    let local = secret_url
        .replace("http://hop.test", &app.base)
        .replace("&amp;", "&");
    let (status, html) = page(&other, &local).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("action=\"/links/guide/unlock\""), "{html}");
    let secret = &local[local.find("secret=").unwrap() + 7..];
    let res = post(
        &other,
        &app.url("/links/guide/unlock"),
        &[("csrf", &csrf_of(&html)), ("secret", secret)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/links/guide");
    let (status, _) = page(&other, &app.url("/links/guide")).await;
    assert_eq!(status, StatusCode::OK);
    let res = other
        .get(app.url("/api/v1/links/guide/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A wrong secret looks like no link at all.
    let stranger = browser();
    let (status, html) = page(&stranger, &app.url("/links/guide?secret=hls_wrong")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Link not found"));
    // And without any session, the dashboard asks to sign in.
    let res = stranger.get(app.url("/links/guide")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login?next=%2Flinks%2Fguide");
}

/// The session cookie's value in a response, if it sets one.
fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("hop_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// A secret URL opened by a previewer or prefetcher (a GET) changes no
/// state; unlocking is a POST that moves the session to a new id, as does
/// making an anonymous link; the old id then opens nothing.
#[tokio::test]
async fn secrets_unlock_by_post_under_a_new_session_id() {
    let app = TestApp::spawn().await;
    let mut secrets = Vec::new();
    for slug in ["sess-a", "sess-b"] {
        let res = app
            .api(
                Method::POST,
                "/api/v1/links",
                None,
                Some(serde_json::json!({"url": "https://example.com/", "slug": slug})),
            )
            .await;
        let body: Value = res.json().await.unwrap();
        secrets.push(body["secret"].as_str().unwrap().to_owned());
    }
    let b = browser();
    // A GET of the secret URL: a page with a button, no session.
    let res = b
        .get(app.url(&format!("/links/sess-a?secret={}", secrets[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    assert_eq!(session_cookie(&res), None, "a GET made a session");
    let html = res.text().await.unwrap();
    let res = b.get(app.url("/links/sess-a")).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the GET unlocked the link"
    );
    // The POST without a CSRF token, or with a wrong secret, unlocks nothing.
    let res = post(
        &b,
        &app.url("/links/sess-a/unlock"),
        &[("secret", &secrets[0])],
    )
    .await;
    assert!(res.status().is_client_error());
    let res = post(
        &b,
        &app.url("/links/sess-a/unlock"),
        &[("csrf", &csrf_of(&html)), ("secret", &secrets[1])],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(session_cookie(&res), None);
    // The POST unlocks, under a new id.
    let res = post(
        &b,
        &app.url("/links/sess-a/unlock"),
        &[("csrf", &csrf_of(&html)), ("secret", &secrets[0])],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let first = session_cookie(&res).expect("a session");
    // A second secret: another new id, and the first one is gone.
    let (_, html) = page(
        &b,
        &app.url(&format!("/links/sess-b?secret={}", secrets[1])),
    )
    .await;
    let res = post(
        &b,
        &app.url("/links/sess-b/unlock"),
        &[("csrf", &csrf_of(&html)), ("secret", &secrets[1])],
    )
    .await;
    let second = session_cookie(&res).expect("a new session");
    assert_ne!(first, second, "the session id was kept");
    let with_first = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = with_first
        .get(app.url("/links/sess-a"))
        .header("cookie", format!("hop_session={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "the old id still opens the link"
    );
    for slug in ["sess-a", "sess-b"] {
        let (status, _) = page(&b, &app.url(&format!("/links/{slug}"))).await;
        assert_eq!(status, StatusCode::OK, "{slug}");
    }
    // Making an anonymous link in the UI moves the session again.
    let (_, html) = page(&b, &app.url("/")).await;
    let res = post(
        &b,
        &app.url("/"),
        &[
            ("csrf", &csrf_of(&html)),
            ("url", "https://example.com/x"),
            ("slug", "sess-c"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let third = session_cookie(&res).expect("a new session");
    assert_ne!(second, third);
    for slug in ["sess-a", "sess-b", "sess-c"] {
        let (status, _) = page(&b, &app.url(&format!("/links/{slug}"))).await;
        assert_eq!(status, StatusCode::OK, "{slug}");
    }
}

#[tokio::test]
async fn bad_input_gets_a_message_next_to_the_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let b = browser();
    let (_, html) = page(&b, &app.url("/")).await;
    let csrf = csrf_of(&html);
    // (form fields, status, field with the error, words in the message)
    type Case<'a> = (&'a [(&'a str, &'a str)], StatusCode, &'a str, &'a str);
    let cases: [Case; 6] = [
        (
            &[("url", "javascript:alert(1)")],
            StatusCode::BAD_REQUEST,
            "url",
            "http",
        ),
        (
            &[("url", "not a url")],
            StatusCode::BAD_REQUEST,
            "url",
            "spaces",
        ),
        (
            &[("url", "http://hop.test/x")],
            StatusCode::BAD_REQUEST,
            "url",
            "shortener",
        ),
        (
            &[("url", "https://example.com/"), ("slug", "api")],
            StatusCode::BAD_REQUEST,
            "slug",
            "reserved",
        ),
        (
            &[("url", "https://example.com/"), ("slug", "a b")],
            StatusCode::BAD_REQUEST,
            "slug",
            "letters",
        ),
        (
            &[
                ("url", "https://example.com/"),
                ("expires_at", "2001-01-01T00:00"),
            ],
            StatusCode::BAD_REQUEST,
            "expires_at",
            "future",
        ),
    ];
    for (fields, status, field, words) in cases {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let res = post(&b, &app.url("/"), &form).await;
        assert_eq!(res.status(), status, "{fields:?}");
        let html = res.text().await.unwrap();
        let error = format!("id=\"{field}-error\" role=\"alert\">");
        let at = html
            .find(&error)
            .unwrap_or_else(|| panic!("no {field} error for {fields:?}"));
        let message = &html[at + error.len()..at + html[at..].find("</p>").unwrap()];
        assert!(message.contains(words), "{fields:?}: {message}");
        assert!(html.contains("aria-invalid=\"true\""));
        // What the user typed is kept (escaped).
        assert!(!html.contains("<script>"));
    }
    // Taken slug.
    app.create_slug("taken", "https://example.com/").await;
    let res = post(
        &b,
        &app.url("/"),
        &[
            ("csrf", &csrf),
            ("url", "https://example.com/"),
            ("slug", "taken"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("already taken"));
    assert_eq!(link_count(&app).await, 1, "nothing stored");
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_the_same_origin() {
    let app = TestApp::spawn().await;
    let b = browser();
    let (_, html) = page(&b, &app.url("/")).await;
    let csrf = csrf_of(&html);
    let form = [("url", "https://example.com/")];
    let res = post(&b, &app.url("/"), &form).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("This form has expired"));
    let res = post(
        &b,
        &app.url("/"),
        &[
            ("url", "https://example.com/"),
            ("csrf", "x".repeat(43).as_str()),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Right token, but sent from another site.
    let res = b
        .post(app.url("/"))
        .header("origin", "https://evil.example")
        .form(&[("url", "https://example.com/"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A fresh browser (no cookie) with a token copied from elsewhere.
    let res = post(
        &browser(),
        &app.url("/"),
        &[("url", "https://example.com/"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A body that is not a form.
    let res = b
        .post(app.url("/"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert!(res.text().await.unwrap().contains("<html"));
    assert_eq!(link_count(&app).await, 0);
}

/// Sign-in only ever sends the browser to a path of this origin, whatever
/// `next` carries (browsers drop tabs and newlines from `Location`, so
/// `/\t/evil.example` would become `//evil.example`).
#[tokio::test]
async fn sign_in_never_redirects_off_site() {
    let app = TestApp::spawn().await;
    let key = app.create_key("alice", false).await;
    for next in [
        "/\t/evil.example/phish",
        "/\n/evil.example/phish",
        "/\r\n/evil.example",
        "/ /evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "/\u{3000}/evil.example",
    ] {
        let b = browser();
        let query: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let (status, html) = page(&b, &app.url(&format!("/login?next={query}"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("name=\"next\" value=\"/links\""),
            "{next:?} kept in the form"
        );
        let csrf = csrf_of(&html);
        let res = post(
            &b,
            &app.url("/login"),
            &[("csrf", &csrf), ("key", &key), ("next", next)],
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(res.headers()["location"], "/links", "{next:?}");
    }
}

#[tokio::test]
async fn signed_in_users_list_search_edit_and_delete_their_links() {
    let app = TestApp::spawn().await;
    let key = app.create_key("alice", false).await;
    let b = browser();
    // Not signed in: sent to the sign-in page.
    let res = b.get(app.url("/links")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&b, &app.url("/login?next=/links")).await;
    let csrf = csrf_of(&html);
    let res = post(
        &b,
        &app.url("/login"),
        &[("csrf", &csrf), ("key", "hop_wrong"), ("next", "/links")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("That API key is not valid.")
    );
    let res = post(
        &b,
        &app.url("/login"),
        &[("csrf", &csrf), ("key", &key), ("next", "//evil.example")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/links", "no open redirect");
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("hop_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    // Links made through the form belong to the key.
    for i in 0..27 {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        let res = app
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&key),
                Some(serde_json::json!({"url": format!("https://example.com/{i}"), "slug": format!("s{i}"), "tags": [tag], "title": format!("Page {i}")})),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    app.create_slug("admins", "https://example.com/admin").await;
    for _ in 0..3 {
        app.click("/s3").await;
    }
    app.wait_for_clicks("s3", "", 3).await;

    let (status, html) = page(&b, &app.url("/links")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("href=\"/links/s26\""), "newest first");
    assert!(!html.contains("href=\"/links/s0\""), "25 per page");
    assert!(!html.contains("admins"), "only this key's links");
    let older = html.find("cursor=").expect("a next page");
    let cursor: String = html[older + 7..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let (_, html) = page(&b, &app.url(&format!("/links?cursor={cursor}"))).await;
    assert!(html.contains("href=\"/links/s0\""));
    let (_, html) = page(&b, &app.url("/links?q=Page%203")).await;
    assert!(html.contains("href=\"/links/s3\""));
    let row = &html[html.find("href=\"/links/s3\"").unwrap()..];
    assert!(
        row.contains("<td class=\"num\">3</td>"),
        "click total shown"
    );
    let (_, html) = page(&b, &app.url("/links?tag=odd")).await;
    assert!(html.contains("href=\"/links/s1\"") && !html.contains("href=\"/links/s2\""));
    // The signed-in browser downloads the tag's clicks (its own links only).
    let export = "/api/v1/clicks.csv?tag=odd";
    assert!(html.contains(&format!("href=\"{export}\"")), "export link");
    let res = b.get(app.url(export)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csv = res.text().await.unwrap();
    assert_eq!(csv.lines().count(), 4, "header and s3's clicks: {csv}");
    assert!(csv.lines().skip(1).all(|l| l.starts_with("s3,")), "{csv}");

    // Edit: a bad target is explained, a good one applies to the next redirect.
    let (status, html) = page(&b, &app.url("/links/s3/edit")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("value=\"https://example.com/3\""));
    let csrf = csrf_of(&html);
    let res = post(
        &b,
        &app.url("/links/s3/edit"),
        &[
            ("csrf", &csrf),
            ("url", "ftp://example.com/"),
            ("tags", "odd"),
            ("redirect_status", "302"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("id=\"url-error\""));
    let res = post(
        &b,
        &app.url("/links/s3/edit"),
        &[
            ("csrf", &csrf),
            ("url", "https://example.net/new"),
            ("title", "New"),
            ("tags", "a, b"),
            ("max_clicks", ""),
            ("expires_at", ""),
            ("redirect_status", "307"),
            ("tz", "Europe/Paris"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = app.click("/s3").await;
    assert_eq!(res.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(res.headers()["location"], "https://example.net/new");
    let link: Value = app
        .api(Method::GET, "/api/v1/links/s3", Some(&key), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(link["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(link["title"], "New");
    // Disable.
    let res = post(
        &b,
        &app.url("/links/s3/edit"),
        &[
            ("csrf", &csrf),
            ("url", "https://example.net/new"),
            ("disabled", "on"),
            ("redirect_status", "302"),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = app.click("/s3").await;
    assert_eq!(res.status(), StatusCode::GONE);
    assert!(res.text().await.unwrap().contains("disabled"));

    // A password: too short is explained (and never echoed back), a good
    // one protects the link, an empty field keeps it, the box removes it.
    let edit_with = |password: &'static str, remove: bool| {
        let (b, app, csrf) = (&b, &app, csrf.clone());
        async move {
            let mut fields = vec![
                ("csrf", csrf.as_str()),
                ("url", "https://example.net/new"),
                ("redirect_status", "302"),
                ("password", password),
            ];
            if remove {
                fields.push(("remove_password", "on"));
            }
            post(b, &app.url("/links/s3/edit"), &fields).await
        }
    };
    let res = edit_with("abc", false).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"password-error\""), "{html}");
    assert!(
        !html.contains("value=\"abc\""),
        "the password is not shown back"
    );
    assert_eq!(
        edit_with("tiger tiger", false).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.click("/s3").await.status(), StatusCode::OK, "the form");
    let (_, html) = page(&b, &app.url("/links/s3/edit")).await;
    assert!(html.contains("id=\"remove_password\""), "offered once set");
    assert_eq!(edit_with("", false).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.click("/s3").await.status(), StatusCode::OK, "kept");
    assert_eq!(edit_with("", true).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.click("/s3").await.status(),
        StatusCode::FOUND,
        "removed"
    );

    // Someone else's link is not there.
    let (status, _) = page(&b, &app.url("/links/admins/edit")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delete asks first, then the link is gone.
    let (status, html) = page(&b, &app.url("/links/s5/delete")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("cannot be undone"));
    let res = post(
        &b,
        &app.url("/links/s5/delete"),
        &[("csrf", &csrf_of(&html))],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/links?deleted=s5");
    assert_eq!(app.click("/s5").await.status(), StatusCode::NOT_FOUND);

    // The session cookie never authorises API writes.
    let res = b
        .patch(app.url("/api/v1/links/s7"))
        .json(&serde_json::json!({"url": "https://evil.example/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = b.delete(app.url("/api/v1/links/s7")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Sign out ends the session.
    let (_, html) = page(&b, &app.url("/links")).await;
    let res = post(&b, &app.url("/logout"), &[("csrf", &csrf_of(&html))]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = b.get(app.url("/links")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn assets_are_embedded_and_cacheable_and_errors_look_like_the_site() {
    let app = TestApp::spawn().await;
    let b = browser();
    let (_, html) = page(&b, &app.url("/")).await;
    for name in ["app.css", "app.js", "favicon.svg"] {
        let at = html
            .find(&format!("/static/{name}?v="))
            .unwrap_or_else(|| panic!("{name} linked"));
        let url = &html[at..at + html[at..].find('"').unwrap()];
        let res = b.get(app.url(url)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let etag = res.headers()["etag"].clone();
        let res = b
            .get(app.url(url))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    }
    let res = b
        .get(app.url("/static/uPlot.iife.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["cache-control"],
        "no-cache",
        "unversioned URL is revalidated"
    );
    assert!(res.text().await.unwrap().contains("uPlot"));
    let (status, html) = page(&b, &app.url("/static/nope.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.contains("/static/app.css?v="),
        "404 page in the site's look"
    );
    // Security headers on every page, error pages included.
    for path in ["/", "/no-such-slug", "/login"] {
        let res = b.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    }
    let (status, html) = page(&b, &app.url("/no-such-slug")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Link not found"));
    assert!(html.contains("<main id=\"main\">"));
}

/// A form of the UI, and the state its post would change.
#[derive(Debug, Clone, Copy)]
enum Form {
    Shorten,
    Login,
    Logout,
    Edit,
    Delete,
    Report,
    Unlock,
}

/// How a cross-site post tries to get past the CSRF defences.
#[derive(Debug, Clone, Copy)]
enum Forgery {
    /// No token in the form.
    NoToken,
    /// A token of the right shape that is not this browser's.
    WrongToken,
    /// This browser's token, from a page on another site.
    ForeignOrigin,
    /// This browser's token, from an opaque origin (sandboxed frame, data: URL).
    NullOrigin,
    /// This browser's token and session cookie, without the SameSite=Strict
    /// CSRF cookie (what a browser sends on a cross-site post).
    NoCsrfCookie,
}

/// What one form's case needs: the browser, the page with the form, the
/// link it concerns and the fields it posts.
struct FormCase {
    browser: reqwest::Client,
    cookies: std::sync::Arc<reqwest::cookie::Jar>,
    page: String,
    action: String,
    slug: String,
    fields: Vec<(&'static str, String)>,
}

/// A browser whose cookies the test can read.
fn browser_with_jar() -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (client, jar)
}

async fn sign_in(app: &TestApp, b: &reqwest::Client, key: &str) {
    let (_, html) = page(b, &app.url("/login")).await;
    let res = post(
        b,
        &app.url("/login"),
        &[("csrf", &csrf_of(&html)), ("key", key), ("next", "/links")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (status, _) = page(b, &app.url("/links")).await;
    assert_eq!(status, StatusCode::OK, "signed in");
}

async fn link_json(app: &TestApp, slug: &str) -> Option<Value> {
    let res = app
        .api(
            Method::GET,
            &format!("/api/v1/links/{slug}"),
            Some(&app.admin_key),
            None,
        )
        .await;
    match res.status() {
        StatusCode::OK => Some(res.json().await.unwrap()),
        StatusCode::NOT_FOUND => None,
        other => panic!("GET {slug}: {other}"),
    }
}

async fn reports_about(app: &TestApp, slug: &str) -> usize {
    let body: Value = app
        .api(Method::GET, "/api/v1/reports", Some(&app.admin_key), None)
        .await
        .json()
        .await
        .unwrap();
    body["reports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["slug"] == slug)
        .count()
}

impl Form {
    /// A fresh browser at the form's page, signed in where the form needs it.
    async fn open(self, app: &TestApp, key: &str, n: usize) -> FormCase {
        let (browser, cookies) = browser_with_jar();
        let slug = format!("csrf-{self:?}-{n}").to_lowercase();
        let mut secret = String::new();
        match self {
            Form::Edit | Form::Delete | Form::Report => {
                let res = app
                    .api(
                        Method::POST,
                        "/api/v1/links",
                        Some(key),
                        Some(serde_json::json!({"url": "https://example.com/kept", "slug": slug, "title": "Kept"})),
                    )
                    .await;
                assert_eq!(res.status(), StatusCode::CREATED);
            }
            Form::Unlock => {
                let res = app
                    .api(
                        Method::POST,
                        "/api/v1/links",
                        None,
                        Some(serde_json::json!({"url": "https://example.com/kept", "slug": slug})),
                    )
                    .await;
                let body: Value = res.json().await.unwrap();
                secret = body["secret"].as_str().unwrap().to_owned();
            }
            Form::Shorten | Form::Login | Form::Logout => {}
        }
        if matches!(self, Form::Logout | Form::Edit | Form::Delete) {
            sign_in(app, &browser, key).await;
        }
        let (page, action, fields): (String, String, Vec<(&str, String)>) = match self {
            Form::Shorten => (
                "/".into(),
                "/".into(),
                vec![
                    ("url", "https://example.com/new".into()),
                    ("slug", slug.clone()),
                ],
            ),
            Form::Login => (
                "/login".into(),
                "/login".into(),
                vec![("key", key.to_owned()), ("next", "/links".into())],
            ),
            Form::Logout => ("/links".into(), "/logout".into(), vec![]),
            Form::Edit => (
                format!("/links/{slug}/edit"),
                format!("/links/{slug}/edit"),
                vec![
                    ("url", "https://evil.example/".into()),
                    ("title", "Changed".into()),
                    ("redirect_status", "302".into()),
                ],
            ),
            Form::Delete => (
                format!("/links/{slug}/delete"),
                format!("/links/{slug}/delete"),
                vec![],
            ),
            Form::Report => (
                "/report".into(),
                "/report".into(),
                vec![
                    ("slug", slug.clone()),
                    ("reason", "phishing".into()),
                    ("details", "forged".into()),
                ],
            ),
            Form::Unlock => (
                format!("/links/{slug}?secret={secret}"),
                format!("/links/{slug}/unlock"),
                vec![("secret", secret.clone())],
            ),
        };
        FormCase {
            browser,
            cookies,
            page,
            action,
            slug,
            fields,
        }
    }

    /// Whether the state shows the form's post as done (and not otherwise).
    async fn done(self, app: &TestApp, case: &FormCase) -> bool {
        let dashboard = |path: String| async move {
            let res = case.browser.get(app.url(&path)).send().await.unwrap();
            res.status()
        };
        match self {
            Form::Shorten => link_json(app, &case.slug).await.is_some(),
            Form::Login | Form::Unlock => {
                let path = match self {
                    Form::Login => "/links".to_owned(),
                    _ => format!("/links/{}", case.slug),
                };
                match dashboard(path).await {
                    StatusCode::OK => true,
                    StatusCode::SEE_OTHER => false,
                    other => panic!("{self:?}: {other}"),
                }
            }
            Form::Logout => match dashboard("/links".into()).await {
                StatusCode::SEE_OTHER => true,
                StatusCode::OK => false,
                other => panic!("{self:?}: {other}"),
            },
            Form::Edit => {
                let link = link_json(app, &case.slug).await.expect("the link");
                let kept = (link["url"].as_str(), link["title"].as_str())
                    == (Some("https://example.com/kept"), Some("Kept"));
                assert!(kept || link["title"] == "Changed", "half an edit: {link}");
                !kept
            }
            Form::Delete => link_json(app, &case.slug).await.is_none(),
            Form::Report => reports_about(app, &case.slug).await > 0,
        }
    }
}

/// Every form of the UI (shorten, sign in, sign out, edit, delete, report,
/// unlock) refuses a post without the token, with a wrong one, with the
/// right one from a foreign or opaque `Origin`, and without the CSRF
/// cookie: a 4xx HTML page, and the state is as before (not signed in or
/// still signed in, link not made, edited or deleted, no report, not
/// unlocked). The same post made properly then does change it, so each
/// check can see the change.
#[tokio::test]
async fn every_form_refuses_forged_posts_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let key = app.create_key("alice", false).await;
    let forms = [
        Form::Shorten,
        Form::Login,
        Form::Logout,
        Form::Edit,
        Form::Delete,
        Form::Report,
        Form::Unlock,
    ];
    let forgeries = [
        Forgery::NoToken,
        Forgery::WrongToken,
        Forgery::ForeignOrigin,
        Forgery::NullOrigin,
        Forgery::NoCsrfCookie,
    ];
    for (n, form) in forms.into_iter().enumerate() {
        let case = form.open(&app, &key, n).await;
        let (status, html) = page(&case.browser, &app.url(&case.page)).await;
        assert_eq!(status, StatusCode::OK, "{form:?} page");
        assert!(
            html.contains(&format!("action=\"{}\"", case.action)),
            "{form:?}: the page posts to {}",
            case.action
        );
        let token = csrf_of(&html);
        assert!(!form.done(&app, &case).await, "{form:?} done before");
        let action = app.url(&case.action);
        for forgery in forgeries {
            let mut fields: Vec<(&str, String)> = case.fields.clone();
            let mut req = case.browser.post(&action);
            match forgery {
                Forgery::NoToken => {}
                Forgery::WrongToken => {
                    // Same length and alphabet, one character off.
                    let mut wrong = token.clone().into_bytes();
                    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
                    fields.push(("csrf", String::from_utf8(wrong).unwrap()));
                }
                Forgery::ForeignOrigin => {
                    fields.push(("csrf", token.clone()));
                    req = req.header("origin", "https://evil.example");
                }
                Forgery::NullOrigin => {
                    fields.push(("csrf", token.clone()));
                    req = req.header("origin", "null");
                }
                Forgery::NoCsrfCookie => {
                    fields.push(("csrf", token.clone()));
                    let url = reqwest::Url::parse(&action).unwrap();
                    let sent = reqwest::cookie::CookieStore::cookies(&*case.cookies, &url)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let others: Vec<&str> = sent
                        .split("; ")
                        .filter(|c| !c.is_empty() && !c.starts_with("hop_csrf="))
                        .collect();
                    // A client of its own, so the jar does not add it back.
                    req = reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .unwrap()
                        .post(&action);
                    if !others.is_empty() {
                        req = req.header("cookie", others.join("; "));
                    }
                }
            }
            let res = req.form(&fields).send().await.unwrap();
            let status = res.status();
            assert!(
                status.is_client_error(),
                "{form:?} {forgery:?}: answered {status}"
            );
            assert!(
                res.headers()
                    .get_all("set-cookie")
                    .iter()
                    .all(|c| !c.to_str().unwrap().starts_with("hop_session=")),
                "{form:?} {forgery:?}: the session changed"
            );
            assert_eq!(
                res.headers()["content-type"],
                "text/html; charset=utf-8",
                "{form:?} {forgery:?}"
            );
            let body = res.text().await.unwrap();
            assert!(
                body.contains("<html") && body.contains("This form has expired"),
                "{form:?} {forgery:?}: {body}"
            );
            assert!(
                !form.done(&app, &case).await,
                "{form:?} {forgery:?}: the forged post took effect"
            );
        }
        // The same post from this site, with its token, does its work.
        let mut fields = case.fields.clone();
        fields.push(("csrf", token));
        let res = case
            .browser
            .post(&action)
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert!(
            matches!(
                res.status(),
                StatusCode::OK | StatusCode::CREATED | StatusCode::SEE_OTHER
            ),
            "{form:?}: the genuine post answered {}",
            res.status()
        );
        assert!(
            form.done(&app, &case).await,
            "{form:?}: the genuine post did nothing"
        );
    }
}
