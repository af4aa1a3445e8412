//! Brute-force protection: tower-pat combined with the `governor` rate
//! limiter so that a client hammering the API with bad tokens gets 429,
//! while clients with valid tokens keep working.
//!
//! Only *failed* authentications spend a client's budget (keyed by peer IP):
//! a busy integration with a valid token is never throttled by this layer.
//! Put it outside the auth layer. Run: `cargo run --example rate_limit`.
//!
//! Failures are read from the [`Rejection`] the auth layer attaches to its
//! responses (`AuthLayer::attach_rejections`), never from the HTTP status:
//! with the `grpc` feature's `GrpcStatus` responder a refused gRPC call is
//! HTTP 200 with `grpc-status: 16`, and a status-based limiter would never
//! see it fail.
//!
//! This is also what bounds a flood of *forged* tokens. The checksum is
//! public, so anyone can make well-formed tokens with random ids, and each
//! one costs a store lookup (a negative cache does not help: every id is
//! new). Per client, the limiter caps those lookups at the burst plus the
//! refill rate; the tests count them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::{
    auth::AuthLayerBuilder,
    response::Rejection,
    store::{Lookup, TokenStore},
    token::TokenId,
    AuthLayer, MemoryStore,
};

/// Allows `burst` failed authentications per client, refilled at
/// `per_minute`; past that the client gets 429 until its budget refills.
#[derive(Clone)]
struct FailureLimitLayer {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    blocked: Arc<Mutex<HashMap<IpAddr, Instant>>>,
}

impl FailureLimitLayer {
    fn new(per_minute: u32, burst: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap())
            .allow_burst(NonZeroU32::new(burst).unwrap());
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            blocked: Arc::default(),
        }
    }
}

impl<S> Layer<S> for FailureLimitLayer {
    type Service = FailureLimit<S>;
    fn layer(&self, inner: S) -> FailureLimit<S> {
        FailureLimit {
            inner,
            limits: self.clone(),
        }
    }
}

#[derive(Clone)]
struct FailureLimit<S> {
    inner: S,
    limits: FailureLimitLayer,
}

fn peer_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

impl<S> Service<Request<Body>> for FailureLimit<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let ip = peer_ip(&req);
        let limits = self.limits.clone();
        if let Some(ip) = ip {
            let now = Instant::now();
            let mut blocked = limits.blocked.lock().unwrap();
            blocked.retain(|_, until| *until > now);
            if let Some(until) = blocked.get(&ip) {
                let wait = until.duration_since(now).as_secs().max(1);
                let res = Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header("retry-after", wait)
                    .body(Body::from("too many failed authentications"))
                    .unwrap();
                return Box::pin(async move { Ok(res) });
            }
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let res = inner.call(req).await?;
            // What the rejection means, whatever the responder answered.
            let failed = res
                .extensions()
                .get::<Rejection>()
                .is_some_and(|r| r.status() == StatusCode::UNAUTHORIZED);
            if let (true, Some(ip)) = (failed, ip) {
                if let Err(not_until) = limits.limiter.check_key(&ip) {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    limits
                        .blocked
                        .lock()
                        .unwrap()
                        .insert(ip, Instant::now() + wait.max(Duration::from_secs(1)));
                }
            }
            Ok(res)
        })
    }
}

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
    let auth = auth(store).attach_rejections().build();
    let app = Router::new()
        .route(
            "/orders",
            get(|| async { "orders" }).route_layer(auth.require_scopes(["orders:read"])),
        )
        .layer(auth)
        .layer(FailureLimitLayer::new(10, 5));
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
        // The burst of 5 failures is spent; the failure after it (answered
        // 401, like the others) blocks the client: every later try is 429.
        assert!(
            attacker[..6].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
            "{attacker:?}"
        );
        assert!(
            attacker[6..]
                .iter()
                .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
            "{attacker:?}"
        );
        assert!(valid.iter().all(|s| *s == StatusCode::OK), "{valid:?}");
    }

    /// Forged well-formed tokens each cost a lookup; the limiter bounds how
    /// many one client can cause: 6 of its 30 reach the store.
    #[tokio::test]
    async fn forged_tokens_reach_the_store_only_until_the_client_is_blocked() {
        let (attacker, valid, lookups) = hammer(live, |_| forged()).await;
        let attacker = statuses(&attacker);
        assert_eq!(&attacker[..6], &[StatusCode::UNAUTHORIZED; 6]);
        assert!(attacker[6..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS));
        assert!(valid.iter().all(|s| *s == StatusCode::OK));
        // One lookup per valid request (30), and 6 for the attacker.
        assert_eq!(lookups - 30, 6, "store lookups caused by the attacker");
    }

    /// A gRPC responder answers HTTP 200 with `grpc-status: 16`: the limiter
    /// still sees each failure through the attached `Rejection`.
    #[cfg(feature = "grpc")]
    #[tokio::test]
    async fn failures_answered_as_grpc_statuses_still_count() {
        use tower_pat::grpc::GrpcStatus;
        let grpc = |store| AuthLayer::builder(store, token_config()).responder(GrpcStatus);
        let (attacker, valid, lookups) = hammer(grpc, |_| forged()).await;
        for refused in &attacker[..6] {
            assert_eq!(
                refused.status(),
                StatusCode::OK,
                "gRPC errors travel in headers"
            );
            assert_eq!(refused.headers()["grpc-status"], "16");
        }
        assert!(
            attacker[6..]
                .iter()
                .all(|r| r.status() == StatusCode::TOO_MANY_REQUESTS),
            "{:?}",
            statuses(&attacker)
        );
        assert!(valid.iter().all(|s| *s == StatusCode::OK));
        assert_eq!(lookups - 30, 6);
    }
}
