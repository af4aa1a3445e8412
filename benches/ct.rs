//! Constant-time evidence, dudect style ("Dude, is my code constant time?",
//! Reparaz, Balasch, Verbauwhede, 2017): Welch's t-test between the timing
//! distributions of two input classes, via `dudect-bencher`.
//!
//! Run: `cargo bench --bench ct` (add `-- --filter NAME` for one). Each bench
//! takes `CT_SAMPLES` samples (default 1,000,000). `max t` above ~4.5 means
//! the two classes are distinguishable by timing; the controls must show it.
//!
//! - `digest_eq_vs_first`, `digest_eq_vs_last`, `digest_first_vs_last`:
//!   `TokenDigest` comparison (`subtle`), equal vs differing in the first or
//!   last byte.
//! - `verify_early_vs_late`: the whole layer for a known id with a wrong
//!   secret that differs early vs late in the secret.
//! - diagnostics: `parse_early_vs_late`, `sha_early_vs_late`,
//!   `header_early_vs_late` time one step on tokens whose *own* bytes differ
//!   early vs late (no secret is involved).
//! - `control_slice_eq`: the same digest inputs compared with `==` on byte
//!   slices (expected to leak).
//! - `control_early_exit_loop`: a byte-by-byte loop that returns at the first
//!   difference (must leak: proves the harness can see a leak).

use std::cell::RefCell;
use std::convert::Infallible;

use dudect_bencher::{BenchRng, Class, CtRunner};
use http::{Request, Response};
use subtle::ConstantTimeEq;
use tower::{service_fn, Layer, ServiceExt};
use tower_pat::response::EmptyBody;
use tower_pat::{
    scope::ScopeSet,
    store::{OwnerId, TokenRecord, TokenStore},
    token::{TokenDigest, TokenId},
    AuthLayer,
};

fn samples() -> usize {
    std::env::var("CT_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

/// Small deterministic generator for inputs and class labels.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
}

#[derive(Clone, Copy)]
enum Diff {
    None,
    First,
    Last,
}

fn pair(rng: &mut XorShift, diff: Diff) -> ([u8; 32], [u8; 32]) {
    let a = rng.bytes32();
    let mut b = a;
    match diff {
        Diff::None => {}
        Diff::First => b[0] ^= 0x01,
        Diff::Last => b[31] ^= 0x01,
    }
    (a, b)
}

/// Builds `samples()` labelled input pairs, classes chosen at random.
fn inputs(left: Diff, right: Diff) -> Vec<(Class, [u8; 32], [u8; 32])> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    (0..samples())
        .map(|_| {
            let (class, diff) = if rng.next() & 1 == 0 {
                (Class::Left, left)
            } else {
                (Class::Right, right)
            };
            let (a, b) = pair(&mut rng, diff);
            (class, a, b)
        })
        .collect()
}

fn digest_bench(runner: &mut CtRunner, left: Diff, right: Diff) {
    for (class, a, b) in inputs(left, right) {
        let (a, b) = (TokenDigest::from_bytes(a), TokenDigest::from_bytes(b));
        runner.run_one(class, || bool::from(a.ct_eq(&b)));
    }
}

fn digest_eq_vs_first(runner: &mut CtRunner, _: &mut BenchRng) {
    digest_bench(runner, Diff::None, Diff::First)
}

fn digest_eq_vs_last(runner: &mut CtRunner, _: &mut BenchRng) {
    digest_bench(runner, Diff::None, Diff::Last)
}

fn digest_first_vs_last(runner: &mut CtRunner, _: &mut BenchRng) {
    digest_bench(runner, Diff::First, Diff::Last)
}

fn control_slice_eq(runner: &mut CtRunner, _: &mut BenchRng) {
    for (class, a, b) in inputs(Diff::None, Diff::First) {
        runner.run_one(class, || a[..] == b[..]);
    }
}

#[inline(never)]
fn early_exit_eq(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return false;
        }
    }
    true
}

fn control_early_exit_loop(runner: &mut CtRunner, _: &mut BenchRng) {
    for (class, a, b) in inputs(Diff::None, Diff::First) {
        runner.run_one(class, || {
            early_exit_eq(std::hint::black_box(&a), std::hint::black_box(&b))
        });
    }
}

