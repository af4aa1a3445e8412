//! The conformance suite every store shipped with tower-pat passes, for
//! your own store (feature `test-kit`).
//!
//! Implement [`Harness`] for your store, then call
//! [`conformance_tests!`](crate::conformance_tests) in a test file: it
//! generates one `#[tokio::test]` per behaviour (so your dev-dependencies
//! need `tokio` with the `macros` and `rt-multi-thread` features). The
//! tests go through [`TokenManager`] and the real [`AuthLayer`], and check
//! what the layer and the admin API rely on:
//!
//! - the whole lifecycle: create, find, list, revoke, rotate with a grace
//!   period, suspend and reinstate an owner, expiry on an injected clock;
//! - the [`TokenAdmin`] rules: `insert` of an existing id is a
//!   [`StoreErrorKind::Conflict`] (a revoked id can never come back), `list`
//!   is newest first, `cap_expiry` only ever shortens, `find` fills in
//!   `owner_suspended`, `revoke` and `cap_expiry` of an unknown id are
//!   [`StoreErrorKind::NotFound`];
//! - last use reaches the store (after [`Harness::flush`]);
//! - 100 tasks minting and revoking at once;
//! - nothing at rest (your [`Harness::dump`]) contains any 16-character
//!   window of a minted token.
//!
//! ```no_run
//! // tests/my_store.rs
//! use tower_pat::test_kit::Harness;
//! use tower_pat::{store::TokenAdmin, MemoryStore};
//!
//! struct Mine;
//!
//! impl Harness for Mine {
//!     type Store = MemoryStore; // your store
//!     async fn make() -> Option<MemoryStore> {
//!         Some(MemoryStore::new()) // `None` skips (say, no database configured)
//!     }
//!     async fn dump(store: &MemoryStore) -> Vec<u8> {
//!         // Every byte kept at rest: raw rows, the file, ...
//!         format!("{:?}", store.list(None).await.unwrap()).into_bytes()
//!     }
//!     async fn flush(_: &MemoryStore) {} // write pending last-use times
//! }
//!
//! tower_pat::conformance_tests!(Mine);
//! # fn main() {}
//! ```
//!
//! `examples/custom_store.rs` runs the suite on a store written from
//! scratch.
//!
//! [`TokenManager`]: crate::admin::TokenManager
//! [`AuthLayer`]: crate::auth::AuthLayer
//! [`TokenAdmin`]: crate::store::TokenAdmin
//! [`StoreErrorKind::Conflict`]: crate::store::StoreErrorKind::Conflict
//! [`StoreErrorKind::NotFound`]: crate::store::StoreErrorKind::NotFound

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::admin::{AdminError, CreatedToken, NewToken, TokenManager};
use crate::transport::TlsConnection;
use crate::{
    auth::AuthLayer, clock::Clock, clock::ManualClock, config::TokenConfig, response::EmptyBody,
    scope::ScopeCatalog, store::RevocationReason, store::StoreErrorKind, store::TokenAdmin,
    store::TokenRecord, store::TokenStore, token::Environment, token::TokenFormat,
};

/// How the suite gets a fresh, empty store of one kind.
pub trait Harness: Send + Sync + 'static {
    /// The store under test.
    type Store: TokenAdmin + Clone;

    /// A fresh, empty store, or `None` when its backend is not configured
    /// here: the test then prints `skipped` and passes, unless the
    /// `TOWER_PAT_REQUIRE_DB` environment variable is set (for CI).
    fn make() -> impl Future<Output = Option<Self::Store>> + Send;

    /// Every byte the store keeps at rest (raw tables, file, memory dump),
    /// searched for plaintext tokens.
    fn dump(store: &Self::Store) -> impl Future<Output = Vec<u8>> + Send;

    /// Writes pending last-use times, for a store that batches them.
    fn flush(store: &Self::Store) -> impl Future<Output = ()> + Send;
}

async fn fresh<H: Harness>() -> Option<H::Store> {
    let s = H::make().await;
    if s.is_none() {
        assert!(
            std::env::var_os("TOWER_PAT_REQUIRE_DB").is_none(),
            "TOWER_PAT_REQUIRE_DB is set but the store backend is not configured"
        );
        eprintln!("skipped: backend not configured");
    }
    s
}

/// A fresh store, a clock stopped at a whole second, and a manager minting
/// into the store on that clock.
async fn setup<H: Harness>() -> Option<(H::Store, ManualClock, TokenManager<H::Store>)> {
    let store = fresh::<H>().await?;
    let clock = ManualClock::new(now());
    let m = manager(&store, &clock);
    Some((store, clock, m))
}

