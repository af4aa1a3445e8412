//! The conformance suite every store passes: `conformance_tests!(Harness)`
//! generates one test per behaviour for a store harness.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_pat::admin::{AdminError, NewToken, TokenManager};
use tower_pat::{
    AuthLayer, Clock, ManualClock, StoreErrorKind, TokenAdmin, TokenRecord, TokenStore,
};

/// How a test gets a fresh, empty store of one kind.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    type Store: TokenAdmin + Clone;
    /// A fresh store, or `None` when the backend is not configured here
    /// (then the test says so and passes, unless the CI demands it).
    async fn make() -> Option<Self::Store>;
    /// Every byte the store keeps at rest (raw tables, file, memory dump).
    async fn dump(store: &Self::Store) -> Vec<u8>;
    /// Writes pending last-used times.
    async fn flush(store: &Self::Store);
}

pub async fn fresh<H: Harness>() -> Option<H::Store> {
    let s = H::make().await;
    if s.is_none() {
        assert!(
            std::env::var_os("TOWER_PAT_REQUIRE_DB").is_none(),
            "TOWER_PAT_REQUIRE_DB is set but the store backend is not configured"
        );
        eprintln!("skipped: backend not configured (set DATABASE_URL)");
    }
    s
}

pub fn manager<S: TokenAdmin + Clone>(store: &S, clock: &ManualClock) -> TokenManager<S> {
    TokenManager::new(
        store.clone(),
        tower_pat::preset::nuvlyx_live().with_clock(clock.clone()),
    )
}

pub fn app<S: TokenAdmin + Clone>(store: &S, clock: &ManualClock) -> Router {
    let auth = AuthLayer::new(
        store.clone(),
        tower_pat::preset::nuvlyx_live().with_clock(clock.clone()),
    );
    Router::new()
        .route(
            "/orders",
            get(|| async { "ok" }).route_layer(auth.require_scopes(["orders:read"])),
        )
        .layer(auth)
}

pub async fn status(app: &Router, token: &str) -> StatusCode {
    let req = Request::get("/orders")
        .extension(tower_pat::transport::TlsConnection)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status()
}

/// The status `store` answers `token` with through the layer, now.
pub async fn status_now<S: TokenAdmin + Clone>(store: &S, token: &str) -> u16 {
    let clock = ManualClock::new(SystemTime::now());
    status(&app(store, &clock), token).await.as_u16()
}

