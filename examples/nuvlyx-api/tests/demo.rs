//! The demo as a newcomer meets it: the real binary, real TLS, the token
//! CLI working while the server runs, and the seed's three client snippets
//! (curl, Node `fetch`, Python `requests`).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn seed_client_snippets_get_200_401_403() {
    if !have(&[Tool::Node, Tool::PythonRequests]) {
        return;
    }
    let demo = Demo::start(&data_dir());
    let valid = demo.demo_token();
    let no_orders = demo.create("catalog bot", "products:read");
    assert_eq!(run_seed_clients(&demo, &valid), [200, 200, 200]);
    assert_eq!(run_seed_clients(&demo, ""), [401, 401, 401]);
    assert_eq!(run_seed_clients(&demo, &no_orders), [403, 403, 403]);
}

#[test]
fn first_start_prints_a_working_curl_line_and_later_starts_reuse_everything() {
    let dir = data_dir();
    let demo = Demo::start(&dir);
    let token = demo.demo_token();
    // The hint keeps the token out of every command line: curl reads the
    // header from its standard input.
    let curl_line = demo
        .stdout
        .iter()
        .find(|l| l.contains("curl "))
        .unwrap()
        .clone();
    assert!(curl_line.contains("-H @-") && curl_line.contains("/api/v1/external/orders"));
    assert!(
        demo.stdout
            .iter()
            .filter(|l| l.contains("nvl_live_"))
            .count()
            == 1,
        "the token is printed once, alone: {:?}",
        demo.stdout
    );
    // Run the printed line as a user would (bash, NUVLYX_TOKEN set).
    let line = curl_line
        .trim()
        .replace("curl ", "curl -sS -o /dev/null -w '%{http_code}' ");
    let out = Command::new("bash")
        .args(["-c", &line])
        .env("NUVLYX_TOKEN", &token)
        .current_dir(dir.parent().unwrap())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{line}");
    assert!(
        demo.stdout.iter().any(|l| l.contains("expires at")),
        "the expiry is said"
    );
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );
    let cert = std::fs::read(dir.join("cert.pem")).unwrap();
    drop(demo);

    let again = Demo::start(&dir);
    assert!(
        again.stdout.iter().all(|l| !l.contains("nvl_live_")),
        "no new token on restart"
    );
    assert_eq!(std::fs::read(dir.join("cert.pem")).unwrap(), cert);
    assert_eq!(
        again.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );
    // The demo token expires in 24 hours.
    let list = String::from_utf8(again.cli(&["tokens", "list"]).stdout).unwrap();
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.contains("demo token"))
        .unwrap()
        .split_whitespace()
        .collect();
    // ID PREVIEW NAME(2 words) OWNER STATUS CREATED EXPIRES …
    let (created, expires) = (row[6], row[7]);
    let parse = |t: &str| humantime::parse_rfc3339(t).unwrap();
    assert_eq!(
        parse(expires).duration_since(parse(created)).unwrap(),
        Duration::from_secs(24 * 3600),
        "{row:?}"
    );
}

#[test]
fn every_route_answers_by_its_scope() {
    let demo = Demo::start(&data_dir());
    let all = demo.demo_token();
    let routes = [
        ("GET", "/api/v1/external/products", "products:read"),
        ("POST", "/api/v1/external/products", "products:write"),
        ("GET", "/api/v1/external/inventory", "inventory:read"),
        (
            "POST",
            "/api/v1/external/inventory/licenses",
            "inventory:write",
        ),
        ("GET", "/api/v1/external/orders", "orders:read"),
        ("POST", "/api/v1/external/orders", "orders:write"),
        ("GET", "/api/v1/external/customers", "customers:read"),
        ("GET", "/api/v1/external/wallet", "wallet:read"),
        ("POST", "/api/v1/external/wallet/topups", "wallet:write"),
        ("GET", "/api/v1/external/webhooks", "webhooks:manage"),
        ("POST", "/api/v1/external/webhooks", "webhooks:manage"),
    ];
    for (method, path, scope) in routes {
        assert_eq!(
            demo.curl(method, path, Some(&all)).0,
            200,
            "{method} {path}"
        );
        let other = if scope == "orders:read" {
            "wallet:read"
        } else {
            "orders:read"
        };
        let limited = demo.create(&format!("limited {method} {path}"), other);
        let (status, head) = demo.curl(method, path, Some(&limited));
        assert_eq!(status, 403, "{method} {path}");
        assert!(head.contains(&format!("scope=\"{scope}\"")), "{head}");
    }
    // customers:write is coming soon: even the all-scopes token is refused.
    let (status, head) = demo.curl("POST", "/api/v1/external/customers", Some(&all));
    assert_eq!(status, 403);
    assert!(head.contains("scope=\"customers:write\""));
    assert_eq!(demo.curl("GET", "/api/v1/external/nope", Some(&all)).0, 404);
}

