//! A per-instance membership filter of the token ids a shared store holds,
//! so that well-formed tokens with made-up ids (a forged-token flood) are
//! answered "unknown" without a database query.
//!
//! A Bloom filter (`fastbloom`, SipHash-1-3 with a per-instance random
//! seed, so nobody outside can compute ids that collide) built from one
//! scan of the ids, then kept current from the change table
//! (`pg_changes`): each created id is added before any cache hears of it,
//! and a lookup of an id the filter does not hold reads the table first.
//! A filter never says "absent" for an id it was given. After a bulk load,
//! and until the scan that follows has finished, there is no filter at
//! all: every lookup asks the store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use fastbloom::AtomicBloomFilter;

use tower_pat::token::TokenId;

/// Target false-positive rate: the share of made-up ids that still reach
/// the store.
const FALSE_POSITIVE_RATE: f64 = 0.001;

/// Room for tokens created after a scan: the filter is sized for the
/// scanned ids plus this many (or twice the scanned ids, if more), and
/// rebuilt by a new scan once they are used up.
const MIN_HEADROOM: usize = 65_536;

/// One filter: the ids of a scan plus those added since.
#[derive(Debug)]
pub(crate) struct Filter {
    bloom: AtomicBloomFilter,
    /// Ids it can take before its false-positive rate exceeds the target.
    capacity: usize,
    added: AtomicUsize,
}

impl Filter {
    /// An empty filter sized for `expected` ids and the headroom.
    fn sized_for(expected: usize) -> Self {
        let capacity = expected.saturating_add(expected.max(MIN_HEADROOM));
        let mut seed = [0u8; 16];
        // Without a random seed an attacker could search for ids that the
        // filter lets through; a zero seed (getrandom failing) still works,
        // it is only predictable.
        let _ = getrandom::fill(&mut seed);
        Self {
            bloom: AtomicBloomFilter::with_false_pos(FALSE_POSITIVE_RATE)
                .seed(&u128::from_le_bytes(seed))
                .expected_items(capacity),
            capacity,
            added: AtomicUsize::new(0),
        }
    }

    /// Adds `id`; returns whether the filter is now over its capacity.
    pub(crate) fn add(&self, id: TokenId) -> bool {
        self.bloom.insert(id.as_bytes());
        self.added.fetch_add(1, Ordering::Relaxed) + 1 > self.capacity
    }

    fn may_hold(&self, id: TokenId) -> bool {
        self.bloom.contains(id.as_bytes())
    }

    /// Memory held by the bit array, in bytes.
    fn bytes(&self) -> usize {
        self.bloom.num_bits() / 8
    }
}

#[derive(Debug, Default)]
struct Slots {
    /// The filter lookups consult; `None` means "ask the store".
    active: Option<Arc<Filter>>,
    /// A filter being filled by a scan; also receives every new id.
    pending: Option<Arc<Filter>>,
    /// Bumped by every scan and every loss: a scan publishes its filter
    /// only if nothing happened since it began.
    generation: u64,
}

/// The filter slots of one store handle.
#[derive(Debug, Default)]
pub(crate) struct KnownIds {
    slots: RwLock<Slots>,
    /// A rescan for a full filter was asked for and has not published yet:
    /// a burst of creations asks once, not once per token.
    rescan_asked: AtomicBool,
}

impl KnownIds {
    /// Whether `id` may be in the store. `true` whenever there is no
    /// filter (not listening, feed down, scan not finished).
    pub(crate) fn may_hold(&self, id: TokenId) -> bool {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots.active.as_ref().is_none_or(|f| f.may_hold(id))
    }

    /// Records a created (or changed) id in the active and pending
    /// filters. Returns whether the active filter is over its capacity.
    pub(crate) fn add(&self, id: TokenId) -> bool {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = &slots.pending {
            p.add(id);
        }
        slots.active.as_ref().is_some_and(|f| f.add(id))
    }

    /// Whether the caller should start the rescan that a full filter
    /// needs: `true` once, until a new filter is published (a burst of
    /// creations starts one scan, not one per token).
    pub(crate) fn claim_rescan(&self) -> bool {
        !self.rescan_asked.swap(true, Ordering::SeqCst)
    }

