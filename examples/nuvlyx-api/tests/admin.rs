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
use fantoccini::{Client, ClientBuilder, Locator};
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
            "--disable-gpu", "--window-size=1280,900", "--hide-scrollbars",
        ]});
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
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

    async fn sign_in(&self, url: &str, password: &str) {
        self.c().goto(url).await.unwrap();
        let field = self.c().find(Locator::Id("password")).await.unwrap();
        field.send_keys(password).await.unwrap();
        self.follow(Locator::Css("main form button[type=submit]"))
            .await;
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
    assert!(browser.text("nav").await.contains("Settings"));
    browser.screenshot("tokens-list.png").await;

    // 3. Create token.
    browser.follow(Locator::LinkText("Create token")).await;
    assert_eq!(browser.text("h1").await, "Create token");
    assert!(browser
        .text("#scope-hint")
        .await
        .contains("only the scopes this integration needs"));
    let coming_soon = b.find(Locator::Id("scope-customers-write")).await.unwrap();
    assert!(
        !coming_soon.is_enabled().await.unwrap(),
        "customers:write is disabled"
    );
    assert!(browser
        .text("label[for=scope-customers-write]")
        .await
        .contains("coming soon"));
    browser.screenshot("create-form.png").await;

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
    browser
        .follow(Locator::Css("main form button[type=submit]"))
        .await;

    // 5. Copy the token: shown once.
    assert_eq!(browser.text("h1").await, "Token created");
    assert!(browser
        .text(".warning")
        .await
        .contains("will not be shown again"));
    let token = b
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(
        token.starts_with("nvl_live_") && token.len() == 81,
        "{token}"
    );
    let url = b.current_url().await.unwrap();
    assert!(!url.as_str().contains(&token[9..]), "never in a URL");
    let copy = b.find(Locator::Id("copy")).await.unwrap();
    copy.click().await.unwrap();
    let started = Instant::now();
    while copy.text().await.unwrap() != "Copied" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the copy button answers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.screenshot("shown-once.png").await;

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
    assert!(browser.text(".warning").await.contains("cannot be undone"));
    browser.screenshot("revoke-confirm.png").await;
    browser
        .follow(Locator::Css("main form button.danger"))
        .await;
    assert!(browser.path().await.ends_with("/admin/tokens"));
    let status = browser
        .text(&format!("tr[data-token-id='{id}'] .status"))
        .await;
    assert_eq!(status, "revoked (manual)");
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        401
    );

    // The list, narrow: still readable on a phone.
    b.set_window_size(390, 844).await.unwrap();
    browser.screenshot("tokens-list-phone.png").await;

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
        ("expires", ""),
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
        body.contains("already has a live token named") && body.contains("role=\"alert\""),
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
    browser
        .follow(Locator::Css("main form button[type=submit]"))
        .await;
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
    browser
        .follow(Locator::Css("main form button[type=submit]"))
        .await;
    assert_eq!(browser.text("h1").await, "Token created");
    let token = b
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
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
        row.contains("600/min burst 100; from 203.0.113.0/24, 2001:db8::/32"),
        "{row}"
    );
}
