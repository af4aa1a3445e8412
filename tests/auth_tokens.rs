//! The verification layer, token by token: each row of the seed
//! document's error table (401 for a missing, malformed, unknown, revoked or
//! expired token and for a suspended owner) and what a valid token gets.

mod common;

use std::time::{Duration, SystemTime};

use axum::body::Body;
use common::*;
use http::{HeaderValue, StatusCode};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::{
    clock::ManualClock,
    response::{MalformedReason, Rejection, RejectionKind},
    store::TokenStore,
    token::FormatError,
    AuthLayer, MemoryStore,
};

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
