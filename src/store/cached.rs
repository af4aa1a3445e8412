//! [`CachedStore`]: a bounded, single-flight, revocation-safe cache in front
//! of any [`TokenStore`] (feature `cache`).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use quick_cache::sync::Cache;
use tokio::sync::OnceCell;

use super::{Change, Invalidate, Lookup, OwnerId, StoreError, TokenAdmin, TokenRecord, TokenStore};
use crate::{store::RevocationReason, token::TokenId};

/// Item capacity for the cache (at least 1).
fn capacity(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// Sizes and lifetimes of a [`CachedStore`]: start from
/// `CacheConfig::default()` and change what you need.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    max_entries: u64,
    ttl: Duration,
    max_negative_entries: u64,
    negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl: Duration::from_secs(10),
            max_negative_entries: 10_000,
            negative_ttl: Duration::from_secs(5),
        }
    }
}

impl CacheConfig {
    /// Most records kept (default 100 000).
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// How long a record is served from the cache (default 10 s). This is
    /// the staleness bound for changes made by another process when no
    /// change feed reaches this cache.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Most "unknown id" answers kept (default 10 000): a flood of random
    /// ids cannot grow memory past this.
    #[must_use]
    pub fn max_negative_entries(mut self, n: u64) -> Self {
        self.max_negative_entries = n;
        self
    }

    /// How long an "unknown id" answer is kept (default 5 s).
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }
}

/// A cached record and the change epoch at which its fetch started. Cheap
/// to clone: a hit hands out the shared record.
#[derive(Debug, Clone)]
struct Entry {
    record: Arc<TokenRecord>,
    epoch: u64,
    /// When it was cached (for the TTL).
    inserted: Instant,
}

type Fill = Arc<OnceCell<Result<Entry, Arc<Miss>>>>;

/// Why a fill produced no entry (shared between coalesced callers).
#[derive(Debug)]
enum Miss {
    Absent(u64),
    Failed(StoreError),
}

