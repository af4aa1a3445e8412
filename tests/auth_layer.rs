//! Behaviour of the verification layer and `require_scopes`, one behaviour
//! per test, driven through `oneshot`. Each row of the seed document's error
//! table is covered here.

mod common;

use std::time::{Duration, SystemTime};

use axum::body::Body;
use common::*;
use http::{HeaderValue, Request, StatusCode};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::{
    clock::ManualClock, response::MalformedReason, response::Rejection, response::RejectionKind,
    scope::ScopeError, scope::ScopeMatch, scope::ScopeSet, store::Lookup, store::StoreError,
    store::StoreErrorKind, store::TokenRecord, store::TokenStore, token::FormatError,
    token::TokenDigest, token::TokenId, AuthLayer, MemoryStore,
};

const INVALID: &str = r#"Bearer realm="nuvlyx", error="invalid_token""#;

fn kind(res: &http::Response<Body>) -> RejectionKind {
    res.extensions()
        .get::<Rejection>()
        .expect("rejection in extensions")
        .kind()
}

/// Replaces the secret part of a token keeping id and a valid checksum.
fn with_other_secret(token: &str) -> String {
    let (head, body) = token.split_at(token.len() - 72);
    let mut raw: Vec<u8> = (0..36)
        .map(|i| u8::from_str_radix(&body[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    raw[8..32].iter_mut().for_each(|b| *b = b.wrapping_add(1));
    let crc = crc32fast::hash(&raw[..32]).to_be_bytes();
    raw[32..].copy_from_slice(&crc);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("{head}{hex}")
}

/// Changes the last character: the checksum no longer matches.
fn flip_last(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

/// A syntactically perfect token whose id is not in any store.
fn unknown_token() -> String {
    nuvlyx::live()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn valid_token_with_required_scope_is_200() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let res = send(&f.app(), bearer("/orders", &t)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(parts(res).await.2, b"orders");
}

#[tokio::test]
async fn handler_sees_who_called() {
    let f = Fixture::new();
    let (t, id) = f.token(&["orders:read"]).await;
    let res = send(&f.app(), bearer("/whoami", &t)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = String::from_utf8(parts(res).await.2).unwrap();
    assert_eq!(body, format!("demo-store test token {id}"));
}

#[tokio::test]
async fn missing_token_is_401_with_challenge_and_no_error_code() {
    let f = Fixture::new();
    let res = send(&f.app(), https("/orders").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx""#
    );
    assert_eq!(kind(&res), RejectionKind::MissingCredentials);
}

#[tokio::test]
async fn token_in_query_string_is_ignored() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let req = https(&format!("/orders?access_token={t}"))
        .body(Body::empty())
        .unwrap();
    let res = send(&f.app(), req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&res), RejectionKind::MissingCredentials);
    assert_eq!(f.store.finds(), 0);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_spaces_may_repeat() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    for scheme in ["bearer ", "BEARER ", "Bearer   ", "bEaReR "] {
        let req = https("/orders")
            .header("authorization", format!("{scheme}{t}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(&f.app(), req).await.status(),
            StatusCode::OK,
            "{scheme:?}"
        );
    }
}

#[tokio::test]
async fn malformed_authorization_headers_are_401_invalid_token_without_store_calls() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let cases: Vec<(Vec<u8>, MalformedReason)> = vec![
        (
            format!("Basic {t}").into_bytes(),
            MalformedReason::WrongScheme,
        ),
        (b"Basic dXNlcjpwYXNz".to_vec(), MalformedReason::WrongScheme),
        (b"Bearer".to_vec(), MalformedReason::EmptyToken),
        (b"Bearer ".to_vec(), MalformedReason::EmptyToken),
        (
            format!("Bearer {t} extra").into_bytes(),
            MalformedReason::NotToken68,
        ),
        (
            format!("Bearer {t}\u{e9}").into_bytes(),
            MalformedReason::OpaqueBytes,
        ),
        (
            [b"Bearer ".as_slice(), &[0xff, 0xfe, 0x80]].concat(),
            MalformedReason::OpaqueBytes,
        ),
    ];
    for (value, reason) in cases {
        let req = https("/orders")
            .header("authorization", HeaderValue::from_bytes(&value).unwrap())
            .body(Body::empty())
            .unwrap();
        let res = send(&f.app(), req).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()["www-authenticate"], INVALID);
        assert_eq!(kind(&res), RejectionKind::Malformed(reason));
    }
    assert_eq!(f.store.finds(), 0);
}

#[tokio::test]
async fn two_authorization_headers_are_never_authenticated() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let req = https("/orders")
        .header("authorization", format!("Bearer {t}"))
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    let res = send(&f.app(), req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        kind(&res),
        RejectionKind::Malformed(MalformedReason::MultipleHeaders)
    );
}

#[tokio::test]
async fn format_errors_are_401_invalid_token_with_zero_store_calls() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let test_token = nuvlyx::test()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned();
    let cases = [
        (t.replacen("nvl_", "gh_", 1), FormatError::WrongPrefix),
        (test_token, FormatError::WrongEnvironment),
        (t[..t.len() - 2].to_owned(), FormatError::WrongLength),
        (format!("{t}ab"), FormatError::WrongLength),
        (format!("{}G", &t[..t.len() - 1]), FormatError::NotHex),
        (flip_last(&t), FormatError::BadChecksum),
    ];
    for (token, err) in cases {
        let res = send(&f.app(), bearer("/orders", &token)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{err:?}");
        assert_eq!(res.headers()["www-authenticate"], INVALID);
        assert_eq!(kind(&res), RejectionKind::InvalidFormat(err));
    }
    assert_eq!(
        f.store.finds(),
        0,
        "no store call for offline-detectable errors"
    );
}

#[tokio::test]
async fn unknown_token_is_401_invalid_token() {
    let f = Fixture::new();
    let res = send(&f.app(), bearer("/orders", &unknown_token())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], INVALID);
    assert_eq!(kind(&res), RejectionKind::UnknownToken);
    assert_eq!(f.store.finds(), 1);
}

#[tokio::test]
async fn wrong_secret_for_a_known_id_is_401_invalid_token() {
    let f = Fixture::new();
    let (t, id) = f.token(&["orders:read"]).await;
    let forged = with_other_secret(&t);
    assert_ne!(forged, t);
    let res = send(&f.app(), bearer("/orders", &forged)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&res), RejectionKind::SecretMismatch);
    assert_eq!(
        res.extensions().get::<Rejection>().unwrap().token_id(),
        Some(id)
    );
}

