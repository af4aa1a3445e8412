//! [`Floors`]: the epochs of recent invalidations, per key, that keep a
//! fill started before a change from putting the old record back.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Epochs of recent invalidations per key, forgotten after `keep`.
///
/// Each raise costs O(1) amortised, whatever the history: floors are also
/// queued in the order they were raised, and a raise forgets only the
/// expired ones at the front of that queue (each floor is queued once and
/// forgotten once), so a bulk revocation of many tokens never rescans the
/// floors it raised before.
#[derive(Debug)]
pub(super) struct Floors<K> {
    inner: RwLock<FloorMap<K>>,
    /// Entries in the map; lets lookups skip the lock in the common case of
    /// no recent invalidation.
    len: AtomicUsize,
    keep: Duration,
}

#[derive(Debug)]
struct FloorMap<K> {
    /// The latest floor of each key.
    map: HashMap<K, u64>,
    /// (key, epoch, when) in the order raised: when a floor is forgotten.
    order: VecDeque<(K, u64, Instant)>,
}

impl<K: Hash + Eq + Clone> Floors<K> {
    pub(super) fn new(keep: Duration) -> Self {
        Self {
            inner: RwLock::new(FloorMap {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            len: AtomicUsize::new(0),
            keep,
        }
    }

    pub(super) fn get(&self, k: &K) -> u64 {
        // `raise` stores the length after inserting, and callers read the
        // epoch counter (SeqCst) after raising, so a zero here means no
        // floor concerns an entry fetched before the latest change.
        if self.len.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.map.get(k).copied().unwrap_or(0)
    }

    pub(super) fn raise(&self, k: K, epoch: u64) {
        let now = Instant::now();
        let mut guard = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *guard;
        while let Some((key, e, at)) = inner.order.front() {
            if now.duration_since(*at) < self.keep {
                break;
            }
            // Forget the key only if no later raise replaced this floor.
            if inner.map.get(key) == Some(e) {
                inner.map.remove(key);
            }
            inner.order.pop_front();
        }
        inner.map.insert(k.clone(), epoch);
        inner.order.push_back((k, epoch, now));
        self.len.store(inner.map.len(), Ordering::SeqCst);
    }

    #[cfg(test)]
    pub(super) fn sizes(&self) -> (usize, usize) {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        (inner.map.len(), inner.order.len())
    }
}
