//! Token stores: where token records live.
//!
//! The verification path needs one method, [`TokenStore::find`], keyed by
//! the token's non-secret [`TokenId`]. Management (create, list, revoke,
//! suspend) is the separate [`TokenAdmin`] trait, so a read-only replica or
//! a remote service can serve verification alone.
//!
//! A complete store over a `HashMap` fits in a few lines:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, RwLock};
//! use tower_pat::{Lookup, StoreError, TokenId, TokenRecord, TokenStore};
//!
//! #[derive(Debug, Default)]
//! struct MapStore(RwLock<HashMap<TokenId, Arc<TokenRecord>>>);
//!
//! impl TokenStore for MapStore {
//!     fn find(&self, id: TokenId) -> Lookup {
//!         Lookup::ready(match self.0.read() {
//!             Ok(map) => Ok(map.get(&id).cloned()),
//!             Err(e) => Err(StoreError::unavailable(e)),
//!         })
//!     }
//! }
//! # let _ = tower_pat::AuthLayer::new(MapStore::default(), tower_pat::preset::nuvlyx_live());
//! ```
//!
//! See `examples/custom_store.rs` for one that loads a JSON file.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{ScopeSet, TokenDigest, TokenId};

mod lookup;
mod memory;
pub(crate) use lookup::Found;
pub use lookup::Lookup;
pub use memory::MemoryStore;

/// Who a token belongs to: the store (tenant) that created it. Suspending
/// an owner disables all its tokens.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(Arc<str>);

/// Error for an owner id that is empty, longer than 128 bytes or holds
/// characters other than visible ASCII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an owner id is 1 to 128 visible ASCII characters")]
pub struct InvalidOwnerId;

impl OwnerId {
    /// Validates and wraps an owner id.
    pub fn new(id: &str) -> Result<Self, InvalidOwnerId> {
        if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(Arc::from(id)))
        } else {
            Err(InvalidOwnerId)
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for OwnerId {
    type Err = InvalidOwnerId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// What a store keeps about one token. Never the plaintext.
///
/// Build one with [`TokenRecord::new`] (a live, non-expiring record), then
/// set the other fields directly (`record.expires_at = Some(t)`): a store
/// reading records back sets them all.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TokenRecord {
    /// Non-secret id (the lookup key).
    pub id: TokenId,
    /// SHA-256 of the whole token.
    pub digest: TokenDigest,
    /// The owning store / tenant.
    pub owner: OwnerId,
    /// Human name given at creation.
    pub name: Arc<str>,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// Non-secret preview for listings (`nvl_live_a4f2…`).
    pub preview: Arc<str>,
    /// Creation time.
    pub created_at: SystemTime,
    /// When the token stops working, if ever.
    pub expires_at: Option<SystemTime>,
    /// When the token was revoked; revocation is permanent.
    pub revoked_at: Option<SystemTime>,
    /// Last successful use, as far as the store has recorded it.
    pub last_used_at: Option<SystemTime>,
    /// Whether the owner was suspended when this record was read.
    pub owner_suspended: bool,
}

impl TokenRecord {
    /// A live, non-expiring, non-revoked record.
    pub fn new(
        id: TokenId,
        digest: TokenDigest,
        owner: OwnerId,
        name: &str,
        scopes: ScopeSet,
        created_at: SystemTime,
    ) -> Self {
        Self {
            id,
            digest,
            owner,
            name: Arc::from(name),
            scopes,
            preview: Arc::from(""),
            created_at,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            owner_suspended: false,
        }
    }

    /// Whether the token has expired at `now` (expiry is exclusive: a token
    /// expiring at `t` is refused at `t`).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// Whether the token works at `now`, and if not, why: revoked first,
    /// then expired, then a suspended owner. The verification layer and
    /// admin listings use this one order.
    pub fn status(&self, now: SystemTime) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.is_expired_at(now) {
            TokenStatus::Expired
        } else if self.owner_suspended {
            TokenStatus::OwnerSuspended
        } else {
            TokenStatus::Active
        }
    }
}

/// What [`TokenRecord::status`] says of a token at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenStatus {
    /// The token works.
    Active,
    /// Revoked, for good.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Its owner is suspended (until reinstated).
    OwnerSuspended,
}

