//! The web UI in a real browser: Debian's headless Chromium driven through
//! chromedriver (WebDriver, via fantoccini). Screenshots of the home, result
//! and dashboard pages go to `target/artifacts/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{IPHONE, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process and a browser session on it; both end on drop.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    async fn start() -> Browser {
        Self::start_with(&[]).await
    }

    /// A browser with extra Chromium flags.
    async fn start_with(extra: &[&str]) -> Browser {
        // Two TLS backends are linked into the test binary; pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: apt-get install chromium chromium-driver (scripts/test.sh does)"
            );
        }
        let port = free_port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            "--no-first-run",
            "--disable-extensions",
        ];
        args.extend_from_slice(extra);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::rustls()
                .expect("TLS roots")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no browser session: {e}"),
            }
        };
        Browser {
            client,
            _driver: driver,
        }
    }

    async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }

    async fn text(&self, css: &str) -> String {
        // The live page re-renders parts of itself: an element found a
        // moment ago may be gone (stale) by the time its text is read.
        let mut attempt = 0;
        loop {
            // After a click that navigates, the element may not exist yet.
            let el = self
                .client
                .wait()
                .at_most(Duration::from_secs(5))
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"));
            match el.text().await {
                Ok(t) => return t,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    let _ = e;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    async fn fill(&self, css: &str, value: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Polls `css`'s text until `want` holds; returns how long it took.
    async fn wait_text(&self, css: &str, limit: Duration, want: impl Fn(&str) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if want(&text) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{css} is {text:?} after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// Signs in with the admin key through the form, and waits for the list.
async fn sign_in(b: &Browser, app: &TestApp) {
    b.client.goto(&app.url("/login")).await.unwrap();
    b.fill("#key", &app.admin_key).await;
    b.click("form button.primary").await;
    b.wait_text("h1", Duration::from_secs(5), |t| t == "My links")
        .await;
}

/// Every visible form control has a label (or an aria-label).
async fn assert_labelled(b: &Browser) {
    let unlabelled = b
        .client
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                .map(e => e.id || e.name)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!([]), "controls without a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shorten_watch_live_and_edit_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let b = Browser::start().await;

    // Home page, then a bad URL: the message sits next to the field.
    b.client.goto(&app.url("/")).await.unwrap();
    b.screenshot("home.png").await;
    assert_labelled(&b).await;
    // Keyboard: the form is reachable and submits with Enter.
    let focused = b
        .client
        .execute(
            "return document.activeElement && document.activeElement.id",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(focused, json!("url"), "the URL field has focus on load");
    b.fill("#url", "javascript:alert(1)").await;
    b.click("form button.primary").await;
    let error = b.text("#url-error").await;
    assert!(error.contains("http"), "{error}");
    assert_eq!(b.count("input#url[aria-invalid=true]").await, 1);

    // A good one, with a custom slug.
    b.fill("#url", "https://example.com/landing").await;
    b.click("details summary").await;
    b.fill("#slug", "inbrowser").await;
    b.click("form button.primary").await;
    assert_eq!(b.text("#short-url").await, "http://hop.test/inbrowser");
    assert_eq!(
        b.count("button.copy[data-copy='http://hop.test/inbrowser']")
            .await,
        1
    );
    assert!(
        b.text("#secret-url")
            .await
            .contains("/links/inbrowser?secret=hls_")
    );
    b.click("button.copy").await;
    b.wait_text(".copied", Duration::from_secs(2), |t| !t.is_empty())
        .await;
    // The QR image loaded (the session made at creation may fetch it).
    let loaded = b
        .client
        .execute(
            "const i = document.querySelector('.qr img'); return i.complete && i.naturalWidth > 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(loaded, json!(true));
    b.screenshot("result.png").await;

    // The dashboard goes live.
    b.click("a.button.primary[href='/links/inbrowser']").await;
    b.wait_text("#live-state", Duration::from_secs(5), |t| t == "live")
        .await;
    b.wait_text("#visitors", Duration::from_secs(5), |t| t == "0")
        .await;
    assert_eq!(b.text("#total").await, "0");

    // Redirects from another client show up within a second each. (In
    // cluster mode a click travels node → Redis stream → worker → store →
    // pub/sub → node while fifty other cluster tests load the same two
    // cores; there the bound is 3 s.)
    let limit = if crate::helpers::cluster_mode() {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(1)
    };
    for n in 1..=3u32 {
        let res = app.click_as("/inbrowser", IPHONE, "81.2.69.142").await;
        assert_eq!(res.status(), StatusCode::FOUND);
        let took = b.wait_text("#total", limit, |t| t == n.to_string()).await;
        assert!(took < limit, "click {n} took {took:?}");
        assert_eq!(b.count("#feed li").await, n as usize);
    }
    let feed = b.text("#feed li").await;
    assert!(feed.contains("Safari") && feed.contains("iOS"), "{feed}");
    assert!(feed.contains("GB"), "geo from the real database: {feed}");
    // The exact re-read brings unique visitors and breakdowns.
    b.wait_text("#visitors", Duration::from_secs(5), |t| t == "1")
        .await;
    b.wait_text("#alltime", Duration::from_secs(5), |t| t == "3")
        .await;
    let devices = b.text("#top-devices").await;
    assert!(
        devices.contains("mobile") && devices.contains('3'),
        "{devices}"
    );
    let chart_points = b
        .client
        .execute(
            "return document.querySelectorAll('#chart canvas').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(chart_points, json!(1), "chart drawn");
    b.screenshot("dashboard.png").await;
    assert_labelled(&b).await;

    // Phone width: nothing overflows sideways.
    b.client.set_window_size(390, 844).await.unwrap();
    // The chart follows the resize event; give the page a moment.
    let started = Instant::now();
    loop {
        let fits = b
            .client
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1",
                vec![],
            )
            .await
            .unwrap();
        if fits == json!(true) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "horizontal scroll on a phone"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.screenshot("dashboard-phone.png").await;
    b.client.set_window_size(1280, 1000).await.unwrap();

    // Sign in with a key, then edit a link.
    app.create_slug("editme", "https://example.com/old").await;
    sign_in(&b, &app).await;
    assert_eq!(b.count("a[href='/links/editme/edit']").await, 1);
    assert_eq!(b.count("a[href='/api/v1/clicks.csv']").await, 1);
    b.screenshot("links.png").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.screenshot("links-phone.png").await;
    b.client.set_window_size(1280, 1000).await.unwrap();
    b.click("a[href='/links/editme/edit']").await;
    b.fill("#url", "https://example.com/new").await;
    b.fill("#tags", "spring, launch").await;
    b.click("form button.primary").await;
    b.wait_text(".notice", Duration::from_secs(5), |t| {
        t.starts_with("Saved")
    })
    .await;
    let res = app.click("/editme").await;
    assert_eq!(res.headers()["location"], "https://example.com/new");
    b.screenshot("edit.png").await;

    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reconnects_after_a_restart() {
    let app = TestApp::spawn().await;
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    app.create_slug("comeback", "https://example.com/").await;
    let b = Browser::start().await;
    // Sign in (sessions live in the database, so they survive the restart).
    sign_in(&b, &app).await;
    b.client.goto(&app.url("/links/comeback")).await.unwrap();
    b.wait_text("#live-state", Duration::from_secs(5), |t| t == "live")
        .await;
    app.click("/comeback").await;
    b.wait_text("#total", Duration::from_secs(2), |t| t == "1")
        .await;

    let dir = app.stop().await;
    b.wait_text("#live-state", Duration::from_secs(5), |t| t != "live")
        .await;
    // Clicks while it was away are picked up by the resync.
    let app = TestApp::spawn_in(dir, |c| c.listen = ([127, 0, 0, 1], port).into()).await;
    app.click("/comeback").await;
    b.wait_text("#live-state", Duration::from_secs(10), |t| t == "live")
        .await;
    b.wait_text("#total", Duration::from_secs(5), |t| t == "2")
        .await;
    // And live updates flow again.
    app.click("/comeback").await;
    let limit = if crate::helpers::cluster_mode() { 3 } else { 1 };
    b.wait_text("#total", Duration::from_secs(limit), |t| t == "3")
        .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dark_mode_follows_the_system_setting() {
    let app = TestApp::spawn().await;
    let b = Browser::start_with(&[
        "--force-dark-mode",
        "--blink-settings=preferredColorScheme=0",
    ])
    .await;
    b.client.goto(&app.url("/no-such-link")).await.unwrap();
    let dark = b
        .client
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(dark, json!(true), "the browser prefers dark");
    // The page background is dark: each RGB channel below 64.
    let bg = b
        .client
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    let channels: Vec<u32> = bg
        .as_str()
        .unwrap()
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .map(|c| c.trim().parse().unwrap())
        .collect();
    assert!(channels.iter().all(|c| *c < 64), "background {bg}");
    b.screenshot("not-found-dark.png").await;
    b.close().await;
}

/// A link clicked before its dashboard opens: the latest clicks are listed
/// on load, the chart's current (partial) bucket is drawn in full and
/// labelled, and the breakdowns show their numbers on a phone too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_opened_after_the_clicks_shows_them_all() {
    // No --geoip-db: the embedded country database, credited on the page.
    let app = TestApp::spawn_with(|c| c.geoip_db.clear()).await;
    app.create_slug("shared", "https://example.com/shared")
        .await;
    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    for i in 0..42 {
        let ua = if i % 2 == 0 { IPHONE } else { CHROME };
        let res = app.click_as("/shared", ua, "81.2.69.142").await;
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    app.wait_for_clicks("shared", "", 42).await;

    let b = Browser::start().await;
    sign_in(&b, &app).await;
    b.client.goto(&app.url("/links/shared")).await.unwrap();
    b.wait_text("#total", Duration::from_secs(5), |t| t == "42")
        .await;

    // The feed lists the 20 latest clicks from the store, before any live one.
    let started = Instant::now();
    while b.count("#feed li").await != 20 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the feed has {} entries",
            b.count("#feed li").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = b.text("#feed li").await;
    assert!(
        first.contains("Windows") || first.contains("iOS"),
        "a click, not a placeholder: {first}"
    );

    // Every bucket's bar lies inside the plot, the last (current) one too,
    // and the 42 clicks are drawn.
    let chart = b
        .client
        .execute(
            "const u = document.getElementById('dashboard').chart;
             const xs = u.data[0], n = xs.length;
             return { last: xs[n - 1], step: xs[n - 1] - xs[n - 2], max: u.scales.x.max,
                      sum: u.data[1].reduce((a, b) => a + b, 0), lastCount: u.data[1][n - 1] };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(chart["sum"], json!(42), "{chart}");
    let (last, step, max) = (
        chart["last"].as_f64().unwrap(),
        chart["step"].as_f64().unwrap(),
        chart["max"].as_f64().unwrap(),
    );
    assert!(
        max >= last + step,
        "the x axis ends after the last bucket: {chart}"
    );
    if chart["lastCount"].as_u64().unwrap() > 0 {
        let note = b.text("#chart-note").await;
        assert!(note.contains("partial"), "{note}");
    }
    let browsers = b.text("#top-browsers").await;
    assert!(
        browsers.contains("Safari") && browsers.contains("21"),
        "{browsers}"
    );
    b.screenshot("dashboard-loaded.png").await;
    b.client
        .execute(
            "document.getElementById('top-countries').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("dashboard-loaded-breakdowns.png").await;

    // On a phone, the breakdowns keep their numbers.
    b.client.set_window_size(390, 844).await.unwrap();
    let shown = b
        .client
        .execute(
            "return [...document.querySelectorAll('#top-browsers td.num')]
                 .map(td => getComputedStyle(td).display !== 'none' && td.offsetWidth > 0 ? td.textContent : '')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shown, json!(["21", "21"]), "numbers on a phone");
    let tables = b.count(".links td").await;
    assert_eq!(tables, 0, "not the links table");
    b.screenshot("dashboard-loaded-phone.png").await;
    b.client
        .execute(
            "document.getElementById('top-browsers').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("dashboard-loaded-phone-breakdowns.png").await;
    b.close().await;
}

/// A smart link's dashboard shows its clicks per rule and per variant; a
/// plain link's has no such panels.
#[tokio::test]
async fn the_dashboard_shows_rules_and_variants_of_a_smart_link() {
    let app = TestApp::spawn().await;
    app.create(json!({
        "url": "https://example.com/", "slug": "launch",
        "rules": [
            {"id": "phones", "if": [{"device": ["mobile"]}], "target": "https://example.com/app"},
            {"id": "hero-test", "split": [
                {"id": "blue", "target": "https://example.com/blue", "weight": 1},
                {"id": "green", "target": "https://example.com/green", "weight": 1}
            ]}
        ]
    }))
    .await;
    app.create_slug("plain", "https://example.com/plain").await;
    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let mut variants = [0u64; 2];
    for i in 0..40 {
        let ua = if i % 4 == 0 {
            IPHONE.to_owned()
        } else {
            format!("{CHROME} visitor/{i}")
        };
        let res = app
            .click_as("/launch", &ua, &format!("198.51.100.{i}"))
            .await;
        match res.headers()["location"].to_str().unwrap() {
            "https://example.com/blue" => variants[0] += 1,
            "https://example.com/green" => variants[1] += 1,
            other => assert_eq!(other, "https://example.com/app"),
        }
    }
    assert_eq!(variants[0] + variants[1], 30);
    app.click("/plain").await;
    app.wait_for_clicks("launch", "", 40).await;
    app.wait_for_clicks("plain", "", 1).await;
    // A variant's own stats may trail the link's by a batch (DynamoDB).
    for (variant, n) in ["blue", "green"].iter().zip(variants) {
        app.wait_for_clicks("launch", &format!("variant={variant}"), n)
            .await;
    }

    let b = Browser::start().await;
    sign_in(&b, &app).await;
    b.client.goto(&app.url("/links/launch")).await.unwrap();
    b.wait_text("#total", Duration::from_secs(5), |t| t == "40")
        .await;
    b.wait_text("#top-rules", Duration::from_secs(5), |t| {
        t.contains("hero-test")
    })
    .await;
    let rules = b.text("#top-rules").await;
    assert_eq!(rules, "hero-test 30\nphones 10");
    // The feed says which way each click went.
    b.wait_text("#feed li", Duration::from_secs(5), |t| {
        t.contains(" · rule ")
    })
    .await;
    // Each variant's clicks and unique visitors (one visitor a click
    // here), side by side.
    b.wait_text("#top-variants", Duration::from_secs(5), |t| {
        t.contains("visitors")
    })
    .await;
    let shown = b.text("#top-variants").await;
    for (name, n) in ["blue", "green"].iter().zip(variants) {
        if n > 0 {
            assert!(
                shown.contains(&format!("{name} {n} {n} visitors")),
                "{shown:?}"
            );
        }
    }
    b.client
        .execute(
            "document.getElementById('top-rules').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("dashboard-smart.png").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.client
        .execute(
            "document.getElementById('top-variants').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("dashboard-smart-phone.png").await;
    b.client.set_window_size(1280, 1000).await.unwrap();

    // A plain link: the panels stay hidden.
    b.client.goto(&app.url("/links/plain")).await.unwrap();
    b.wait_text("#total", Duration::from_secs(5), |t| t == "1")
        .await;
    b.wait_text("#top-browsers", Duration::from_secs(5), |t| {
        t.contains("Firefox")
    })
    .await;
    let hidden = b
        .client
        .execute(
            "return ['top-rules', 'top-variants']
                 .map(id => document.getElementById(id).closest('section').hidden)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(hidden, json!([true, true]));
    b.close().await;
}

/// A protected link in a real browser: the form, a wrong password, then
/// the right one, followed to the target (a small page served here, so
/// the browser goes nowhere else).
#[tokio::test]
async fn the_password_form_of_a_protected_link() {
    let landing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!(
        "http://127.0.0.1:{}/landed",
        landing.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = landing.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let page = "<!doctype html><title>Landed</title><h1>Landed</h1>";
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                            page.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    let app = TestApp::spawn().await;
    app.create(json!({"url": target, "slug": "plans", "password": "swordfish"}))
        .await;

    let b = Browser::start().await;
    b.client.goto(&app.url("/plans")).await.unwrap();
    b.wait_text("h1", Duration::from_secs(5), |t| {
        t == "This link is protected"
    })
    .await;
    assert_labelled(&b).await;
    b.screenshot("password.png").await;
    b.fill("#password", "guess").await;
    b.click("form button.primary").await;
    let error = b.text("#password-error").await;
    assert_eq!(error, "That password is not right.");
    b.screenshot("password-wrong.png").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.screenshot("password-phone.png").await;
    b.client.set_window_size(1280, 1000).await.unwrap();

    b.fill("#password", "swordfish").await;
    b.click("form button.primary").await;
    b.wait_text("h1", Duration::from_secs(5), |t| t == "Landed")
        .await;
    assert_eq!(b.client.current_url().await.unwrap().as_str(), target);
    // Counted (headless Chromium names itself, so as a bot).
    app.wait_for_clicks("plans", "include_bots=true", 1).await;
    b.close().await;
}

/// The edit page of a link: rules written as JSON (a fault explained next
/// to them), listed in words once saved, then followed by the redirect; a
/// fallback and a preview set too. Screenshots at desktop and phone sizes.
#[tokio::test]
async fn rules_fallback_and_preview_are_edited_in_the_ui() {
    let app = TestApp::spawn().await;
    app.create_slug("editme", "https://example.com/home").await;
    let b = Browser::start().await;
    sign_in(&b, &app).await;
    b.client.goto(&app.url("/links/editme/edit")).await.unwrap();
    b.wait_text("#rule-list", Duration::from_secs(5), |t| {
        t.contains("No rules")
    })
    .await;
    assert_labelled(&b).await;

    // A rule with a mistake: explained, nothing saved.
    b.fill(
        "#rules",
        r#"[{"id": "ios", "if": [{"os": ["iphone"]}], "target": "https://example.com/ios"}]"#,
    )
    .await;
    b.click("form button.primary").await;
    let error = b.text("#rules-error").await;
    assert!(error.contains("iphone"), "{error}");
    b.screenshot("edit-rules-error.png").await;

    let rules = r#"[
  {"id": "ios", "if": [{"os": ["ios"]}, {"device": ["mobile"]}], "target": "https://example.com/ios"},
  {"id": "launch", "split": [
    {"id": "a", "target": "https://example.com/a", "weight": 3},
    {"id": "b", "target": "https://example.com/b", "weight": 1}]}
]"#;
    b.fill("#rules", rules).await;
    b.fill("#fallback_url", "https://example.com/over").await;
    b.fill("#preview_title", "The launch").await;
    b.fill("#preview_image", "https://cdn.example.com/launch.png")
        .await;
    b.click("form button.primary").await;
    b.wait_text(".notice", Duration::from_secs(5), |t| {
        t.starts_with("Saved")
    })
    .await;
    let listed = b.text("#rule-list").await;
    assert!(
        listed.contains("ios if OS is ios and device is mobile → https://example.com/ios"),
        "{listed}"
    );
    assert!(
        listed.contains(
            "launch if every visit → a 75% → https://example.com/a; b 25% → https://example.com/b"
        ),
        "{listed}"
    );
    b.screenshot("edit-rules.png").await;
    b.client
        .execute(
            "document.getElementById('preview_title').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("edit-preview.png").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.client
        .execute(
            "document.getElementById('rule-list').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("edit-rules-phone.png").await;
    b.close().await;

    // Saved: the API says so, and the redirect follows the rules.
    let link = app.link("editme").await;
    assert_eq!(link["rules"][1]["split"][0]["weight"], 3);
    assert_eq!(link["fallback_url"], "https://example.com/over");
    assert_eq!(link["preview"]["title"], "The launch");
    let res = app.click_as("/editme", IPHONE, "198.51.100.9").await;
    assert_eq!(res.headers()["location"], "https://example.com/ios");
}

/// What Slack's preview bot sees of a link with a preview, in a browser
/// that presents itself as Slack's.
#[tokio::test]
async fn a_preview_as_slack_fetches_it() {
    let app = TestApp::spawn().await;
    app.create(json!({
        "url": "https://example.com/sale", "slug": "sale",
        "preview": {"title": "Spring sale", "description": "30% off until Sunday."}
    }))
    .await;
    let b = Browser::start_with(&[
        "--user-agent=Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    ])
    .await;
    b.client.goto(&app.url("/sale")).await.unwrap();
    b.wait_text("h1", Duration::from_secs(5), |t| t == "Spring sale")
        .await;
    let tags = b
        .client
        .execute(
            "return [...document.querySelectorAll('meta[property^=og], meta[name^=twitter]')]
                 .map(m => (m.getAttribute('property') || m.getAttribute('name')) + '=' + m.content)",
            vec![],
        )
        .await
        .unwrap();
    let tags: Vec<String> = serde_json::from_value(tags).unwrap();
    assert!(
        tags.contains(&"og:title=Spring sale".to_owned()),
        "{tags:?}"
    );
    assert!(
        tags.contains(&"og:description=30% off until Sunday.".to_owned()),
        "{tags:?}"
    );
    assert!(
        tags.contains(&"twitter:card=summary".to_owned()),
        "{tags:?}"
    );
    assert_eq!(
        b.client.current_url().await.unwrap().as_str(),
        app.url("/sale")
    );
    b.screenshot("preview-as-slack.png").await;
    b.close().await;
    // Counted, as a bot.
    let stats = app.wait_for_clicks("sale", "include_bots=true", 1).await;
    assert_eq!(stats["top"]["devices"][0]["value"], "bot");
}

/// Webhooks in the UI: a refused URL says why; registered, the secret
/// shows once; the endpoint's page lists its messages and delivery log
/// (a link created after it), pauses and replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_managed_in_the_ui() {
    if crate::helpers::on_dynamodb() {
        return;
    }
    let app = TestApp::spawn_with(|c| {
        c.webhooks.webhooks_allow_private = true;
        c.webhooks.webhook_batch_wait = Duration::from_millis(50);
    })
    .await;
    let rx = crate::receiver_support::Receiver::start().await;
    let b = Browser::start().await;
    sign_in(&b, &app).await;
    b.click("a[href='/webhooks']").await;
    b.wait_text("h1", Duration::from_secs(5), |t| t == "Webhooks")
        .await;
    assert_labelled(&b).await;
    b.fill("#url", "ftp://example.com/").await;
    b.click("#new-webhook button.primary").await;
    b.wait_text("p.error", Duration::from_secs(5), |t| {
        t.contains("http or https")
    })
    .await;
    b.fill("#url", &rx.url()).await;
    b.click("input[name=ev_link_created]").await;
    b.fill("#description", "the CRM").await;
    b.click("#new-webhook button.primary").await;
    let secret = b.text("#secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(b.count("#endpoints tbody tr").await, 1);
    b.screenshot("webhooks.png").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.screenshot("webhooks-phone.png").await;
    b.client.set_window_size(1280, 1000).await.unwrap();

    // A link made now reaches the receiver, signed with that secret.
    app.create_slug("ui-hook", "https://example.com/").await;
    rx.wait_for(Duration::from_secs(10), "link.created", |r| {
        r.delivered().len() == 1
    })
    .await;
    assert!(crate::receiver_support::verifies(&secret, &rx.all()[0]));
    let listed: serde_json::Value = app
        .api(
            reqwest::Method::GET,
            "/api/v1/webhooks",
            Some(&app.admin_key),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let id = listed["webhooks"][0]["id"].as_str().unwrap().to_owned();
    crate::webhooks::wait_delivered(&app, &app.admin_key, &id, 1).await;
    b.click("#endpoints tbody a").await;
    b.wait_text("#messages tbody", Duration::from_secs(5), |t| {
        t.contains("link.created")
    })
    .await;
    assert!(b.text("#attempts tbody").await.contains("204"));
    b.screenshot("webhook.png").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.screenshot("webhook-phone.png").await;
    b.client.set_window_size(1280, 1000).await.unwrap();
    b.click("#messages button[value=replay]").await;
    b.wait_text("p.notice", Duration::from_secs(5), |t| {
        t.contains("goes out again")
    })
    .await;
    rx.wait_for(Duration::from_secs(10), "the replay", |r| {
        r.all().len() == 2
    })
    .await;
    b.click("button[value=disable]").await;
    b.wait_text("#disabled-reason", Duration::from_secs(5), |t| {
        t.contains("disabled by its owner")
    })
    .await;
    b.click("button[value=delete]").await;
    b.wait_text("h1", Duration::from_secs(5), |t| t == "Webhooks")
        .await;
    assert_eq!(b.count("#endpoints").await, 0);
    b.close().await;
}

/// The note of counted clicks (an import's counts), as a browser shows it
/// at desktop and phone widths (screenshots `dashboard-counted*.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_says_which_clicks_came_as_counts() {
    let app = TestApp::spawn().await;
    crate::compat::import_counts_only(&app, "bitly:default").await;
    let b = Browser::start().await;
    sign_in(&b, &app).await;
    b.client.goto(&app.url("/links/counted")).await.unwrap();
    let note = b.text("#counted-note").await;
    assert!(
        note.starts_with("12 of these clicks were imported as counts (from bitly:default)"),
        "{note}"
    );
    // Three days ago: in the all-time count, outside the default range.
    b.wait_text("#alltime", Duration::from_secs(5), |t| t == "12")
        .await;
    b.screenshot("dashboard-counted.png").await;
    b.client.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fits = b
        .client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "horizontal scroll on a phone");
    b.client
        .execute(
            "document.getElementById('counted-note').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("dashboard-counted-phone.png").await;
    b.close().await;
}