/// Issue #22 (9): every HTTPS answer carries HSTS for at least a year, the
/// auth layer's refusals included; the plain-HTTP listener sends none.
#[test]
fn every_https_answer_carries_hsts_and_plain_http_none() {
    let demo = Demo::start(&data_dir());
    let all = demo.demo_token();
    let limited = demo.create("hsts", "wallet:read");
    let cases = [
        ("GET", "/api/v1/external/orders", Some(all.as_str()), 200),
        ("GET", "/api/v1/external/orders", None, 401),
        ("GET", "/api/v1/external/orders", Some("nvl_live_junk"), 401),
        (
            "GET",
            "/api/v1/external/orders",
            Some(limited.as_str()),
            403,
        ),
        ("GET", "/openapi.json", None, 200),
        ("GET", "/admin/sign-in", None, 200),
        ("GET", "/admin/tokens", None, 303),
        ("GET", "/no/such/route", None, 404),
    ];
    for (method, path, token, want) in cases {
        let (status, head) = demo.curl(method, path, token);
        assert_eq!(status, want, "{method} {path}");
        let hsts = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("strict-transport-security")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{method} {path}: no HSTS in {head}"));
        let max_age: u64 = hsts
            .split(';')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{hsts}"));
        assert!(max_age >= 31_536_000, "{method} {path}: {hsts}");
    }
    let plain = raw_http(
        demo.http_port,
        "GET /api/v1/external/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(plain.to_lowercase().starts_with("http/1.1 403"), "{plain}");
    assert!(
        !plain.to_lowercase().contains("strict-transport-security"),
        "HSTS over plain HTTP: {plain}"
    );
}

/// Sends raw bytes to `port` and returns the whole response.
fn raw_http(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn plain_http_listener_refuses_every_request_the_same_way() {
    let demo = Demo::start(&data_dir());
    let token = demo.demo_token();
    let targets = [
        format!("https://127.0.0.1:{}/api/v1/external/orders", demo.port),
        format!("http://127.0.0.1:{}/api/v1/external/orders", demo.http_port),
        "https://api.nuvlyx.com/api/v1/external/orders".to_owned(),
        "/api/v1/external/orders".to_owned(),
        "/api/v1/external/wallet".to_owned(),
        "/no/such/route".to_owned(),
        "*".to_owned(),
    ];
    let auths = [
        format!("Authorization: Bearer {token}\r\n"),
        "Authorization: Bearer nvl_live_junk\r\n".to_owned(),
        String::new(),
    ];
    let mut bodies = std::collections::HashSet::new();
    for target in &targets {
        for auth in &auths {
            let res = raw_http(
                demo.http_port,
                &format!("GET {target} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
            );
            let lower = res.to_lowercase();
            assert!(
                lower.starts_with("http/1.1 403"),
                "{target} {auth:?}: {res}"
            );
            assert!(!lower.contains("location:"), "never a redirect");
            assert!(lower.contains("https_required"), "{res}");
            bodies.insert(res.split("\r\n\r\n").nth(1).unwrap().to_owned());
        }
    }
    assert_eq!(bodies.len(), 1, "one answer for everything: {bodies:?}");
    // The valid token was never accepted there, and still works over HTTPS.
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );
}

#[test]
fn cli_revocation_applies_to_the_running_server_at_once() {
    let demo = Demo::start(&data_dir());
    let token = demo.create("leaky", "orders:read");
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );
    // The seed: "revoke immediately if you suspect a token leaked" — by the
    // full token, read from standard input.
    let out = demo.cli_with_stdin(&["tokens", "revoke", "-"], &format!("{token}\n"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("irreversible"));
    let took = demo.wait_for_status("/api/v1/external/orders", &token, 401);
    eprintln!("revocation applied after {took:?}");
    // Revoking again is harmless; an unknown token is an error.
    let id = &token["nvl_live_".len().."nvl_live_".len() + 16];
    assert!(demo.cli(&["tokens", "revoke", id]).status.success());
    let unknown = demo.cli(&["tokens", "revoke", "0123456789abcdef"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown token"));
}

/// Issue #22 (6): one live token per name and owner, as on GitHub: a
/// second `tokens create` with the name is refused with a clear message
/// and writes nothing; a rotation's successor shares it; once the token is
/// revoked, the name is free.
#[test]
fn a_second_live_token_with_the_same_name_is_refused() {
    let demo = Demo::start(&data_dir());
    let first = demo.create("ci bot", "orders:read");
    let listed = demo.cli(&["tokens", "list"]).stdout;
    let again = demo.cli(&[
        "tokens",
        "create",
        "--name",
        "ci bot",
        "--scopes",
        "orders:read",
    ]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already has a live token named \"ci bot\""),
        "{err}"
    );
    assert!(again.stdout.is_empty(), "no token printed");
    assert_eq!(
        demo.cli(&["tokens", "list"]).stdout,
        listed,
        "nothing written"
    );
    let rotated = demo.cli_with_stdin(&["tokens", "rotate", "-", "--grace", "1h"], &first);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let new = String::from_utf8(rotated.stdout).unwrap().trim().to_owned();
    for token in [&first, &new] {
        let revoked = demo.cli_with_stdin(&["tokens", "revoke", "-"], token);
        assert!(
            revoked.status.success(),
            "{}",
            String::from_utf8_lossy(&revoked.stderr)
        );
    }
    demo.create("ci bot", "orders:read");
}

#[test]
fn cli_rotation_gives_a_new_token_and_keeps_the_old_for_the_grace() {
    let demo = Demo::start(&data_dir());
    let old = demo.create("rotating", "orders:read");
    let out = demo.cli_with_stdin(&["tokens", "rotate", "-", "--grace", "1h"], &old);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let new = stdout.trim();
    assert_eq!(stdout.lines().count(), 1);
    assert_ne!(new, old);
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(new)).0,
        200
    );
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&old)).0,
        200
    );
    let id = &new["nvl_live_".len().."nvl_live_".len() + 16];
    let zero = demo.cli(&["tokens", "rotate", id, "--grace", "1s"]);
    assert!(zero.status.success());
    std::thread::sleep(Duration::from_millis(1100));
    demo.wait_for_status("/api/v1/external/orders", new, 401);
}

