//! What the operator's log says about refused requests, read from a real
//! `fmt` subscriber's output (feature `tracing`): every invalid-token reason
//! at the same level, and a flood that does not flood the log.

#[path = "common/capture.rs"]
mod capture;
mod common;

use std::time::{Duration, SystemTime};

use capture::capture_everything;
use common::*;
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::clock::ManualClock;

const REASONS: [&str; 6] = [
    "invalid_format",
    "unknown_token",
    "secret_mismatch",
    "revoked",
    "expired",
    "owner_suspended",
];

/// One token for each invalid-token reason, and the app that refuses them.
/// Log budgets are kept per layer, so each test's app counts its own lines
/// (the tests of this file run in parallel).
async fn one_of_each(realm: &str) -> (axum::Router, Vec<String>) {
    let clock = ManualClock::new(SystemTime::now());
    let f = Fixture::with_config(nuvlyx::live().with_clock(clock.clone()));
    let admin: TokenManager<_> = f.admin.clone();
    let mint = |owner: &'static str, lifetime: Option<u64>| {
        let admin = admin.clone();
        let name = f.name("t");
        async move {
            let mut req = NewToken::new(&name, owner, ["orders:read"]);
            if let Some(s) = lifetime {
                req = req.expires_in(Duration::from_secs(s));
            }
            admin.create(req).await.unwrap()
        }
    };
    let revoked = mint("demo-store", None).await;
    admin.revoke(revoked.record.id).await.unwrap();
    let expired = mint("demo-store", Some(1)).await;
    let suspended = mint("suspended-store", None).await;
    admin.suspend_owner("suspended-store").await.unwrap();
    let valid = mint("demo-store", None).await;
    clock.advance(Duration::from_secs(2));
    let secret = valid.token.expose_secret();
    // Same id, another secret (the checksum recomputed).
    let mut raw: Vec<u8> = (0..36)
        .map(|i| u8::from_str_radix(&secret[9 + 2 * i..11 + 2 * i], 16).unwrap())
        .collect();
    raw[20] ^= 1;
    let crc = crc32fast::hash(&raw[..32]).to_be_bytes();
    raw[32..].copy_from_slice(&crc);
    let mismatch = format!(
        "nvl_live_{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let tokens = vec![
        "nvl_live_0123".to_owned(),
        nuvlyx::live()
            .format()
            .clone()
            .mint()
            .token
            .expose_secret()
            .to_owned(),
        mismatch,
        revoked.token.expose_secret().to_owned(),
        expired.token.expose_secret().to_owned(),
        suspended.token.expose_secret().to_owned(),
    ];
    let app = app_with(f.builder().realm(realm));
    (app, tokens)
}

#[tokio::test(flavor = "current_thread")]
async fn every_invalid_token_reason_is_logged_at_the_same_level() {
    let (log, _guard) = capture_everything();
    let (app, tokens) = one_of_each("levels-test").await;
    for token in &tokens {
        assert_eq!(send(&app, bearer("/orders", token)).await.status(), 401);
    }
    let text = log.text();
    let mut levels = Vec::new();
    for reason in REASONS {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("reason=\"{reason}\"")))
            .unwrap_or_else(|| panic!("no event for {reason} in:\n{text}"));
        levels.push((reason, line.split_whitespace().nth(1).unwrap().to_owned()));
    }
    assert!(
        levels.iter().all(|(_, l)| l == "DEBUG"),
        "reasons logged at different levels: {levels:?}"
    );
    // Above DEBUG, nothing about a request names a precise reason. The
    // lifecycle events of the setup's own admin calls (`token.revoked` when
    // it revokes a token) are about those calls, not about requests.
    for line in text
        .lines()
        .filter(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE "))
        .filter(|l| !l.contains(" tower_pat::events: "))
    {
        for reason in REASONS {
            assert!(!line.contains(reason), "{reason} above DEBUG: {line}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_invalid_tokens_writes_one_warning_per_window() {
    let (log, _guard) = capture_everything();
    let (app, tokens) = one_of_each("flood-test").await;
    for i in 0..6_000 {
        let token = &tokens[i % tokens.len()];
        assert_eq!(send(&app, bearer("/orders", token)).await.status(), 401);
    }
    let warnings = log.lines_at("WARN");
    // One per ten-second window: the flood took far less than that, but it
    // may straddle one window boundary.
    assert!(
        (1..=2).contains(&warnings.len()),
        "{} warnings for 6,000 refused requests:\n{}",
        warnings.len(),
        warnings.join("\n")
    );
    assert!(warnings[0].contains("requests refused") && warnings[0].contains("invalid_token"));
    assert_eq!(
        log.lines_at("DEBUG")
            .iter()
            .filter(|l| l.contains("request rejected"))
            .count(),
        6_000
    );
}

#[tokio::test(flavor = "current_thread")]
async fn requests_without_credentials_write_no_warning() {
    let (log, _guard) = capture_everything();
    let f = Fixture::new();
    let app = f.app();
    for _ in 0..100 {
        let res = send(
            &app,
            https("/orders").body(axum::body::Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    assert!(log.lines_at("WARN").is_empty(), "{}", log.text());
    assert_eq!(log.lines_at("DEBUG").len(), 100);
}

/// Issue #25: a token restricted to networks, on a request whose client
/// address is unknown, is refused, and the operator's log says why and
/// what to check, once per window however many requests.
#[tokio::test]
async fn an_unknown_client_address_is_explained_once_per_window() {
    let (log, _guard) = capture_everything();
    let f = Fixture::new();
    let token = f
        .admin
        .create(
            NewToken::new("office bot", "demo-store", ["orders:read"])
                .allowed_ips("203.0.113.0/24".parse().unwrap()),
        )
        .await
        .unwrap()
        .token;
    let app = f.app();
    for _ in 0..5 {
        let res = send(&app, bearer("/orders", token.expose_secret())).await;
        assert_eq!(res.status(), 403);
    }
    let warnings: Vec<String> = log
        .lines_at("WARN")
        .into_iter()
        .filter(|l| l.contains("client address is unknown"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", log.text());
    assert!(warnings[0].contains("trusted_proxies"), "{}", warnings[0]);
    assert!(
        !log.text().contains(&token.expose_secret()[25..]),
        "no secret in the log"
    );
    assert_eq!(
        log.lines_at("DEBUG")
            .iter()
            .filter(|l| l.contains("reason=\"address_unknown\"")
                || l.contains("reason=address_unknown"))
            .count(),
        5,
        "{}",
        log.text()
    );
}