impl TokenStatus {
    /// Short name for listings: `active`, `revoked`, `expired`, `suspended`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Revoked => "revoked",
            TokenStatus::Expired => "expired",
            TokenStatus::OwnerSuspended => "suspended",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend could not be reached or failed.
    Unavailable,
    /// The call took longer than the configured timeout.
    Timeout,
    /// A stored record could not be read back (bad digest length, unknown
    /// scope…).
    Corrupt,
    /// The store panicked while serving the call.
    Panicked,
    /// A management call named a token or owner that does not exist.
    NotFound,
    /// A management call conflicts with existing data (duplicate id).
    Conflict,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::Unavailable => "token store unavailable",
            StoreErrorKind::Timeout => "token store timed out",
            StoreErrorKind::Corrupt => "corrupt token record",
            StoreErrorKind::Panicked => "token store panicked",
            StoreErrorKind::NotFound => "not found",
            StoreErrorKind::Conflict => "conflict",
        })
    }
}

/// A store failure. The verification layer turns it into 503 (fail closed).
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct StoreError {
    kind: StoreErrorKind,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// For a record that could not be read back whole: its digest, when
    /// that part was readable, so the layer answers 503 only to a caller
    /// who proves the secret (anyone else gets the ordinary 401).
    digest: Option<TokenDigest>,
}

impl StoreError {
    /// An error of `kind` with no underlying cause.
    pub fn new(kind: StoreErrorKind) -> Self {
        Self {
            kind,
            source: None,
            digest: None,
        }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(
        kind: StoreErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
            digest: None,
        }
    }

    /// Shorthand for an [`StoreErrorKind::Unavailable`] error from any cause;
    /// handy with `map_err`.
    pub fn unavailable(source: impl fmt::Display) -> Self {
        Self::with_source(StoreErrorKind::Unavailable, source.to_string())
    }

    /// Shorthand for a [`StoreErrorKind::Corrupt`] error.
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::with_source(StoreErrorKind::Corrupt, what.into())
    }

    /// A [`StoreErrorKind::Corrupt`] record whose digest was readable.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn corrupt_record(digest: TokenDigest, what: impl Into<String>) -> Self {
        Self {
            digest: Some(digest),
            ..Self::corrupt(what)
        }
    }

    /// The same failure for another caller of a coalesced lookup (the
    /// source is kept as text).
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) fn shared_copy(&self) -> Self {
        let source =
            std::error::Error::source(self).map_or_else(|| self.to_string(), |s| s.to_string());
        Self {
            kind: self.kind,
            source: Some(source.into()),
            digest: self.digest,
        }
    }

    /// The digest of the corrupt record, when it was readable.
    pub(crate) fn corrupt_digest(&self) -> Option<TokenDigest> {
        self.digest
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

/// The read side of a token store: one lookup by id, on every request.
///
/// Implementations must be cheap to share (`Send + Sync + 'static`; the
/// layer holds them in an `Arc`). Answer `Ok(None)` for an unknown id and
/// `Err` only for real failures: the layer answers 503 to errors, never
/// 2xx.
pub trait TokenStore: Send + Sync + 'static {
    /// Looks up a token record by id, with `owner_suspended` filled in:
    /// [`Lookup::ready`] when the record is at hand (it must not block),
    /// [`Lookup::pending`] with a future when it takes I/O.
    ///
    /// The record comes in an `Arc`, so a store that keeps its records in
    /// `Arc`s hands one out by bumping one counter, and the layer attaches
    /// it to the request as is (see [`crate::Authenticated`]).
    fn find(&self, id: TokenId) -> Lookup;

    /// Hint that `id` was used successfully at `at`, for the "last used"
    /// time of admin listings. The layer calls it at most about once a
    /// minute per token (when the record it found says the last use is
    /// older than that), on the request path: it must not block or do I/O
    /// inline. The default does nothing.
    fn record_use(&self, id: TokenId, at: SystemTime) {
        let _ = (id, at);
    }
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn find(&self, id: TokenId) -> Lookup {
        (**self).find(id)
    }

    fn record_use(&self, id: TokenId, at: SystemTime) {
        (**self).record_use(id, at)
    }
}

