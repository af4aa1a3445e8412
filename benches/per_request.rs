//! Per-request cost, all in one criterion run so the figures can be read as
//! ratios against the bare service measured alongside.
//!
//! Run: `cargo bench --bench per_request --all-features`.
//! Every case sends one request through `oneshot` on a current-thread Tokio
//! runtime and builds the request inside the timed loop, the same way for
//! every case, so differences are the middleware's own cost. The cases live
//! in `common/mod.rs`, shared with `overhead.rs`, which measures the same
//! cases in interleaved rounds for ratios that survive a noisy machine.

mod common;

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{AUTHORIZATION, CACHE_CONTROL, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response};
use subtle::ConstantTimeEq;
use tower_pat::token::TokenDigest;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("per_request");
    for mut case in common::cases(&rt) {
        g.bench_function(case.name, |b| b.iter(&mut case.run));
    }
    g.finish();

    // The comparison alone.
    let mut g = c.benchmark_group("digest_compare");
    let a = TokenDigest::of("nvl_live_any_token_will_do");
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

    // Pieces of the per-request work, to tell where the overhead goes.
    let mut g = c.benchmark_group("components");
    let format = nuvlyx::live().format().clone();
    let token = format.mint().token.expose_secret().to_owned();
    let mut bad = token.clone().into_bytes();
    let end = bad.len() - 1;
    bad[end] = if bad[end] == b'0' { b'1' } else { b'0' };
    let req = common::request(&token);
    g.bench_function("Authorization lookup in the HeaderMap", |b| {
        b.iter(|| {
            black_box(&req)
                .headers()
                .get_all(AUTHORIZATION)
                .iter()
                .next()
        })
    });
    g.bench_function("format check, valid token", |b| {
        b.iter(|| format.parse_bytes(black_box(token.as_bytes())).is_ok())
    });
    g.bench_function("format check, checksum fails", |b| {
        b.iter(|| format.parse_bytes(black_box(&bad)).is_ok())
    });
    // What a 401 costs besides deciding it: the layer copies a prepared
    // two-header map into a new response (and the response is dropped).
    let mut challenge = HeaderMap::with_capacity(2);
    challenge.insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="api", error="invalid_token""#),
    );
    challenge.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    g.bench_function("empty response", |b| b.iter(|| Response::new(())));
    g.bench_function("response + copy of a two-header map", |b| {
        b.iter(|| {
            let mut res = Response::new(());
            *res.headers_mut() = black_box(&challenge).clone();
            res
        })
    });
    g.bench_function("response + 16-byte extension", |b| {
        b.iter(|| {
            let mut res = Response::new(());
            res.extensions_mut().insert(black_box([0u64; 2]));
            res
        })
    });
    g.bench_function("clock read", |b| b.iter(SystemTime::now));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
