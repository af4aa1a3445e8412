//! Per-token limits and the failed-attempt limit, through the layer:
//! allowlists behind trusted and spoofed proxies, budgets with the exact
//! `RateLimit` fields, and the order of checks (a revoked token is 401,
//! never 429; an address outside the list spends nothing).

mod common;
mod conformance;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, Layer, ServiceExt};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::auth::AuthLayerBuilder;
use tower_pat::clock::ManualClock;
use tower_pat::limit::{Budget, IpAllowlist, RateLimit};
use tower_pat::response::{Rejection, RejectionKind};
use tower_pat::store::RateLimiter;
use tower_pat::store::StoreError;
use tower_pat::token::TokenId;
use tower_pat::transport::{PeerAddr, ProxyHeader, TlsConnection};
use tower_pat::{AuthLayer, TokenConfig};

use common::CountingStore;

type Res = Response<Full<Bytes>>;

struct World {
    store: CountingStore,
    clock: ManualClock,
    config: TokenConfig,
    admin: TokenManager<tower_pat::MemoryStore>,
}

impl World {
    fn new() -> Self {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let config = nuvlyx::live().with_clock(clock.clone());
        let store = CountingStore::default();
        let admin = TokenManager::new(store.inner.clone(), config.clone());
        Self {
            store,
            clock,
            config,
            admin,
        }
    }

    async fn token(&self, name: &str, f: impl FnOnce(NewToken) -> NewToken) -> String {
        let req = f(NewToken::new(name, "demo-store", ["orders:read"]));
        self.admin
            .create(req)
            .await
            .unwrap()
            .token
            .expose_secret()
            .to_owned()
    }

    fn layer(&self) -> AuthLayerBuilder {
        AuthLayer::builder(self.store.clone(), self.config.clone())
    }
}

async fn send(
    layer: &AuthLayer,
    token: Option<&str>,
    peer: Option<&str>,
    headers: &[(&str, &str)],
) -> Res {
    let svc = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }));
    let mut req = Request::get("/orders").extension(TlsConnection);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(()).unwrap();
    if let Some(p) = peer {
        req.extensions_mut()
            .insert(PeerAddr(p.parse::<SocketAddr>().unwrap()));
    }
    svc.oneshot(req).await.unwrap()
}

/// The status of `token` from `peer`, without extra headers.
async fn status(layer: &AuthLayer, token: &str, peer: Option<&str>) -> StatusCode {
    send(layer, Some(token), peer, &[]).await.status()
}

