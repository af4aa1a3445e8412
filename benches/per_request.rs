//! Per-request cost, all in one criterion run so the figures can be read as
//! ratios against the bare service measured alongside.
//!
//! Run: `cargo bench --bench per_request --all-features`.
//! Every case sends one request through `oneshot` on a current-thread Tokio
//! runtime and builds the request inside the timed loop, the same way for
//! every case, so differences are the middleware's own cost.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response, StatusCode};
use subtle::ConstantTimeEq;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::response::EmptyBody;
use tower_pat::store::CachedStore;
use tower_pat::{
    require_scopes, AuthLayer, MemoryStore, ScopeCatalog, SqliteStore, TokenDigest, TokenFormat,
};

type Req = Request<()>;
type Res = Response<()>;

fn bare() -> impl Service<Req, Response = Res, Error = Infallible, Future = impl Send> + Clone {
    service_fn(|_: Req| async { Ok::<_, Infallible>(Response::new(())) })
}

fn request(token: &str) -> Req {
    Request::get("https://api.nuvlyx.test/api/v1/external/orders")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let admin = TokenManager::new(store.clone(), ScopeCatalog::nuvlyx());
    let token = rt
        .block_on(admin.create(NewToken::new("bench", "demo-store", ["orders:read"])))
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let unknown = TokenFormat::nuvlyx_live()
        .mint()
        .token
        .expose_secret()
        .to_owned();
    let malformed =
        format!("{}0", &token[..token.len() - 1]).replace(&token[token.len() - 1..], "0");
    let malformed = if TokenFormat::nuvlyx_live().parse(&malformed).is_err() {
        malformed
    } else {
        format!("{token}x")
    };

    let ours = |st: MemoryStore| {
        ServiceBuilder::new()
            .layer(AuthLayer::new(st).responder(EmptyBody))
            .layer(require_scopes(["orders:read"]).responder(EmptyBody))
            .service(bare())
    };
    let ours_missing_scope = ServiceBuilder::new()
        .layer(AuthLayer::new(store.clone()).responder(EmptyBody))
        .layer(require_scopes(["wallet:read"]).responder(EmptyBody))
        .service(bare());

    // CachedStore<SqliteStore>, warm.
    let sqlite = rt.block_on(SqliteStore::in_memory()).unwrap();
    let cached = CachedStore::new(sqlite.clone());
    let sqlite_token = rt
        .block_on(
            TokenManager::new(sqlite, ScopeCatalog::nuvlyx()).create(NewToken::new(
                "b",
                "demo-store",
                ["orders:read"],
            )),
        )
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let ours_cached_sqlite = ServiceBuilder::new()
        .layer(AuthLayer::new(cached).responder(EmptyBody))
        .layer(require_scopes(["orders:read"]).responder(EmptyBody))
        .service(bare());

    // The insecure baseline users replace (not constant time).
    #[allow(deprecated)]
    let tower_http_bearer =
        tower_http::validate_request::ValidateRequestHeaderLayer::bearer(&token).layer(bare());

    // The JWT alternative: HS256 with the same claims.
    let jwt_key = jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = serde_json::json!({ "sub": "demo-store", "jti": "0123456789abcdef", "name": "bench", "scope": "orders:read", "exp": exp });
    let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jwt_key).unwrap();
    let jwt_decoding = jsonwebtoken::DecodingKey::from_secret(&[7u8; 32]);
    let jwt_validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let jwt_svc = {
        let (key, validation) = (jwt_decoding.clone(), jwt_validation.clone());
        service_fn(move |req: Req| {
            let ok = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| jsonwebtoken::decode::<serde_json::Value>(t, &key, &validation).ok())
                .is_some_and(|d| {
                    d.claims["scope"]
                        .as_str()
                        .is_some_and(|s| s.split(' ').any(|s| s == "orders:read"))
                });
            async move {
                let mut res = Response::new(());
                if !ok {
                    *res.status_mut() = StatusCode::UNAUTHORIZED;
                }
                Ok::<_, Infallible>(res)
            }
        })
    };

    let mut g = c.benchmark_group("per_request");
    macro_rules! case {
        ($name:expr, $svc:expr, $tok:expr, $status:expr) => {{
            let svc = $svc;
            let tok: String = $tok.to_string();
            // Check the case does what it says before timing it.
            assert_eq!(
                rt.block_on(svc.clone().oneshot(request(&tok)))
                    .unwrap()
                    .status(),
                $status,
                $name
            );
            g.bench_function($name, |b| {
                b.iter(|| {
                    rt.block_on(svc.clone().oneshot(request(black_box(&tok))))
                        .unwrap()
                })
            });
        }};
    }
    case!("bare service", bare(), token, StatusCode::OK);
    case!(
        "tower-http bearer (insecure baseline)",
        tower_http_bearer,
        token,
        StatusCode::OK
    );
    case!(
        "tower-pat valid token",
        ours(store.clone()),
        token,
        StatusCode::OK
    );
    case!(
        "tower-pat unknown id",
        ours(store.clone()),
        unknown,
        StatusCode::UNAUTHORIZED
    );
    case!(
        "tower-pat malformed",
        ours(store.clone()),
        malformed,
        StatusCode::UNAUTHORIZED
    );
    case!(
        "tower-pat missing scope",
        ours_missing_scope,
        token,
        StatusCode::FORBIDDEN
    );
    case!(
        "tower-pat CachedStore<SqliteStore> warm",
        ours_cached_sqlite,
        sqlite_token,
        StatusCode::OK
    );
    case!("jsonwebtoken HS256", jwt_svc, jwt, StatusCode::OK);
    g.bench_function("sha256 of the token (floor)", |b| {
        b.iter(|| TokenDigest::of(black_box(&token)))
    });
    g.finish();

    // The comparison alone.
    let mut g = c.benchmark_group("digest_compare");
    let a = TokenDigest::of(&token);
    let mut first = *a.as_bytes();
    first[0] ^= 1;
    let mut last = *a.as_bytes();
    last[31] ^= 1;
    for (name, other) in [
        ("equal", *a.as_bytes()),
        ("first byte differs", first),
        ("last byte differs", last),
    ] {
        let other = TokenDigest::from_bytes(other);
        g.bench_function(name, |b| {
            b.iter(|| bool::from(black_box(&a).ct_eq(black_box(&other))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
