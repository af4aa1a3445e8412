//! [`MemoryStore`]: the embedded default store.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{Lookup, OwnerId, StoreError, StoreErrorKind, TokenAdmin, TokenRecord, TokenStore};
use crate::limit::{IpAllowlist, RateLimit};

/// How long the client address of a last use is kept.
const ADDRESS_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
use crate::{store::RevocationReason, token::TokenId};

/// An in-process store: a hash map behind a read-write lock. Lookups take
/// only the read lock. Nothing survives a restart; use the SQLite or
/// PostgreSQL stores for that.
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
/// use tower_pat::{admin::{NewToken, TokenManager}, store::TokenStore, MemoryStore, ScopeCatalog};
///
/// let store = MemoryStore::new();
/// let tokens = TokenManager::new(store.clone(), your_token_config());
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
    tokens: HashMap<TokenId, Arc<TokenRecord>, BuildHasherDefault<IdHasher>>,
    suspended: HashSet<OwnerId>,
    /// The newest token of each (owner, name), keyed by a keyed 64-bit
    /// hash of the pair (16 bytes an entry): with the `rotated_from` links,
    /// where the name check starts. A slot naming a token of another pair
    /// (a hash collision) sends the check to a full scan.
    newest_by_name: HashMap<u64, TokenId>,
    names: std::hash::RandomState,
}

/// Hashes token ids without SipHash. The ids held here are minted from the
/// OS CSPRNG, so their bytes are already uniform: a multiply-and-rotate fold
/// is enough to spread them. A request can name any id, but a lookup only
/// probes the slots of the hash it names and inserts nothing, so made-up
/// ids cannot degrade the table.
impl Inner {
    /// Whether a token other than those `record` replaces holds its name
    /// at its `created_at` (see [`TokenAdmin::insert`]); `key` is the
    /// pair's slot in `newest_by_name`.
    fn name_taken(&self, record: &TokenRecord, key: u64) -> bool {
        let same_name = |r: &TokenRecord| r.owner == record.owner && r.name == record.name;
        // Only a rotation makes two tokens hold one name, and it links to
        // the one it replaced: the newest token of the name and its chain
        // of predecessors are all that can hold it.
        let chain = |from: Option<TokenId>| {
            // Bounded: links written by hand could form a loop.
            std::iter::successors(from, |id| self.tokens.get(id)?.rotated_from).take(1024)
        };
        let replaced: HashSet<TokenId> = chain(record.rotated_from).collect();
        let holds =
            |r: &TokenRecord| !replaced.contains(&r.id) && r.holds_name_at(record.created_at);
        let newest = self.newest_by_name.get(&key).copied();
        match newest.and_then(|id| self.tokens.get(&id)) {
            None => false,
            Some(r) if same_name(r) => chain(newest)
                .filter_map(|id| self.tokens.get(&id))
                .any(|r| holds(r)),
            // A collision: look at every token.
            Some(_) => self.tokens.values().any(|r| same_name(r) && holds(r)),
        }
    }
}

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(26) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
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
    fn lookup(&self, id: TokenId) -> Option<Arc<TokenRecord>> {
        let inner = self.read();
        inner.tokens.get(&id).map(|r| {
            if !inner.suspended.is_empty() && inner.suspended.contains(&r.owner) {
                let mut r = TokenRecord::clone(r);
                r.owner_suspended = true;
                Arc::new(r)
            } else {
                Arc::clone(r)
            }
        })
    }
}

