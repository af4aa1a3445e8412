//! [`CachedStore`]: a bounded, single-flight, revocation-safe cache in front
//! of any [`TokenStore`] (feature `cache`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use quick_cache::sync::Cache;
use tokio::sync::OnceCell;

use super::{
    Change, Invalidate, OwnerId, StoreError, StoreErrorKind, TokenAdmin, TokenRecord, TokenStore,
};
use crate::TokenId;

/// Item capacity for the cache (at least 1).
fn capacity(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// Sizes and lifetimes of a [`CachedStore`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Most records kept (default 100 000).
    pub max_entries: u64,
    /// How long a record is served from the cache (default 10 s). This is
    /// the staleness bound for changes made by another process when no
    /// change feed reaches this cache.
    pub ttl: Duration,
    /// Most "unknown id" answers kept (default 10 000): a flood of random
    /// ids cannot grow memory past this.
    pub max_negative_entries: u64,
    /// How long an "unknown id" answer is kept (default 5 s).
    pub negative_ttl: Duration,
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
    /// Sets [`CacheConfig::max_entries`].
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Sets [`CacheConfig::ttl`].
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`CacheConfig::max_negative_entries`].
    #[must_use]
    pub fn max_negative_entries(mut self, n: u64) -> Self {
        self.max_negative_entries = n;
        self
    }

    /// Sets [`CacheConfig::negative_ttl`].
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
    Failed(StoreErrorKind, String),
}

/// Epochs of recent invalidations per key, forgotten after `keep`.
#[derive(Debug)]
struct Floors<K> {
    map: RwLock<HashMap<K, (u64, Instant)>>,
    /// Entries in `map`; lets lookups skip the lock in the common case of
    /// no recent invalidation.
    len: AtomicUsize,
    keep: Duration,
}

impl<K: Hash + Eq + Clone> Floors<K> {
    fn new(keep: Duration) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
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
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(k).map_or(0, |(e, _)| *e)
    }

    fn raise(&self, k: K, epoch: u64) {
        let now = Instant::now();
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, (_, at)| now.duration_since(*at) < self.keep);
        map.insert(k, (epoch, now));
        self.len.store(map.len(), Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct State {
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
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_pat::store::{CacheConfig, CachedStore};
/// use tower_pat::{AuthLayer, MemoryStore};
///
/// let cached = CachedStore::with_config(MemoryStore::new(), CacheConfig::default());
/// let layer = AuthLayer::new(cached.clone());
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

    /// Numbers of (records, unknown-id answers) held.
    pub fn entry_counts(&self) -> (u64, u64) {
        (
            self.state.positive.len() as u64,
            self.state.negative.len() as u64,
        )
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
        let result = cell
            .get_or_init(|| async {
                let epoch = state.epoch.load(Ordering::SeqCst);
                let result = match self.inner.find(id).await {
                    Ok(Some(record)) => Ok(Entry {
                        record: Arc::new(record),
                        epoch,
                        inserted: Instant::now(),
                    }),
                    Ok(None) => Err(Arc::new(Miss::Absent(epoch))),
                    Err(e) => Err(Arc::new(Miss::Failed(e.kind(), e.to_string()))),
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
            .clone();
        let mut fills = state.fills.lock().unwrap_or_else(PoisonError::into_inner);
        if fills.get(&id).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            fills.remove(&id);
        }
        result
    }
}

#[async_trait]
impl<S: TokenStore> TokenStore for CachedStore<S> {
    async fn find(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
        if let Some(answer) = self.cached(id) {
            return Ok(answer.map(Arc::unwrap_or_clone));
        }
        match self.fill(id).await {
            Ok(e) if self.state.is_fresh(&e.record, e.epoch) => {
                Ok(Some(Arc::unwrap_or_clone(e.record)))
            }
            // Raced with a change: never serve what was read before it.
            Ok(_) => {
                self.state.positive.remove(&id);
                self.inner.find(id).await
            }
            Err(miss) => match &*miss {
                Miss::Absent(_) => Ok(None),
                Miss::Failed(kind, msg) => Err(StoreError::with_source(*kind, msg.clone())),
            },
        }
    }

    fn try_find_now(&self, id: TokenId) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
        self.cached(id).map(Ok)
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

    async fn revoke(&self, id: TokenId, at: SystemTime) -> Result<bool, StoreError> {
        let result = self.inner.revoke(id, at).await;
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