    /// Anything may have changed (a bulk load): stop filtering (every
    /// lookup asks the store) and abandon any scan in progress.
    pub(crate) fn drop_filter(&self) {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        slots.active = None;
        slots.pending = None;
        slots.generation += 1;
        self.rescan_asked.store(false, Ordering::SeqCst);
    }

    /// Starts a scan of about `expected` ids: returns its generation and
    /// the filter to fill. Ids announced from now on go into it too.
    pub(crate) fn begin(&self, expected: usize) -> (u64, Arc<Filter>) {
        let filter = Arc::new(Filter::sized_for(expected));
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        slots.generation += 1;
        slots.pending = Some(filter.clone());
        (slots.generation, filter)
    }

    /// Makes the scan of `generation` the active filter, unless the filter
    /// was dropped or another scan began meanwhile. Returns whether it did.
    pub(crate) fn publish(&self, generation: u64) -> bool {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        if slots.generation != generation {
            return false;
        }
        match slots.pending.take() {
            Some(f) => {
                slots.active = Some(f);
                self.rescan_asked.store(false, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// (ids in the active filter, its size in bytes), if there is one.
    pub(crate) fn stats(&self) -> Option<(usize, usize)> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots
            .active
            .as_ref()
            .map(|f| (f.added.load(Ordering::Relaxed), f.bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(v: u64) -> TokenId {
        TokenId::from_bytes(u64::to_be_bytes(v))
    }

    #[test]
    fn without_a_filter_every_id_may_be_held() {
        let known = KnownIds::default();
        assert!(known.may_hold(id(1)));
        let (generation, f) = known.begin(10);
        f.add(id(1));
        // Not published yet: still no filter.
        assert!(known.may_hold(id(2)));
        assert!(known.publish(generation));
        assert!(known.may_hold(id(1)));
        assert!(!known.may_hold(id(2)));
    }

    #[test]
    fn ids_announced_during_a_scan_are_kept_and_dropping_stops_filtering() {
        let known = KnownIds::default();
        let (generation, _f) = known.begin(10);
        // Announced while the scan runs: it must be in the new filter.
        known.add(id(7));
        assert!(known.publish(generation));
        assert!(known.may_hold(id(7)));
        assert!(!known.may_hold(id(8)));

        known.drop_filter();
        assert!(known.may_hold(id(8)), "no filter once dropped");

        // A scan that began before a loss never publishes.
        let (stale, _f) = known.begin(10);
        known.drop_filter();
        assert!(!known.publish(stale));
        assert!(known.may_hold(id(9)));
        // Nor does one superseded by a newer scan.
        let (older, _f) = known.begin(10);
        let (newer, _g) = known.begin(10);
        assert!(!known.publish(older));
        assert!(known.publish(newer));
    }

    #[test]
    fn a_million_ids_are_never_refused_and_made_up_ids_rarely_pass() {
        let known = KnownIds::default();
        let n = 1_000_000u64;
        let (generation, f) = known.begin(n as usize);
        for i in 0..n {
            f.add(id(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        }
        assert!(known.publish(generation));
        for i in 0..n {
            assert!(known.may_hold(id(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))));
        }
        let probes = 200_000u64;
        let passed = (0..probes)
            .filter(|i| known.may_hold(id(i.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0xABCD)))
            .count();
        // Sized for twice the scan: well under the 0.1 % target at half
        // capacity (a few in a thousand would still meet the 1 % bound).
        assert!(passed < (probes / 1000) as usize, "{passed} of {probes}");
        let (added, bytes) = known.stats().unwrap();
        assert_eq!(added, n as usize);
        assert!(bytes < 4 << 20, "{bytes} bytes for a million ids");
    }

    #[test]
    fn a_full_filter_asks_for_a_rescan() {
        let known = KnownIds::default();
        let (generation, _f) = known.begin(0);
        assert!(known.publish(generation));
        let asks = |known: &KnownIds| {
            (0..=2 * MIN_HEADROOM as u64)
                .filter(|i| known.add(id(*i)) && known.claim_rescan())
                .count()
        };
        assert!(!known.add(id(u64::MAX)), "not full yet");
        assert_eq!(
            asks(&known),
            1,
            "a full filter asks for one rescan, not one per id"
        );
        // Once a bigger filter is published, a full one may ask again.
        let (generation, _f) = known.begin(0);
        assert!(known.publish(generation));
        assert_eq!(asks(&known), 1);
    }
}
