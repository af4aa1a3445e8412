//! The admin pages ("Settings → API Tokens"): the seed's five steps walked
//! in a real headless Chromium over WebDriver, and the pages' defences
//! (CSRF, cookies, caching, the sign-in rate limit) over HTTP.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). Where they are missing the browser tests fail, saying so.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{key::Key, Client, ClientBuilder, Locator};
use serde_json::json;

/// The admin password the demo printed on its first start.
fn admin_password(demo: &Demo) -> String {
    demo.stdout
        .iter()
        .find_map(|l| l.split_once("sets your own): ").map(|(_, p)| p.to_owned()))
        .expect("the admin password is printed on first start")
}

fn sign_in_url(demo: &Demo) -> String {
    let line = demo
        .stdout
        .iter()
        .find(|l| l.starts_with("Admin: sign in at "))
        .expect("the demo says where to sign in");
    line["Admin: sign in at ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Where the screenshots of the main states go (referenced by the README).
fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

/// ChromeDriver and a headless Chromium session, closed on drop.
struct Browser {
    driver: Child,
    client: Option<Client>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        Browser::start_sized(1280, 900).await
    }

    /// A browser whose viewport is `width` × `height` CSS pixels.
    async fn start_sized(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver must be installed for the browser tests \
                 (Debian: apt-get install chromium chromium-driver)",
            );
        let mut browser = Browser {
            driver,
            client: None,
        };
        wait_for_listener(port);
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        // The demo's certificate is self-signed.
        caps.insert("acceptInsecureCerts".into(), json!(true));
        let mut options = json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
            "--disable-gpu", "--hide-scrollbars", format!("--window-size={width},{height}"),
        ]});
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        // A window is never narrower than 500 px: a phone's viewport is
        // emulated instead.
        if width < 500 {
            options["mobileEmulation"] = json!({"deviceMetrics": {
                "width": width, "height": height, "pixelRatio": 1.0, "touch": false,
            }});
        }
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("Chromium must start headless under chromedriver");
        browser.client = Some(client);
        browser
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Ends the WebDriver session (ChromeDriver stops on drop).
    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.unwrap();
        }
    }

    async fn find(&self, at: Locator<'_>) -> fantoccini::elements::Element {
        self.c().find(at).await.unwrap()
    }

    async fn click(&self, at: Locator<'_>) {
        self.find(at).await.click().await.unwrap();
    }

    /// Whether the current document has finished loading.
    async fn loaded(&self) -> bool {
        matches!(
            self.c()
                .execute("return document.readyState === 'complete';", vec![])
                .await,
            Ok(serde_json::Value::Bool(true))
        )
    }

    /// Clicks a link or submit button and waits until the next page has
    /// loaded: a click returns as soon as it is dispatched, and reading the
    /// page right after could read the old one.
    async fn follow(&self, at: Locator<'_>) {
        self.c()
            .execute("window.__before_click = true;", vec![])
            .await
            .unwrap();
        self.click(at).await;
        let started = Instant::now();
        loop {
            let left = self
                .c()
                .execute("return window.__before_click !== true;", vec![])
                .await;
            if matches!(left, Ok(serde_json::Value::Bool(true))) && self.loaded().await {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no new page 10 s after the click"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes a screenshot of the page; writes it over the README's copy in
    /// `docs/` only when `UPDATE_SCREENSHOTS=1` (running the tests leaves
    /// the checkout as it was).
    async fn screenshot(&self, name: &str) {
        let png = self.c().screenshot().await.unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
            "{name}: not a screenshot"
        );
        let path = docs_dir().join(name);
        if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
            std::fs::create_dir_all(docs_dir()).unwrap();
            std::fs::write(&path, png).unwrap();
        } else {
            assert!(
                path.is_file(),
                "{} is missing: rerun with UPDATE_SCREENSHOTS=1",
                path.display()
            );
        }
    }

    /// The path of the page the browser shows.
    async fn path(&self) -> String {
        self.c().current_url().await.unwrap().path().to_owned()
    }

    async fn text(&self, css: &str) -> String {
        self.c()
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Runs axe-core (the npm package, pinned by `cargo xtask provision`)
    /// in the page, and fails on any serious or critical violation, naming
    /// the rule and the elements.
    async fn axe(&self, state: &str) {
        let found = self.axe_violations().await;
        assert_eq!(
            found, "[]",
            "{state}: axe-core found serious or critical violations"
        );
    }

    /// axe-core's serious and critical violations on the page, as JSON.
    async fn axe_violations(&self) -> String {
        let source = std::fs::read_to_string(axe_core_js()).expect("axe-core is installed");
        let script = format!(
            "{source}\n;const done = arguments[arguments.length - 1];\
             axe.run(document, {{resultTypes: ['violations']}}).then(r => done(JSON.stringify(\
               r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => ({{id: v.id, impact: v.impact, help: v.help,\
                   nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}}))\
             ))).catch(e => done('axe failed: ' + e));"
        );
        let found = self.c().execute_async(&script, vec![]).await.unwrap();
        found.as_str().expect("axe answers").to_owned()
    }

    /// Fails if the document is wider than the viewport (a page a phone
    /// scrolls sideways), or, on the desktop, a table runs past `main`.
    async fn fits(&self, state: &str) {
        let measured = self
            .c()
            .execute(
                "const main = document.querySelector('main').getBoundingClientRect();\
                 const tables = [...document.querySelectorAll('table')]\
                   .filter(t => t.offsetParent !== null)\
                   .map(t => t.getBoundingClientRect().right - main.right);\
                 return [document.documentElement.scrollWidth, window.innerWidth, Math.max(0, ...tables)];",
                vec![],
            )
            .await
            .unwrap();
        let [doc, viewport, past_main] = [0, 1, 2].map(|i| measured[i].as_f64().unwrap());
        assert!(
            doc <= viewport,
            "{state}: the page is {doc} px wide in a {viewport} px viewport"
        );
        assert!(
            past_main <= 0.5,
            "{state}: a table runs {past_main} px past the main column"
        );
    }

    /// Every check of a state: axe, the width, and (where named) the
    /// README's screenshot.
    async fn check(&self, state: &str, screenshot: Option<&str>) {
        self.axe(state).await;
        self.fits(state).await;
        if let Some(name) = screenshot {
            self.screenshot(name).await;
        }
    }

    /// The text of the focused element's `id`, or its text when it has none.
    async fn focused(&self) -> String {
        let v = self
            .c()
            .execute(
                "const e = document.activeElement;\
                 return e.id || (e.tagName.toLowerCase() + ':' + (e.textContent || '').trim());",
                vec![],
            )
            .await
            .unwrap();
        v.as_str().unwrap().to_owned()
    }

    /// Presses `key` on the focused element.
    async fn press(&self, key: &str) {
        self.c()
            .active_element()
            .await
            .unwrap()
            .send_keys(key)
            .await
            .unwrap();
    }

    /// Tabs until `want` is focused (at most 40 presses); the elements
    /// focused on the way, each checked to be visible with a focus
    /// outline.
    async fn tab_to(&self, want: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..40 {
            self.press(&Key::Tab).await;
            let now = self.focused().await;
            let shown = self
                .c()
                .execute(
                    "const e = document.activeElement; const r = e.getBoundingClientRect();\
                     return r.width > 0 && r.height > 0 && getComputedStyle(e).outlineStyle !== 'none';",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(shown, json!(true), "{now}: focused but not visibly");
            seen.push(now.clone());
            if now == want {
                return seen;
            }
        }
        panic!("{want} never took the focus: {seen:?}");
    }

    /// Waits until the page at `path` has loaded.
    async fn wait_for_path(&self, path: &str) {
        let started = Instant::now();
        while !(self.path().await.ends_with(path) && self.loaded().await) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never reached {path}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of the form field `id`.
    async fn value(&self, id: &str) -> String {
        self.find(Locator::Id(id))
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    async fn displayed(&self, css: &str) -> bool {
        self.find(Locator::Css(css))
            .await
            .is_displayed()
            .await
            .unwrap()
    }

    async fn fill(&self, id: &str, text: &str) {
        let field = self.find(Locator::Id(id)).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Submits the page's main form and waits for the answer.
    async fn submit(&self) {
        self.follow(Locator::Css("main form button[type=submit]"))
            .await;
    }

    /// Fails unless the element at `css` says `text`.
    async fn shows(&self, css: &str, text: &str) {
        let shown = self.text(css).await;
        assert!(shown.contains(text), "{css} says {shown:?}, not {text:?}");
    }

    async fn sign_in(&self, url: &str, password: &str) {
        self.c().goto(url).await.unwrap();
        let field = self.c().find(Locator::Id("password")).await.unwrap();
        field.send_keys(password).await.unwrap();
        self.submit().await;
    }
}

/// The seed's flow, step by step, in Chromium; then the token works with a
/// real HTTP client, is revoked in the UI, and never shows again.
#[tokio::test]
async fn the_seeds_five_steps_in_a_real_browser_then_revoke() {
    if !have(&[Tool::Chromedriver]) {
        return;
    }
    let demo = Demo::start(&data_dir());
    let browser = Browser::start().await;
    let b = browser.c();

    // 1. Sign in.
    browser
        .sign_in(&sign_in_url(&demo), &admin_password(&demo))
        .await;
    // 2. Settings → API Tokens.
    assert!(browser.path().await.ends_with("/admin/tokens"));
    assert_eq!(browser.text("h1").await, "API Tokens");
    browser.shows("nav", "Settings").await;

    // 3. Create token.
    browser.follow(Locator::LinkText("Create token")).await;
    assert_eq!(browser.text("h1").await, "Create token");
    browser
        .shows("#scope-hint", "only the scopes this integration needs")
        .await;
    let coming_soon = b.find(Locator::Id("scope-customers-write")).await.unwrap();
    assert!(
        !coming_soon.is_enabled().await.unwrap(),
        "customers:write is disabled"
    );
    browser
        .shows("label[for=scope-customers-write]", "coming soon")
        .await;

    // 4. Name it and check the scopes.
    browser
        .find(Locator::Id("name"))
        .await
        .send_keys("order bot")
        .await
        .unwrap();
    browser.click(Locator::Id("scope-orders-read")).await;
    browser
        .find(Locator::Id("expires"))
        .await
        .select_by_value("30d")
        .await
        .unwrap();
    browser.submit().await;

    // 5. Copy the token: shown once.
    assert_eq!(browser.text("h1").await, "Token created");
    browser.shows(".warning", "will not be shown again").await;
    let token = browser.text("#token").await;
    assert!(
        token.starts_with("nvl_live_") && token.len() == 81,
        "{token}"
    );
    let url = b.current_url().await.unwrap();
    assert!(!url.as_str().contains(&token[9..]), "never in a URL");
    let copy = b.find(Locator::Id("copy")).await.unwrap();
    copy.click().await.unwrap();
    let started = Instant::now();
    while copy.text().await.unwrap() != "Copied"
        || browser.text("#copy-status").await != "Token copied to the clipboard."
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the copy button answers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The token works with a real HTTP client.
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );

    // Reloading never shows it again (a resubmitted form mints nothing);
    // neither does going back, or opening the list.
    let listed_before = demo.cli(&["tokens", "list"]).stdout;
    let _ = b.refresh().await;
    assert!(
        !b.source().await.unwrap().contains(&token[9..]),
        "not after a reload"
    );
    b.back().await.unwrap();
    assert!(
        !b.source().await.unwrap().contains(&token[9..]),
        "not after going back"
    );
    b.goto(&format!("{}/admin/tokens", demo.base()))
        .await
        .unwrap();
    let list = b.source().await.unwrap();
    assert!(!list.contains(&token[9..]), "not in the list");
    assert!(list.contains("order bot"));
    assert_eq!(
        demo.cli(&["tokens", "list"]).stdout.len(),
        listed_before.len(),
        "the reload minted no second token"
    );

    // Revoke, after a confirmation that says it is irreversible.
    let id = &token[9..25];
    browser
        .follow(Locator::Css(&format!("tr[data-token-id='{id}'] a.danger")))
        .await;
    assert_eq!(browser.text("h1").await, "Revoke token");
    browser.shows(".warning", "cannot be undone").await;
    browser
        .follow(Locator::Css("main form button.danger"))
        .await;
    assert!(browser.path().await.ends_with("/admin/tokens"));
    // Revoked: in the collapsed section of ended tokens.
    browser.click(Locator::Css("details.ended summary")).await;
    let status = browser
        .text(&format!("tr[data-token-id='{id}'] .status"))
        .await;
    assert_eq!(status, "revoked (manual)");
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        401
    );

    // Issue #22 (5): signing out removes the `__Host-` cookie from the
    // browser (a removal cookie without `Secure` is refused by Chromium),
    // and the pages ask for the password again.
    let session_cookie = || async {
        b.get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name() == "__Host-nuvlyx-admin")
    };
    assert!(session_cookie().await.is_some(), "signed in: a cookie");
    browser
        .follow(Locator::Css("form[action='/admin/sign-out'] button"))
        .await;
    assert!(browser.path().await.ends_with("/admin/sign-in"));
    assert_eq!(
        session_cookie().await.map(|c| c.value().to_owned()),
        None,
        "the session cookie outlived the sign-out"
    );
    b.goto(&format!("{}/admin/tokens", demo.base()))
        .await
        .unwrap();
    assert!(browser.path().await.ends_with("/admin/sign-in"));
    browser.close().await;
}

/// Serves one page on another site (`localhost` is not `127.0.0.1`) whose
/// form posts, on load, to the admin's "Suspend store".
fn attacker_site(target: &str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = format!(
        "<!doctype html><body onload=\"document.forms[0].submit()\">\
         <form method=post action=\"{target}/admin/store/suspend\">\
         <input name=csrf value=guessed></form></body>"
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut line = String::new();
            let mut r = BufReader::new(s.try_clone().unwrap());
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    port
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused() {
    if !have(&[Tool::Chromedriver]) {
        return;
    }
    let demo = Demo::start(&data_dir());
    let browser = Browser::start().await;
    browser
        .sign_in(&sign_in_url(&demo), &admin_password(&demo))
        .await;
    assert_eq!(browser.text("h1").await, "API Tokens");
    // The signed-in admin visits another site, which posts to the admin.
    let port = attacker_site(&demo.base());
    browser
        .c()
        .goto(&format!("http://localhost:{port}/"))
        .await
        .unwrap();
    let started = Instant::now();
    // Until the browser shows the admin's answer, loaded.
    while !(browser
        .c()
        .current_url()
        .await
        .unwrap()
        .as_str()
        .starts_with(&demo.base())
        && browser.loaded().await)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the form was posted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(browser
        .c()
        .source()
        .await
        .unwrap()
        .contains("Request refused"));
    browser
        .c()
        .goto(&format!("{}/admin/tokens", demo.base()))
        .await
        .unwrap();
    assert!(
        browser.text(".store").await.contains("is active"),
        "the store was not suspended"
    );
    browser.close().await;
}

/// An HTTPS client of the demo with a cookie jar (the admin's browser,
/// minus the browser).
fn http(demo: &Demo) -> reqwest::Client {
    http_builder(demo).build().unwrap()
}

/// What every HTTPS client of these tests starts from.
fn http_builder(demo: &Demo) -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(demo.dir.join("cert.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
}

/// `POST url` with a form body.
async fn post_form<T: serde::Serialize + ?Sized>(
    client: &reqwest::Client,
    url: String,
    form: &T,
) -> reqwest::Response {
    client.post(url).form(form).send().await.unwrap()
}

/// Fills the create form (its CSRF token and a fresh nonce) with `name`
/// and one scope, and submits it.
async fn submit_new_token(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    scope: &str,
) -> reqwest::Response {
    let page = fetch_page(client, format!("{base}/admin/tokens/new")).await;
    post_form(
        client,
        format!("{base}/admin/tokens"),
        &[
            ("csrf", field(&page, "csrf").as_str()),
            ("nonce", field(&page, "nonce").as_str()),
            ("name", name),
            ("scopes", scope),
        ],
    )
    .await
}

/// The body of `GET url`.
async fn fetch_page(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The value of `name="{field}" value="…"` in a page.
fn field(page: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + key.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

async fn signed_in_http(demo: &Demo) -> reqwest::Client {
    let client = http(demo);
    let res = post_form(
        &client,
        format!("{}/admin/sign-in", demo.base()),
        &[("password", admin_password(demo))],
    )
    .await;
    assert_eq!(res.status(), 303);
    client
}

#[tokio::test]
async fn the_session_cookie_is_secure_httponly_strict_and_renewed_at_sign_in() {
    let demo = Demo::start(&data_dir());
    let client = http(&demo);
    let res = client
        .post(format!("{}/admin/sign-in", demo.base()))
        // A session id chosen by an attacker (fixation) is not kept.
        .header("cookie", "__Host-nuvlyx-admin=attacker-chosen-id")
        .form(&[("password", admin_password(&demo))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-nuvlyx-admin="), "{cookie}");
    assert!(!cookie.contains("attacker-chosen-id"), "{cookie}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Domain="), "{cookie}");
    // Signing in again gives another id.
    let again = post_form(
        &client,
        format!("{}/admin/sign-in", demo.base()),
        &[("password", admin_password(&demo))],
    )
    .await;
    let renewed = again.headers()["set-cookie"].to_str().unwrap();
    assert_ne!(
        renewed.split(';').next(),
        cookie.split(';').next(),
        "a new session id at each sign-in"
    );
}

#[tokio::test]
async fn the_page_showing_a_token_is_no_store_and_forms_need_their_csrf_token() {
    let demo = Demo::start(&data_dir());
    let client = signed_in_http(&demo).await;
    let base = demo.base();
    let form = client
        .get(format!("{base}/admin/tokens/new"))
        .send()
        .await
        .unwrap();
    let csp = form.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let page = form.text().await.unwrap();
    assert!(!page.contains("<script>"), "no inline script");
    let (csrf, nonce) = (field(&page, "csrf"), field(&page, "nonce"));
    let body = [
        ("csrf", csrf.as_str()),
        ("nonce", nonce.as_str()),
        ("name", "http bot"),
        ("scopes", "orders:read"),
        ("scopes", "products:read"),
        ("expires", "never"),
    ];
    let created = post_form(&client, format!("{base}/admin/tokens"), &body).await;
    assert_eq!(created.status(), 200);
    assert_eq!(created.headers()["cache-control"], "no-store");
    assert!(created.headers().get("location").is_none());
    let page = created.text().await.unwrap();
    let token = page[page.find("nvl_live_").unwrap()..][..81].to_owned();
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );
    // The same form again (a resubmission): nothing minted, nothing shown.
    let again = post_form(&client, format!("{base}/admin/tokens"), &body).await;
    assert_eq!(again.status(), 409);
    assert!(!again.text().await.unwrap().contains("nvl_live_"));

    // Without the CSRF token, with a wrong one, or from another origin:
    // refused, and nothing changes.
    for (csrf, origin) in [
        ("", None),
        ("0123456789abcdef0123456789abcdef", None),
        (csrf.as_str(), Some("https://evil.example")),
    ] {
        let mut req = client
            .post(format!("{base}/admin/store/suspend"))
            .form(&[("csrf", csrf)]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        assert_eq!(
            req.send().await.unwrap().status(),
            403,
            "{csrf:?} {origin:?}"
        );
    }
    let list = fetch_page(&client, format!("{base}/admin/tokens")).await;
    assert!(list.contains("is active"));
    // A coming-soon scope cannot be granted, even by a crafted form.
    let crafted = submit_new_token(&client, &base, "crafted", "customers:write").await;
    assert_eq!(crafted.status(), 422);
    assert!(!crafted.text().await.unwrap().contains("nvl_live_"));
    let listed = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
    assert!(!listed.contains("crafted"));
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited() {
    let demo = Demo::start(&data_dir());
    let client = http(&demo);
    let url = format!("{}/admin/sign-in", demo.base());
    for _ in 0..5 {
        let res = client
            .post(&url)
            .form(&[("password", "not the password")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    // Now even the right password waits.
    let res = client
        .post(&url)
        .form(&[("password", admin_password(&demo))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 14 * 60, "{wait}");
    assert!(res.headers().get("set-cookie").is_none(), "not signed in");
}

/// An HTTPS client of the demo whose connections come from `ip` (an
/// address of the loopback range: the server sees it as the peer).
fn http_from(demo: &Demo, ip: &str) -> reqwest::Client {
    http_builder(demo)
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// The demo server's peak resident memory (`VmHWM`), in MiB.
fn peak_rss_mib(demo: &Demo) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", demo.child.id())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024
}

/// Sends `password` from each client at once; the statuses.
async fn sign_in_all(clients: &[reqwest::Client], url: &str, password: &str) -> Vec<u16> {
    let sends = clients.iter().map(|c| {
        let (c, url, password) = (c.clone(), url.to_owned(), password.to_owned());
        tokio::spawn(async move {
            c.post(url)
                .form(&[("password", password)])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let mut out = Vec::new();
    for s in sends.collect::<Vec<_>>() {
        out.push(s.await.unwrap());
    }
    out
}

/// Issue #22 (6): the page refuses a second live token with a name the
/// store already has, says why in the form, and mints nothing.
#[tokio::test]
async fn the_page_refuses_a_second_live_token_with_the_same_name() {
    let demo = Demo::start(&data_dir());
    demo.create("ci bot", "orders:read");
    let client = signed_in_http(&demo).await;
    let base = demo.base();
    let listed = demo.cli(&["tokens", "list"]).stdout;
    let res = submit_new_token(&client, &base, "ci bot", "orders:read").await;
    assert!(res.status().is_client_error(), "{}", res.status());
    let body = res.text().await.unwrap();
    assert!(!body.contains("nvl_live_"), "a token was shown");
    assert!(
        body.contains("A live token is already named “ci bot”")
            && body.contains("id=\"name-error\"")
            && body.contains("role=\"alert\""),
        "{body}"
    );
    assert_eq!(
        demo.cli(&["tokens", "list"]).stdout,
        listed,
        "nothing minted"
    );
}

/// Issue #22 (1): 150 concurrent wrong sign-ins from one address check at
/// most 5 passwords (counted before hashing, one at a time per address);
/// 150 from 150 addresses are all checked, at most two at a time, so the
/// server's peak memory stays far below what 150 Argon2id hashes at once
/// take (19 MiB each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ins_check_few_passwords_and_bound_memory() {
    let demo = Demo::start(&data_dir());
    let url = format!("{}/admin/sign-in", demo.base());
    let one = http_from(&demo, "127.0.0.2");
    let statuses = sign_in_all(&vec![one; 150], &url, "not the password").await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    eprintln!(
        "one address: {checked} checked, {refused} refused; peak RSS {} MiB",
        peak_rss_mib(&demo)
    );
    assert!(checked <= 5, "{checked} passwords checked for one address");
    assert_eq!(checked + refused, 150, "{statuses:?}");

    let many: Vec<_> = (0..150)
        .map(|i| http_from(&demo, &format!("127.0.1.{}", i + 1)))
        .collect();
    let started = Instant::now();
    let statuses = sign_in_all(&many, &url, "not the password").await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let peak = peak_rss_mib(&demo);
    eprintln!(
        "150 addresses: all checked in {:?}; peak RSS {peak} MiB",
        started.elapsed()
    );
    assert!(peak < 200, "peak RSS {peak} MiB");
}

/// Issue #22 (2): five wrong guesses from each of 21 addresses do not lock
/// the admin out: during the attack and after it, the right password from
/// an address the attacker does not control signs in within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_guesses_from_many_addresses_never_lock_out_the_right_password() {
    let demo = Demo::start(&data_dir());
    let url = format!("{}/admin/sign-in", demo.base());
    let password = admin_password(&demo);
    let attackers: Vec<_> = (0..21)
        .map(|i| http_from(&demo, &format!("127.0.2.{}", i + 1)))
        .collect();
    let attack = {
        let (attackers, url) = (attackers.clone(), url.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..5 {
                statuses.extend(sign_in_all(&attackers, &url, "not the password").await);
            }
            statuses
        })
    };
    let sign_in_from = |ip: &'static str| {
        let (client, url, password) = (http_from(&demo, ip), url.clone(), password.clone());
        async move {
            let started = Instant::now();
            loop {
                let res = client
                    .post(&url)
                    .form(&[("password", &password)])
                    .send()
                    .await
                    .unwrap();
                if res.status() == 303 {
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "the right password is refused: {}",
                    res.status()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = sign_in_from("127.0.3.1").await;
    let statuses = attack.await.unwrap();
    assert_eq!(statuses.len(), 105);
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // The attacker's addresses are used up; everyone else is not.
    let sixth = sign_in_all(&attackers, &url, &password).await;
    assert!(sixth.iter().all(|s| *s == 429), "{sixth:?}");
    let after = sign_in_from("127.0.3.2").await;
    eprintln!("signed in during the attack in {during:?}, after it in {after:?}");
}

#[test]
fn the_password_is_set_from_stdin_and_stored_only_as_an_argon2id_hash() {
    let demo = Demo::start(&data_dir());
    let out = demo.cli_with_stdin(&["admin", "set-password"], "correct horse battery staple\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = std::fs::read_to_string(demo.dir.join("admin-password")).unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains("correct horse"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(demo.dir.join("admin-password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let short = demo.cli_with_stdin(&["admin", "set-password"], "short\n");
    assert!(!short.status.success());
    // The running server takes the new password at once.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = http(&demo);
        let res = post_form(
            &client,
            format!("{}/admin/sign-in", demo.base()),
            &[("password", "correct horse battery staple")],
        )
        .await;
        assert_eq!(res.status(), 303);
    });
}

/// Rotate with a grace period (the new token shown once, the old one
/// working and listed as in rotation grace), then suspend and reinstate
/// the store from the same page.
#[tokio::test]
async fn rotation_and_suspension_from_the_tokens_page() {
    let demo = Demo::start(&data_dir());
    let old = demo.create("deploy bot", "orders:read");
    let id = &old[9..25];
    let client = signed_in_http(&demo).await;
    let base = demo.base();
    let form = fetch_page(&client, format!("{base}/admin/tokens/{id}/rotate")).await;
    assert!(form.contains("Grace period"));
    let res = post_form(
        &client,
        format!("{base}/admin/tokens/{id}/rotate"),
        &[
            ("csrf", field(&form, "csrf").as_str()),
            ("nonce", field(&form, "nonce").as_str()),
            ("grace", "1h"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = res.text().await.unwrap();
    assert!(page.contains("Token rotated") && page.contains("keeps working until"));
    let new = page[page.find("nvl_live_").unwrap()..][..81].to_owned();
    assert_ne!(new, old);
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&new)).0,
        200
    );
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&old)).0,
        200
    );
    let list = fetch_page(&client, format!("{base}/admin/tokens")).await;
    assert!(list.contains("in rotation grace until"), "{list}");
    assert!(!list.contains(&new[9..]) && !list.contains(&old[9..]));

    let csrf = field(&list, "csrf");
    let suspend = post_form(
        &client,
        format!("{base}/admin/store/suspend"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(suspend.status(), 303);
    assert!(fetch_page(&client, format!("{base}/admin/tokens"))
        .await
        .contains("suspended"));
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&new)).0,
        401
    );
    let reinstate = post_form(
        &client,
        format!("{base}/admin/store/reinstate"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(reinstate.status(), 303);
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&new)).0,
        200
    );
}

/// Issue #25: the create form sets a budget and an allowlist; a bad one is
/// refused with the reason and nothing is minted; the list shows the
/// limits, and the token is refused from outside its allowlist.
#[tokio::test]
async fn the_create_form_sets_limits_and_the_list_shows_them() {
    if !have(&[Tool::Chromedriver]) {
        return;
    }
    let demo = Demo::start(&data_dir());
    let browser = Browser::start().await;
    let b = browser.c();
    browser
        .sign_in(&sign_in_url(&demo), &admin_password(&demo))
        .await;
    let fill = |id: &'static str, text: &'static str| {
        let browser = &browser;
        async move {
            let field = browser.find(Locator::Id(id)).await;
            field.clear().await.unwrap();
            field.send_keys(text).await.unwrap();
        }
    };
    browser.follow(Locator::LinkText("Create token")).await;
    fill("name", "limited bot").await;
    browser.click(Locator::Id("scope-orders-read")).await;
    fill("rate_limit", "600/fortnight").await;
    fill("allowed_ips", "203.0.113.0/24").await;
    browser.submit().await;
    assert!(
        browser.text("main").await.contains("Rate limit:"),
        "the reason is shown"
    );
    let listed = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
    assert!(!listed.contains("limited bot"), "nothing minted: {listed}");

    fill("name", "limited bot").await;
    if !browser
        .find(Locator::Id("scope-orders-read"))
        .await
        .is_selected()
        .await
        .unwrap()
    {
        browser.click(Locator::Id("scope-orders-read")).await;
    }
    fill("rate_limit", "600/min burst 100").await;
    fill("allowed_ips", "203.0.113.0/24, 2001:db8::/32").await;
    browser.submit().await;
    assert_eq!(browser.text("h1").await, "Token created");
    let token = browser.text("#token").await;
    // From 127.0.0.1, outside the list: refused once verified.
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        403
    );
    b.goto(&format!("{}/admin/tokens", demo.base()))
        .await
        .unwrap();
    let row = browser.text("tbody tr").await;
    assert!(row.contains("limited bot"), "{row}");
    assert!(
        row.contains("600/min burst 100\nfrom 203.0.113.0/24, 2001:db8::/32"),
        "{row}"
    );
}

/// Revokes every token of the demo store from the CLI (the list's empty
/// state).
fn revoke_all(demo: &Demo) {
    let listed = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
    for line in listed.lines().skip(1) {
        let id = line.split_whitespace().next().unwrap();
        if line.contains(" active ") {
            assert!(demo.cli(&["tokens", "revoke", id]).status.success());
        }
    }
}

/// Issue #26: every state of the admin pages, in Chromium at `width`
/// pixels: axe-core finds no serious or critical violation, the page is
/// no wider than the viewport (and, on the desktop, no table runs past the
/// main column), and each item of the issue holds. `shots` names the
/// screenshots of this width (the desktop walk takes one per state).
async fn walk_every_state(width: u32, height: u32, phone: bool) {
    let demo = Demo::start(&data_dir());
    let browser = Browser::start_sized(width, height).await;
    let b = browser.c();
    let shot = |desktop: &'static str, on_phone: Option<&'static str>| {
        if phone {
            on_phone
        } else {
            Some(desktop)
        }
    };
    let password = admin_password(&demo);

    // Sign-in, and a wrong password.
    b.goto(&sign_in_url(&demo)).await.unwrap();
    let viewport = b
        .execute("return window.innerWidth;", vec![])
        .await
        .unwrap();
    assert_eq!(viewport, json!(width), "the viewport is {width} px wide");
    browser
        .check("sign-in", shot("admin-sign-in.png", None))
        .await;
    // The check can fail: a field without a label, added to the page, is
    // found.
    b.execute(
        "document.querySelector('main').insertAdjacentHTML('beforeend', '<input type=text>');",
        vec![],
    )
    .await
    .unwrap();
    let found = browser.axe_violations().await;
    assert!(
        found.contains("\"id\":\"label\""),
        "axe missed an unlabelled field: {found}"
    );
    b.refresh().await.unwrap();
    browser.fill("password", "not the password").await;
    browser.follow(Locator::Css("main form button")).await;
    assert_eq!(browser.text("#sign-in-error").await, "Wrong password.");
    browser
        .check("sign-in error", shot("admin-sign-in-error.png", None))
        .await;

    // The list: the demo token, with relative times and a skip link.
    browser.sign_in(&sign_in_url(&demo), &password).await;
    assert_eq!(browser.text("h1").await, "API Tokens");
    assert_eq!(
        browser.text(".skip").await,
        "",
        "the skip link shows on focus only"
    );
    let expires = browser.text("tbody tr td[data-label=Expires]").await;
    assert_eq!(expires, "in 24 hours", "the demo token's expiry in words");
    let exact = b
        .find(Locator::Css("tbody tr td[data-label=Expires] time"))
        .await
        .unwrap()
        .attr("datetime")
        .await
        .unwrap()
        .unwrap();
    assert!(exact.ends_with('Z') && exact.len() == 20, "{exact}");
    browser
        .check(
            "list",
            shot("admin-tokens.png", Some("admin-tokens-phone.png")),
        )
        .await;

    // Create: 30 days by default; "no expiry" warns; a custom date.
    browser
        .follow(Locator::Css("main a.button[href='/admin/tokens/new']"))
        .await;
    assert_eq!(browser.value("expires").await, "30d");
    assert!(!browser.displayed("#never-warning").await);
    assert!(!browser.displayed("#expires_on").await);
    browser
        .check(
            "create",
            shot("admin-create.png", Some("admin-create-phone.png")),
        )
        .await;
    let expires = browser.find(Locator::Id("expires")).await;
    expires.select_by_value("never").await.unwrap();
    assert!(browser.displayed("#never-warning").await, "no expiry warns");
    browser
        .check(
            "create, no expiry",
            shot("admin-create-no-expiry.png", None),
        )
        .await;
    expires.select_by_value("custom").await.unwrap();
    assert!(browser.displayed("#expires_on").await, "a custom date");

    // Errors: every field keeps what was typed, each error beside its field.
    browser.fill("name", "   ").await;
    browser.click(Locator::Id("scope-orders-read")).await;
    b.execute(
        "document.getElementById('expires_on').value = '2020-01-31';",
        vec![],
    )
    .await
    .unwrap();
    browser.fill("rate_limit", "600/min").await;
    browser.submit().await;
    browser.shows("#form-errors", "was not created").await;
    browser.shows("#name-error", "Give the token a name").await;
    browser
        .shows("#expires-error", "2020-01-31 is not in the future")
        .await;
    assert_eq!(browser.value("expires").await, "custom");
    assert_eq!(browser.value("expires_on").await, "2020-01-31");
    assert_eq!(browser.value("rate_limit").await, "600/min");
    assert!(browser
        .find(Locator::Id("scope-orders-read"))
        .await
        .is_selected()
        .await
        .unwrap());
    let name = browser.find(Locator::Id("name")).await;
    assert_eq!(
        name.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert!(name
        .attr("aria-describedby")
        .await
        .unwrap()
        .unwrap()
        .contains("name-error"));
    browser
        .check("create errors", shot("admin-create-errors.png", None))
        .await;

    // Created: shown once, whole, restated, with a usage example.
    browser.fill("name", "order bot").await;
    let in_40_days = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + Duration::from_secs(40 * 86_400),
    )
    .to_string();
    b.execute(
        &format!(
            "document.getElementById('expires_on').value = '{}';",
            &in_40_days[..10]
        ),
        vec![],
    )
    .await
    .unwrap();
    browser.submit().await;
    assert_eq!(browser.text("h1").await, "Token created");
    let token = browser.text("#token").await;
    assert!(
        token.starts_with("nvl_live_") && token.len() == 81,
        "{token}"
    );
    let inside = b
        .execute(
            "const r = document.getElementById('token').getBoundingClientRect();\
             return r.left >= 0 && r.right <= window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(inside, json!(true), "the whole token is visible");
    let summary = browser.text("dl.summary").await;
    assert!(
        summary.contains("order bot") && summary.contains("orders:read"),
        "{summary}"
    );
    assert!(
        summary.contains("in 40 days") || summary.contains("in 39 days"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("{} 00:00 UTC", &in_40_days[..10])),
        "{summary}"
    );
    let example = browser.text("pre.example").await;
    assert!(
        example.contains("read -rs NUVLYX_TOKEN") && example.contains("curl -H @-"),
        "{example}"
    );
    assert!(!example.contains("nvl_live_"), "never on a command line");
    browser.click(Locator::Id("copy")).await;
    let started = Instant::now();
    while browser.text("#copy-status").await != "Token copied to the clipboard." {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the copy is announced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .check(
            "shown once",
            shot("admin-shown-once.png", Some("admin-shown-once-phone.png")),
        )
        .await;
    let id = token[9..25].to_owned();

    // Limits: the budget either way, the allowlist only narrower.
    b.goto(&format!("{}/admin/tokens", demo.base()))
        .await
        .unwrap();
    browser
        .follow(Locator::Css(&format!(
            "tr[data-token-id='{id}'] a[href$='/limits']"
        )))
        .await;
    assert_eq!(browser.value("rate_limit").await, "600/min");
    browser.fill("rate_limit", "100/min burst 10").await;
    browser.fill("allowed_ips", "203.0.113.0/24").await;
    browser
        .check("limits", shot("admin-limits.png", None))
        .await;
    browser.submit().await;
    let limits = browser
        .text(&format!("tr[data-token-id='{id}'] td[data-label=Limits]"))
        .await;
    assert_eq!(limits, "100/min burst 10\nfrom 203.0.113.0/24");
    browser
        .follow(Locator::Css(&format!(
            "tr[data-token-id='{id}'] a[href$='/limits']"
        )))
        .await;
    browser.fill("allowed_ips", "0.0.0.0/0").await;
    browser.submit().await;
    browser
        .shows("#allowed_ips-error", "can only get narrower")
        .await;
    assert_eq!(browser.value("allowed_ips").await, "0.0.0.0/0", "kept");
    browser
        .check("limits error", shot("admin-limits-error.png", None))
        .await;

    // Rotate: the grace and when it ends, before it is applied.
    b.goto(&format!("{}/admin/tokens", demo.base()))
        .await
        .unwrap();
    browser
        .follow(Locator::Css(&format!(
            "tr[data-token-id='{id}'] a[href$='/rotate']"
        )))
        .await;
    browser
        .shows("label[for='grace-24h']", "the old token stops 20")
        .await;
    browser.shows("label[for='grace-0s']", "stops now").await;
    browser
        .check("rotate", shot("admin-rotate.png", None))
        .await;
    browser.click(Locator::Id("grace-1h")).await;
    browser.submit().await;
    assert_eq!(browser.text("h1").await, "Token rotated");
    browser.shows(".note", "keeps working until").await;
    let new_id = browser.text("#token").await[9..25].to_owned();

    // The list links the pair, from the record.
    b.goto(&format!("{}/admin/tokens", demo.base()))
        .await
        .unwrap();
    let old_row = browser.text(&format!("tr[data-token-id='{id}']")).await;
    assert!(
        old_row.contains(&format!("replaced by order bot ({new_id})")),
        "{old_row}"
    );
    assert!(
        old_row.contains("in rotation grace until in 1 hour"),
        "{old_row}"
    );
    let new_row = browser.text(&format!("tr[data-token-id='{new_id}']")).await;
    assert!(
        new_row.contains(&format!("replaces order bot ({id})")),
        "{new_row}"
    );
    browser
        .check(
            "list with a rotation",
            shot("admin-tokens-rotation.png", None),
        )
        .await;

    // Revoke: confirmed, then in the collapsed section.
    browser
        .follow(Locator::Css(&format!(
            "tr[data-token-id='{new_id}'] a.danger"
        )))
        .await;
    browser.shows(".warning", "cannot be undone").await;
    browser
        .check("revoke", shot("admin-revoke.png", None))
        .await;
    browser
        .follow(Locator::Css("main form button.danger"))
        .await;
    assert!(
        !browser
            .displayed(&format!("tr[data-token-id='{new_id}']"))
            .await,
        "collapsed"
    );
    browser.click(Locator::Css("details.ended summary")).await;
    assert!(
        browser
            .displayed(&format!("tr[data-token-id='{new_id}']"))
            .await
    );
    let actions = b
        .find_all(Locator::Css(&format!(
            "tr[data-token-id='{new_id}'] td[data-label=Actions]"
        )))
        .await
        .unwrap();
    assert!(
        actions.is_empty(),
        "no empty \"Actions\" cell for a revoked token"
    );
    browser
        .check(
            "list with ended tokens",
            shot(
                "admin-tokens-ended.png",
                Some("admin-tokens-ended-phone.png"),
            ),
        )
        .await;

    // Suspend: says what it does, and to how many tokens.
    browser
        .follow(Locator::Css("a.button.danger[href='/admin/store/suspend']"))
        .await;
    assert_eq!(browser.text("#suspend-count").await, "2 active tokens");
    browser
        .shows(".warning", "will answer 401 until you reinstate")
        .await;
    browser
        .check("suspend", shot("admin-suspend.png", None))
        .await;
    browser
        .follow(Locator::Css("main form button.danger"))
        .await;
    browser.shows(".store", "suspended").await;
    browser
        .check("suspended", shot("admin-suspended.png", None))
        .await;
    browser
        .follow(Locator::Css("form[action='/admin/store/reinstate'] button"))
        .await;
    browser.shows(".store", "is active").await;

    // Empty: a call to action.
    revoke_all(&demo);
    b.refresh().await.unwrap();
    browser.shows("#empty-state", "No active tokens").await;
    browser
        .check("empty", shot("admin-tokens-empty.png", None))
        .await;

    // The audit log.
    browser.follow(Locator::LinkText("Audit log")).await;
    let log = browser.text("main table").await;
    for action in [
        "sign_in",
        "token.created",
        "token.limits_changed",
        "token.rotated",
        "token.revoked",
        "store.suspended",
        "store.reinstated",
    ] {
        assert!(log.contains(action), "{action} in {log}");
    }
    assert!(log.contains("admin (sign-in "), "{log}");
    assert!(!log.contains(&token[25..]), "never a secret");
    browser
        .check(
            "audit log",
            shot("admin-audit.png", Some("admin-audit-phone.png")),
        )
        .await;

    // The sign-in limit says how long to wait, in words.
    browser
        .follow(Locator::Css("form[action='/admin/sign-out'] button"))
        .await;
    for _ in 0..5 {
        browser.fill("password", "not the password").await;
        browser.follow(Locator::Css("main form button")).await;
    }
    browser.fill("password", &password).await;
    browser.follow(Locator::Css("main form button")).await;
    let error = browser.text("#sign-in-error").await;
    assert!(
        error.contains("wait 15 minutes before you try again"),
        "{error}"
    );
    browser
        .check("sign-in limit", shot("admin-sign-in-limit.png", None))
        .await;
    browser.close().await;
}

#[tokio::test]
async fn every_state_at_1280_px_passes_axe_and_fits() {
    if !have(&[Tool::Chromedriver, Tool::AxeCore]) {
        return;
    }
    walk_every_state(1280, 900, false).await;
}

#[tokio::test]
async fn every_state_at_390_px_passes_axe_and_fits() {
    if !have(&[Tool::Chromedriver, Tool::AxeCore]) {
        return;
    }
    walk_every_state(390, 844, true).await;
}

/// Issue #26: signing in, creating a token and copying it with the
/// keyboard alone (Tab, Space, Enter): the focus goes in reading order,
/// always visibly, and the skip link leads to the content.
#[tokio::test]
async fn a_keyboard_alone_creates_and_copies_a_token() {
    if !have(&[Tool::Chromedriver]) {
        return;
    }
    let demo = Demo::start(&data_dir());
    let browser = Browser::start().await;
    let b = browser.c();
    b.goto(&sign_in_url(&demo)).await.unwrap();
    assert_eq!(browser.focused().await, "password", "autofocus");
    browser
        .press(&format!("{}{}", admin_password(&demo), &*Key::Enter))
        .await;
    browser.wait_for_path("/admin/tokens").await;

    // The skip link first, then the content.
    assert_eq!(browser.tab_to("a:Skip to main content").await.len(), 1);
    browser.press(&Key::Enter).await;
    assert_eq!(browser.focused().await, "main");
    browser.tab_to("a:Create token").await;
    browser.press(&Key::Enter).await;
    browser.wait_for_path("/admin/tokens/new").await;

    // The form, in reading order.
    let mut order = browser.tab_to("name").await;
    browser.press("keyboard bot").await;
    order.extend(browser.tab_to("scope-orders-read").await);
    browser.press(&Key::Space).await;
    order.extend(browser.tab_to("expires").await);
    order.extend(browser.tab_to("rate_limit").await);
    order.extend(browser.tab_to("allowed_ips").await);
    order.extend(browser.tab_to("button:Create token").await);
    let at = |id: &str| order.iter().position(|o| o == id).unwrap();
    assert!(
        at("a:Skip to main content") < at("a:API Tokens"),
        "{order:?}"
    );
    assert!(
        at("a:API Tokens") < at("button:Sign out") && at("button:Sign out") < at("name"),
        "{order:?}"
    );
    assert!(
        at("scope-products-read") < at("scope-orders-read"),
        "{order:?}"
    );
    assert!(
        !order.iter().any(|o| o == "scope-customers-write"),
        "disabled: not focusable"
    );
    assert!(
        !order.iter().any(|o| o == "expires_on"),
        "hidden until a custom date is chosen"
    );
    browser.press(&Key::Enter).await;
    browser.wait_for_path("/admin/tokens").await;
    assert_eq!(browser.text("h1").await, "Token created");
    browser.shows("dl.summary", "in 30 days").await;

    // Copy with Space; the result is announced.
    browser.tab_to("copy").await;
    browser.press(&Key::Space).await;
    let started = Instant::now();
    while browser.text("#copy-status").await != "Token copied to the clipboard." {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the copy is announced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.tab_to("a:Done: back to API Tokens").await;
    browser.press(&Key::Enter).await;
    browser.wait_for_path("/admin/tokens").await;
    browser.shows("main table", "keyboard bot").await;
    browser.close().await;
}

/// Issue #26: sudo mode. Once the sign-in is older than the window, the
/// pages that lead to a sensitive action ask for the password first (in
/// the browser, with axe), and a form posted later is held, with what was
/// typed, until the password is given again; a wrong one does nothing.
#[tokio::test]
async fn sudo_mode_asks_for_the_password_again_before_sensitive_actions() {
    if !have(&[Tool::Chromedriver, Tool::AxeCore]) {
        return;
    }
    let demo = Demo::start_with(&data_dir(), &["--admin-sudo-window", "2s"]);
    let password = admin_password(&demo);
    let base = demo.base();

    // Over HTTP: a create form posted after the window.
    let client = signed_in_http(&demo).await;
    let form = fetch_page(&client, format!("{base}/admin/tokens/new")).await;
    assert!(form.contains("Create token"), "fresh: the form itself");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fields = [
        ("csrf", field(&form, "csrf")),
        ("nonce", field(&form, "nonce")),
        ("name", "late bot".to_owned()),
        ("scopes", "orders:read".to_owned()),
        ("expires", "7d".to_owned()),
    ];
    let held = post_form(&client, format!("{base}/admin/tokens"), &fields).await;
    assert_eq!(held.status(), 403);
    let page = held.text().await.unwrap();
    assert!(
        page.contains("Confirm access") && page.contains("create a token"),
        "{page}"
    );
    assert!(
        page.contains("name=\"name\" value=\"late bot\""),
        "what was typed is carried"
    );
    assert!(!page.contains("nvl_live_"));
    let mut with = fields.to_vec();
    with.push(("sudo_password", "not the password".to_owned()));
    let wrong = post_form(&client, format!("{base}/admin/tokens"), &with).await;
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("Wrong password."));
    let listed = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
    assert!(!listed.contains("late bot"), "nothing minted: {listed}");
    with.pop();
    with.push(("sudo_password", password.clone()));
    let done = post_form(&client, format!("{base}/admin/tokens"), &with).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Token created"));
    // `/admin/sudo` goes on only to the pages that ask for it.
    let list = fetch_page(&client, format!("{base}/admin/tokens")).await;
    let res = post_form(
        &client,
        format!("{base}/admin/sudo"),
        &[
            ("csrf", field(&list, "csrf").as_str()),
            ("next", "https://evil.example/"),
        ],
    )
    .await;
    assert_eq!(res.headers()["location"], "/admin/tokens");
    let audit = String::from_utf8(demo.cli(&["admin", "audit"]).stdout).unwrap();
    assert!(
        audit.contains("  sudo  ") && audit.contains("create a token"),
        "{audit}"
    );

    // In the browser: Create token asks first, then shows the form.
    let browser = Browser::start().await;
    browser.sign_in(&sign_in_url(&demo), &password).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    browser
        .follow(Locator::Css("main a.button[href='/admin/tokens/new']"))
        .await;
    assert_eq!(browser.text("h1").await, "Confirm access");
    browser.check("sudo", Some("admin-sudo.png")).await;
    browser.fill("sudo_password", &password).await;
    browser.submit().await;
    assert_eq!(browser.text("h1").await, "Create token");
    assert!(browser.path().await.ends_with("/admin/tokens/new"));
    browser.close().await;
}

/// Fields typed into a form.
type Typed<'a> = &'a [(&'a str, &'a str)];

/// Issue #26: each wrong entry of the create form gets its own message
/// beside its field, the form keeps what was typed, and nothing is minted.
#[tokio::test]
async fn the_create_form_says_what_is_wrong_beside_each_field_and_keeps_the_rest() {
    let demo = Demo::start(&data_dir());
    demo.create("ci bot", "orders:read");
    let client = signed_in_http(&demo).await;
    let base = demo.base();
    let listed = demo.cli(&["tokens", "list"]).stdout;
    // (what is typed, the id of the error beside the field, its message)
    let cases: [(Typed, &str, &str); 6] = [
        (
            &[("name", "  "), ("scopes", "orders:read")],
            "name-error",
            "Give the token a name",
        ),
        (
            &[("name", "ci bot"), ("scopes", "orders:read")],
            "name-error",
            "A live token is already named “ci bot”",
        ),
        (
            &[
                ("name", "past"),
                ("scopes", "orders:read"),
                ("expires", "custom"),
                ("expires_on", "2020-01-31"),
            ],
            "expires-error",
            "The expiry date 2020-01-31 is not in the future",
        ),
        (
            &[
                ("name", "malformed"),
                ("scopes", "orders:read"),
                ("expires", "custom"),
                ("expires_on", "2030-02-30"),
            ],
            "expires-error",
            "“2030-02-30” is not a date",
        ),
        (
            &[("name", "forged"), ("scopes", "customers:write")],
            "scopes-error",
            "“customers:write” cannot be granted",
        ),
        (
            &[("name", "none")],
            "scopes-error",
            "Pick at least one scope.",
        ),
    ];
    for (typed, id, message) in cases {
        let page = fetch_page(&client, format!("{base}/admin/tokens/new")).await;
        let mut form = vec![
            ("csrf", field(&page, "csrf")),
            ("nonce", field(&page, "nonce")),
            ("rate_limit", "600/min".to_owned()),
        ];
        if !typed.iter().any(|(k, _)| *k == "expires") {
            form.push(("expires", "60d".to_owned()));
        }
        form.extend(typed.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let res = post_form(&client, format!("{base}/admin/tokens"), &form).await;
        assert_eq!(res.status(), 422, "{typed:?}");
        let body = res.text().await.unwrap();
        let error = &body[body
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} for {typed:?}"))..];
        assert!(
            error[..error.find("</p>").unwrap()].contains(message),
            "{message}: {error}"
        );
        assert!(!body.contains("nvl_live_"), "nothing shown");
        let name = typed
            .iter()
            .find(|(k, _)| *k == "name")
            .map_or("", |(_, v)| v);
        assert!(body.contains(&format!("name=\"name\" maxlength=\"100\" required placeholder=\"order bot\" value=\"{name}\"")), "the name is kept: {body}");
        assert!(body.contains("value=\"600/min\""), "the rate limit is kept");
        let expires = typed
            .iter()
            .find(|(k, _)| *k == "expires")
            .map_or("60d", |(_, v)| v);
        assert!(
            body.contains(&format!("value=\"{expires}\" selected")),
            "the expiry is kept"
        );
        if let Some((_, on)) = typed.iter().find(|(k, _)| *k == "expires_on") {
            assert!(
                body.contains(&format!("value=\"{on}\"")),
                "the custom date is kept"
            );
        }
        if typed.contains(&("scopes", "orders:read")) {
            assert!(
                body.contains("value=\"orders:read\" checked"),
                "the scope is kept"
            );
        }
    }
    assert_eq!(
        demo.cli(&["tokens", "list"]).stdout,
        listed,
        "nothing minted"
    );
}

/// Creates, rotates and revokes a token from the pages over HTTP; the
/// secrets of the two tokens.
async fn create_rotate_revoke(demo: &Demo, client: &reqwest::Client) -> [String; 2] {
    let base = demo.base();
    let res = submit_new_token(client, &base, "audited bot", "orders:read").await;
    let page = res.text().await.unwrap();
    let first = page[page.find("nvl_live_").unwrap()..][..81].to_owned();
    let id = &first[9..25];
    let form = fetch_page(client, format!("{base}/admin/tokens/{id}/rotate")).await;
    let res = post_form(
        client,
        format!("{base}/admin/tokens/{id}/rotate"),
        &[
            ("csrf", field(&form, "csrf").as_str()),
            ("nonce", field(&form, "nonce").as_str()),
            ("grace", "1h"),
        ],
    )
    .await;
    let page = res.text().await.unwrap();
    let second = page[page.find("nvl_live_").unwrap()..][..81].to_owned();
    let res = post_form(
        client,
        format!("{base}/admin/tokens/{}/revoke", &second[9..25]),
        &[("csrf", field(&form, "csrf").as_str())],
    )
    .await;
    assert_eq!(res.status(), 303);
    [first, second]
}

/// Issue #26: the audit log says who did what (the sign-in it came from
/// and its address) and when, in the store's own database, and holds no
/// secret: neither the page, nor `admin audit`, nor any byte of the
/// database files.
#[tokio::test]
async fn the_audit_log_says_who_did_what_and_holds_no_secret() {
    let demo = Demo::start(&data_dir());
    let client = signed_in_http(&demo).await;
    let secrets = create_rotate_revoke(&demo, &client).await;
    let page = fetch_page(&client, format!("{}/admin/audit", demo.base())).await;
    let printed = String::from_utf8(demo.cli(&["admin", "audit"]).stdout).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 5, "{printed}");
    assert!(
        lines[4].contains("server (first start)  token.created"),
        "{printed}"
    );
    for (line, action) in
        lines
            .iter()
            .zip(["token.revoked", "token.rotated", "token.created", "sign_in"])
    {
        assert!(line.contains(&format!("  {action}  ")), "{action}: {line}");
        assert!(
            line.contains("admin (sign-in ") && line.contains(") from 127.0.0.1"),
            "{line}"
        );
    }
    assert!(
        lines[1].contains(&format!("replaced by {}", &secrets[1][9..25])),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("“audited bot”") && lines[2].contains("scopes orders:read"),
        "{}",
        lines[2]
    );
    assert!(page.contains("token.rotated") && page.contains("audited bot"));
    for secret in &secrets {
        let hidden = &secret[25..];
        assert!(
            !page.contains(hidden) && !printed.contains(hidden),
            "a secret in the log"
        );
        for file in ["tokens.db", "tokens.db-wal"] {
            let bytes = std::fs::read(demo.dir.join(file)).unwrap_or_default();
            assert!(
                !bytes.windows(hidden.len()).any(|w| w == hidden.as_bytes()),
                "a secret in {file}"
            );
        }
    }
}

/// The audit log on PostgreSQL: in the store's schema, shared by the
/// server and `admin audit`.
#[tokio::test]
async fn the_audit_log_is_kept_in_postgresql_too() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = format!("audit_{}", std::process::id());
    let store = [
        "--database-url",
        url.as_str(),
        "--database-schema",
        schema.as_str(),
    ];
    let demo = Demo::start_with(&data_dir(), &store);
    let client = signed_in_http(&demo).await;
    let secrets = create_rotate_revoke(&demo, &client).await;
    let mut args = vec!["admin", "audit"];
    args.extend(store);
    let printed = String::from_utf8(demo.cli(&args).stdout).unwrap();
    let actions: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.split("  ").nth(2))
        .collect();
    assert_eq!(
        actions,
        ["token.revoked", "token.rotated", "token.created", "sign_in"],
        "{printed}"
    );
    assert!(!printed.contains(&secrets[0][25..]));
}
