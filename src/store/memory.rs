//! [`MemoryStore`]: the embedded default store.

use std::collections::{HashMap, HashSet};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    used_recently, OwnerId, StoreError, StoreErrorKind, TokenAdmin, TokenRecord, TokenStore,
};
use crate::TokenId;

/// An in-process store: a hash map behind a read-write lock. Lookups take
/// only the read lock. Nothing survives a restart; use the SQLite or
/// PostgreSQL stores for that.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_pat::{admin::{NewToken, TokenManager}, MemoryStore, ScopeCatalog, TokenStore};
///
/// let store = MemoryStore::new();
/// let tokens = TokenManager::new(store.clone(), ScopeCatalog::nuvlyx());
/// let created = tokens
///     .create(NewToken::new("order bot", "demo-store", ["orders:read"]))
///     .await
///     .unwrap();
/// let found = store.find(created.record.id).await.unwrap().unwrap();
/// assert_eq!(&*found.name, "order bot");
/// # }
/// ```
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    inner: std::sync::Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: HashMap<TokenId, TokenRecord>,
    suspended: HashSet<OwnerId>,
}

impl MemoryStore {
    /// An empty store. Clones share the same data.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records held (revoked ones included).
    pub fn len(&self) -> usize {
        self.read().tokens.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A poisoned lock means a panic while holding it; every write below
    // leaves the maps consistent at each step, so the data is still valid.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemoryStore {
    fn lookup(&self, id: TokenId) -> Option<TokenRecord> {
        let inner = self.read();
        inner.tokens.get(&id).map(|r| {
            let mut r = r.clone();
            r.owner_suspended = !inner.suspended.is_empty() && inner.suspended.contains(&r.owner);
            r
        })
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn find(&self, id: TokenId) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.lookup(id))
    }

    fn try_find_now(&self, id: TokenId) -> Option<Result<Option<TokenRecord>, StoreError>> {
        Some(Ok(self.lookup(id)))
    }

    fn record_use(&self, id: TokenId, at: SystemTime) {
        // The layer only calls this when the record's last use is older
        // than the resolution, so the write lock is taken rarely.
        if let Some(r) = self.write().tokens.get_mut(&id) {
            if !r.last_used_at.is_some_and(|t| used_recently(t, at)) {
                r.last_used_at = Some(at);
            }
        }
    }
}

#[async_trait]
impl TokenAdmin for MemoryStore {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        let mut inner = self.write();
        if inner.tokens.contains_key(&record.id) {
            return Err(StoreError::new(StoreErrorKind::Conflict));
        }
        let mut record = record;
        record.owner_suspended = false;
        inner.tokens.insert(record.id, record);
        Ok(())
    }

    async fn list(&self, owner: Option<&OwnerId>) -> Result<Vec<TokenRecord>, StoreError> {
        let inner = self.read();
        let mut out: Vec<TokenRecord> = inner
            .tokens
            .values()
            .filter(|r| owner.is_none_or(|o| &r.owner == o))
            .map(|r| {
                let mut r = r.clone();
                r.owner_suspended = inner.suspended.contains(&r.owner);
                r
            })
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn revoke(&self, id: TokenId, at: SystemTime) -> Result<bool, StoreError> {
        let mut inner = self.write();
        let r = inner
            .tokens
            .get_mut(&id)
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound))?;
        if r.revoked_at.is_some() {
            return Ok(false);
        }
        r.revoked_at = Some(at);
        Ok(true)
    }

    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        let mut inner = self.write();
        let r = inner
            .tokens
            .get_mut(&id)
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound))?;
        r.expires_at = Some(r.expires_at.map_or(at, |e| e.min(at)));
        Ok(())
    }

    async fn set_owner_suspended(
        &self,
        owner: &OwnerId,
        suspended: bool,
    ) -> Result<(), StoreError> {
        let mut inner = self.write();
        if suspended {
            inner.suspended.insert(owner.clone());
        } else {
            inner.suspended.remove(owner);
        }
        Ok(())
    }

    async fn is_owner_suspended(&self, owner: &OwnerId) -> Result<bool, StoreError> {
        Ok(self.read().suspended.contains(owner))
    }
}
