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
//!   window of a minted token;
//! - a damaged record (your [`Harness::corrupt_scopes`], if your store can
//!   be damaged from outside) fails closed: 503 to the holder of the
//!   secret, the ordinary 401 to anyone else.
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

use crate::admin::TokenManager;
use crate::transport::TlsConnection;
use crate::{
    auth::AuthLayer, clock::ManualClock, config::TokenConfig, response::EmptyBody,
    scope::ScopeCatalog, store::TokenAdmin, store::TokenStore, token::Environment,
    token::TokenFormat, token::TokenId,
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

    /// Damages the stored record of `id` as a broken row or file would:
    /// its scopes become unreadable, its digest stays intact (for a SQL
    /// store, `UPDATE … SET scopes = 'NOT A SCOPE'`). Returns `false` if
    /// the store cannot be damaged from outside, the default: the check
    /// that a corrupt record answers 503 only to the holder of the secret
    /// is then skipped.
    fn corrupt_scopes(store: &Self::Store, id: TokenId) -> impl Future<Output = bool> + Send {
        let _ = (store, id);
        async { false }
    }

    /// Damages the stored digest of `id` (for a SQL store, a digest of one
    /// byte). Returns `false` if the store cannot, the default.
    fn corrupt_digest(store: &Self::Store, id: TokenId) -> impl Future<Output = bool> + Send {
        let _ = (store, id);
        async { false }
    }
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

mod contract;
mod lifecycle;
mod limits;

#[doc(hidden)]
pub use self::contract::{
    a_corrupt_record_answers_503_only_to_the_holder_of_the_secret, admin_contract,
    concurrent_minting_and_revoking, nothing_in_clear_at_rest, wrong_secret,
};
#[doc(hidden)]
pub use self::lifecycle::{
    create_find_list, expiry_follows_the_injected_clock, last_use_is_recorded_off_the_request_path,
    one_live_token_per_name_and_rotations_keep_their_link, revocation_is_permanent,
    rotation_keeps_the_old_token_for_the_grace_only, rotation_never_extends_the_original_expiry,
    suspension_disables_all_owner_tokens_until_reinstated,
};
#[doc(hidden)]
pub use self::limits::{
    client_addresses_are_forgotten_after_30_days, limits_are_kept_enforced_and_only_narrowed,
};

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
            async fn a_corrupt_record_answers_503_only_to_the_holder_of_the_secret() {
                $crate::test_kit::a_corrupt_record_answers_503_only_to_the_holder_of_the_secret::<
                    $harness,
                >()
                .await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn limits_are_kept_enforced_and_only_narrowed() {
                $crate::test_kit::limits_are_kept_enforced_and_only_narrowed::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn client_addresses_are_forgotten_after_30_days() {
                $crate::test_kit::client_addresses_are_forgotten_after_30_days::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nothing_in_clear_at_rest() {
                $crate::test_kit::nothing_in_clear_at_rest::<$harness>().await
            }
        }
    };
}