#[tokio::test]
async fn revoked_token_is_401_invalid_token() {
    let f = Fixture::new();
    let (t, id) = f.token(&["orders:read"]).await;
    assert_eq!(
        send(&f.app(), bearer("/orders", &t)).await.status(),
        StatusCode::OK
    );
    assert!(f.admin.revoke(id).await.unwrap());
    let res = send(&f.app(), bearer("/orders", &t)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], INVALID);
    assert_eq!(kind(&res), RejectionKind::Revoked);
}

#[tokio::test]
async fn expired_token_is_401_invalid_token() {
    let clock = ManualClock::new(SystemTime::now());
    let store = MemoryStore::new();
    let admin = TokenManager::new(store.clone(), nuvlyx::live().with_clock(clock.clone()));
    let t = admin
        .create(
            NewToken::new("short", "demo-store", ["orders:read"])
                .expires_in(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .token;
    let app = app_with(
        AuthLayer::builder(store, nuvlyx::live().with_clock(clock.clone())).realm("nuvlyx"),
    );
    assert_eq!(
        send(&app, bearer("/orders", t.expose_secret()))
            .await
            .status(),
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        send(&app, bearer("/orders", t.expose_secret()))
            .await
            .status(),
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(1));
    let res = send(&app, bearer("/orders", t.expose_secret())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], INVALID);
    assert_eq!(kind(&res), RejectionKind::Expired);
}

#[tokio::test]
async fn suspended_owner_is_401_until_reinstated() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    f.admin.suspend_owner("demo-store").await.unwrap();
    let res = send(&f.app(), bearer("/orders", &t)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], INVALID);
    assert_eq!(kind(&res), RejectionKind::OwnerSuspended);
    f.admin.reinstate_owner("demo-store").await.unwrap();
    assert_eq!(
        send(&f.app(), bearer("/orders", &t)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_invalid_token_answer_is_byte_identical() {
    let clock = ManualClock::new(SystemTime::now());
    let f = Fixture::with_config(nuvlyx::live().with_clock(clock.clone()));
    let admin = f.admin.clone();
    let app = app_with(f.builder());
    let mk = |owner: &'static str, exp: Option<u64>| {
        let admin = admin.clone();
        let name = f.name("t");
        async move {
            let mut req = NewToken::new(&name, owner, ["orders:read"]);
            if let Some(s) = exp {
                req = req.expires_in(Duration::from_secs(s));
            }
            let c = admin.create(req).await.unwrap();
            (c.token.expose_secret().to_owned(), c.record.id)
        }
    };
    let (revoked, rid) = mk("demo-store", None).await;
    admin.revoke(rid).await.unwrap();
    let (expired, _) = mk("demo-store", Some(1)).await;
    let (suspended, _) = mk("bad-store", None).await;
    admin.suspend_owner("bad-store").await.unwrap();
    let (valid, _) = mk("demo-store", None).await;
    clock.advance(Duration::from_secs(5));

    let tokens = [
        ("malformed", "not-a-token".to_owned()),
        ("bad checksum", flip_last(&valid)),
        ("unknown", unknown_token()),
        ("wrong secret", with_other_secret(&valid)),
        ("revoked", revoked),
        ("expired", expired),
        ("suspended", suspended),
    ];
    let mut answers = Vec::new();
    for (what, token) in &tokens {
        let res = send(&app, bearer("/orders", token)).await;
        answers.push((what, parts(res).await));
    }
    let (first_name, first) = &answers[0];
    assert_eq!(first.0, StatusCode::UNAUTHORIZED);
    for (name, answer) in &answers[1..] {
        assert_eq!(answer, first, "{name} differs from {first_name}");
    }
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope_naming_it() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let res = send(&f.app(), bearer("/wallet", &t)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx", error="insufficient_scope", scope="wallet:read wallet:write""#
    );
    assert_eq!(kind(&res), RejectionKind::InsufficientScope);
    let body = json(res).await;
    assert_eq!(
        body["required_scopes"],
        serde_json::json!(["wallet:read", "wallet:write"])
    );
}

#[tokio::test]
async fn all_of_needs_every_scope() {
    let f = Fixture::new();
    let (half, _) = f.token(&["wallet:read"]).await;
    let (both, _) = f.token(&["wallet:read", "wallet:write"]).await;
    assert_eq!(
        send(&f.app(), bearer("/wallet", &half)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&f.app(), bearer("/wallet", &both)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn any_of_accepts_one_matching_scope() {
    let f = Fixture::new();
    let (inv, _) = f.token(&["inventory:read"]).await;
    let (none, _) = f.token(&["orders:read"]).await;
    assert_eq!(
        send(&f.app(), bearer("/catalog", &inv)).await.status(),
        StatusCode::OK
    );
    let res = send(&f.app(), bearer("/catalog", &none)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx", error="insufficient_scope", scope="inventory:read products:read""#
    );
}

#[tokio::test]
async fn bodies_are_problem_json() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let cases = [
        (https("/orders").body(Body::empty()).unwrap(), 401, None),
        (bearer("/orders", "nope"), 401, Some("invalid_token")),
        (bearer("/wallet", &t), 403, Some("insufficient_scope")),
    ];
    for (req, status, error) in cases {
        let res = send(&f.app(), req).await;
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(res.headers()["cache-control"], "no-store");
        let body = json(res).await;
        assert_eq!(body["status"], status);
        assert!(
            body["type"].is_string() && body["title"].is_string() && body["detail"].is_string()
        );
        assert_eq!(body["error"].as_str(), error);
    }
}

#[tokio::test]
async fn unknown_paths_stay_404_with_route_layer() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    assert_eq!(
        send(&f.app(), bearer("/nope", &t)).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn plain_http_is_refused_before_the_token_is_looked_at() {
    let f = Fixture::new();
    let (t, id) = f.token(&["orders:read"]).await;
    let req = Request::get("http://api.nuvlyx.test/orders")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    let res = send(&f.app(), req).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get("location").is_none(), "never a redirect");
    let r = res.extensions().get::<Rejection>().unwrap().clone();
    assert_eq!(r.kind(), RejectionKind::InsecureTransport);
    assert_eq!(r.token_id(), Some(id), "the exposed token is identified");
    assert_eq!(f.store.finds(), 0);
    let body = json(res).await;
    assert_eq!(body["error"], "https_required");
    assert!(body["detail"].as_str().unwrap().contains("HTTPS"));
}

#[tokio::test]
async fn origin_form_request_without_tls_marker_is_plain_http() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let req = Request::get("/orders")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&f.app(), req).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tls_marker_extension_counts_as_https() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let mut req = Request::get("/orders")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(tower_pat::transport::TlsConnection);
    assert_eq!(send(&f.app(), req).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn forwarded_proto_from_untrusted_peer_is_ignored() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let app = app_with(f.builder().trusted_proxies(
        tower_pat::transport::ProxyHeader::XForwardedProto,
        ["10.0.0.0/8".parse().unwrap()],
    ));
    let mk = |peer: &str| {
        let mut req = Request::get("/orders")
            .header("authorization", format!("Bearer {t}"))
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(tower_pat::transport::PeerAddr(peer.parse().unwrap()));
        req
    };
    assert_eq!(
        send(&app, mk("10.9.8.7:4000")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, mk("203.0.113.5:4000")).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn allow_plain_http_switch_accepts_http() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let app = app_with(f.builder().allow_plain_http());
    let req = Request::get("http://localhost/orders")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn test_tokens_need_a_test_layer() {
    let store = MemoryStore::new();
    let admin = TokenManager::new(store.clone(), nuvlyx::test());
    let t = admin
        .create(NewToken::new("t", "demo-store", ["orders:read"]))
        .await
        .unwrap()
        .token;
    assert!(t.expose_secret().starts_with("nvl_test_"));
    let live = app_with(AuthLayer::builder(store.clone(), nuvlyx::live()));
    let test = app_with(AuthLayer::builder(store, nuvlyx::test()));
    assert_eq!(
        send(&live, bearer("/orders", t.expose_secret()))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&test, bearer("/orders", t.expose_secret()))
            .await
            .status(),
        StatusCode::OK
    );
}

#[derive(Debug)]
enum Faulty {
    Errors,
    Hangs,
    /// Panics in the future it returns.
    Panics,
    /// Panics in `find` itself, before returning a future.
    PanicsAtOnce,
}

impl TokenStore for Faulty {
    fn find(&self, _: TokenId) -> Lookup {
        match self {
            Faulty::Errors => Lookup::ready(Err(StoreError::unavailable("connection refused"))),
            Faulty::Hangs => Lookup::pending(std::future::pending()),
            Faulty::Panics => Lookup::pending(async { panic!("store bug") }),
            Faulty::PanicsAtOnce => panic!("store bug"),
        }
    }
}

/// Answers every lookup with a record carrying `digest` but another id.
#[derive(Debug)]
struct WrongId(TokenRecord);

impl TokenStore for WrongId {
    fn find(&self, _: TokenId) -> Lookup {
        Lookup::pending(std::future::ready(Ok(Some(self.0.clone().into()))))
    }
}

#[tokio::test]
async fn a_record_for_another_id_is_refused_as_corrupt() {
    let minted = nuvlyx::live().format().mint();
    let other = nuvlyx::live().format().mint().id;
    let record = TokenRecord::new(
        other,
        TokenDigest::of(minted.token.expose_secret()),
        "o".parse().unwrap(),
        "t",
        ScopeSet::parse(["orders:read"]).unwrap(),
        SystemTime::now(),
    );
    let app = app_with(AuthLayer::builder(WrongId(record), nuvlyx::live()));
    let res = send(&app, bearer("/orders", minted.token.expose_secret())).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        kind(&res),
        RejectionKind::StoreUnavailable(StoreErrorKind::Corrupt)
    );
}

#[tokio::test]
async fn store_error_is_503_with_retry_after() {
    let app = app_with(
        AuthLayer::builder(Faulty::Errors, nuvlyx::live()).retry_after(Duration::from_secs(3)),
    );
    let res = send(&app, bearer("/orders", &unknown_token())).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "3");
    assert!(res.headers().get("www-authenticate").is_none());
    assert_eq!(
        kind(&res),
        RejectionKind::StoreUnavailable(StoreErrorKind::Unavailable)
    );
}

#[tokio::test(start_paused = true)]
async fn hanging_store_is_503_after_the_timeout() {
    let app = app_with(
        AuthLayer::builder(Faulty::Hangs, nuvlyx::live())
            .store_timeout(Some(Duration::from_millis(250))),
    );
    let started = tokio::time::Instant::now();
    let res = send(&app, bearer("/orders", &unknown_token())).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        kind(&res),
        RejectionKind::StoreUnavailable(StoreErrorKind::Timeout)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(300),
        "{waited:?}"
    );
}