/// The suite's tokens: `kit_live_…`, with the two scopes it grants.
fn suite_config() -> TokenConfig {
    TokenConfig::new(
        TokenFormat::new("kit", Environment::Live).expect("a valid prefix"),
        ScopeCatalog::new()
            .scope("orders:read", "Read orders.")
            .scope("wallet:read", "Read the wallet."),
    )
}

fn manager<S: TokenAdmin + Clone>(store: &S, clock: &ManualClock) -> TokenManager<S> {
    TokenManager::new(store.clone(), suite_config().with_clock(clock.clone()))
}

/// The inner service: 200 for every request that gets through.
#[derive(Debug, Clone, Copy)]
struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        std::future::ready(Ok(Response::new(())))
    }
}

/// The layer over `store` with the suite's clock, and a route requiring
/// `orders:read` behind it.
#[derive(Clone)]
struct App(crate::auth::Auth<crate::auth::RequireScopes<Ok200, EmptyBody>, EmptyBody>);

fn app<S: TokenStore + Clone>(store: &S, config: TokenConfig) -> App {
    let auth = AuthLayer::builder(store.clone(), config)
        .responder(EmptyBody)
        .build();
    App(auth.layer(auth.require_scopes(["orders:read"]).layer(Ok200)))
}

async fn status(app: &App, token: &str) -> StatusCode {
    let mut svc = app.0.clone();
    let req = Request::get("/orders")
        .extension(TlsConnection)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(())
        .expect("a valid request");
    let Ok(()) = poll_fn(|cx| svc.poll_ready(cx)).await;
    let Ok(res) = svc.call(req).await;
    res.status()
}

/// The status the layer of `config` answers `token` with, over `store`,
/// now, on a route requiring `orders:read`: for tests of a store's own
/// failure modes (a corrupt row, say).
#[doc(hidden)]
pub async fn status_now<S: TokenStore + Clone>(
    store: &S,
    config: &TokenConfig,
    token: &str,
) -> u16 {
    status(&app(store, config.clone()), token).await.as_u16()
}

fn now() -> SystemTime {
    // Whole seconds, so stores with microsecond resolution round-trip exactly.
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[doc(hidden)]
pub async fn create_find_list<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
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
    assert!(listed[0].preview.starts_with("kit_live_") && listed[0].preview.ends_with('…'));
    assert!(!format!("{listed:?}").contains(&c.token.expose_secret()[20..40]));
    assert_eq!(m.list(None).await.unwrap().len(), 2);
    assert_eq!(
        status(
            &app(&store, suite_config().with_clock(clock.clone())),
            c.token.expose_secret()
        )
        .await,
        StatusCode::OK
    );
}