#[test]
fn cli_owner_suspension_and_reinstatement() {
    let demo = Demo::start(&data_dir());
    let token = demo.create("shop bot", "orders:read");
    let out = demo.cli(&["owners", "suspend", "demo-store"]);
    assert!(out.status.success());
    // The demo token and this one.
    assert!(String::from_utf8_lossy(&out.stdout).contains("its 2 token(s)"));
    demo.wait_for_status("/api/v1/external/orders", &token, 401);
    assert!(demo
        .cli(&["owners", "reinstate", "demo-store"])
        .status
        .success());
    demo.wait_for_status("/api/v1/external/orders", &token, 200);
}

#[test]
fn cli_refuses_bad_input_and_writes_nothing() {
    let demo = Demo::start(&data_dir());
    let before = demo.cli(&["tokens", "list"]);
    let cases: [&[&str]; 4] = [
        &["tokens", "create", "--name", "x", "--scopes", "orders:nope"],
        &[
            "tokens",
            "create",
            "--name",
            "x",
            "--scopes",
            "customers:write",
        ],
        &[
            "tokens",
            "create",
            "--name",
            "x",
            "--scopes",
            "orders:read",
            "--expires-in",
            "soon",
        ],
        &["tokens", "rotate", "nvl_live_not_a_token"],
    ];
    for args in cases {
        let out = demo.cli(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(demo.cli(&["tokens", "list"]).stdout, before.stdout);
}

#[test]
fn token_list_never_shows_a_secret() {
    let demo = Demo::start(&data_dir());
    let token = demo.create("listed", "orders:read,wallet:read");
    let out = demo.cli(&["tokens", "list", "--owner", "demo-store"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listed") && text.contains("orders:read wallet:read"));
    assert!(text.contains(&token[..13]), "preview shown");
    for start in 10..=token.len() - 16 {
        assert!(
            !text.contains(&token[start..start + 16]),
            "secret window in listing"
        );
    }
}

/// Two instances on one PostgreSQL database: a revocation made with the CLI
/// is refused by both within a second. Opt-in: needs `DATABASE_URL`.
#[test]
fn two_instances_on_postgres_share_revocations() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = format!(
        "demo_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let start = |dir: &Path| -> (Child, u16) {
        let port = free_port();
        let child = Command::new(BIN)
            .args([
                "--data-dir",
                dir.to_str().unwrap(),
                "--addr",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--database-url", &url, "--database-schema", &schema])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_listener(port);
        (child, port)
    };
    let dir = data_dir();
    let (mut a, port_a) = start(&dir);
    let (mut b, port_b) = start(&dir);
    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .args([
                "--data-dir",
                dir.to_str().unwrap(),
                "--database-url",
                &url,
                "--database-schema",
                &schema,
            ])
            .output()
            .unwrap()
    };
    let out = cli(&[
        "tokens",
        "create",
        "--name",
        "pg bot",
        "--scopes",
        "orders:read",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let status = |port: u16| -> u16 {
        let mut out = Command::new("curl");
        out.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(dir.join("cert.pem"))
            .args(["-H", "@-"])
            .arg(format!("https://127.0.0.1:{port}/api/v1/external/orders"));
        let out = run_with_stdin(&mut out, &format!("Authorization: Bearer {token}\n"));
        String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
    };
    assert_eq!((status(port_a), status(port_b)), (200, 200));
    let revoke = cli_with_stdin(
        &dir,
        &[
            "tokens",
            "revoke",
            "-",
            "--database-url",
            &url,
            "--database-schema",
            &schema,
        ],
        &token,
    );
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let started = Instant::now();
    while (status(port_a), status(port_b)) != (401, 401) {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "revocation not seen by both instances"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());
}

#[test]
fn the_cli_never_takes_a_token_in_its_arguments() {
    let demo = Demo::start(&data_dir());
    let token = demo.create("leaky", "orders:read");
    for args in [
        ["tokens", "revoke", token.as_str()],
        ["tokens", "rotate", token.as_str()],
    ] {
        let out = demo.cli(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("process list") && err.contains("standard input"),
            "{err}"
        );
        assert!(!err.contains(&token[20..]), "the secret is not echoed back");
    }
    // Nothing was revoked or rotated.
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );
    let list = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
    assert_eq!(list.lines().filter(|l| l.contains("leaky")).count(), 1);
}

#[test]
#[cfg(unix)]
fn data_files_are_private_and_a_planted_key_link_is_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = data_dir();
    // Another user planted a link where the private key will be written.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let elsewhere = dir.with_extension("stolen-key.pem");
    let _ = std::fs::remove_file(&elsewhere);
    std::os::unix::fs::symlink(&elsewhere, dir.join("key.pem")).unwrap();
    let demo = Demo::start(&dir);
    assert!(!elsewhere.exists(), "the key was written through the link");
    assert!(!std::fs::symlink_metadata(dir.join("key.pem"))
        .unwrap()
        .file_type()
        .is_symlink());
    let _ = demo.create("t", "orders:read");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    assert_eq!(mode(&dir.join("tokens.db")), 0o600);
    for extra in ["tokens.db-wal", "tokens.db-shm"] {
        let p = dir.join(extra);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{extra}");
        }
    }
    assert!(
        dir.join("tokens.db-wal").exists(),
        "WAL mode: the -wal file exists"
    );
    drop(demo);

    // An existing key left readable by others is made private on start.
    std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        dir.join("tokens.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let _again = Demo::start(&dir);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    assert_eq!(mode(&dir.join("tokens.db")), 0o600);
}

#[test]
fn suspending_an_owner_without_tokens_is_refused_unless_forced() {
    let demo = Demo::start(&data_dir());
    let token = demo.create("shop bot", "orders:read");
    let typo = demo.cli(&["owners", "suspend", "demo-stroe"]);
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("no token belongs to"));
    assert!(typo.stdout.is_empty());
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );
    let forced = demo.cli(&["owners", "suspend", "future-store", "--force"]);
    assert!(forced.status.success());
    assert!(String::from_utf8_lossy(&forced.stdout).contains("its 0 token(s)"));
}

#[test]
fn bad_durations_are_clear_errors_not_panics() {
    let demo = Demo::start(&data_dir());
    let token = demo.create("t", "orders:read");
    let id = &token["nvl_live_".len().."nvl_live_".len() + 16];
    for (args, _) in [
        (
            vec![
                "tokens",
                "create",
                "--name",
                "x",
                "--scopes",
                "orders:read",
                "--expires-in",
                "1é",
            ],
            (),
        ),
        (vec!["tokens", "rotate", id, "--grace", "5€"], ()),
        (
            vec![
                "tokens",
                "create",
                "--name",
                "x",
                "--scopes",
                "orders:read",
                "--expires-in",
                "0s",
            ],
            (),
        ),
    ] {
        let out = demo.cli(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: a usage error, not a panic (101)"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid duration"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Issue #26: `tokens create` gives a token 30 days unless told otherwise;
/// a token without expiry must be asked for (`--expires-in never`).
#[test]
fn tokens_expire_in_30_days_unless_never_is_asked_for() {
    let demo = Demo::start(&data_dir());
    demo.create("default", "orders:read");
    demo.create_with("forever", "orders:read", &["--expires-in", "never"]);
    let listed = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
    let expires = |name: &str| {
        let line = listed.lines().find(|l| l.contains(name)).unwrap();
        line.split_whitespace().nth(6).unwrap().to_owned()
    };
    let in_30_days = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + Duration::from_secs(30 * 86_400),
    )
    .to_string();
    assert_eq!(&expires("default")[..13], &in_30_days[..13], "{listed}");
    assert_eq!(expires("forever"), "-", "{listed}");
}

/// Issue #26: what the CLI changes is in the admin audit log too, said to
/// come from the command line and its user; listing writes nothing.
#[test]
fn cli_changes_are_in_the_audit_log() {
    let demo = Demo::start(&data_dir());
    let token = demo.create("cli bot", "orders:read");
    let id = &token[9..25];
    for args in [
        &["tokens", "limit", id, "--rate-limit", "60/min"][..],
        &["tokens", "revoke", id],
        &["owners", "suspend", "demo-store"],
        &["owners", "reinstate", "demo-store"],
        &["tokens", "list"],
    ] {
        let out = demo.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let audit = String::from_utf8(demo.cli(&["admin", "audit"]).stdout).unwrap();
    let (audit, first_start) = audit.trim_end().rsplit_once('\n').unwrap();
    assert!(
        first_start.contains("server (first start)  token.created  “demo token”"),
        "{first_start}"
    );
    let actions: Vec<&str> = audit.lines().filter_map(|l| l.split("  ").nth(2)).collect();
    assert_eq!(
        actions,
        [
            "store.reinstated",
            "store.suspended",
            "token.revoked",
            "token.limits_changed",
            "token.created"
        ],
        "{audit}"
    );
    assert!(
        audit.lines().all(|l| l.contains("  command line (")),
        "{audit}"
    );
    assert!(
        audit.contains(&format!(
            "token.created  “cli bot” {id}  scopes orders:read; expires 20"
        )),
        "{audit}"
    );
    assert!(!audit.contains(&token[25..]), "no secret");
}

#[test]
fn a_huge_grace_keeps_the_old_token_working_and_says_until_when() {
    let demo = Demo::start(&data_dir());
    let old = demo.create_with("rotating", "orders:read", &["--expires-in", "never"]);
    let id = &old["nvl_live_".len().."nvl_live_".len() + 16];
    let out = demo.cli(&["tokens", "rotate", id, "--grace", "584542046090y"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the old token works with no end"), "{err}");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&old)).0,
        200
    );

    // A token with an expiry: the grace is clamped to it, and the CLI says
    // the real end.
    let out = demo.cli(&[
        "tokens",
        "create",
        "--name",
        "short",
        "--scopes",
        "orders:read",
        "--expires-in",
        "2h",
    ]);
    let short = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let id = &short["nvl_live_".len().."nvl_live_".len() + 16];
    let out = demo.cli(&["tokens", "rotate", id, "--grace", "1000y"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let year = err.split("until ").nth(1).unwrap_or("")[..4].to_owned();
    assert!(year.starts_with("20"), "the real end, within hours: {err}");
}

#[test]
fn names_with_bidi_or_control_characters_are_refused() {
    let demo = Demo::start(&data_dir());
    for name in ["invoice\u{202E}fdp.exe", "bell\u{7}", "a\u{2066}b"] {
        let out = demo.cli(&[
            "tokens",
            "create",
            "--name",
            name,
            "--scopes",
            "orders:read",
        ]);
        assert!(!out.status.success(), "{name:?}");
        assert!(out.stdout.is_empty());
    }
    let list = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
    assert!(!list.contains('\u{202E}') && !list.contains('\u{7}'));
}

#[test]
fn first_start_on_a_database_url_mints_no_token() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = format!(
        "demo_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let dir = data_dir();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--database-url", &url, "--database-schema", &schema])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(port);
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("nvl_live_"), "{stdout}");
    let list = cli_with_stdin(
        &dir,
        &[
            "tokens",
            "list",
            "--database-url",
            &url,
            "--database-schema",
            &schema,
        ],
        "",
    );
    assert!(String::from_utf8_lossy(&list.stderr).contains("0 token(s)"));
}

#[test]
fn store_options_go_before_or_after_the_subcommand_and_serving_options_only_with_serve() {
    let dir = data_dir();
    let dir_arg = dir.to_str().unwrap();
    let before = Command::new(BIN)
        .args(["--data-dir", dir_arg, "tokens", "list"])
        .output()
        .unwrap();
    let after = Command::new(BIN)
        .args(["tokens", "list", "--data-dir", dir_arg])
        .output()
        .unwrap();
    for out in [&before, &after] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("0 token(s)"));
    }
    let stray = Command::new(BIN)
        .args([
            "--addr",
            "127.0.0.1:9",
            "tokens",
            "list",
            "--data-dir",
            dir_arg,
        ])
        .output()
        .unwrap();
    assert_eq!(stray.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&stray.stderr);
    assert!(stderr.contains("--addr is a serving option"), "{stderr}");
}

/// The committed snapshot of the demo's OpenAPI document.
fn openapi_snapshot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

/// `/openapi.json` is served without a token, matches the committed
/// snapshot (`UPDATE_OPENAPI_SNAPSHOT=1` rewrites it), documents every
/// route with the scope it enforces, and passes a real OpenAPI 3.1
/// validator (Python's `openapi-spec-validator`).
#[test]
fn the_openapi_document_is_public_valid_and_in_step_with_the_routes() {
    if !have(&[Tool::OpenApiValidator]) {
        return;
    }
    let demo = Demo::start(&data_dir());
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert", &demo.ca()])
        .arg(format!("{}/openapi.json", demo.base()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    let snapshot = openapi_snapshot();
    if std::env::var_os("UPDATE_OPENAPI_SNAPSHOT").is_some() {
        std::fs::write(&snapshot, &pretty).unwrap();
    }
    let committed = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert!(
        committed == pretty,
        "the served document differs from {}: rerun with UPDATE_OPENAPI_SNAPSHOT=1 and review the diff",
        snapshot.display()
    );

    // Every route of the scope table, documented with its scope.
    let paths = &served["paths"];
    let mut documented = 0;
    for (path, item) in paths.as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let scopes = &op["security"][0]["personal_access_token"];
            assert_eq!(scopes.as_array().map(Vec::len), Some(1), "{method} {path}");
            for status in ["401", "403", "503"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path} {status}"
                );
            }
            // And enforced: a token without that scope is refused with it.
            let scope = scopes[0].as_str().unwrap();
            let other = if scope == "orders:read" {
                "wallet:read"
            } else {
                "orders:read"
            };
            let limited = demo.create(&format!("limited {method} {path}"), other);
            let (status, head) = demo.curl(&method.to_uppercase(), path, Some(&limited));
            assert_eq!(status, 403, "{method} {path}");
            assert!(head.contains(&format!("scope=\"{scope}\"")), "{head}");
            documented += 1;
        }
    }
    assert_eq!(documented, 12, "one operation per row of the scope table");

    let checked = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&snapshot)
        .output()
        .expect("python3 runs");
    assert!(
        checked.status.success(),
        "openapi-spec-validator refused the document (install it with `python3 -m pip install openapi-spec-validator`):\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(String::from_utf8_lossy(&checked.stdout).contains("OK"));
}

/// One webhook request: its headers (names lowercased) and body.
type Delivery = (Vec<(String, String)>, String);

/// A local webhook receiver: answers 500 to the first request (to see a
/// retry), 204 to the rest, and keeps each request's headers and body.
struct Receiver {
    port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<Delivery>>>,
}

impl Receiver {
    fn start() -> Receiver {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = got.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = Vec::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    let (k, v) = l.split_once(':').unwrap();
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                keep.lock()
                    .unwrap()
                    .push((headers, String::from_utf8(body).unwrap()));
                let status = if n == 0 {
                    "500 Internal Server Error"
                } else {
                    "204 No Content"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { port, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/nuvlyx", self.port)
    }

    /// The deliveries so far of `kind` whose data has `key` = `value`.
    fn got_now(&self, kind: &str, key: &str, value: &str) -> Vec<Delivery> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| {
                let v: serde_json::Value = serde_json::from_str(body).unwrap();
                v["type"] == kind && v["data"][key] == value
            })
            .cloned()
            .collect()
    }

    /// Waits for a delivery of `kind` whose data has `key` = `value`, and
    /// returns all deliveries of it, in order.
    fn wait_for(&self, kind: &str, key: &str, value: &str) -> Vec<Delivery> {
        self.wait_for_count(kind, key, value, 1)
    }

    /// As `wait_for`, until there are `count` deliveries.
    fn wait_for_count(&self, kind: &str, key: &str, value: &str, count: usize) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let got = self.got_now(kind, key, value);
            if got.len() >= count {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no {kind} webhook with {key}={value}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// Checks a delivery's Standard Webhooks signature with the secret the
/// demo keeps in its data directory.
fn verify_webhook(dir: &Path, headers: &[(String, String)], body: &str) {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} header"))
    };
    let secret = std::fs::read_to_string(dir.join("webhook-secret")).unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim().strip_prefix("whsec_").unwrap())
        .unwrap();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sent: u64 = timestamp.parse().unwrap();
    assert!(now.abs_diff(sent) < 300, "a fresh timestamp");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = header("webhook-signature");
    let given = signature.strip_prefix("v1,").expect("a v1 signature");
    let given = base64::engine::general_purpose::STANDARD
        .decode(given)
        .unwrap();
    mac.verify_slice(&given).expect("the signature verifies");
}