#[tokio::test]
async fn panicking_store_fails_that_request_closed_and_the_service_keeps_serving() {
    // In `find` itself, and in the future it returns.
    for store in [Faulty::PanicsAtOnce, Faulty::Panics] {
        let app = app_with(AuthLayer::builder(store, nuvlyx::live()));
        for _ in 0..3 {
            let res = send(&app, bearer("/orders", &unknown_token())).await;
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                kind(&res),
                RejectionKind::StoreUnavailable(StoreErrorKind::Panicked)
            );
        }
        // Requests that never reach the store are still answered normally.
        let res = send(&app, https("/orders").body(Body::empty()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn custom_responder_changes_the_body_but_not_the_decision() {
    let f = Fixture::new();
    let layer = f
        .builder()
        .attach_rejections()
        .responder(|r: &Rejection| {
            let mut res = r.response(Body::from(format!(
                "{{\"code\":\"{}\"}}",
                r.status().as_u16()
            )));
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            res
        })
        .build();
    let app = axum::Router::new()
        .route("/orders", axum::routing::get(|| async { "orders" }))
        .layer(layer);
    let res = send(&app, bearer("/orders", &unknown_token())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], INVALID);
    assert_eq!(kind(&res), RejectionKind::UnknownToken);
    assert_eq!(parts(res).await.2, br#"{"code":"401"}"#);
}

#[tokio::test]
async fn require_scopes_without_auth_layer_fails_closed() {
    // The check is built from a layer that is then never applied.
    let auth = Fixture::new().builder().attach_rejections().build();
    let app = axum::Router::new().route(
        "/orders",
        axum::routing::get(|| async { "orders" }).route_layer(auth.require_scopes(["orders:read"])),
    );
    let res = send(&app, https("/orders").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx""#
    );
    assert_eq!(kind(&res), RejectionKind::NotAuthenticated);
}

#[test]
fn a_route_requiring_a_scope_the_catalog_does_not_define_is_refused_when_built() {
    let auth = Fixture::new().layer();
    let typo = auth.try_require_scopes(["order:read"], ScopeMatch::All);
    assert!(
        matches!(&typo, Err(ScopeError::Unknown(s)) if s == "order:read"),
        "{typo:?}"
    );
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        auth.require_any_scope(["orders:read", "order:write"])
    }))
    .expect_err("an unknown scope must not build");
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("\"order:write\""), "{message}");
    // Malformed and empty lists are refused too.
    assert!(matches!(
        auth.try_require_scopes(["Orders"], ScopeMatch::All),
        Err(ScopeError::Invalid(_))
    ));
    assert!(matches!(
        auth.try_require_scopes(Vec::<String>::new(), ScopeMatch::Any),
        Err(ScopeError::Empty)
    ));
    // A scope routes may require before any token may hold it.
    let soon = auth.require_scopes(["customers:write"]);
    assert_eq!(soon.required().to_space_separated(), "customers:write");
}

