//! Memory: bytes per stored and per cached token, and heap growth under a
//! flood of distinct invalid tokens through `CachedStore`, measured with a
//! counting global allocator.
//!
//! Then: lookups cancelled while the store hangs (heap must not grow), and
//! the time of a bulk revocation (`MEMORY_INVALIDATIONS`, default 100,000
//! distinct tokens) with the slowest warm lookup served meanwhile.
//!
//! Run: `cargo bench --bench memory --all-features` (`MEMORY_FLOOD=N` to
//! change the flood size, default 1,000,000).

#[path = "common/alloc.rs"]
mod alloc;

use std::sync::atomic::Ordering;

use alloc::live;
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::store::{CacheConfig, CachedStore};
use tower_pat::{store::TokenStore, MemoryStore};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// A store whose lookups never finish (a hung database).
#[derive(Debug)]
struct Hung;

impl TokenStore for Hung {
    fn find(&self, _: tower_pat::token::TokenId) -> tower_pat::store::Lookup {
        tower_pat::store::Lookup::pending(std::future::pending())
    }
}

/// A store that reads every record afresh, as a SQL store does: nothing is
/// shared between the records it hands out.
#[derive(Debug)]
struct FreshRecords;

impl TokenStore for FreshRecords {
    fn find(&self, id: tower_pat::token::TokenId) -> tower_pat::store::Lookup {
        let n = u64::from_be_bytes(*id.as_bytes());
        let owner = tower_pat::store::OwnerId::new(&format!("owner-{:04}", n % 10_000)).unwrap();
        let scopes =
            tower_pat::scope::ScopeSet::parse(["orders:read", "products:read", "wallet:read"])
                .unwrap();
        let digest = tower_pat::token::TokenDigest::of(id.as_bytes());
        let mut r = tower_pat::store::TokenRecord::new(
            id,
            digest,
            owner,
            &format!("token {:05}", n % 100_000),
            scopes,
            std::time::SystemTime::now(),
        );
        r.preview = std::sync::Arc::from("nvl_live_0123…cdef");
        tower_pat::store::Lookup::ready(Ok(Some(std::sync::Arc::new(r))))
    }
}

