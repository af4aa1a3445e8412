//! Brute-force protection: tower-pat combined with the `governor` rate
//! limiter so that a client hammering the API with bad tokens gets 429,
//! while clients with valid tokens keep working.
//!
//! Only *failed* authentications spend a client's budget (keyed by peer IP):
//! a busy integration with a valid token is never throttled by this layer.
//! Put it outside the auth layer. Run: `cargo run --example rate_limit`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
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
use tower_pat::{require_scopes, AuthLayer, MemoryStore, Rejection, ScopeCatalog};

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
            let failed = res.status() == StatusCode::UNAUTHORIZED
                && res.extensions().get::<Rejection>().is_some();
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

async fn app_and_token() -> (Router, String) {
    let store = MemoryStore::new();
    let token = TokenManager::new(store.clone(), ScopeCatalog::nuvlyx())
        .create(NewToken::new("good bot", "demo-store", ["orders:read"]))
        .await
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let app = Router::new()
        .route(
            "/orders",
            get(|| async { "orders" }).route_layer(require_scopes(["orders:read"])),
        )
        .layer(AuthLayer::new(store).attach_rejections())
        .layer(FailureLimitLayer::new(10, 5));
    (app, token)
}

async fn call(app: &Router, peer: &str, token: &str) -> StatusCode {
    let mut req = Request::get("/orders")
        .extension(tower_pat::transport::TlsConnection)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    app.clone().oneshot(req).await.unwrap().status()
}

/// (statuses the attacker saw, statuses the valid client saw), interleaved.
async fn hammer() -> (Vec<StatusCode>, Vec<StatusCode>) {
    let (app, token) = app_and_token().await;
    let (mut attacker, mut valid) = (Vec::new(), Vec::new());
    for i in 0..30 {
        attacker.push(call(&app, "203.0.113.66:5000", &format!("nvl_live_guess{i}")).await);
        valid.push(call(&app, "198.51.100.7:6000", &token).await);
    }
    (attacker, valid)
}

#[tokio::main]
async fn main() {
    let (attacker, valid) = hammer().await;
    let count = |v: &[StatusCode], s| v.iter().filter(|x| **x == s).count();
    println!(
        "attacker: {} x 401, then {} x 429",
        count(&attacker, StatusCode::UNAUTHORIZED),
        count(&attacker, StatusCode::TOO_MANY_REQUESTS)
    );
    println!("valid client: {} x 200", count(&valid, StatusCode::OK));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hammering_with_bad_tokens_gets_429_while_valid_clients_keep_working() {
        let (attacker, valid) = hammer().await;
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
}
