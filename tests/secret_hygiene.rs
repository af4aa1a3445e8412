//! No secret in logs: drive every request path under a TRACE-level
//! subscriber that captures all output, then search it for any 16-character
//! window of any token used. (Feature `tracing`.)

#[path = "common/capture.rs"]
mod capture;
mod common;

use capture::capture_everything;

use axum::body::Body;
use common::*;
use http::Request;
use tower_pat::admin::NewToken;
use tower_pat::{
    store::{Lookup, StoreError, TokenStore},
    token::TokenId,
    AuthLayer,
};

#[derive(Debug)]
struct Broken;

impl TokenStore for Broken {
    fn find(&self, _: TokenId) -> Lookup {
        Lookup::pending(async { Err(StoreError::unavailable("database is down")) })
    }
}

fn windows(token: &str) -> impl Iterator<Item = &str> {
    (0..=token.len() - 16).map(move |i| &token[i..i + 16])
}

/// Every 16-character window of the token that holds at least one secret
/// character (windows made only of the public `nvl_live_` prefix and the
/// 16-hex id may legitimately appear: the id is logged on purpose).
fn secret_windows(token: &str) -> Vec<&str> {
    let first_secret = token.len() - 56;
    windows(&token[first_secret - 15..]).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn trace_output_never_contains_a_token() {
    let (capture, _guard) = capture_everything();

    let f = Fixture::new();
    let created = f
        .admin
        .create(NewToken::new("bot", "demo-store", ["orders:read"]))
        .await
        .unwrap();
    let valid = created.token.expose_secret().to_owned();
    let (revoked, rid) = f.token(&["orders:read"]).await;
    f.admin.revoke(rid).await.unwrap();
    let unknown = nuvlyx::live()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned();
    let app = f.app();

    // Every path: success, 403, unknown, revoked, malformed, plain HTTP.
    for (path, token) in [
        ("/orders", &valid),
        ("/wallet", &valid),
        ("/orders", &unknown),
        ("/orders", &revoked),
    ] {
        send(&app, bearer(path, token)).await;
    }
    send(&app, bearer("/orders", &format!("{valid}x"))).await;
    let plain = Request::get("http://api.example/orders")
        .header("authorization", format!("Bearer {valid}"))
        .body(Body::empty())
        .unwrap();
    send(&app, plain).await;
    let broken = app_with(AuthLayer::builder(Broken, nuvlyx::live()));
    send(&broken, bearer("/orders", &valid)).await;

    // Debug output of the types that hold or carry token data.
    tracing::info!(minted = ?created, "debug of CreatedToken");
    tracing::info!(record = ?created.record, digest = ?created.record.digest, "debug of record");

    let log = capture.text();
    // The capture works: the events are there, with token ids.
    assert!(log.contains("request rejected"), "{log}");
    assert!(
        log.contains("well-formed token seen over plain HTTP"),
        "{log}"
    );
    assert!(log.contains("token store failed"), "{log}");
    assert!(log.contains(&created.record.id.to_string()), "{log}");
    assert!(log.contains("reason=\"revoked\""), "{log}");

    for token in [&valid, &revoked, &unknown] {
        for w in secret_windows(token) {
            assert!(!log.contains(w), "secret window {w} found in log output");
        }
    }
}

/// Runs one authenticated request through tower-http's `TraceLayer` (with
/// request headers in the span) and returns everything logged.
async fn traced_request(mark_sensitive: bool) -> (String, String) {
    use http::header::AUTHORIZATION;
    use tower::ServiceExt;
    use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
    use tower_http::trace::{DefaultMakeSpan, DefaultOnRequest, TraceLayer};

    let (capture, _guard) = capture_everything();

    let f = Fixture::new();
    let (token, _) = f.token(&["orders:read"]).await;
    let trace = TraceLayer::new_for_http()
        .make_span_with(
            DefaultMakeSpan::new()
                .include_headers(true)
                .level(tracing::Level::INFO),
        )
        .on_request(DefaultOnRequest::new().level(tracing::Level::INFO));
    let app = f.app().layer(trace);
    let app = if mark_sensitive {
        app.layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
    } else {
        app
    };
    let res = app.oneshot(bearer("/orders", &token)).await.unwrap();
    assert_eq!(res.status(), 200);
    let log = capture.text();
    (log, token)
}

#[tokio::test(flavor = "current_thread")]
async fn authorization_marked_sensitive_stays_out_of_trace_layer_logs() {
    let (log, token) = traced_request(true).await;
    assert!(log.contains("authorization"), "headers are logged: {log}");
    assert!(log.contains("Sensitive"), "{log}");
    for w in secret_windows(&token) {
        assert!(!log.contains(w), "token in TraceLayer output: {log}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn without_the_sensitive_marker_trace_layer_would_log_the_token() {
    // The control: proves the capture above can see a leak.
    let (log, token) = traced_request(false).await;
    assert!(
        log.contains(&token[20..36]),
        "expected the leak to be visible: {log}"
    );
}