fn header(res: &Res, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn allow(s: &str) -> IpAllowlist {
    s.parse().unwrap()
}

#[tokio::test]
async fn allowlist_ipv4_and_ipv6_direct_behind_a_trusted_proxy_and_behind_a_spoofed_one() {
    let w = World::new();
    let token = w
        .token("office bot", |t| {
            t.allowed_ips(allow("203.0.113.0/24, 2001:db8::/32"))
        })
        .await;
    let direct = w.layer().build();
    for (peer, status) in [
        ("203.0.113.7:1000", StatusCode::OK),
        ("[2001:db8::7]:1000", StatusCode::OK),
        ("[::ffff:203.0.113.7]:1000", StatusCode::OK),
        ("198.51.100.7:1000", StatusCode::FORBIDDEN),
        ("[2001:db9::7]:1000", StatusCode::FORBIDDEN),
    ] {
        let res = send(&direct, Some(&token), Some(peer), &[]).await;
        assert_eq!(res.status(), status, "{peer}");
        if status == StatusCode::FORBIDDEN {
            assert_eq!(
                header(&res, "content-type").as_deref(),
                Some("application/problem+json")
            );
            assert!(
                header(&res, "www-authenticate").is_none(),
                "the token is valid: no challenge"
            );
        }
    }
    // Behind a trusted proxy: the client is the proxy's X-Forwarded-For entry.
    let proxied = w
        .layer()
        .trusted_proxies(
            ProxyHeader::XForwardedProto,
            ["10.0.0.0/8".parse().unwrap()],
        )
        .build();
    let via = |xff: &'static str| [("x-forwarded-for", xff)];
    let proxy = Some("10.0.0.2:443");
    assert_eq!(
        send(&proxied, Some(&token), proxy, &via("203.0.113.7"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&proxied, Some(&token), proxy, &via("2001:db8::9"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(
            &proxied,
            Some(&token),
            proxy,
            &via("203.0.113.7, 198.51.100.7")
        )
        .await
        .status(),
        StatusCode::FORBIDDEN,
        "the client wrote an allowed address in front of its own"
    );
    // The proxy itself is not in the list.
    assert_eq!(status(&proxied, &token, proxy).await, StatusCode::FORBIDDEN);
    // A spoofed header from a peer that is not a trusted proxy is ignored.
    assert_eq!(
        send(
            &proxied,
            Some(&token),
            Some("198.51.100.7:9"),
            &via("203.0.113.7")
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    // A garbled header from the trusted proxy: address unknown, refused.
    let res = send(&proxied, Some(&token), proxy, &via("203.0.113.7, garbage")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unknown_client_address_refuses_a_restricted_token_only() {
    let w = World::new();
    let restricted = w
        .token("restricted", |t| t.allowed_ips(allow("203.0.113.0/24")))
        .await;
    let free = w.token("free", |t| t).await;
    let layer = w.layer().attach_rejections().build();
    let res = send(&layer, Some(&restricted), None, &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.extensions().get::<Rejection>().unwrap().kind(),
        RejectionKind::AddressUnknown
    );
    assert_eq!(status(&layer, &free, None).await, StatusCode::OK);
}

#[tokio::test]
async fn before_the_secret_is_proven_the_answer_is_the_ordinary_401() {
    let w = World::new();
    let token = w
        .token("office bot", |t| t.allowed_ips(allow("203.0.113.0/24")))
        .await;
    let layer = w.layer().build();
    // The token's id with another secret, from outside the list: the
    // same 401 as a token with an unknown id, so the 403 is never a hint.
    let wrong = conformance::forge_secret(&token);
    let outside = send(&layer, Some(&wrong), Some("198.51.100.7:1"), &[]).await;
    let forged = nuvlyx::live().format().mint().token;
    let forged = send(
        &layer,
        Some(forged.expose_secret()),
        Some("198.51.100.7:1"),
        &[],
    )
    .await;
    assert_eq!(outside.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(outside.headers(), forged.headers());
}

#[tokio::test]
async fn exact_fields_under_at_and_over_the_limit_and_a_burst_at_the_windows_edge() {
    let w = World::new();
    let token = w
        .token("paced bot", |t| {
            t.rate_limit("60/min burst 3".parse().unwrap())
        })
        .await;
    let layer = w.layer().build();
    let peer = Some("203.0.113.1:1");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let res = send(&layer, Some(&token), peer, &[]).await;
        assert_eq!(
            header(&res, "ratelimit-policy").as_deref(),
            Some("\"token\";q=60;w=60")
        );
        seen.push((
            res.status().as_u16(),
            header(&res, "ratelimit").unwrap(),
            header(&res, "retry-after"),
        ));
    }
    assert_eq!(
        seen,
        [
            (200, "\"token\";r=2;t=1".to_owned(), None),
            (200, "\"token\";r=1;t=2".to_owned(), None),
            (200, "\"token\";r=0;t=3".to_owned(), None),
            (429, "\"token\";r=0;t=3".to_owned(), Some("1".to_owned())),
        ]
    );
    // One nanosecond before the next interval ends: still refused; at it,
    // exactly one more.
    w.clock
        .advance(Duration::from_secs(1) - Duration::from_nanos(1));
    assert_eq!(
        status(&layer, &token, peer).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    w.clock.advance(Duration::from_nanos(1));
    let res = send(&layer, Some(&token), peer, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        header(&res, "ratelimit").as_deref(),
        Some("\"token\";r=0;t=3")
    );
    let res = send(&layer, Some(&token), peer, &[]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], 429);
    assert_eq!(body["error"], "rate_limited");
}

#[tokio::test]
async fn two_tokens_of_one_owner_do_not_share_a_budget_and_unlimited_tokens_have_no_fields() {
    let w = World::new();
    let limit: RateLimit = "1/min".parse().unwrap();
    let a = w.token("a", |t| t.rate_limit(limit)).await;
    let b = w.token("b", |t| t.rate_limit(limit)).await;
    let free = w.token("free", |t| t).await;
    let layer = w.layer().build();
    assert_eq!(status(&layer, &a, None).await, StatusCode::OK);
    assert_eq!(
        status(&layer, &a, None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&layer, &b, None).await, StatusCode::OK);
    let res = send(&layer, Some(&free), None, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, "ratelimit").is_none() && header(&res, "ratelimit-policy").is_none());
}

#[tokio::test]
async fn a_revoked_token_is_401_not_429_and_refusals_spend_nothing() {
    let w = World::new();
    let limit: RateLimit = "1/min".parse().unwrap();
    let created = w
        .admin
        .create(
            NewToken::new("bot", "demo-store", ["orders:read"])
                .rate_limit(limit)
                .allowed_ips(allow("203.0.113.0/24")),
        )
        .await
        .unwrap();
    let token = created.token.expose_secret();
    let layer = w.layer().build();
    // From outside the list: 403, and the budget is untouched.
    for _ in 0..3 {
        let res = send(&layer, Some(token), Some("198.51.100.1:1"), &[]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(
        send(&layer, Some(token), Some("203.0.113.1:1"), &[])
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&layer, Some(token), Some("203.0.113.1:1"), &[])
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    w.admin.revoke(created.record.id).await.unwrap();
    let res = send(&layer, Some(token), Some("203.0.113.1:1"), &[]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&res, "ratelimit").is_none());
}

#[tokio::test]
async fn defaults_apply_to_tokens_that_carry_no_limits() {
    let w = World::new();
    let plain = w.token("plain", |t| t).await;
    let own = w
        .token("own", |t| t.rate_limit("5/min".parse().unwrap()))
        .await;
    let layer = w
        .layer()
        .default_rate_limit("1/min".parse().unwrap())
        .default_allowed_ips(allow("203.0.113.0/24"))
        .build();
    let inside = Some("203.0.113.1:1");
    assert_eq!(status(&layer, &plain, inside).await, StatusCode::OK);
    assert_eq!(
        status(&layer, &plain, inside).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&layer, &own, inside).await, StatusCode::OK);
    assert_eq!(
        status(&layer, &own, inside).await,
        StatusCode::OK,
        "its own budget"
    );
    assert_eq!(
        status(&layer, &own, Some("198.51.100.1:1")).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_forged_flood_from_one_address_gets_429_before_the_store() {
    let w = World::new();
    let valid = w.token("good bot", |t| t).await;
    let layer = w.layer().build(); // the default: 20 failures a minute
    let attacker = Some("203.0.113.66:5000");
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let forged = nuvlyx::live().format().mint().token;
        statuses.push(send(&layer, Some(forged.expose_secret()), attacker, &[]).await);
    }
    assert!(statuses[..20]
        .iter()
        .all(|r| r.status() == StatusCode::UNAUTHORIZED));
    assert!(statuses[20..]
        .iter()
        .all(|r| r.status() == StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(
        w.store.finds(),
        20,
        "blocked attempts never reach the store"
    );
    let blocked = &statuses[29];
    assert_eq!(header(blocked, "retry-after").as_deref(), Some("3"));
    assert_eq!(
        header(blocked, "ratelimit-policy").as_deref(),
        Some("\"failed-auth\";q=20;w=60")
    );
    // Same /64, another address: the same client. Another client: fine.
    assert_eq!(
        status(&layer, &valid, attacker).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&layer, &valid, Some("198.51.100.7:1")).await,
        StatusCode::OK
    );
    // Missing credentials are not failed attempts, and are answered 401.
    assert_eq!(
        send(&layer, None, attacker, &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The budget refills: one attempt every 3 seconds.
    w.clock.advance(Duration::from_secs(3));
    assert_eq!(status(&layer, &valid, attacker).await, StatusCode::OK);
    // Turned off, nothing is counted.
    let off = w.layer().failed_auth_limit(None).build();
    for _ in 0..30 {
        let forged = nuvlyx::live().format().mint().token;
        let res = send(&off, Some(forged.expose_secret()), attacker, &[]).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn ipv6_clients_are_counted_by_their_64() {
    let w = World::new();
    let layer = w
        .layer()
        .failed_auth_limit(Some("2/min".parse().unwrap()))
        .build();
    // Two failures within one /64, a third from another address in it,
    // then one from the next /64.
    for (peer, want) in [
        ("[2001:db8:1:2::1]:1", StatusCode::UNAUTHORIZED),
        ("[2001:db8:1:2::2]:1", StatusCode::UNAUTHORIZED),
        ("[2001:db8:1:2:ffff::9]:1", StatusCode::TOO_MANY_REQUESTS),
        ("[2001:db8:1:3::1]:1", StatusCode::UNAUTHORIZED),
    ] {
        assert_eq!(
            status(&layer, "nvl_live_junk", Some(peer)).await,
            want,
            "{peer}"
        );
    }
}

/// A shared limiter that fails: the request is answered 503, fail closed.
struct Broken(Arc<AtomicUsize>);

#[async_trait]
impl RateLimiter for Broken {
    async fn spend(&self, _: TokenId, _: RateLimit, _: SystemTime) -> Result<Budget, StoreError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::unavailable("limiter down"))
    }
}

#[tokio::test]
async fn a_failing_shared_limiter_fails_closed_and_unlimited_tokens_never_call_it() {
    let w = World::new();
    let limited = w
        .token("limited", |t| t.rate_limit("5/min".parse().unwrap()))
        .await;
    let free = w.token("free", |t| t).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = w.layer().rate_limiter(Broken(calls.clone())).build();
    let res = send(&layer, Some(&limited), None, &[]).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(status(&layer, &free, None).await, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_last_use_records_the_client_address_only_when_asked() {
    let w = World::new();
    let token = w.token("bot", |t| t).await;
    let id = w.admin.list(None).await.unwrap()[0].id;
    let quiet = w.layer().build();
    send(&quiet, Some(&token), Some("203.0.113.5:1"), &[]).await;
    let r = w
        .admin
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert!(r.last_used_at.is_some());
    assert_eq!(r.last_used_from, None);
    w.clock.advance(Duration::from_secs(120));
    let recording = w.layer().record_client_addresses().build();
    send(&recording, Some(&token), Some("203.0.113.5:1"), &[]).await;
    let r = w
        .admin
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap();
    assert_eq!(r.last_used_from, Some("203.0.113.5".parse().unwrap()));
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn grpc_answers_resource_exhausted_with_the_fields() {
    let w = World::new();
    let token = w
        .token("bot", |t| t.rate_limit("1/min".parse().unwrap()))
        .await;
    let layer = w.layer().responder(tower_pat::grpc::GrpcStatus).build();
    let svc = |layer: &AuthLayer<tower_pat::grpc::GrpcStatus>| {
        layer.layer(service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(()))
        }))
    };
    let req = || {
        Request::post("/demo.Orders/List")
            .extension(TlsConnection)
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap()
    };
    assert_eq!(
        svc(&layer)
            .oneshot(req())
            .await
            .unwrap()
            .headers()
            .get("grpc-status"),
        None
    );
    let res = svc(&layer).oneshot(req()).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "8");
    assert_eq!(res.headers()["retry-after"], "60");
    assert!(res.headers().contains_key("ratelimit"));
}

#[tokio::test]
async fn a_private_peer_without_trusted_proxies_is_not_counted_but_its_forwarded_clients_are() {
    let w = World::new();
    let valid = w.token("good bot", |t| t).await;
    let forge = || {
        nuvlyx::live()
            .format()
            .mint()
            .token
            .expose_secret()
            .to_owned()
    };
    // A load balancer at 10.0.0.2 the layer was not told about: all clients
    // look alike, so none is counted and none is locked out.
    let unconfigured = w
        .layer()
        .failed_auth_limit(Some("2/min".parse().unwrap()))
        .build();
    for _ in 0..5 {
        let res = send(&unconfigured, Some(&forge()), Some("10.0.0.2:1"), &[]).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        status(&unconfigured, &valid, Some("10.0.0.2:1")).await,
        StatusCode::OK
    );
    // Configured: each forwarded client has its own budget.
    let configured = w
        .layer()
        .failed_auth_limit(Some("2/min".parse().unwrap()))
        .trusted_proxies(
            ProxyHeader::XForwardedProto,
            ["10.0.0.0/8".parse().unwrap()],
        )
        .build();
    let attacker = [("x-forwarded-for", "198.51.100.66")];
    for _ in 0..2 {
        let res = send(&configured, Some(&forge()), Some("10.0.0.2:1"), &attacker).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = send(&configured, Some(&forge()), Some("10.0.0.2:1"), &attacker).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = [("x-forwarded-for", "198.51.100.7")];
    assert_eq!(
        send(&configured, Some(&valid), Some("10.0.0.2:1"), &other)
            .await
            .status(),
        StatusCode::OK
    );
}