/// Polls a future that is ready without waiting (a warm cache hit).
fn poll_ready_now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        const N: usize = 10_000;
        let scopes = ["orders:read", "products:read", "wallet:read"];

        // Bytes per MemoryStore entry.
        let store = MemoryStore::new();
        let admin = TokenManager::new(store.clone(), nuvlyx::live());
        let before = live();
        let mut ids = Vec::with_capacity(N);
        for i in 0..N {
            let c = admin.create(NewToken::new(&format!("token {i:05}"), "demo-store", scopes)).await.unwrap();
            ids.push(c.record.id);
        }
        let per_entry = (live() - before) as f64 / N as f64;
        println!("MemoryStore: {per_entry:.0} bytes per token (3 scopes, 11-char name), {N} tokens");

        // Bytes per cached entry (the cache over the store above).
        let cache = CachedStore::new(store.clone());
        let before = live();
        for id in &ids {
            cache.find(*id).await.unwrap().unwrap();
        }
        let positive = cache.stats().entries;
        let per_cached = (live() - before) as f64 / positive as f64;
        println!("CachedStore: {per_cached:.0} bytes per cached token ({positive} cached)");

        // Bytes per cached token at a million entries, over a store that
        // hands out a freshly read record per lookup, as the SQL stores do
        // (a record with 3 scopes, an 11-character name, a 10-character
        // owner and a preview, each read into its own allocations).
        let cached_n: u64 = std::env::var("MEMORY_CACHED").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
        let cache = CachedStore::with_config(FreshRecords, CacheConfig::default().max_entries(cached_n));
        let before = live();
        for i in 0..cached_n {
            cache.find(tower_pat::token::TokenId::from_bytes((i + 1).to_be_bytes())).await.unwrap().unwrap();
        }
        let positive = cache.stats().entries;
        let per_cached = (live() - before) as f64 / positive as f64;
        println!("CachedStore over freshly read records: {per_cached:.0} bytes per cached token ({positive} cached)");
        drop(cache);

        // Flood of distinct, well-formed, unknown tokens.
        let flood: usize = std::env::var("MEMORY_FLOOD").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
        let bound = 10_000u64;
        let cache = CachedStore::with_config(MemoryStore::new(), CacheConfig::default().max_negative_entries(bound));
        let format = nuvlyx::live().format().clone();
        let base = live();
        let mut after_bound = 0;
        for i in 0..flood {
            let id = format.mint().id;
            assert!(cache.find(id).await.unwrap().is_none());
            if i + 1 == bound as usize {
                after_bound = live() - base;
            }
        }
        let negative = cache.stats().negative_entries;
        let grown = live() - base;
        println!(
            "Flood: {flood} unknown tokens -> {negative} negative entries (bound {bound}); heap growth {:.2} MiB after {bound}, {:.2} MiB after {flood}",
            after_bound as f64 / 1048576.0,
            grown as f64 / 1048576.0
        );
        assert!(negative <= bound, "negative entries exceed the bound");

        // Lookups cancelled while the store hangs (a store timeout, a client
        // gone): the in-flight map must not keep them.
        let cancelled: usize = std::env::var("MEMORY_CANCELLED").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
        let hung = CachedStore::new(Hung);
        let base = live();
        for _ in 0..cancelled {
            let id = format.mint().id;
            let r = tokio::time::timeout(std::time::Duration::ZERO, hung.find(id)).await;
            assert!(r.is_err(), "the hung store never answers");
        }
        let grown = live() - base;
        println!("Cancelled: {cancelled} lookups cancelled in flight -> heap growth {grown} bytes");
        assert!(grown < 64 * 1024, "cancelled fills are kept: {grown} bytes");

        // Bulk revocation: invalidations of distinct tokens while another
        // thread serves warm lookups.
        let n: u64 = std::env::var("MEMORY_INVALIDATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
        let cache = CachedStore::new(store.clone());
        let warm = ids[0];
        cache.find(warm).await.unwrap().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let cache = cache.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut worst = std::time::Duration::ZERO;
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = std::time::Instant::now();
                    let hit = poll_ready_now(cache.find(warm));
                    worst = worst.max(t.elapsed());
                    assert!(hit.unwrap().is_some());
                    count += 1;
                }
                (worst, count)
            })
        };
        let invalidator = cache.invalidator();
        let started = std::time::Instant::now();
        for i in 0..n {
            use tower_pat::store::{Change, Invalidate};
            invalidator.invalidate(&Change::Token(tower_pat::token::TokenId::from_bytes((i + 1).to_be_bytes())));
        }
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let (worst, lookups) = reader.join().unwrap();
        println!(
            "Invalidations: {n} distinct tokens in {:.1} ms ({:.0} ns each); {lookups} concurrent warm lookups, slowest {:.1} us",
            took.as_secs_f64() * 1e3,
            took.as_nanos() as f64 / n as f64,
            worst.as_secs_f64() * 1e6
        );

        // Bytes per token with a partly spent budget (issue #25): 100,000
        // tokens spend one request each, then, two seconds on (every
        // budget full again), as many new ones push the idle cells out.
        {
            use tower_pat::limit::{MemoryRateLimiter, RateLimit};
            use tower_pat::store::RateLimiter;
            const M: u64 = 100_000;
            let limiter = MemoryRateLimiter::new();
            let limit: RateLimit = "10/s".parse().unwrap();
            let t0 = std::time::SystemTime::now();
            let before = live();
            for i in 0..M {
                let id = tower_pat::token::TokenId::from_bytes(i.to_le_bytes());
                limiter.spend(id, limit, t0).await.unwrap();
            }
            let per_token = (live() - before) as f64 / M as f64;
            let t2 = t0 + std::time::Duration::from_secs(2);
            for i in M..2 * M {
                let id = tower_pat::token::TokenId::from_bytes(i.to_le_bytes());
                limiter.spend(id, limit, t2).await.unwrap();
            }
            let after_turnover = (live() - before) as f64 / M as f64;
            println!(
                "MemoryRateLimiter: {per_token:.1} bytes per token with a partly spent budget ({M} tokens; 16 of them the id and the time, the rest the hash table's slack); {after_turnover:.1} bytes per live token after {M} idle ones were replaced"
            );
        }
    });
}