/// The scanner's side of a leak report: a key pair, its key document on
/// disk, and signed requests sent with curl.
struct Scanner {
    key: p256::ecdsa::SigningKey,
    doc: PathBuf,
}

impl Scanner {
    fn new(dir: &Path) -> Scanner {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let key = p256::ecdsa::SigningKey::from_slice(&[42; 32]).unwrap();
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let doc = dir.with_extension("scanner-keys.json");
        let document = serde_json::json!({"public_keys": [
            {"key_identifier": "test-key-1", "key": pem, "is_current": true}
        ]});
        std::fs::write(&doc, document.to_string()).unwrap();
        Scanner { key, doc }
    }

    /// POSTs `body` to the demo's endpoint, signed (or, with `tamper`, the
    /// body changed after signing). Returns (status, response body).
    fn report(&self, demo: &Demo, body: &str, tamper: bool) -> (u16, String) {
        use base64::Engine as _;
        use p256::ecdsa::signature::Signer;
        let sig: p256::ecdsa::Signature = self.key.sign(body.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
        let sent = if tamper {
            body.replace("octo", "0cto")
        } else {
            body.to_owned()
        };
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-w", "\n%{http_code}", "--cacert", &demo.ca()])
            .args(["-H", "Content-Type: application/json"])
            .args(["-H", "GITHUB-PUBLIC-KEY-IDENTIFIER: test-key-1"])
            .args(["-H", &format!("GITHUB-PUBLIC-KEY-SIGNATURE: {sig}")])
            .args(["--data-binary", "@-"])
            .arg(format!("{}/leak-reports/github", demo.base()));
        let out = run_with_stdin(&mut cmd, &sent);
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_owned())
    }
}