/// Replaces one secret hex character (early or late) keeping id and a
/// valid checksum, so the request reaches the digest comparison.
fn forge(token: &str, position: usize, rng: &mut XorShift) -> String {
    let (head, body) = token.split_at(token.len() - 72);
    let mut raw: Vec<u8> = (0..36)
        .map(|i| u8::from_str_radix(&body[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    raw[position] ^= (rng.next() as u8) | 1;
    let crc = crc32fast::hash(&raw[..32]).to_be_bytes();
    raw[32..].copy_from_slice(&crc);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("{head}{hex}")
}

/// Forged tokens for the early / late classes, for a given real token.
fn forged_cases(token: &str) -> Vec<(Class, String)> {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let late = late_position();
    (0..samples())
        .map(|_| {
            if rng.next() & 1 == 0 {
                (Class::Left, forge(token, 8, &mut rng))
            } else {
                (Class::Right, forge(token, late, &mut rng))
            }
        })
        .collect()
}

/// Diagnostics: the offline format check alone, then SHA-256 alone.
fn parse_early_vs_late(runner: &mut CtRunner, _: &mut BenchRng) {
    let token = nuvlyx::live()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned();
    let format = nuvlyx::live().format().clone();
    for (class, forged) in forged_cases(&token) {
        runner.run_one(class, || format.parse(&forged).is_ok());
    }
}

fn sha_early_vs_late(runner: &mut CtRunner, _: &mut BenchRng) {
    let token = nuvlyx::live()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned();
    for (class, forged) in forged_cases(&token) {
        runner.run_one(class, || TokenDigest::of(&forged));
    }
}

fn header_early_vs_late(runner: &mut CtRunner, _: &mut BenchRng) {
    let token = nuvlyx::live()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned();
    for (class, forged) in forged_cases(&token) {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {forged}").parse().unwrap());
        runner.run_one(class, || tower_pat::auth::bearer_token(&headers).is_ok());
    }
}

/// A one-record store whose record the bench swaps between samples.
struct OneRecord(std::sync::RwLock<Option<TokenRecord>>);

impl TokenStore for OneRecord {
    fn find(&self, _: TokenId) -> tower_pat::store::Lookup {
        tower_pat::store::Lookup::ready(Ok(self.0.read().unwrap().clone().map(std::sync::Arc::new)))
    }
}

/// The whole layer, for a known id with a wrong secret. Every request
/// carries a fresh random token X (same distribution in both classes); the
/// stored token differs from X in its first secret byte (left) or its last
/// (right). A leak would tell an attacker how much of the stored secret
/// their guess matches.
fn verify_early_vs_late(runner: &mut CtRunner, _: &mut BenchRng) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let store = std::sync::Arc::new(OneRecord(std::sync::RwLock::new(None)));
    let svc = AuthLayer::builder(store.clone(), nuvlyx::live())
        .responder(EmptyBody)
        .build()
        .layer(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let format = nuvlyx::live().format().clone();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    // Read once: a per-sample lookup would allocate for one class only and
    // bias the timings (an A/A run showed |t| > 10 from that alone).
    let late = late_position();
    for _ in 0..samples() {
        let presented = format.mint().token.expose_secret().to_owned();
        // The class bit comes from the CSPRNG, independent of all else.
        let (class, byte) = if format.mint().id.as_bytes()[7] & 1 == 0 {
            (Class::Left, 8)
        } else {
            (Class::Right, late)
        };
        let stored = forge(&presented, byte, &mut rng);
        let record = TokenRecord::new(
            format.parse(&stored).unwrap(),
            TokenDigest::of(&stored),
            OwnerId::new("o").unwrap(),
            "ct",
            ScopeSet::parse(["orders:read"]).unwrap(),
            std::time::SystemTime::now(),
        );
        *store.0.write().unwrap() = Some(record);
        let req = RefCell::new(Some(
            Request::get("/orders")
                .extension(tower_pat::transport::TlsConnection)
                .header("authorization", format!("Bearer {presented}"))
                .body(())
                .unwrap(),
        ));
        runner.run_one(class, || {
            let req = req.borrow_mut().take().expect("one call per sample");
            let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
            debug_assert_eq!(res.status(), 401);
            res
        });
    }
}

// `ctbench_main!` would reject the `--bench` flag cargo passes, so the
// runner is set up here; `CT_FILTER=name` selects benches.
fn main() {
    use dudect_bencher::ctbench::{run_benches_console, BenchMetadata, BenchName, BenchOpts};
    type BenchFn = fn(&mut CtRunner, &mut BenchRng);
    let all: [(&'static str, BenchFn); 9] = [
        ("header_early_vs_late", header_early_vs_late),
        ("parse_early_vs_late", parse_early_vs_late),
        ("sha_early_vs_late", sha_early_vs_late),
        ("digest_eq_vs_first", digest_eq_vs_first),
        ("digest_eq_vs_last", digest_eq_vs_last),
        ("digest_first_vs_last", digest_first_vs_last),
        ("verify_early_vs_late", verify_early_vs_late),
        ("control_slice_eq", control_slice_eq),
        ("control_early_exit_loop", control_early_exit_loop),
    ];
    let benches = all
        .into_iter()
        .map(|(name, benchfn)| BenchMetadata {
            name: BenchName(name),
            seed: None,
            benchfn,
        })
        .collect();
    let opts = BenchOpts {
        filter: std::env::var("CT_FILTER").ok(),
        ..BenchOpts::default()
    };
    println!("samples per bench: {}", samples());
    run_benches_console(opts, benches).unwrap();
}

/// The byte the "late" class changes (31, the last secret byte); setting
/// `CT_LATE_BYTE=8` runs the A/A check of the harness itself.
fn late_position() -> usize {
    std::env::var("CT_LATE_BYTE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(31)
}
