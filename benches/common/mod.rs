//! The per-request cases shared by `per_request` (criterion) and
//! `overhead` (interleaved rounds): the same services, tokens and requests
//! in both, so their figures describe the same work.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::response::EmptyBody;
use tower_pat::store::CachedStore;
use tower_pat::{token::TokenDigest, AuthLayer, MemoryStore};
use tower_pat_sqlx_store::SqliteStore;

pub type Req = Request<()>;
pub type Res = Response<()>;

/// One measured case: `run` sends one request (or hashes one token) and
/// gives the answer's status.
pub struct Case<'a> {
    pub name: &'static str,
    pub run: Box<dyn FnMut() -> StatusCode + 'a>,
}

/// Names of the cases every ratio is taken against.
pub const BARE: &str = "bare service";
pub const SHA256: &str = "sha256 of the token";
pub const FLOOR: &str = "minimal hand-written verifier (floor)";

/// The least a PAT verifier can do, written by hand with no error
/// handling, no configuration and no logging: read the header, SHA-256 the
/// token, look its id up in a `HashMap`, compare digests with `subtle`,
/// read the clock for expiry, and attach the identity to the request.
fn hand_written_verifier(
    token: &str,
) -> impl Service<Req, Response = Res, Error = Infallible, Future = impl Send> + Clone {
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::Arc;
    use subtle::ConstantTimeEq;

    struct Entry {
        digest: [u8; 32],
        expires: SystemTime,
        owner: String,
    }
    let mut map: HashMap<String, Arc<Entry>> = HashMap::new();
    map.insert(
        token[9..25].to_owned(),
        Arc::new(Entry {
            digest: Sha256::digest(token.as_bytes()).into(),
            expires: SystemTime::now() + std::time::Duration::from_secs(3600),
            owner: "demo-store".to_owned(),
        }),
    );
    let map = Arc::new(map);
    service_fn(move |mut req: Req| {
        let found = (|| {
            let header = req.headers().get("authorization")?.to_str().ok()?;
            let token = header.strip_prefix("Bearer ")?;
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            let entry = map.get(token.get(9..25)?)?;
            let equal: bool = entry.digest.ct_eq(&digest).into();
            (equal && SystemTime::now() < entry.expires).then(|| entry.clone())
        })();
        let mut res = Response::new(());
        match found {
            Some(entry) => {
                black_box(&entry.owner);
                req.extensions_mut().insert(entry);
                drop(black_box(req));
            }
            None => *res.status_mut() = StatusCode::UNAUTHORIZED,
        }
        async move { Ok::<_, Infallible>(res) }
    })
}

fn bare() -> impl Service<Req, Response = Res, Error = Infallible, Future = impl Send> + Clone {
    service_fn(|_: Req| async { Ok::<_, Infallible>(Response::new(())) })
}

/// The bare service answering as a JSON handler does: with a
/// `Content-Type`, so the answer's header map exists before the layer adds
/// to it.
fn json_answer() -> impl Service<Req, Response = Res, Error = Infallible, Future = impl Send> + Clone
{
    service_fn(|_: Req| async {
        let mut res = Response::new(());
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok::<_, Infallible>(res)
    })
}

/// `svc` behind what a server does per request: note the peer's address.
fn with_peer<S>(svc: S) -> tower::util::MapRequest<S, fn(Req) -> Req> {
    fn add_peer(mut req: Req) -> Req {
        req.extensions_mut()
            .insert(tower_pat::transport::PeerAddr(std::net::SocketAddr::from(
                ([203, 0, 113, 7], 40_000),
            )));
        req
    }
    tower::util::MapRequest::new(svc, add_peer as fn(Req) -> Req)
}

/// Built the same way, inside the timed loop, for every case.
pub fn request(token: &str) -> Req {
    Request::get("/api/v1/external/orders")
        .extension(tower_pat::transport::TlsConnection)
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

fn case<'a, S>(
    rt: &'a Runtime,
    name: &'static str,
    svc: S,
    token: &str,
    want: StatusCode,
) -> Case<'a>
where
    S: Service<Req, Response = Res, Error = Infallible> + Clone + 'a,
{
    let token = token.to_owned();
    let run = move || {
        rt.block_on(svc.clone().oneshot(request(black_box(&token))))
            .unwrap()
            .status()
    };
    // Check the case does what it says before timing it.
    assert_eq!(run(), want, "{name}");
    Case {
        name,
        run: Box::new(run),
    }
}