/// The seed's "revoke immediately if you suspect a token leaked", done by
/// a secret scanner: a signed report revokes the token on the running
/// server, `tokens list` says why and where, and the revocation (like the
/// CLI's own changes) reaches a webhook receiver, signed.
#[test]
fn a_signed_leak_report_revokes_the_token_and_every_change_is_a_signed_webhook() {
    let dir = data_dir();
    let receiver = Receiver::start();
    let scanner = Scanner::new(&dir);
    let demo = Demo::start_with(
        &dir,
        &[
            "--scanner-keys",
            scanner.doc.to_str().unwrap(),
            "--webhook-url",
            &receiver.url(),
        ],
    );
    // The server's first start minted the demo token: its event was
    // refused once (500) by the receiver, then delivered again, with the
    // same message id.
    let demo_created = receiver.wait_for_count("token.created", "name", "demo token", 2);
    assert_eq!(
        demo_created[0].0.iter().find(|(k, _)| k == "webhook-id"),
        demo_created[1].0.iter().find(|(k, _)| k == "webhook-id"),
        "a retry keeps its message id"
    );
    // The CLI delivers its own events before it exits.
    let out = demo.cli(&[
        "tokens",
        "create",
        "--name",
        "ci bot",
        "--scopes",
        "orders:read",
        "--webhook-url",
        &receiver.url(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let id = token["nvl_live_".len().."nvl_live_".len() + 16].to_owned();
    let created = receiver.got_now("token.created", "token_id", &id);
    assert_eq!(created.len(), 1, "delivered before the CLI exited");
    for (headers, body) in demo_created.iter().chain(&created) {
        verify_webhook(&dir, headers, body);
        assert!(!body.contains(&token[9..]), "no secret in a webhook");
    }
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );

    let url = "https://github.com/octo/bot/blob/12345600b9cbe38a219f39a9941c9319b600c002/.env";
    let report = serde_json::json!([
        {"token": token, "type": "nuvlyx_api_token", "url": url, "source": "content"},
        {"token": "nvl_live_not-ours", "type": "nuvlyx_api_token", "url": url, "source": "content"},
    ])
    .to_string();
    // Tampered: refused, and nothing revoked.
    let (status, _) = scanner.report(&demo, &report, true);
    assert_eq!(status, 401);
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );
    // Signed: revoked at once, with the feedback labels.
    let (status, feedback) = scanner.report(&demo, &report, false);
    assert_eq!(status, 200, "{feedback}");
    let feedback: serde_json::Value = serde_json::from_str(&feedback).unwrap();
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(feedback[1]["label"], "false_positive");
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        401
    );

    let listed = demo.cli(&["tokens", "list"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains(&format!("[leaked: {url}]")), "{listed}");

    let revoked = receiver.wait_for("token.revoked", "token_id", &id);
    let (headers, body) = &revoked[0];
    verify_webhook(&dir, headers, body);
    let event: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["data"]["reason"], "leaked");
    assert_eq!(event["data"]["url"], url);
    // Issue #26: the revocation is in the admin audit log, said to come
    // from the report (written in the background: a moment later).
    let started = Instant::now();
    let entry = format!("secret scanning report  token.revoked  {id}  leaked; found at {url}");
    loop {
        let audit = String::from_utf8(demo.cli(&["admin", "audit"]).stdout).unwrap();
        if audit.contains(&entry) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{entry} in {audit}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&scanner.doc);
}

