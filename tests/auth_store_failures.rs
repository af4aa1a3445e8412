//! Store failures fail closed: errors, timeouts, panics and corrupt
//! records are 503 (or 401), never a way in.

mod common;

use std::time::{Duration, SystemTime};

use axum::body::Body;
use common::*;
use http::StatusCode;
use tower_pat::{
    response::RejectionKind,
    scope::ScopeSet,
    store::{Lookup, StoreError, StoreErrorKind, TokenRecord, TokenStore},
    token::{TokenDigest, TokenId},
    AuthLayer, MemoryStore,
};

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
async fn record_with_a_scope_outside_the_catalog_fails_closed() {
    use tower_pat::{
        scope::ScopeSet,
        store::{OwnerId, TokenAdmin},
    };
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

/// Answers from memory (a ready lookup), and panics when told of a use (a
/// buggy last-use tracker).
#[derive(Debug)]
struct PanicsOnUse(std::sync::Arc<TokenRecord>);

impl TokenStore for PanicsOnUse {
    fn find(&self, _: TokenId) -> Lookup {
        Lookup::ready(Ok(Some(self.0.clone())))
    }
    fn record_use(&self, _: TokenId, _: SystemTime, _: Option<std::net::IpAddr>) {
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