/// Epochs of recent invalidations per key, forgotten after `keep`.
///
/// Each raise costs O(1) amortised, whatever the history: floors are also
/// queued in the order they were raised, and a raise forgets only the
/// expired ones at the front of that queue (each floor is queued once and
/// forgotten once), so a bulk revocation of many tokens never rescans the
/// floors it raised before.
#[derive(Debug)]
struct Floors<K> {
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
    fn new(keep: Duration) -> Self {
        Self {
            inner: RwLock::new(FloorMap {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            len: AtomicUsize::new(0),
            keep,
        }
    }

    fn get(&self, k: &K) -> u64 {
        // `raise` stores the length after inserting, and callers read the
        // epoch counter (SeqCst) after raising, so a zero here means no
        // floor concerns an entry fetched before the latest change.
        if self.len.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.map.get(k).copied().unwrap_or(0)
    }

    fn raise(&self, k: K, epoch: u64) {
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
    fn sizes(&self) -> (usize, usize) {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        (inner.map.len(), inner.order.len())
    }
}

/// A view of a [`CachedStore`] ([`CachedStore::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache: a record, or "no such token".
    pub hits: u64,
    /// Lookups the cache passed to the store behind it (a lookup that joins
    /// another's fill for the same id counts too).
    pub misses: u64,
    /// Records held.
    pub entries: u64,
    /// "No such token" answers held.
    pub negative_entries: u64,
}

#[derive(Debug)]
struct State {
    hits: AtomicU64,
    misses: AtomicU64,
    positive: Cache<TokenId, Entry>,
    /// Unknown ids: (epoch at fetch start, when cached).
    negative: Cache<TokenId, (u64, Instant)>,
    ttl: Duration,
    negative_ttl: Duration,
    /// Fills in flight, one per id (single flight).
    fills: Mutex<HashMap<TokenId, Fill>>,
    epoch: AtomicU64,
    all_floor: AtomicU64,
    tokens: Floors<TokenId>,
    owners: Floors<OwnerId>,
}

impl State {
    /// Whether an entry fetched at `epoch` postdates every invalidation
    /// that concerns it.
    fn is_fresh(&self, record: &TokenRecord, epoch: u64) -> bool {
        epoch >= self.all_floor.load(Ordering::SeqCst)
            && epoch >= self.tokens.get(&record.id)
            && epoch >= self.owners.get(&record.owner)
    }

    fn negative_is_fresh(&self, id: &TokenId, epoch: u64) -> bool {
        epoch >= self.all_floor.load(Ordering::SeqCst) && epoch >= self.tokens.get(id)
    }

    fn bump(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn invalidate(&self, change: &Change) {
        let epoch = self.bump();
        match change {
            // Entries older than the floor are never served again and are
            // dropped on their next lookup.
            Change::Token(id) => self.tokens.raise(*id, epoch),
            Change::Owner(owner) => self.owners.raise(owner.clone(), epoch),
            _ => {
                self.all_floor.store(epoch, Ordering::SeqCst);
                self.positive.clear();
                self.negative.clear();
            }
        }
    }
}

/// A cache in front of any [`TokenStore`]: bounded (`quick_cache`, CLOCK-Pro
/// eviction), with a TTL,
/// negative entries for unknown ids (bounded separately), and single-flight
/// fills — many concurrent requests for one cold token make one store call.
///
/// Changes made **through** the cached store (revoke, suspend, rotate…)
/// take effect on this instance immediately, and a fill that was in flight
/// while such a change happened can never put the old record back: every
/// fill remembers the change epoch at which it started, and a record older
/// than the last change that concerns it is not served. Changes made by
/// other processes arrive through [`CachedStore::invalidator`] (wire it to
/// `PostgresStore::listen` or `SqliteStore::watch_changes`); without a feed
/// they are seen after at most [`CacheConfig::ttl`].
///
/// ```
/// # fn your_token_config() -> tower_pat::TokenConfig {
/// #     // Your API's token format and scopes, here `nvl_live_…` tokens.
/// #     tower_pat::TokenConfig::new(
/// #         tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap(),
/// #         tower_pat::ScopeCatalog::new()
/// #             .scope("products:read", "List products.")
/// #             .scope("orders:read", "Read orders.")
/// #             .scope("orders:write", "Create orders.")
/// #             .scope("wallet:read", "Read the wallet balance."),
/// #     )
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_pat::store::{CacheConfig, CachedStore};
/// use tower_pat::{AuthLayer, MemoryStore};
///
/// let cached = CachedStore::with_config(MemoryStore::new(), CacheConfig::default());
/// let layer = AuthLayer::new(cached.clone(), your_token_config());
/// # let _ = layer;
/// # }
/// ```
#[derive(Debug)]
pub struct CachedStore<S> {
    inner: Arc<S>,
    state: Arc<State>,
}

impl<S> Clone for CachedStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

/// Handle that drops cached entries when told of a [`Change`]; cheap to
/// clone, holds no reference to the inner store.
#[derive(Debug, Clone)]
pub struct CacheInvalidator(Arc<State>);

impl Invalidate for CacheInvalidator {
    fn invalidate(&self, change: &Change) {
        self.0.invalidate(change);
    }
}

impl<S: TokenStore> CachedStore<S> {
    /// A cache with the default [`CacheConfig`].
    pub fn new(inner: S) -> Self {
        Self::with_config(inner, CacheConfig::default())
    }

    /// A cache with `config`.
    pub fn with_config(inner: S, config: CacheConfig) -> Self {
        let keep = config.ttl.max(config.negative_ttl) + Duration::from_secs(60);
        Self {
            inner: Arc::new(inner),
            state: Arc::new(State {
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                positive: Cache::new(capacity(config.max_entries)),
                negative: Cache::new(capacity(config.max_negative_entries)),
                ttl: config.ttl,
                negative_ttl: config.negative_ttl,
                fills: Mutex::new(HashMap::new()),
                epoch: AtomicU64::new(0),
                all_floor: AtomicU64::new(0),
                tokens: Floors::new(keep),
                owners: Floors::new(keep),
            }),
        }
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// A handle for change feeds from other processes.
    pub fn invalidator(&self) -> CacheInvalidator {
        CacheInvalidator(self.state.clone())
    }

    /// What the cache holds now, and how it answered since it was built:
    /// for dashboards and tests. Cheap: a few relaxed atomic loads.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_pat::store::{CachedStore, TokenStore};
    /// use tower_pat::{Environment, MemoryStore, TokenFormat};
    ///
    /// let cached = CachedStore::new(MemoryStore::new());
    /// let unknown = TokenFormat::new("nvl", Environment::Live).unwrap().mint().id;
    /// assert!(cached.find(unknown).await.unwrap().is_none()); // asks the store
    /// assert!(cached.find(unknown).await.unwrap().is_none()); // from the cache
    /// let stats = cached.stats();
    /// assert_eq!((stats.hits, stats.misses), (1, 1));
    /// assert_eq!((stats.entries, stats.negative_entries), (0, 1));
    /// # }
    /// ```
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.state.hits.load(Ordering::Relaxed),
            misses: self.state.misses.load(Ordering::Relaxed),
            entries: self.state.positive.len() as u64,
            negative_entries: self.state.negative.len() as u64,
        }
    }
}

impl<S: TokenStore> CachedStore<S> {
    /// A fresh cached answer, if there is one.
    fn cached(&self, id: TokenId) -> Option<Option<Arc<TokenRecord>>> {
        let state = &self.state;
        if let Some(e) = state.positive.get(&id) {
            if e.inserted.elapsed() < state.ttl && state.is_fresh(&e.record, e.epoch) {
                return Some(Some(e.record));
            }
            state.positive.remove(&id);
        }
        if let Some((epoch, inserted)) = state.negative.get(&id) {
            if inserted.elapsed() < state.negative_ttl && state.negative_is_fresh(&id, epoch) {
                return Some(None);
            }
            state.negative.remove(&id);
        }
        None
    }

    /// One fill per id at a time; concurrent callers wait for it.
    async fn fill(&self, id: TokenId) -> Result<Entry, Arc<Miss>> {
        let state = &self.state;
        let cell: Fill = state
            .fills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_default()
            .clone();
        // Leaves the in-flight map however this call ends: completed, or
        // cancelled (a store timeout, a dropped request) while waiting.
        let _leave = LeaveOnDrop {
            fills: &state.fills,
            id,
            cell: &cell,
        };
        cell.get_or_init(|| async {
            let epoch = state.epoch.load(Ordering::SeqCst);
            let result = match self.inner.find(id).await {
                Ok(Some(record)) => Ok(Entry {
                    record,
                    epoch,
                    inserted: Instant::now(),
                }),
                Ok(None) => Err(Arc::new(Miss::Absent(epoch))),
                Err(e) => Err(Arc::new(Miss::Failed(e))),
            };
            match &result {
                Ok(entry) if state.is_fresh(&entry.record, epoch) => {
                    state.positive.insert(id, entry.clone());
                }
                Err(miss) => {
                    if let Miss::Absent(epoch) = **miss {
                        if state.negative_is_fresh(&id, epoch) {
                            state.negative.insert(id, (epoch, Instant::now()));
                        }
                    }
                }
                Ok(_) => {}
            }
            result
        })
        .await
        .clone()
    }
}

/// Removes a fill from the in-flight map when the call that joined it ends,
/// unless a newer fill for the same id replaced it meanwhile.
struct LeaveOnDrop<'a> {
    fills: &'a Mutex<HashMap<TokenId, Fill>>,
    id: TokenId,
    cell: &'a Fill,
}

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        let mut fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
        if fills
            .get(&self.id)
            .is_some_and(|c| Arc::ptr_eq(c, self.cell))
        {
            fills.remove(&self.id);
        }
    }
}