#[tokio::test]
async fn the_auth_layers_responder_answers_for_its_scope_checks_unless_overridden() {
    let f = Fixture::new();
    let (token, _) = f.token(&["orders:read"]).await;
    let auth = f
        .builder()
        .responder(|r: &Rejection| {
            r.response(Body::from(format!("custom {}", r.status().as_u16())))
        })
        .build();
    let app = axum::Router::new()
        .route(
            "/wallet",
            axum::routing::get(|| async { "wallet" })
                .route_layer(auth.require_scopes(["wallet:read"])),
        )
        .route(
            "/webhooks",
            axum::routing::get(|| async { "webhooks" }).route_layer(
                auth.require_scopes(["webhooks:manage"])
                    .responder(tower_pat::response::ProblemDetails),
            ),
        )
        .layer(auth);
    let res = send(&app, bearer("/wallet", &token)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="nuvlyx", error="insufficient_scope", scope="wallet:read""#
    );
    assert_eq!(parts(res).await.2, b"custom 403");
    let res = send(&app, bearer("/webhooks", &token)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn layers_with_the_same_realm_name_keep_their_own_settings() {
    // Two layers named alike, one attaching rejections: each keeps its own
    // (nothing is shared through a process-wide table).
    let f = Fixture::new();
    let attaching = f.builder().attach_rejections().build();
    let plain = f.layer();
    let app = |layer: AuthLayer| {
        axum::Router::new()
            .route("/orders", axum::routing::get(|| async { "orders" }))
            .layer(layer)
    };
    let a = send(&app(attaching), bearer("/orders", &unknown_token())).await;
    let b = send(&app(plain), bearer("/orders", &unknown_token())).await;
    assert!(a.extensions().get::<Rejection>().is_some());
    assert!(b.extensions().get::<Rejection>().is_none());
    assert_eq!(a.headers(), b.headers());
}

#[tokio::test]
async fn successful_use_updates_last_used() {
    let f = Fixture::new();
    let (t, id) = f.token(&["orders:read"]).await;
    assert!(f
        .store
        .inner
        .find(id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .is_none());
    assert_eq!(
        send(&f.app(), bearer("/orders", &t)).await.status(),
        StatusCode::OK
    );
    assert!(f
        .store
        .inner
        .find(id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .is_some());
}

#[tokio::test]
async fn record_with_a_scope_outside_the_catalog_fails_closed() {
    use tower_pat::{scope::ScopeSet, store::OwnerId, store::TokenAdmin};
    let store = MemoryStore::new();
    let minted = nuvlyx::live().format().mint();
    let record = TokenRecord::new(
        minted.id,
        minted.digest,
        OwnerId::new("demo-store").unwrap(),
        "hand-edited",
        ScopeSet::parse(["orders:read", "admin:everything"]).unwrap(),
        SystemTime::now(),
    );
    store.insert(record).await.unwrap();
    let app = app_with(AuthLayer::builder(store, nuvlyx::live()));
    let res = send(&app, bearer("/orders", minted.token.expose_secret())).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        kind(&res),
        RejectionKind::StoreUnavailable(StoreErrorKind::Corrupt)
    );
}

#[tokio::test]
async fn rejections_are_attached_to_responses_only_when_asked() {
    let f = Fixture::new();
    let (token, id) = f.token(&["orders:read"]).await;
    let router = |layer: AuthLayer| {
        let check = layer.require_scopes(["wallet:read"]);
        axum::Router::new()
            .route(
                "/wallet",
                axum::routing::get(|| async { "wallet" }).route_layer(check),
            )
            .layer(layer)
    };
    let attached = |res: &http::Response<Body>| res.extensions().get::<Rejection>().cloned();

    let plain = router(f.layer());
    let res = send(&plain, bearer("/wallet", &unknown_token())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], INVALID);
    assert!(attached(&res).is_none());
    let res = send(&plain, bearer("/wallet", &token)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(attached(&res).is_none());

    // Either order of the builders keeps both the realm and the setting.
    for layer in [
        f.builder().attach_rejections().build(),
        AuthLayer::builder(f.store.clone(), nuvlyx::live())
            .attach_rejections()
            .realm("nuvlyx")
            .build(),
    ] {
        let app = router(layer);
        let res = send(&app, bearer("/wallet", &unknown_token())).await;
        assert_eq!(res.headers()["www-authenticate"], INVALID);
        assert_eq!(attached(&res).unwrap().kind(), RejectionKind::UnknownToken);
        let res = send(&app, bearer("/wallet", &token)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let r = attached(&res).unwrap();
        assert_eq!(
            (r.kind(), r.token_id()),
            (RejectionKind::InsufficientScope, Some(id))
        );
        assert_eq!(r.realm(), "nuvlyx");
    }
}

/// Answers from memory (a ready lookup), and panics when told of a use (a
/// buggy last-use tracker).
#[derive(Debug)]
struct PanicsOnUse(std::sync::Arc<TokenRecord>);

impl TokenStore for PanicsOnUse {
    fn find(&self, _: TokenId) -> Lookup {
        Lookup::ready(Ok(Some(self.0.clone())))
    }
    fn record_use(&self, _: TokenId, _: SystemTime) {
        panic!("last-use tracker bug");
    }
}

#[tokio::test]
async fn a_store_panicking_in_record_use_on_the_synchronous_path_is_503() {
    let minted = nuvlyx::live().format().mint();
    let record = TokenRecord::new(
        minted.id,
        minted.digest,
        "demo-store".parse().unwrap(),
        "t",
        ScopeSet::parse(["orders:read"]).unwrap(),
        SystemTime::now(),
    );
    let app = app_with(AuthLayer::builder(
        PanicsOnUse(std::sync::Arc::new(record)),
        nuvlyx::live(),
    ));
    for _ in 0..2 {
        let res = send(&app, bearer("/orders", minted.token.expose_secret())).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            kind(&res),
            RejectionKind::StoreUnavailable(StoreErrorKind::Panicked)
        );
        assert!(res.headers().contains_key("retry-after"));
    }
}

#[tokio::test]
async fn stepping_the_wall_clock_back_does_not_revive_an_expired_token() {
    let clock = ManualClock::new(SystemTime::now());
    let store = MemoryStore::new();
    let admin = TokenManager::new(store.clone(), nuvlyx::live().with_clock(clock.clone()));
    let t = admin
        .create(
            NewToken::new("short", "demo-store", ["orders:read"])
                .expires_in(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .token;
    let app = app_with(AuthLayer::builder(
        store,
        nuvlyx::live().with_clock(clock.clone()),
    ));
    let call = || send(&app, bearer("/orders", t.expose_secret()));
    assert_eq!(call().await.status(), StatusCode::OK);
    clock.advance(Duration::from_secs(61));
    assert_eq!(kind(&call().await), RejectionKind::Expired);
    // NTP (or an operator) steps the clock back two minutes.
    clock.set(SystemTime::now() - Duration::from_secs(60));
    let res = call().await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&res), RejectionKind::Expired);
}

/// Scope checks cannot disagree with their layer: every setting is made on
/// the builder, and a finished layer (the only thing a check is built from)
/// has no setter to change afterwards.
#[test]
fn a_finished_layer_has_no_setters() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/settings_after_build/*.rs");
}
