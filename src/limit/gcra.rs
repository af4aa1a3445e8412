//! The generic cell rate algorithm over a sharded map: one 8-byte
//! "theoretical arrival time" per key, updated with a compare-and-swap
//! under a shard's read lock. No global lock on the hot path; a write lock
//! is taken only to add a key, and then the shard drops the keys whose
//! budget is full again (an absent key and a full budget are the same
//! state, so idle keys cost nothing).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

/// Shards per map: a power of two, well above the core counts the layer
/// runs on, so that two requests rarely meet on one lock.
const SHARDS: usize = 32;
/// A shard is swept when it holds this many keys and twice as many as
/// after its last sweep.
const SWEEP_FLOOR: usize = 64;

/// What spending one unit gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Accepted: how many more would be accepted right now, and in how many
    /// nanoseconds the budget is full again.
    Allowed { remaining: u32, reset_ns: u64 },
    /// Refused: in how many nanoseconds one would be accepted, and in how
    /// many the budget is full again.
    Refused { retry_ns: u64, reset_ns: u64 },
}

/// The algorithm itself, on one cell: `interval` nanoseconds per unit, a
/// tolerance of `tolerance` (burst × interval). `tat` is the stored time.
/// Returns the outcome and the new time to store, if any.
#[inline]
pub(crate) fn step(tat: u64, now: u64, interval: u64, tolerance: u64) -> (Outcome, Option<u64>) {
    let next = tat.max(now).saturating_add(interval);
    let ahead = next - now;
    if ahead > tolerance {
        let reset_ns = tat.saturating_sub(now);
        (
            Outcome::Refused {
                retry_ns: ahead - tolerance,
                reset_ns,
            },
            None,
        )
    } else {
        let remaining = ((tolerance - ahead) / interval).min(u64::from(u32::MAX)) as u32;
        (
            Outcome::Allowed {
                remaining,
                reset_ns: ahead,
            },
            Some(next),
        )
    }
}

/// A key's cell is its 8-byte time, and nothing else: for a token, the
/// entry is 16 bytes (its 8-byte id and the time).
struct Shard<K, S> {
    cells: HashMap<K, AtomicU64, S>,
    sweep_at: usize,
}

/// GCRA cells by key.
pub(crate) struct Keyed<K, S> {
    shards: Box<[RwLock<Shard<K, S>>]>,
    hasher: S,
}

impl<K, S: Default + Clone> Default for Keyed<K, S> {
    fn default() -> Self {
        let hasher = S::default();
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        cells: HashMap::with_hasher(hasher.clone()),
                        sweep_at: SWEEP_FLOOR,
                    })
                })
                .collect(),
            hasher,
        }
    }
}

impl<K: Hash + Eq + Copy, S: BuildHasher + Clone> Keyed<K, S> {
    /// The shard of `key`. The map inside hashes the key again with the
    /// same hasher and uses the low bits (bucket) and the top seven
    /// (control bytes); the shard is chosen with bits neither uses.
    fn shard(&self, key: K) -> usize {
        ((self.hasher.hash_one(key) >> 32) as usize) & (SHARDS - 1)
    }

    /// Spends one unit of `key`'s budget at `now` (nanoseconds).
    pub(crate) fn spend(&self, key: K, now: u64, interval: u64, tolerance: u64) -> Outcome {
        let lock = &self.shards[self.shard(key)];
        {
            let shard = lock.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cell) = shard.cells.get(&key) {
                return spend_cell(cell, now, interval, tolerance);
            }
        }
        let mut shard = lock.write().unwrap_or_else(PoisonError::into_inner);
        if shard.cells.len() >= shard.sweep_at {
            shard
                .cells
                .retain(|_, tat| tat.load(Ordering::Relaxed) > now);
            shard.sweep_at = (shard.cells.len() * 2).max(SWEEP_FLOOR);
            // Give back what a burst of tokens left behind.
            if shard.cells.capacity() > 4 * shard.sweep_at {
                let keep = shard.sweep_at;
                shard.cells.shrink_to(keep);
            }
        }
        let cell = shard.cells.entry(key).or_insert_with(|| AtomicU64::new(0));
        spend_cell(cell, now, interval, tolerance)
    }

    /// What spending would give at `now`, without spending.
    pub(crate) fn peek(&self, key: K, now: u64, interval: u64, tolerance: u64) -> Outcome {
        let shard = self.shards[self.shard(key)]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let tat = shard
            .cells
            .get(&key)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        step(tat, now, interval, tolerance).0
    }

    /// Keys held (for tests and the memory bench).
    #[allow(dead_code)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).cells.len())
            .sum()
    }
}

fn spend_cell(cell: &AtomicU64, now: u64, interval: u64, tolerance: u64) -> Outcome {
    let mut tat = cell.load(Ordering::Relaxed);
    loop {
        let (outcome, next) = step(tat, now, interval, tolerance);
        let Some(next) = next else {
            return outcome;
        };
        match cell.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return outcome,
            Err(seen) => tat = seen,
        }
    }
}