impl<S: TokenStore> TokenStore for CachedStore<S> {
    fn find(&self, id: TokenId) -> Lookup {
        if let Some(answer) = self.cached(id) {
            self.state.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::ready(Ok(answer));
        }
        self.state.misses.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        Lookup::pending(async move {
            match this.fill(id).await {
                Ok(e) if this.state.is_fresh(&e.record, e.epoch) => Ok(Some(e.record)),
                // Raced with a change: never serve what was read before it.
                Ok(_) => {
                    this.state.positive.remove(&id);
                    this.inner.find(id).await
                }
                Err(miss) => match &*miss {
                    Miss::Absent(_) => Ok(None),
                    Miss::Failed(e) => Err(e.shared_copy()),
                },
            }
        })
    }

    fn record_use(&self, id: TokenId, at: SystemTime) {
        self.inner.record_use(id, at);
        // Note the use in the cached record too, so the layer skips the
        // hint while it is recent. The layer calls this about once a minute
        // per token, so copying the record here is cheap. The replacement
        // keeps the entry's epoch and insertion time: if a change raced
        // with it, the epoch check still refuses the entry, and the TTL
        // still counts from the original fetch.
        if let Some(mut e) = self.state.positive.get(&id) {
            if e.record.last_used_at.is_none_or(|t| t < at) {
                let mut r = TokenRecord::clone(&e.record);
                r.last_used_at = Some(at);
                e.record = Arc::new(r);
                self.state.positive.insert(id, e);
            }
        }
    }
}

