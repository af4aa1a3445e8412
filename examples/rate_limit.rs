//! Brute-force protection: the auth layer's failed-attempt limit, so that
//! a client hammering the API with bad tokens gets 429, while clients with
//! valid tokens keep working.
//!
//! Only *failed* authentications spend a client's budget (keyed by its
//! address, an IPv6 /64 counting as one client): a busy integration with a
//! valid token is never throttled by it. The layer does it by default (20
//! failures a minute); `AuthLayerBuilder::failed_auth_limit` changes the
//! budget, here to 5 at once and 10 a minute. Run:
//! `cargo run --example rate_limit`.
//!
//! This is what bounds a flood of *forged* tokens. The checksum is public,
//! so anyone can make well-formed tokens with random ids, and each one
//! costs a store lookup (a negative cache does not help: every id is new).
//! Per client, the limit caps those lookups at the burst plus the refill
//! rate, and a blocked client is answered before the store is asked; the
//! tests count the lookups.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use http::{Request, Response, StatusCode};
use tower::ServiceExt;
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::{
    auth::AuthLayerBuilder,
    store::{Lookup, TokenStore},
    token::TokenId,
    AuthLayer, MemoryStore,
};

/// Counts the lookups that reach the store.
#[derive(Debug, Clone, Default)]
struct CountingStore {
    inner: MemoryStore,
    finds: Arc<AtomicUsize>,
}

impl TokenStore for CountingStore {
    fn find(&self, id: TokenId) -> Lookup {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.find(id)
    }
}

/// The protected app behind `auth`, the failure limiter outside it, and a
/// valid token.
async fn app_with<R>(
    auth: impl FnOnce(CountingStore) -> AuthLayerBuilder<R>,
) -> (Router, String, Arc<AtomicUsize>)
where
    R: tower_pat::response::Responder<Body> + Clone + Send + Sync + 'static,
{
    let store = CountingStore::default();
    let token = TokenManager::new(store.inner.clone(), token_config())
        .create(NewToken::new("good bot", "demo-store", ["orders:read"]))
        .await
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let finds = store.finds.clone();
    let auth = auth(store)
        .failed_auth_limit(Some("10/min burst 5".parse().unwrap()))
        .build();
    let app = Router::new()
        .route(
            "/orders",
            get(|| async { "orders" }).route_layer(auth.require_scopes(["orders:read"])),
        )
        .layer(auth);
    (app, token, finds)
}

async fn call(app: &Router, peer: &str, token: &str) -> Response<Body> {
    let mut req = Request::get("/orders")
        .extension(tower_pat::transport::TlsConnection)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    app.clone().oneshot(req).await.unwrap()
}

/// A well-formed token with a random id: it passes the offline format
/// check (the checksum is public) and costs a store lookup.
fn forged() -> String {
    token_config()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned()
}

/// Statuses the attacker saw, statuses the valid client saw (interleaved),
/// and how many lookups reached the store.
async fn hammer<R>(
    auth: impl FnOnce(CountingStore) -> AuthLayerBuilder<R>,
    attempt: impl Fn(usize) -> String,
) -> (Vec<Response<Body>>, Vec<StatusCode>, usize)
where
    R: tower_pat::response::Responder<Body> + Clone + Send + Sync + 'static,
{
    let (app, token, finds) = app_with(auth).await;
    let (mut attacker, mut valid) = (Vec::new(), Vec::new());
    for i in 0..30 {
        attacker.push(call(&app, "203.0.113.66:5000", &attempt(i)).await);
        valid.push(call(&app, "198.51.100.7:6000", &token).await.status());
    }
    let lookups = finds.load(Ordering::SeqCst);
    (attacker, valid, lookups)
}

/// The auth layer for this API's tokens.
fn live(store: CountingStore) -> AuthLayerBuilder {
    AuthLayer::builder(store, token_config())
}

#[tokio::main]
async fn main() {
    let (attacker, valid, lookups) = hammer(live, |_| forged()).await;
    let count = |s| attacker.iter().filter(|r| r.status() == s).count();
    println!(
        "attacker (30 forged, well-formed tokens): {} x 401, then {} x 429; {lookups} store lookups in all (30 valid ones included)",
        count(StatusCode::UNAUTHORIZED),
        count(StatusCode::TOO_MANY_REQUESTS)
    );
    println!(
        "valid client: {} x 200",
        valid.iter().filter(|s| **s == StatusCode::OK).count()
    );
}

/// This API's tokens: the format (`nvl_live_…`) and the scopes, as an
/// adopter defines its own.
fn token_config() -> tower_pat::TokenConfig {
    tower_pat::TokenConfig::new(
        tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).expect("a valid prefix"),
        tower_pat::ScopeCatalog::new()
            .scope("orders:read", "Read orders and their status.")
            .scope("orders:write", "Create orders on behalf of customers."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(responses: &[Response<Body>]) -> Vec<StatusCode> {
        responses.iter().map(|r| r.status()).collect()
    }

    #[tokio::test]
    async fn hammering_with_bad_tokens_gets_429_while_valid_clients_keep_working() {
        let (attacker, valid, _) = hammer(live, |i| format!("nvl_live_guess{i}")).await;
        let attacker = statuses(&attacker);
        // The burst of 5 failures is spent: every later try is 429, answered
        // before the store is asked.
        assert!(
            attacker[..5].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
            "{attacker:?}"
        );
        assert!(
            attacker[5..]
                .iter()
                .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
            "{attacker:?}"
        );
        assert!(valid.iter().all(|s| *s == StatusCode::OK), "{valid:?}");
    }

    /// Forged well-formed tokens each cost a lookup; the limit bounds how
    /// many one client can cause: 5 of its 30 reach the store.
    #[tokio::test]
    async fn forged_tokens_reach_the_store_only_until_the_client_is_blocked() {
        let (attacker, valid, lookups) = hammer(live, |_| forged()).await;
        let attacker = statuses(&attacker);
        assert_eq!(&attacker[..5], &[StatusCode::UNAUTHORIZED; 5]);
        assert!(attacker[5..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS));
        assert!(valid.iter().all(|s| *s == StatusCode::OK));
        // One lookup per valid request (30), and 5 for the attacker.
        assert_eq!(lookups - 30, 5, "store lookups caused by the attacker");
    }

    /// A gRPC responder answers HTTP 200 with `grpc-status: 16`, then,
    /// once the client is blocked, `grpc-status: 8` (RESOURCE_EXHAUSTED).
    #[cfg(feature = "grpc")]
    #[tokio::test]
    async fn failures_answered_as_grpc_statuses_still_count() {
        use tower_pat::grpc::GrpcStatus;
        let grpc = |store| AuthLayer::builder(store, token_config()).responder(GrpcStatus);
        let (attacker, valid, lookups) = hammer(grpc, |_| forged()).await;
        for (i, refused) in attacker.iter().enumerate() {
            assert_eq!(
                refused.status(),
                StatusCode::OK,
                "gRPC errors travel in headers"
            );
            let code = if i < 5 { "16" } else { "8" };
            assert_eq!(refused.headers()["grpc-status"], code, "attempt {i}");
        }
        assert!(valid.iter().all(|s| *s == StatusCode::OK));
        assert_eq!(lookups - 30, 5);
    }
}