/// The same id and a valid checksum, another secret: a forged token for a
/// known id.
pub fn forge_secret(token: &str) -> String {
    let (head, body) = token.split_at(token.len() - 72);
    let mut raw: Vec<u8> = (0..36)
        .map(|i| u8::from_str_radix(&body[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    raw[8..32].iter_mut().for_each(|b| *b ^= 0x5a);
    let crc = crc32fast::hash(&raw[..32]).to_be_bytes();
    raw[32..].copy_from_slice(&crc);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("{head}{hex}")
}

fn now() -> SystemTime {
    // Whole seconds, so stores with microsecond resolution round-trip exactly.
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

pub async fn create_find_list<H: Harness>() {
    let Some(store) = fresh::<H>().await else {
        return;
    };
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    let c = m
        .create(
            NewToken::new("order bot", "store-a", ["orders:read", "wallet:read"])
                .expires_in(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    m.create(NewToken::new("other", "store-b", ["orders:read"]))
        .await
        .unwrap();
    let found = store.find(c.record.id).await.unwrap().expect("record");
    assert!(found.digest.verify(c.token.expose_secret()));
    assert_eq!(&*found.name, "order bot");
    assert_eq!(found.owner.as_str(), "store-a");
    assert_eq!(found.scopes.to_space_separated(), "orders:read wallet:read");
    assert_eq!(found.created_at, clock.now());
    assert_eq!(
        found.expires_at,
        Some(clock.now() + Duration::from_secs(3600))
    );
    assert!(found.revoked_at.is_none() && !found.owner_suspended);

    let listed = m.list(Some("store-a")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, c.record.id);
    assert!(listed[0].preview.starts_with("nvl_live_") && listed[0].preview.ends_with('…'));
    assert!(!format!("{listed:?}").contains(&c.token.expose_secret()[20..40]));
    assert_eq!(m.list(None).await.unwrap().len(), 2);
    assert_eq!(
        status(&app(&store, &clock), c.token.expose_secret()).await,
        StatusCode::OK
    );
}

pub async fn revocation_is_permanent<H: Harness>() {
    let Some(store) = fresh::<H>().await else {
        return;
    };
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    let c = m
        .create(NewToken::new("t", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let app = app(&store, &clock);
    assert_eq!(status(&app, c.token.expose_secret()).await, StatusCode::OK);
    assert!(m.revoke(c.record.id).await.unwrap());
    assert!(
        !m.revoke(c.record.id).await.unwrap(),
        "revoking twice is harmless"
    );
    assert_eq!(
        status(&app, c.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    // No insert can bring it back: the id exists.
    let again = TokenRecord::new(
        c.record.id,
        c.record.digest,
        c.record.owner.clone(),
        "t",
        c.record.scopes.clone(),
        clock.now(),
    );
    assert_eq!(
        store.insert(again).await.unwrap_err().kind(),
        StoreErrorKind::Conflict
    );
    assert_eq!(
        status(&app, c.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    let r = store.find(c.record.id).await.unwrap().unwrap();
    assert!(r.revoked_at.is_some());
    // Revoking by the full token works too, and unknown ids are errors.
    let d = m
        .create(NewToken::new("t2", "store-a", ["orders:read"]))
        .await
        .unwrap();
    assert!(m.revoke_token(d.token.expose_secret()).await.unwrap());
    let unknown = tower_pat::preset::nuvlyx_live().format().mint();
    assert!(matches!(
        m.revoke(unknown.id).await,
        Err(AdminError::UnknownToken(_))
    ));
}

pub async fn rotation_keeps_the_old_token_for_the_grace_only<H: Harness>() {
    let Some(store) = fresh::<H>().await else {
        return;
    };
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    let app = app(&store, &clock);
    let old = m
        .create(NewToken::new("bot", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let new = m
        .rotate(old.record.id, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(&*new.record.name, "bot");
    assert_eq!(new.record.owner, old.record.owner);
    assert_eq!(new.record.scopes, old.record.scopes);
    assert_ne!(new.record.id, old.record.id);
    assert_eq!(
        status(&app, old.token.expose_secret()).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, new.token.expose_secret()).await,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        status(&app, old.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&app, new.token.expose_secret()).await,
        StatusCode::OK
    );
}

pub async fn rotation_never_extends_the_original_expiry<H: Harness>() {
    let Some(store) = fresh::<H>().await else {
        return;
    };
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    let old = m
        .create(
            NewToken::new("bot", "store-a", ["orders:read"]).expires_in(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    m.rotate(old.record.id, Duration::from_secs(3600))
        .await
        .unwrap();
    let r = store.find(old.record.id).await.unwrap().unwrap();
    assert_eq!(r.expires_at, Some(clock.now() + Duration::from_secs(60)));
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        status(&app(&store, &clock), old.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
}

pub async fn suspension_disables_all_owner_tokens_until_reinstated<H: Harness>() {
    let Some(store) = fresh::<H>().await else {
        return;
    };
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    let app = app(&store, &clock);
    let a1 = m
        .create(NewToken::new("a1", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let a2 = m
        .create(NewToken::new("a2", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let b = m
        .create(NewToken::new("b", "store-b", ["orders:read"]))
        .await
        .unwrap();
    m.suspend_owner("store-a").await.unwrap();
    assert!(store.is_owner_suspended(&a1.record.owner).await.unwrap());
    for t in [&a1, &a2] {
        assert_eq!(
            status(&app, t.token.expose_secret()).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(status(&app, b.token.expose_secret()).await, StatusCode::OK);
    m.reinstate_owner("store-a").await.unwrap();
    for t in [&a1, &a2] {
        assert_eq!(status(&app, t.token.expose_secret()).await, StatusCode::OK);
    }
}

pub async fn expiry_follows_the_injected_clock<H: Harness>() {
    let Some(store) = fresh::<H>().await else {
        return;
    };
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    let app = app(&store, &clock);
    let c = m
        .create(NewToken::new("t", "store-a", ["orders:read"]).expires_in(Duration::from_secs(30)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(29));
    assert_eq!(status(&app, c.token.expose_secret()).await, StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        status(&app, c.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
}

pub async fn last_use_is_recorded_off_the_request_path<H: Harness>() {
    let Some(store) = fresh::<H>().await else {
        return;
    };
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    let c = m
        .create(NewToken::new("t", "store-a", ["orders:read"]))
        .await
        .unwrap();
    assert_eq!(
        status(&app(&store, &clock), c.token.expose_secret()).await,
        StatusCode::OK
    );
    H::flush(&store).await;
    let r = store.find(c.record.id).await.unwrap().unwrap();
    assert_eq!(r.last_used_at, Some(clock.now()));
}

pub async fn concurrent_minting_and_revoking<H: Harness>() {
    let Some(store) = fresh::<H>().await else {
        return;
    };
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let c = m
                .create(NewToken::new(&format!("t{i}"), "store-a", ["orders:read"]))
                .await
                .unwrap();
            assert!(m.revoke(c.record.id).await.unwrap());
            c.record.id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    let listed = m.list(Some("store-a")).await.unwrap();
    assert_eq!(listed.len(), 100);
    assert!(listed.iter().all(|r| r.revoked_at.is_some()));
}

pub async fn nothing_in_clear_at_rest<H: Harness>() {
    let Some(store) = fresh::<H>().await else {
        return;
    };
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    let mut tokens = Vec::new();
    for i in 0..5 {
        let c = m
            .create(NewToken::new(&format!("t{i}"), "store-a", ["orders:read"]))
            .await
            .unwrap();
        tokens.push(c.token.expose_secret().to_owned());
    }
    m.revoke_token(&tokens[0]).await.unwrap();
    let dump = H::dump(&store).await;
    assert!(dump.len() > 100, "the dump must contain the rows");
    let text = String::from_utf8_lossy(&dump);
    for t in &tokens {
        // Windows holding at least one secret character (the id is public).
        let first_secret = t.len() - 56;
        for start in first_secret - 15..=t.len() - 16 {
            let w = &t[start..start + 16];
            assert!(!text.contains(w), "found {w} at rest");
        }
    }
}

#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty) => {
        mod conformance_suite {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn create_find_list() {
                conformance::create_find_list::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revocation_is_permanent() {
                conformance::revocation_is_permanent::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rotation_keeps_the_old_token_for_the_grace_only() {
                conformance::rotation_keeps_the_old_token_for_the_grace_only::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rotation_never_extends_the_original_expiry() {
                conformance::rotation_never_extends_the_original_expiry::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn suspension_disables_all_owner_tokens_until_reinstated() {
                conformance::suspension_disables_all_owner_tokens_until_reinstated::<$harness>()
                    .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expiry_follows_the_injected_clock() {
                conformance::expiry_follows_the_injected_clock::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn last_use_is_recorded_off_the_request_path() {
                conformance::last_use_is_recorded_off_the_request_path::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_minting_and_revoking() {
                conformance::concurrent_minting_and_revoking::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nothing_in_clear_at_rest() {
                conformance::nothing_in_clear_at_rest::<$harness>().await
            }
        }
    };
}