#[async_trait]
impl<S: TokenAdmin> TokenAdmin for CachedStore<S> {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        let id = record.id;
        self.inner.insert(record).await?;
        self.state.invalidate(&Change::Token(id));
        Ok(())
    }

    async fn list(&self, owner: Option<&OwnerId>) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.list(owner).await
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
        reason: &RevocationReason,
    ) -> Result<bool, StoreError> {
        let result = self.inner.revoke(id, at, reason).await;
        self.state.invalidate(&Change::Token(id));
        result
    }

    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        let result = self.inner.cap_expiry(id, at).await;
        self.state.invalidate(&Change::Token(id));
        result
    }

    async fn set_owner_suspended(
        &self,
        owner: &OwnerId,
        suspended: bool,
    ) -> Result<(), StoreError> {
        let result = self.inner.set_owner_suspended(owner, suspended).await;
        self.state.invalidate(&Change::Owner(owner.clone()));
        result
    }

    async fn is_owner_suspended(&self, owner: &OwnerId) -> Result<bool, StoreError> {
        self.inner.is_owner_suspended(owner).await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    use super::*;

    /// A store whose lookups never finish (a hung database).
    #[derive(Debug)]
    struct Hung;

    impl TokenStore for Hung {
        fn find(&self, _: TokenId) -> Lookup {
            Lookup::pending(std::future::pending())
        }
    }

    fn in_flight<S>(cache: &CachedStore<S>) -> usize {
        cache.state.fills.lock().unwrap().len()
    }

    #[test]
    fn cancelled_fills_leave_the_in_flight_map() {
        let cache = CachedStore::new(Hung);
        let mut cx = Context::from_waker(Waker::noop());
        for i in 0..100_000u64 {
            let id = TokenId::from_u64(i);
            let mut lookup = pin!(cache.find(id));
            assert!(lookup.as_mut().poll(&mut cx).is_pending());
            assert_eq!(in_flight(&cache), 1, "the fill is registered while it runs");
            // Dropped here, as a store timeout or a closed connection does.
        }
        assert_eq!(in_flight(&cache), 0);
    }

    #[test]
    fn a_cancelled_caller_does_not_strand_the_callers_sharing_its_fill() {
        let cache = CachedStore::new(Hung);
        let mut cx = Context::from_waker(Waker::noop());
        let id = TokenId::from_u64(7);
        let mut first = Box::pin(cache.find(id));
        let mut second = Box::pin(cache.find(id));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        drop(first);
        drop(second);
        assert_eq!(in_flight(&cache), 0);
    }

    #[test]
    fn floors_forget_expired_raises_in_order_and_keep_the_newest_epoch() {
        let floors = Floors::new(Duration::ZERO);
        for i in 0..100_000u64 {
            floors.raise(TokenId::from_u64(i), i + 1);
        }
        // With nothing kept, each raise forgets all earlier ones: the
        // structure never grows with history.
        assert_eq!(floors.sizes(), (1, 1));

        let floors = Floors::new(Duration::from_secs(3600));
        let k = TokenId::from_u64(1);
        floors.raise(k, 5);
        floors.raise(TokenId::from_u64(2), 6);
        floors.raise(k, 9);
        assert_eq!(floors.get(&k), 9);
        assert_eq!(floors.get(&TokenId::from_u64(2)), 6);
        assert_eq!(floors.get(&TokenId::from_u64(3)), 0);
        assert_eq!(floors.sizes(), (2, 3));
    }

    #[test]
    fn an_expired_older_raise_does_not_forget_a_newer_one() {
        let keep = Duration::from_millis(40);
        let floors = Floors::new(keep);
        let k = TokenId::from_u64(1);
        floors.raise(k, 1);
        std::thread::sleep(keep / 2);
        floors.raise(k, 2);
        std::thread::sleep(keep / 2 + Duration::from_millis(5));
        // The first raise of `k` has expired; the second has not.
        floors.raise(TokenId::from_u64(2), 3);
        assert_eq!(floors.get(&k), 2);
        assert_eq!(floors.sizes(), (2, 2));
    }
}