/// Forged tokens: well-formed (the checksum is public) with a new random id
/// on every call, so each one misses the cache, negative entries included,
/// and costs a SQLite lookup. Minted ahead, so minting is not timed.
fn forged_case<'a, S>(rt: &'a Runtime, svc: S) -> Case<'a>
where
    S: Service<Req, Response = Res, Error = Infallible> + Clone + 'a,
{
    let forged: Vec<String> = (0..200_000)
        .map(|_| {
            nuvlyx::live()
                .format()
                .clone()
                .mint()
                .token
                .expose_secret()
                .to_owned()
        })
        .collect();
    let next = std::cell::Cell::new(0usize);
    let run = move || {
        let i = next.get();
        next.set((i + 1) % forged.len());
        rt.block_on(svc.clone().oneshot(request(black_box(&forged[i]))))
            .unwrap()
            .status()
    };
    assert_eq!(run(), StatusCode::UNAUTHORIZED);
    Case {
        name: "tower-pat CachedStore<SqliteStore> forged token (new id each call)",
        run: Box::new(run),
    }
}

/// The valid path with the client address known, and the same with a
/// budget and an allowlist (#25).
pub const LIMITS_BASE: &str = "tower-pat valid token, client address known";
pub const LIMITED: &str = "tower-pat valid token with budget + allowlist";
/// The same two, the inner service answering with a `Content-Type`.
pub const LIMITS_BASE_JSON: &str = "tower-pat valid token, client address known, JSON answer";
pub const LIMITED_JSON: &str = "tower-pat budget + allowlist, JSON answer";