/// The management side of a store: what an admin panel needs. Every store
/// shipped with the crate implements it; [`crate::admin::TokenManager`]
/// builds minting, rotation and revocation on top of it.
#[async_trait]
pub trait TokenAdmin: TokenStore {
    /// Inserts a new record. Fails with [`StoreErrorKind::Conflict`] if the
    /// id exists (a revoked record can never be replaced).
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError>;

    /// Lists records, of one owner or of all, newest first.
    async fn list(&self, owner: Option<&OwnerId>) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token, permanently. Returns `true` if this call revoked
    /// it, `false` if it already was. [`StoreErrorKind::NotFound`] for an
    /// unknown id.
    async fn revoke(&self, id: TokenId, at: SystemTime) -> Result<bool, StoreError>;

    /// Moves a token's expiry to `at` unless it already expires earlier;
    /// never extends it. [`StoreErrorKind::NotFound`] for an unknown id.
    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError>;

    /// Suspends or reinstates an owner; all its tokens are refused while
    /// suspended.
    async fn set_owner_suspended(&self, owner: &OwnerId, suspended: bool)
        -> Result<(), StoreError>;

    /// Whether an owner is suspended.
    async fn is_owner_suspended(&self, owner: &OwnerId) -> Result<bool, StoreError>;
}

#[async_trait]
impl<T: TokenAdmin + ?Sized> TokenAdmin for Arc<T> {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        (**self).insert(record).await
    }
    async fn list(&self, owner: Option<&OwnerId>) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).list(owner).await
    }
    async fn revoke(&self, id: TokenId, at: SystemTime) -> Result<bool, StoreError> {
        (**self).revoke(id, at).await
    }
    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        (**self).cap_expiry(id, at).await
    }
    async fn set_owner_suspended(
        &self,
        owner: &OwnerId,
        suspended: bool,
    ) -> Result<(), StoreError> {
        (**self).set_owner_suspended(owner, suspended).await
    }
    async fn is_owner_suspended(&self, owner: &OwnerId) -> Result<bool, StoreError> {
        (**self).is_owner_suspended(owner).await
    }
}

/// Last-use times are kept to this resolution: a token's last use is
/// written at most once per period.
pub(crate) const LAST_USE_RESOLUTION: Duration = Duration::from_secs(60);

/// Whether a use at `at` falls within the resolution of one recorded at
/// `last` (a `last` later than `at`, after a clock step back, counts too).
pub(crate) fn used_recently(last: SystemTime, at: SystemTime) -> bool {
    at.duration_since(last)
        .map_or(true, |d| d < LAST_USE_RESOLUTION)
}

/// A change that caches must hear about: announced by stores that other
/// processes share, consumed by [`Invalidate`] implementations such as the
/// `CachedStore` handle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// One token changed (revoked, expiry shortened, created).
    Token(TokenId),
    /// An owner was suspended or reinstated.
    Owner(OwnerId),
    /// Anything may have changed (a change feed was interrupted).
    All,
}

/// Receives [`Change`]s, for example to drop cached records.
pub trait Invalidate: Send + Sync + 'static {
    /// Forgets whatever `change` makes stale.
    fn invalidate(&self, change: &Change);
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;

#[cfg(feature = "cache")]
mod cached;
#[cfg(feature = "cache")]
pub use cached::{CacheConfig, CacheInvalidator, CachedStore};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_says_revoked_then_expired_then_suspended() {
        let now = SystemTime::now();
        let base = TokenRecord::new(
            TokenId::from_u64(1),
            TokenDigest::of("t"),
            OwnerId::new("o").unwrap(),
            "n",
            ScopeSet::parse(["orders:read"]).unwrap(),
            now,
        );
        assert_eq!(base.status(now), TokenStatus::Active);
        let mut suspended = base.clone();
        suspended.owner_suspended = true;
        assert_eq!(suspended.status(now), TokenStatus::OwnerSuspended);
        let mut expired = suspended;
        expired.expires_at = Some(now);
        assert_eq!(expired.status(now), TokenStatus::Expired);
        assert_eq!(
            expired.status(now - Duration::from_secs(1)),
            TokenStatus::OwnerSuspended
        );
        let mut revoked = expired;
        revoked.revoked_at = Some(now);
        assert_eq!(revoked.status(now), TokenStatus::Revoked);
        assert_eq!(TokenStatus::OwnerSuspended.to_string(), "suspended");
    }
}
