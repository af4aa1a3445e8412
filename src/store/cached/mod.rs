//! [`CachedStore`]: a bounded, single-flight, revocation-safe cache in front
//! of any [`TokenStore`] (feature `cache`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use quick_cache::sync::Cache;
use tokio::sync::OnceCell;

use self::config::capacity;
pub use self::config::CacheConfig;
use self::floors::Floors;
use super::{Change, Invalidate, Lookup, OwnerId, StoreError, TokenAdmin, TokenRecord, TokenStore};
use crate::limit::{IpAllowlist, RateLimit};
use crate::{store::RevocationReason, token::TokenId};

mod config;
mod floors;

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

    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<IpAddr>) {
        self.inner.record_use(id, at, from);
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
                r.last_used_from = from;
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

    async fn set_limits(
        &self,
        id: TokenId,
        rate_limit: Option<RateLimit>,
        allowed_ips: Option<IpAllowlist>,
    ) -> Result<(), StoreError> {
        let result = self.inner.set_limits(id, rate_limit, allowed_ips).await;
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
mod tests;
