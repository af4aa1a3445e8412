//! Witnesses that background tasks stop with their handles, shared by the
//! SQL store and Redis tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_pat::store::{CachedStore, Change, Invalidate, TokenStore};

/// Tasks alive on this runtime.
pub fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits until the runtime has at most `n` tasks alive (aborted tasks are
/// reaped asynchronously), failing after 2 s.
pub async fn settles_at(n: usize, what: &str) {
    let started = Instant::now();
    while alive() > n {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what}: {} tasks alive, {n} before",
            alive()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A listener's target that says when the task holding it is gone.
pub struct Witness {
    cache: tower_pat::store::CacheInvalidator,
    gone: Arc<AtomicBool>,
}

impl Invalidate for Witness {
    fn invalidate(&self, change: &Change) {
        self.cache.invalidate(change);
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::SeqCst);
    }
}

pub fn witness<S: TokenStore>(cache: &CachedStore<S>) -> (Witness, Arc<AtomicBool>) {
    let gone = Arc::new(AtomicBool::new(false));
    let w = Witness {
        cache: cache.invalidator(),
        gone: gone.clone(),
    };
    (w, gone)
}

/// Waits until the task that held a target dropped it.
pub async fn dropped(gone: &AtomicBool, what: &str) {
    let started = Instant::now();
    while !gone.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what}: its task outlived its handle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