impl TokenStore for MemoryStore {
    fn find(&self, id: TokenId) -> Lookup {
        Lookup::ready(Ok(self.lookup(id)))
    }

    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<IpAddr>) {
        // The layer sends this at most about once a minute per token; the
        // store only keeps the latest time, and the address of that use.
        if let Some(r) = self.write().tokens.get_mut(&id) {
            if r.last_used_at.is_none_or(|t| t < at) {
                // Requests in flight keep the record they were given.
                let r = Arc::make_mut(r);
                r.last_used_at = Some(at);
                r.last_used_from = from;
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
        let key = {
            use std::hash::BuildHasher;
            inner.names.hash_one((record.owner.as_str(), &*record.name))
        };
        if record.holds_name_at(record.created_at) && inner.name_taken(&record, key) {
            return Err(StoreError::new(StoreErrorKind::NameInUse));
        }
        let mut record = record;
        record.owner_suspended = false;
        inner.newest_by_name.insert(key, record.id);
        inner.tokens.insert(record.id, Arc::new(record));
        Ok(())
    }

    async fn list(&self, owner: Option<&OwnerId>) -> Result<Vec<TokenRecord>, StoreError> {
        let mut inner = self.write();
        // Client addresses of last uses are kept for a bounded time.
        let cutoff = SystemTime::now().checked_sub(ADDRESS_RETENTION);
        for r in inner.tokens.values_mut() {
            if r.last_used_from.is_some() && r.last_used_at.is_some_and(|t| Some(t) < cutoff) {
                Arc::make_mut(r).last_used_from = None;
            }
        }
        let mut out: Vec<TokenRecord> = inner
            .tokens
            .values()
            .filter(|r| owner.is_none_or(|o| &r.owner == o))
            .map(|r| {
                let mut r = TokenRecord::clone(r);
                r.owner_suspended = inner.suspended.contains(&r.owner);
                r
            })
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
        reason: &RevocationReason,
    ) -> Result<bool, StoreError> {
        let mut inner = self.write();
        let r = inner
            .tokens
            .get_mut(&id)
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound))?;
        if r.revoked_at.is_some() {
            return Ok(false);
        }
        let r = Arc::make_mut(r);
        r.revoked_at = Some(at);
        r.revoked_reason = Some(reason.clone());
        Ok(true)
    }

    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        let mut inner = self.write();
        let r = inner
            .tokens
            .get_mut(&id)
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound))?;
        let capped = r.expires_at.map_or(at, |e| e.min(at));
        Arc::make_mut(r).expires_at = Some(capped);
        Ok(())
    }

    async fn set_limits(
        &self,
        id: TokenId,
        rate_limit: Option<RateLimit>,
        allowed_ips: Option<IpAllowlist>,
    ) -> Result<(), StoreError> {
        let mut inner = self.write();
        let r = inner
            .tokens
            .get_mut(&id)
            .ok_or_else(|| StoreError::new(StoreErrorKind::NotFound))?;
        if let Some(current) = &r.allowed_ips {
            if !current.may_become(allowed_ips.as_ref()) {
                return Err(StoreError::new(StoreErrorKind::Conflict));
            }
        }
        let r = Arc::make_mut(r);
        r.rate_limit = rate_limit;
        r.allowed_ips = allowed_ips;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{AdminError, NewToken, TokenManager};

    /// A slot of the name index that points at a token of another owner
    /// and name (what a 64-bit hash collision would do) still finds the
    /// holder, by a full scan.
    #[tokio::test(flavor = "current_thread")]
    async fn a_name_index_collision_falls_back_to_a_scan() {
        use std::hash::BuildHasher;
        let store = MemoryStore::new();
        let m = TokenManager::new(store.clone(), crate::testing::live());
        m.create(NewToken::new("x", "o", ["orders:read"]))
            .await
            .unwrap();
        let other = m
            .create(NewToken::new("y", "p", ["orders:read"]))
            .await
            .unwrap();
        {
            let mut inner = store.write();
            let key = inner.names.hash_one(("o", "x"));
            inner.newest_by_name.insert(key, other.record.id);
        }
        assert!(matches!(
            m.create(NewToken::new("x", "o", ["orders:read"])).await,
            Err(AdminError::NameInUse { .. })
        ));
        m.create(NewToken::new("z", "o", ["orders:read"]))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn lookups_share_one_record_and_changes_do_not_touch_handed_out_ones() {
        let store = MemoryStore::new();
        let id = TokenManager::new(store.clone(), crate::testing::live())
            .create(NewToken::new("t", "o", ["orders:read"]))
            .await
            .unwrap()
            .record
            .id;
        let found = |s: &MemoryStore| match s.find(id).now() {
            Ok(found) => found.unwrap().unwrap(),
            Err(_) => panic!("a memory lookup is always ready"),
        };
        let (a, b) = (found(&store), found(&store));
        assert!(Arc::ptr_eq(&a, &b));
        store
            .revoke(id, SystemTime::now(), &RevocationReason::Manual)
            .await
            .unwrap();
        assert!(a.revoked_at.is_none(), "a request in flight keeps its view");
        assert!(found(&store).revoked_at.is_some());
        let owner: OwnerId = "o".parse().unwrap();
        store.set_owner_suspended(&owner, true).await.unwrap();
        assert!(found(&store).owner_suspended);
        store.set_owner_suspended(&owner, false).await.unwrap();
        assert!(!found(&store).owner_suspended);
    }

    #[test]
    fn the_id_hash_spreads_random_ids() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut low_bits = HashSet::new();
        for _ in 0..4096 {
            let id = crate::testing::live().format().mint().id;
            low_bits.insert(build.hash_one(id) & 0xfff);
        }
        // 4096 random ids in 4096 buckets fill about 63% of them.
        assert!(low_bits.len() > 2400, "{}", low_bits.len());
    }
}
