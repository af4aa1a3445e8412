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

use criterion::{criterion_group, criterion_main, Criterion};
use subtle::ConstantTimeEq;
use tower_pat::TokenDigest;

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