#[doc(hidden)]
pub async fn revocation_is_permanent<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let c = m
        .create(NewToken::new("t", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let app = app(&store, suite_config().with_clock(clock.clone()));
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
    assert_eq!(r.revoked_reason, Some(RevocationReason::Manual));
    // The reason (and a leak's address) is kept, and a second revocation
    // changes neither it nor the time.
    let leaked = m
        .create(NewToken::new("leaked", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let url = "https://example.com/acme/bot/blob/1f2e/config.yml";
    let because = RevocationReason::Leaked {
        url: Some(url.to_owned()),
    };
    assert!(store
        .revoke(leaked.record.id, clock.now(), &because)
        .await
        .unwrap());
    let first = store.find(leaked.record.id).await.unwrap().unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(!store
        .revoke(leaked.record.id, clock.now(), &RevocationReason::Manual)
        .await
        .unwrap());
    let kept = store.find(leaked.record.id).await.unwrap().unwrap();
    assert_eq!(kept.revoked_reason, Some(because));
    assert_eq!(
        kept.revoked_reason.as_ref().and_then(|r| r.url()),
        Some(url)
    );
    assert_eq!(kept.revoked_at, first.revoked_at, "the first time stays");
    let listed = store.list(None).await.unwrap();
    let in_list = listed.iter().find(|r| r.id == leaked.record.id).unwrap();
    assert_eq!(
        in_list.revoked_reason, kept.revoked_reason,
        "list shows it too"
    );
    // Revoking by the full token works too, and unknown ids are errors.
    let d = m
        .create(NewToken::new("t2", "store-a", ["orders:read"]))
        .await
        .unwrap();
    assert!(m.revoke_token(d.token.expose_secret()).await.unwrap());
    let unknown = suite_config().format().mint();
    assert!(matches!(
        m.revoke(unknown.id).await,
        Err(AdminError::UnknownToken(_))
    ));
}

#[doc(hidden)]
pub async fn rotation_keeps_the_old_token_for_the_grace_only<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let app = app(&store, suite_config().with_clock(clock.clone()));
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
    // No grace: the old token is revoked at once, and the record says why.
    let newer = m.rotate(new.record.id, Duration::ZERO).await.unwrap();
    assert_eq!(
        status(&app, new.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&app, newer.token.expose_secret()).await,
        StatusCode::OK
    );
    let ended = store.find(new.record.id).await.unwrap().unwrap();
    assert_eq!(
        ended.revoked_reason,
        Some(RevocationReason::RotationGraceEnded)
    );
}

#[doc(hidden)]
pub async fn one_live_token_per_name_and_rotations_keep_their_link<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let new = |name: &str, owner: &str| NewToken::new(name, owner, ["orders:read"]);
    let name_in_use =
        |r: Result<CreatedToken, AdminError>| matches!(r, Err(AdminError::NameInUse { .. }));
    let a = m.create(new("ci", "store-a")).await.unwrap();
    assert!(name_in_use(m.create(new("ci", "store-a")).await));
    // The store refuses it too, whoever inserts.
    let format = suite_config();
    let minted = format.format().mint();
    let mut twin = TokenRecord::new(
        minted.id,
        minted.digest,
        a.record.owner.clone(),
        "ci",
        a.record.scopes.clone(),
        clock.now(),
    );
    assert_eq!(
        store.insert(twin.clone()).await.unwrap_err().kind(),
        StoreErrorKind::NameInUse
    );
    // Revoked or expired already: it holds no name.
    twin.revoked_at = Some(clock.now());
    twin.revoked_reason = Some(RevocationReason::Manual);
    store.insert(twin).await.unwrap();
    // Another owner, another name: free.
    m.create(new("ci", "store-b")).await.unwrap();
    m.create(new("ci 2", "store-a")).await.unwrap();

    // A rotation's successor shares the name, and says whom it replaced.
    let b = m
        .rotate(a.record.id, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(b.record.rotated_from, Some(a.record.id));
    let stored = store.find(b.record.id).await.unwrap().unwrap();
    assert_eq!(stored.rotated_from, Some(a.record.id));
    let listed = store.list(Some(&a.record.owner)).await.unwrap();
    let link = |id| listed.iter().find(|r| r.id == id).unwrap().rotated_from;
    assert_eq!(link(b.record.id), Some(a.record.id));
    assert_eq!(link(a.record.id), None);
    // A third token while both hold the name: refused; rotating the
    // successor while the first is still in its grace: allowed.
    assert!(name_in_use(m.create(new("ci", "store-a")).await));
    let c = m
        .rotate(b.record.id, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(c.record.rotated_from, Some(b.record.id));
    clock.advance(Duration::from_secs(601));
    assert!(
        name_in_use(m.create(new("ci", "store-a")).await),
        "c holds it"
    );
    m.revoke(c.record.id).await.unwrap();
    m.create(new("ci", "store-a")).await.unwrap();
    // An expired token frees its name.
    m.create(new("short", "store-a").expires_in(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(name_in_use(m.create(new("short", "store-a")).await));
    clock.advance(Duration::from_secs(10));
    m.create(new("short", "store-a")).await.unwrap();

    // Concurrent creations with one name: exactly one wins.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move {
                m.create(NewToken::new("race", "store-a", ["orders:read"]))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(AdminError::NameInUse { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1, "one live token named race");
}

#[doc(hidden)]
pub async fn rotation_never_extends_the_original_expiry<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
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
        status(
            &app(&store, suite_config().with_clock(clock.clone())),
            old.token.expose_secret()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
}

#[doc(hidden)]
pub async fn suspension_disables_all_owner_tokens_until_reinstated<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let app = app(&store, suite_config().with_clock(clock.clone()));
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

#[doc(hidden)]
pub async fn expiry_follows_the_injected_clock<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let app = app(&store, suite_config().with_clock(clock.clone()));
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

#[doc(hidden)]
pub async fn last_use_is_recorded_off_the_request_path<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let c = m
        .create(NewToken::new("t", "store-a", ["orders:read"]))
        .await
        .unwrap();
    assert_eq!(
        status(
            &app(&store, suite_config().with_clock(clock.clone())),
            c.token.expose_secret()
        )
        .await,
        StatusCode::OK
    );
    H::flush(&store).await;
    let r = store.find(c.record.id).await.unwrap().unwrap();
    assert_eq!(r.last_used_at, Some(clock.now()));
}

#[doc(hidden)]
pub async fn concurrent_minting_and_revoking<H: Harness>() {
    let Some((_, _, m)) = setup::<H>().await else {
        return;
    };
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

#[doc(hidden)]
pub async fn nothing_in_clear_at_rest<H: Harness>() {
    let Some((store, _, m)) = setup::<H>().await else {
        return;
    };
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

/// The [`TokenAdmin`] rules the layer and the manager rely on.
#[doc(hidden)]
pub async fn admin_contract<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let first = m
        .create(
            NewToken::new("first", "store-a", ["orders:read"]).expires_in(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let second = m
        .create(NewToken::new("second", "store-a", ["orders:read"]))
        .await
        .unwrap();
    // Newest first.
    let listed = store.list(None).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [second.record.id, first.record.id],
        "list is newest first"
    );
    // An existing id is a conflict, and the stored record is unchanged.
    let mut again = TokenRecord::new(
        first.record.id,
        first.record.digest,
        "store-b".parse().unwrap(),
        "replacement",
        first.record.scopes.clone(),
        clock.now(),
    );
    again.expires_at = None;
    assert_eq!(
        store.insert(again).await.unwrap_err().kind(),
        StoreErrorKind::Conflict
    );
    let kept = store.find(first.record.id).await.unwrap().unwrap();
    assert_eq!((&*kept.name, kept.owner.as_str()), ("first", "store-a"));
    // cap_expiry shortens, never extends, and sets an expiry where none was.
    let expiry = first.record.expires_at.unwrap();
    store
        .cap_expiry(first.record.id, expiry + Duration::from_secs(3600))
        .await
        .unwrap();
    let r = store.find(first.record.id).await.unwrap().unwrap();
    assert_eq!(r.expires_at, Some(expiry), "cap_expiry must not extend");
    store
        .cap_expiry(first.record.id, expiry - Duration::from_secs(60))
        .await
        .unwrap();
    let r = store.find(first.record.id).await.unwrap().unwrap();
    assert_eq!(r.expires_at, Some(expiry - Duration::from_secs(60)));
    let cap = clock.now() + Duration::from_secs(30);
    store.cap_expiry(second.record.id, cap).await.unwrap();
    let r = store.find(second.record.id).await.unwrap().unwrap();
    assert_eq!(r.expires_at, Some(cap));
    // find fills in owner_suspended, in both directions.
    let owner = first.record.owner.clone();
    store.set_owner_suspended(&owner, true).await.unwrap();
    assert!(
        store
            .find(first.record.id)
            .await
            .unwrap()
            .unwrap()
            .owner_suspended
    );
    assert!(store.is_owner_suspended(&owner).await.unwrap());
    store.set_owner_suspended(&owner, false).await.unwrap();
    assert!(
        !store
            .find(first.record.id)
            .await
            .unwrap()
            .unwrap()
            .owner_suspended
    );
    // Unknown ids: nothing found, and changing one is NotFound.
    let unknown = suite_config().format().mint().id;
    assert!(store.find(unknown).await.unwrap().is_none());
    assert_eq!(
        store
            .revoke(unknown, clock.now(), &RevocationReason::Manual)
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(
        store
            .cap_expiry(unknown, clock.now())
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
}

/// Generates the conformance suite's tests (one `#[tokio::test]` each) for
/// a [`test_kit::Harness`](crate::test_kit::Harness), in a module named
/// `conformance_suite`. Feature `test-kit`.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty) => {
        mod conformance_suite {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn admin_contract() {
                $crate::test_kit::admin_contract::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn create_find_list() {
                $crate::test_kit::create_find_list::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revocation_is_permanent() {
                $crate::test_kit::revocation_is_permanent::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rotation_keeps_the_old_token_for_the_grace_only() {
                $crate::test_kit::rotation_keeps_the_old_token_for_the_grace_only::<$harness>()
                    .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn one_live_token_per_name_and_rotations_keep_their_link() {
                $crate::test_kit::one_live_token_per_name_and_rotations_keep_their_link::<$harness>(
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rotation_never_extends_the_original_expiry() {
                $crate::test_kit::rotation_never_extends_the_original_expiry::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn suspension_disables_all_owner_tokens_until_reinstated() {
                $crate::test_kit::suspension_disables_all_owner_tokens_until_reinstated::<$harness>(
                )
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expiry_follows_the_injected_clock() {
                $crate::test_kit::expiry_follows_the_injected_clock::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn last_use_is_recorded_off_the_request_path() {
                $crate::test_kit::last_use_is_recorded_off_the_request_path::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_minting_and_revoking() {
                $crate::test_kit::concurrent_minting_and_revoking::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nothing_in_clear_at_rest() {
                $crate::test_kit::nothing_in_clear_at_rest::<$harness>().await
            }
        }
    };
}