/// A valid token, a MemoryStore holding it, and every case.
pub fn cases(rt: &Runtime) -> Vec<Case<'_>> {
    let store = MemoryStore::new();
    let admin = TokenManager::new(store.clone(), nuvlyx::live());
    let token = rt
        .block_on(admin.create(NewToken::new("bench", "demo-store", ["orders:read"])))
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let unknown = nuvlyx::live()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned();
    // The valid token with its last character changed: the checksum fails.
    let last = token.chars().last().unwrap();
    let malformed = format!(
        "{}{}",
        &token[..token.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert!(nuvlyx::live().format().parse(&malformed).is_err());

    let ours = |st: MemoryStore, scope: &'static str| {
        let auth = AuthLayer::builder(st, nuvlyx::live())
            .responder(EmptyBody)
            .build();
        ServiceBuilder::new()
            .layer(auth.clone())
            .layer(auth.require_scopes([scope]))
            .service(bare())
    };

    let ours_json = |st: MemoryStore| {
        let auth = AuthLayer::builder(st, nuvlyx::live())
            .responder(EmptyBody)
            .build();
        ServiceBuilder::new()
            .layer(auth.clone())
            .layer(auth.require_scopes(["orders:read"]))
            .service(json_answer())
    };

    // CachedStore<SqliteStore>, warm after the check run.
    let sqlite = rt.block_on(SqliteStore::in_memory()).unwrap();
    let cached = CachedStore::new(sqlite.clone());
    let sqlite_token = rt
        .block_on(
            TokenManager::new(sqlite, nuvlyx::live()).create(NewToken::new(
                "b",
                "demo-store",
                ["orders:read"],
            )),
        )
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let auth = AuthLayer::builder(cached, nuvlyx::live())
        .responder(EmptyBody)
        .build();
    let ours_cached_sqlite = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require_scopes(["orders:read"]))
        .service(bare());
    let ours_cached_sqlite_forged = ours_cached_sqlite.clone();

    // What any auth layer must do besides hashing: read the clock (expiry)
    // and attach an identity to the request's extensions. `Authenticated`
    // is 8 bytes (one pointer to the shared record); this attaches a
    // 16-byte time the same way.
    assert_eq!(std::mem::size_of::<tower_pat::Authenticated>(), 8);
    assert_eq!(std::mem::size_of::<SystemTime>(), 16);
    let required_work = service_fn(|mut req: Req| {
        let now = SystemTime::now();
        req.extensions_mut().insert(black_box(now));
        drop(black_box(req));
        async { Ok::<_, Infallible>(Response::new(())) }
    });

    // The insecure baseline users replace (not constant time).
    #[allow(deprecated)]
    let tower_http_bearer =
        tower_http::validate_request::ValidateRequestHeaderLayer::bearer(&token).layer(bare());

    // The JWT alternative: HS256 with the same claims.
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = serde_json::json!({ "sub": "demo-store", "jti": "0123456789abcdef", "name": "bench", "scope": "orders:read", "exp": exp });
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]).unwrap(),
    )
    .unwrap();
    let key = jsonwebtoken::DecodingKey::from_secret(&[7u8; 32]).unwrap();
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let jwt_svc = service_fn(move |req: Req| {
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
    });

    let floor = hand_written_verifier(&token);

    // Per-token limits (#25): the same valid path with the client address
    // known (the failed-attempt limit looks it up), and a token with a
    // budget it never exhausts here and an allowlist holding the client.
    let limited = rt
        .block_on(
            admin.create(
                NewToken::new("bench limited", "demo-store", ["orders:read"])
                    .rate_limit("1000000/s".parse().unwrap())
                    .allowed_ips("203.0.113.0/24, 2001:db8::/32".parse().unwrap()),
            ),
        )
        .unwrap()
        .token
        .expose_secret()
        .to_owned();

    let sha_token = token.clone();
    vec![
        case(rt, BARE, bare(), &token, StatusCode::OK),
        case(
            rt,
            "clock read + 16-byte extension, no auth (required work)",
            required_work,
            &token,
            StatusCode::OK,
        ),
        case(rt, FLOOR, floor, &token, StatusCode::OK),
        case(
            rt,
            "tower-http bearer (insecure baseline)",
            tower_http_bearer,
            &token,
            StatusCode::OK,
        ),
        case(
            rt,
            "tower-pat valid token",
            ours(store.clone(), "orders:read"),
            &token,
            StatusCode::OK,
        ),
        case(
            rt,
            "tower-pat valid token, AuthLayer alone (no scope check)",
            AuthLayer::builder(store.clone(), nuvlyx::live())
                .responder(EmptyBody)
                .build()
                .layer(bare()),
            &token,
            StatusCode::OK,
        ),
        case(
            rt,
            LIMITS_BASE,
            with_peer(ours(store.clone(), "orders:read")),
            &token,
            StatusCode::OK,
        ),
        case(
            rt,
            LIMITED,
            with_peer(ours(store.clone(), "orders:read")),
            &limited,
            StatusCode::OK,
        ),
        case(
            rt,
            LIMITS_BASE_JSON,
            with_peer(ours_json(store.clone())),
            &token,
            StatusCode::OK,
        ),
        case(
            rt,
            LIMITED_JSON,
            with_peer(ours_json(store.clone())),
            &limited,
            StatusCode::OK,
        ),
        case(
            rt,
            "tower-pat unknown id",
            ours(store.clone(), "orders:read"),
            &unknown,
            StatusCode::UNAUTHORIZED,
        ),
        case(
            rt,
            "tower-pat malformed",
            ours(store.clone(), "orders:read"),
            &malformed,
            StatusCode::UNAUTHORIZED,
        ),
        case(
            rt,
            "tower-pat missing scope",
            ours(store, "wallet:read"),
            &token,
            StatusCode::FORBIDDEN,
        ),
        case(
            rt,
            "tower-pat CachedStore<SqliteStore> warm",
            ours_cached_sqlite,
            &sqlite_token,
            StatusCode::OK,
        ),
        forged_case(rt, ours_cached_sqlite_forged),
        case(rt, "jsonwebtoken HS256", jwt_svc, &jwt, StatusCode::OK),
        Case {
            name: SHA256,
            run: Box::new(move || {
                black_box(TokenDigest::of(black_box(&sha_token)));
                StatusCode::OK
            }),
        },
    ]
}
