//! The whole layer driven with arbitrary `Authorization` bytes (one or two
//! headers): never panics, never lets a request through without a valid
//! token, always answers 401 or 403 for junk.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use http::{HeaderValue, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::{service_fn, Layer, ServiceExt};
use tower_pat::response::EmptyBody;
use tower_pat::{AuthLayer, MemoryStore};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let (first, second) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    // As a TLS listener marks its requests: the token checks are what is fuzzed.
    let mut req = Request::get("/orders")
        .extension(tower_pat::transport::TlsConnection)
        .body(())
        .unwrap();
    for part in [Some(first), second].into_iter().flatten() {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            req.headers_mut().append(http::header::AUTHORIZATION, v);
        }
    }
    let svc = AuthLayer::builder(MemoryStore::new(), nuvlyx::live())
        .responder(EmptyBody)
        .build()
        .layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let res = runtime().block_on(svc.oneshot(req)).unwrap();
    // The store is empty: nothing can authenticate.
    assert!(
        res.status() == StatusCode::UNAUTHORIZED,
        "unexpected status {}",
        res.status()
    );
});