/// `--metrics-addr`: Prometheus text on a listener of its own, counting
/// what the API answered; nothing there carries a token or an owner.
#[test]
fn the_metrics_endpoint_counts_rejections_and_the_cache() {
    let port = free_port();
    let demo = Demo::start_with(
        &data_dir(),
        &["--metrics-addr", &format!("127.0.0.1:{port}")],
    );
    let token = demo.demo_token();
    for _ in 0..3 {
        assert_eq!(
            demo.curl("GET", "/api/v1/external/orders", Some("nvl_live_junk"))
                .0,
            401
        );
    }
    assert_eq!(demo.curl("GET", "/api/v1/external/orders", None).0, 401);
    // The demo token's creation reaches the cache through the change table
    // (polled every 250 ms) and drops whatever was cached of it: let that
    // happen first, so that the counts below are of these requests alone.
    std::thread::sleep(Duration::from_millis(600));
    for _ in 0..4 {
        assert_eq!(
            demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
            200
        );
    }
    let text = raw_http(
        port,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(
        value("tower_pat_rejections_total{reason=\"invalid_format\"}"),
        3.0
    );
    assert_eq!(
        value("tower_pat_rejections_total{reason=\"missing_credentials\"}"),
        1.0
    );
    // The demo token: one lookup reached the store, the others the cache.
    assert_eq!(value("tower_pat_cache_entries{kind=\"record\"}"), 1.0);
    assert!(value("tower_pat_cache_lookups_total{answer=\"hit\"}") >= 3.0);
    assert!(!text.contains(&token[..20]), "no token in the metrics");
    assert!(!text.contains("demo-store"), "no owner in the metrics");
    // The API's port does not serve it.
    assert_eq!(demo.curl("GET", "/metrics", None).0, 404);
}

/// SIGTERM: the server stops accepting, finishes, writes the pending
/// last-use times, and exits 0 (the times would be lost otherwise: they are
/// written every 10 s).
#[test]
fn sigterm_shuts_down_gracefully_and_writes_pending_last_use_times() {
    let dir = data_dir();
    let mut demo = Demo::start(&dir);
    let token = demo.demo_token();
    let last_used = |demo: &Demo| -> String {
        let list = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
        let row: Vec<String> = list
            .lines()
            .find(|l| l.contains("demo token"))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        row[8].clone()
    };
    assert_eq!(last_used(&demo), "-", "never used yet");
    assert_eq!(
        demo.curl("GET", "/api/v1/external/orders", Some(&token)).0,
        200
    );
    let status = Command::new("kill")
        .args(["-TERM", &demo.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = demo.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert_ne!(last_used(&demo), "-", "the use was written at shutdown");
}

/// Issue #25: the CLI sets a token's limits, the listing shows them, the
/// server enforces them (403 from outside the allowlist, 429 past the
/// budget, the RateLimit fields on every answer), `tokens limit` narrows
/// an allowlist and refuses to widen it.
#[test]
fn the_cli_sets_limits_the_listing_shows_them_and_the_server_enforces_them() {
    let demo = Demo::start(&data_dir());
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "tokens",
            "create",
            "--name",
            name,
            "--scopes",
            "orders:read",
        ];
        args.extend_from_slice(extra);
        let out = demo.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let paced = create(
        "paced bot",
        &["--rate-limit", "2/min", "--allowed-ips", "127.0.0.0/8, ::1"],
    );
    let elsewhere = create("office bot", &["--allowed-ips", "203.0.113.0/24"]);
    let listed = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
    let row = |name: &str| {
        listed
            .lines()
            .find(|l| l.contains(name))
            .unwrap()
            .to_owned()
    };
    assert!(row("paced bot").contains("2/min"), "{listed}");
    assert!(
        row("paced bot").contains("127.0.0.0/8, ::1/128"),
        "{listed}"
    );
    assert!(row("office bot").contains("203.0.113.0/24"), "{listed}");

    let path = "/api/v1/external/orders";
    let (status, head) = demo.curl("GET", path, Some(&elsewhere));
    assert_eq!(status, 403, "{head}");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (status, head) = demo.curl("GET", path, Some(&paced));
        let field = |name: &str| {
            head.lines()
                .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                .map(|l| l.split_once(':').unwrap().1.trim().to_owned())
        };
        assert_eq!(
            field("ratelimit-policy").as_deref(),
            Some("\"token\";q=2;w=60"),
            "{head}"
        );
        seen.push((status, field("ratelimit").unwrap(), field("retry-after")));
    }
    assert_eq!(seen[0].0, 200);
    assert_eq!(seen[0].1, "\"token\";r=1;t=30");
    assert_eq!(seen[1].0, 200);
    assert_eq!(seen[2].0, 429);
    assert!(seen[2].2.is_some(), "Retry-After on 429");
    // The listing says where the token was last used from (the demo
    // records addresses), once the server has written its last uses.
    let started = Instant::now();
    loop {
        let listed = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
        if listed
            .lines()
            .any(|l| l.contains("paced bot") && l.contains("from 127.0.0.1"))
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{listed}");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Narrow: fine; widen: refused, nothing changed.
    let id = row("office bot")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let narrowed = demo.cli(&["tokens", "limit", &id, "--allowed-ips", "203.0.113.0/25"]);
    assert!(
        narrowed.status.success(),
        "{}",
        String::from_utf8_lossy(&narrowed.stderr)
    );
    let widened = demo.cli(&["tokens", "limit", &id, "--allowed-ips", "0.0.0.0/0"]);
    assert!(!widened.status.success());
    assert!(String::from_utf8_lossy(&widened.stderr).contains("only be narrowed"));
    let listed = String::from_utf8(demo.cli(&["tokens", "list"]).stdout).unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.contains("office bot") && l.contains("203.0.113.0/25")),
        "{listed}"
    );
}
