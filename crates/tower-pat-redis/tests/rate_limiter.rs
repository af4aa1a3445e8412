//! `RedisRateLimiter` against real Redis servers: one budget shared by two
//! instances, exact `RateLimit` fields at the limit, and the fallback when
//! the server is stopped and started again.
//!
//! Opt-in: set `REDIS_URL`; the outage test also starts `redis-server`
//! processes of its own on free ports. Without them the tests say
//! `skipped`, unless `TOWER_PAT_REQUIRE_DB` is set (as in `.ci/run`).

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};
use tower::{service_fn, Layer, ServiceExt};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::limit::RateLimit;
use tower_pat::store::RateLimiter;
use tower_pat::transport::{PeerAddr, TlsConnection};
use tower_pat::{token::TokenId, AuthLayer, MemoryStore};
use tower_pat_redis::RedisRateLimiter;

fn url() -> Option<String> {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|u| u.starts_with("redis://"))
}

fn required() -> bool {
    assert!(
        std::env::var_os("TOWER_PAT_REQUIRE_DB").is_none(),
        "REDIS_URL and redis-server are required"
    );
    eprintln!("skipped: REDIS_URL or redis-server missing");
    false
}

fn random_id() -> TokenId {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    TokenId::from_bytes((nanos ^ u64::from(std::process::id()) << 40).to_le_bytes())
}

/// One budget of 5 a minute, spent through two instances: 5 accepted in
/// all, then 429 on both, with the draft's fields at each step.
#[tokio::test]
async fn two_instances_share_one_budget_with_exact_headers() {
    let Some(url) = url() else {
        required();
        return;
    };
    let store = MemoryStore::new();
    let config = nuvlyx::live();
    let mint = |name: &'static str| {
        let manager = TokenManager::new(store.clone(), config.clone());
        async move {
            let limited = NewToken::new(name, "demo-store", ["orders:read"]);
            manager
                .create(limited.rate_limit("5/min".parse().unwrap()))
                .await
                .unwrap()
        }
    };
    let (created, other) = (mint("bot").await, mint("other bot").await);
    let instance = || {
        AuthLayer::builder(store.clone(), config.clone())
            .rate_limiter(RedisRateLimiter::open(&url, 2).unwrap())
            .build()
            .layer(service_fn(|_: Request<String>| async {
                Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                    bytes::Bytes::new(),
                )))
            }))
    };
    let (a, b) = (instance(), instance());
    type Svc = tower::util::BoxCloneService<
        Request<String>,
        Response<http_body_util::Full<bytes::Bytes>>,
        std::convert::Infallible,
    >;
    let send = |svc: &Svc, token: &str| {
        let svc = svc.clone();
        let req = Request::get("/orders")
            .extension(TlsConnection)
            .extension(PeerAddr("203.0.113.1:4000".parse::<SocketAddr>().unwrap()))
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        svc.oneshot(req)
    };
    let (a, b) = (Svc::new(a), Svc::new(b));
    let token = created.token.expose_secret();
    let mut seen = Vec::new();
    for i in 0..7 {
        let res = send(if i % 2 == 0 { &a } else { &b }, token).await.unwrap();
        let h = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h("ratelimit-policy").as_deref(), Some("\"token\";q=5;w=60"));
        seen.push((res.status(), h("ratelimit"), h("retry-after")));
    }
    let expected = |r: u32, t: u32| Some(format!("\"token\";r={r};t={t}"));
    assert_eq!(
        seen,
        vec![
            (StatusCode::OK, expected(4, 12), None),
            (StatusCode::OK, expected(3, 24), None),
            (StatusCode::OK, expected(2, 36), None),
            (StatusCode::OK, expected(1, 48), None),
            (StatusCode::OK, expected(0, 60), None),
            (
                StatusCode::TOO_MANY_REQUESTS,
                expected(0, 60),
                Some("12".into())
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                expected(0, 60),
                Some("12".into())
            ),
        ],
        "(the reset may read one second less if a request straddles a second)"
    );
    // Another token of the same owner has a budget of its own.
    let res = send(&a, other.token.expose_secret()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_redis(port: u16) -> Option<Child> {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

async fn accepted(limiter: &RedisRateLimiter, id: TokenId, limit: RateLimit, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if limiter
            .spend(id, limit, SystemTime::now())
            .await
            .unwrap()
            .is_allowed()
        {
            ok += 1;
        }
    }
    ok
}

/// The server is stopped: each instance keeps its share of the budget
/// (never unlimited), or, failing closed, answers errors (503). Started
/// again, the shared budget is back a second later.
#[tokio::test]
async fn an_outage_falls_back_to_each_instances_share_and_recovers() {
    let port = free_port();
    let Some(mut server) = start_redis(port) else {
        required();
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let limit: RateLimit = "8/h".parse().unwrap();
    let shared = RedisRateLimiter::open(&url, 4).unwrap();
    let closed = RedisRateLimiter::open(&url, 4).unwrap().fail_closed();
    let id = random_id();
    assert_eq!(accepted(&shared, id, limit, 3).await, 3);
    assert!(closed
        .spend(id, limit, SystemTime::now())
        .await
        .unwrap()
        .is_allowed());

    server.kill().unwrap();
    server.wait().unwrap();
    // Down: 8 / 4 instances = 2 for this instance, whatever Redis held.
    assert_eq!(accepted(&shared, id, limit, 10).await, 2);
    assert!(closed.spend(id, limit, SystemTime::now()).await.is_err());

    let mut server = start_redis(port).expect("redis-server starts again");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Back: the new server's budget (it kept nothing) is shared again.
    assert_eq!(accepted(&shared, id, limit, 10).await, 8);
    assert!(!closed
        .spend(id, limit, SystemTime::now())
        .await
        .unwrap()
        .is_allowed());
    server.kill().unwrap();
    server.wait().unwrap();
}
