use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn create_returns_the_link_and_its_short_url() {
    let app = TestApp::spawn().await;
    let link = app
        .create(json!({
            "url": "https://Example.com/some/path?x=1",
            "title": "Example",
            "tags": ["docs", "demo"],
            "redirect_status": 308,
            "max_clicks": 10,
            "expires_at": "2099-01-01T00:00:00Z"
        }))
        .await;
    let slug = link["slug"].as_str().unwrap();
    assert_eq!(slug.len(), 7);
    assert!(
        slug.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    assert_eq!(link["short_url"], format!("http://hop.test/{slug}"));
    assert_eq!(link["url"], "https://example.com/some/path?x=1");
    assert_eq!(link["tags"], json!(["docs", "demo"]));
    assert_eq!(link["redirect_status"], 308);
    assert_eq!(link["max_clicks"], 10);
    assert_eq!(link["expires_at"], "2099-01-01T00:00:00Z");
    assert!(
        link.get("secret").is_none(),
        "key-owned links have no secret"
    );

    let got: Value = app
        .api(
            Method::GET,
            &format!("/api/v1/links/{slug}"),
            Some(&app.admin_key),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["url"], link["url"]);
    assert_eq!(got["title"], "Example");
}

#[tokio::test]
async fn idn_hosts_become_punycode() {
    let app = TestApp::spawn().await;
    let link = app
        .create(json!({ "url": "https://bücher.example/ä" }))
        .await;
    assert_eq!(link["url"], "https://xn--bcher-kva.example/%C3%A4");
}

#[tokio::test]
async fn custom_slugs_are_case_sensitive_and_conflict() {
    let app = TestApp::spawn().await;
    app.create_slug("Promo", "https://example.com/1").await;
    app.create_slug("promo", "https://example.com/2").await;
    assert_eq!(
        app.create_refused(json!({"url": "https://example.com/3", "slug": "Promo"}))
            .await,
        (StatusCode::CONFLICT, "slug_taken".into())
    );
    // The first owner of the slug still redirects where it did.
    assert_eq!(
        app.click("/Promo").await.headers()["location"],
        "https://example.com/1"
    );
}

#[tokio::test]
async fn every_bad_input_gets_its_own_code_and_stores_nothing() {
    let app = TestApp::spawn().await;
    app.create_slug("taken", "https://example.com/").await;
    let long = format!("https://example.com/{}", "a".repeat(8200));
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"url": "notaurl"}),
            StatusCode::BAD_REQUEST,
            "invalid_url",
        ),
        (
            json!({"url": "https://exa mple.com"}),
            StatusCode::BAD_REQUEST,
            "invalid_url",
        ),
        (
            json!({"url": "https://example.com/\r\nX: y"}),
            StatusCode::BAD_REQUEST,
            "invalid_url",
        ),
        (
            json!({"url": "https://example.com/%0d%0aX:%20y"}),
            StatusCode::BAD_REQUEST,
            "invalid_url",
        ),
        (
            json!({"url": "javascript:alert(1)"}),
            StatusCode::BAD_REQUEST,
            "unsupported_scheme",
        ),
        (
            json!({"url": "DATA:text/html,x"}),
            StatusCode::BAD_REQUEST,
            "unsupported_scheme",
        ),
        (
            json!({"url": "ftp://example.com/"}),
            StatusCode::BAD_REQUEST,
            "unsupported_scheme",
        ),
        (
            json!({"url": "https://"}),
            StatusCode::BAD_REQUEST,
            "missing_host",
        ),
        (
            json!({"url": long}),
            StatusCode::BAD_REQUEST,
            "url_too_long",
        ),
        (
            json!({"url": "https://hop.test/abc"}),
            StatusCode::BAD_REQUEST,
            "redirect_loop",
        ),
        (
            json!({"url": "https://good.com@evil.com/"}),
            StatusCode::BAD_REQUEST,
            "userinfo_not_allowed",
        ),
        (
            json!({"url": "https://example.com", "slug": "has space"}),
            StatusCode::BAD_REQUEST,
            "invalid_slug",
        ),
        (
            json!({"url": "https://example.com", "slug": "../etc"}),
            StatusCode::BAD_REQUEST,
            "invalid_slug",
        ),
        (
            json!({"url": "https://example.com", "slug": ""}),
            StatusCode::BAD_REQUEST,
            "invalid_slug",
        ),
        (
            json!({"url": "https://example.com", "slug": "x".repeat(65)}),
            StatusCode::BAD_REQUEST,
            "invalid_slug",
        ),
        (
            json!({"url": "https://example.com", "slug": "api"}),
            StatusCode::BAD_REQUEST,
            "reserved_slug",
        ),
        (
            json!({"url": "https://example.com", "slug": "Metrics"}),
            StatusCode::BAD_REQUEST,
            "reserved_slug",
        ),
        (
            json!({"url": "https://example.com", "slug": "taken"}),
            StatusCode::CONFLICT,
            "slug_taken",
        ),
        (
            json!({"url": "https://example.com", "redirect_status": 303}),
            StatusCode::BAD_REQUEST,
            "invalid_redirect_status",
        ),
        (
            json!({"url": "https://example.com", "max_clicks": 0}),
            StatusCode::BAD_REQUEST,
            "invalid_max_clicks",
        ),
        (
            json!({"url": "https://example.com", "expires_at": "2001-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "invalid_expiry",
        ),
        (
            json!({"url": "https://example.com", "expires_at": "tomorrow"}),
            StatusCode::BAD_REQUEST,
            "invalid_expiry",
        ),
        (
            json!({"url": "https://example.com", "title": "x".repeat(501)}),
            StatusCode::BAD_REQUEST,
            "invalid_title",
        ),
        (
            json!({"url": "https://example.com", "tags": [""]}),
            StatusCode::BAD_REQUEST,
            "invalid_tags",
        ),
        (
            json!({"url": "https://example.com", "unknown": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (json!({"url": 42}), StatusCode::BAD_REQUEST, "invalid_body"),
        (json!({}), StatusCode::BAD_REQUEST, "invalid_body"),
        (json!([1, 2]), StatusCode::BAD_REQUEST, "invalid_body"),
    ];
    for (body, status, code) in cases {
        assert_eq!(
            app.create_refused(body.clone()).await,
            (status, code.to_owned()),
            "body {body}"
        );
    }

    let raw = |body: &'static str, ct: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url("/api/v1/links"))
            .bearer_auth(&app.admin_key)
            .body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    assert_eq!(
        error_code(raw("{bad json", Some("application/json")).await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "invalid_json".into())
    );
    assert_eq!(
        error_code(raw("{\"url\":\"https://e.com\"}", None).await.unwrap()).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type".into()
        )
    );
    let huge = format!(
        "{{\"url\":\"https://example.com\",\"title\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let res = app
        .client
        .post(app.url("/api/v1/links"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );

    let list: Value = app
        .api(Method::GET, "/api/v1/links", Some(&app.admin_key), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["links"].as_array().unwrap().len(),
        1,
        "only the one valid link was stored"
    );
}

#[tokio::test]
async fn list_is_paginated_newest_first_and_filtered() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!(["odd"])
        };
        app.create(json!({"url": format!("https://example.com/{i}"), "slug": format!("n{i}"), "tags": tags, "title": format!("Number {i}")}))
            .await;
    }
    let app = &app;
    let page = |q: &'static str| async move {
        let res = app
            .api(
                Method::GET,
                &format!("/api/v1/links?{q}"),
                Some(&app.admin_key),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let v: Value = res.json().await.unwrap();
        v
    };
    let p1 = page("limit=2").await;
    let slugs: Vec<_> = p1["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["slug"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slugs, vec!["n4", "n3"]);
    let cursor = p1["next_cursor"].as_str().unwrap().to_owned();
    let res = app
        .api(
            Method::GET,
            &format!("/api/v1/links?limit=2&cursor={cursor}"),
            Some(&app.admin_key),
            None,
        )
        .await;
    let p2: Value = res.json().await.unwrap();
    let slugs: Vec<_> = p2["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, vec!["n2", "n1"]);

    let even = page("tag=even").await;
    assert_eq!(even["links"].as_array().unwrap().len(), 3);
    assert!(even["next_cursor"].is_null());
    let text = page("q=number%203").await;
    assert_eq!(text["links"][0]["slug"], "n3");
    assert_eq!(text["links"].as_array().unwrap().len(), 1);

    for bad in ["limit=0", "limit=201", "limit=x", "cursor=abc", "cursor="] {
        let res = app
            .api(
                Method::GET,
                &format!("/api/v1/links?{bad}"),
                Some(&app.admin_key),
                None,
            )
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, "invalid_query".into()),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn patch_changes_fields_and_null_clears() {
    let app = TestApp::spawn().await;
    app.create(json!({"url": "https://example.com/", "slug": "edit", "title": "Old", "max_clicks": 5, "tags": ["a"]})).await;
    let path = "/api/v1/links/edit";
    let res = app
        .api(Method::PATCH, path, Some(&app.admin_key), Some(json!({"url": "https://example.org/new", "title": null, "max_clicks": null, "tags": ["b", "c"], "redirect_status": 301})))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let link: Value = res.json().await.unwrap();
    assert_eq!(link["url"], "https://example.org/new");
    assert!(link["title"].is_null());
    assert!(link["max_clicks"].is_null());
    assert_eq!(link["tags"], json!(["b", "c"]));
    assert_eq!(link["redirect_status"], 301);

    for (body, code) in [
        (json!({"url": "javascript:x"}), "unsupported_scheme"),
        (json!({"redirect_status": 200}), "invalid_redirect_status"),
        (
            json!({"expires_at": "1999-01-01T00:00:00Z"}),
            "invalid_expiry",
        ),
        (json!({"slug": "other"}), "invalid_body"),
    ] {
        let res = app
            .api(Method::PATCH, path, Some(&app.admin_key), Some(body))
            .await;
        assert_eq!(
            error_code(res).await,
            (StatusCode::BAD_REQUEST, code.into())
        );
    }
    let res = app
        .api(
            Method::PATCH,
            "/api/v1/links/nope",
            Some(&app.admin_key),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::NOT_FOUND, "link_not_found".into())
    );
}

#[tokio::test]
async fn delete_removes_the_link() {
    let app = TestApp::spawn().await;
    app.create_slug("bye", "https://example.com/").await;
    // Cached on every node.
    for res in app.click_everywhere("/bye").await {
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    let res = app
        .api_on(
            0,
            Method::DELETE,
            "/api/v1/links/bye",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Invalidated at once where it was deleted, and on every node.
    app.expect_everywhere(0, "/bye", (StatusCode::NOT_FOUND, None))
        .await;
    let res = app
        .api(
            Method::DELETE,
            "/api/v1/links/bye",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::NOT_FOUND, "link_not_found".into())
    );
}

#[tokio::test]
async fn unknown_api_routes_and_methods_use_the_envelope() {
    let app = TestApp::spawn().await;
    let res = app.api(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let res = app.api(Method::PUT, "/api/v1/links", None, None).await;
    assert_eq!(
        error_code(res).await,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
}

/// The payload a QR code PNG decodes to (any colour type and bit depth,
/// read as 8-bit grey).
fn decode_qr_png(png_bytes: &[u8]) -> String {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let channels = frame.color_type.samples();
    let (w, h) = (frame.width as usize, frame.height as usize);
    let grey = |x: usize, y: usize| {
        let px = &buf[y * frame.line_size + x * channels..][..channels];
        match channels {
            1 | 2 => px[0],
            _ => ((u32::from(px[0]) + u32::from(px[1]) + u32::from(px[2])) / 3) as u8,
        }
    };
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, grey);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in a {w}×{h} image");
    let (_, content) = grids[0].decode().expect("the QR code decodes");
    content
}

/// Scanned, a link's QR code (PNG, any size, as a download too, by its
/// owner or with its secret) gives the short URL, and nothing else.
#[tokio::test]
async fn qr_codes_decode_to_the_short_url() {
    let app = TestApp::spawn().await;
    let long_slug = "q".repeat(64);
    let mut links = Vec::new();
    for slug in ["scan-me", &long_slug] {
        let link = app.create_slug(slug, "https://example.com/").await;
        links.push((link, app.admin_key.clone()));
    }
    let res = app
        .api(
            Method::POST,
            "/api/v1/links",
            None,
            Some(json!({"url": "https://example.com/anon"})),
        )
        .await;
    let anon: Value = res.json().await.unwrap();
    let secret = anon["secret"].as_str().unwrap().to_owned();
    links.push((anon, secret));
    for (link, key) in &links {
        let slug = link["slug"].as_str().unwrap();
        let short_url = format!("http://hop.test/{slug}");
        assert_eq!(link["short_url"], short_url);
        for query in ["", "?size=64", "?size=300", "?size=2048", "?download=1"] {
            let path = format!("/api/v1/links/{slug}/qr.png{query}");
            let res = app.api(Method::GET, &path, Some(key), None).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(res.headers()["content-type"], "image/png");
            let png = res.bytes().await.unwrap();
            assert_eq!(decode_qr_png(&png), short_url, "{path}");
        }
    }
}
