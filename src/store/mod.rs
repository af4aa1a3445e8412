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
//! # fn your_token_config() -> tower_pat::TokenConfig {
//! #     // Your API's token format and scopes, here `nvl_live_…` tokens.
//! #     tower_pat::TokenConfig::new(
//! #         tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap(),
//! #         tower_pat::ScopeCatalog::new()
//! #             .scope("products:read", "List products.")
//! #             .scope("orders:read", "Read orders.")
//! #             .scope("orders:write", "Create orders.")
//! #             .scope("wallet:read", "Read the wallet balance."),
//! #     )
//! # }
//! use std::collections::HashMap;
//! use std::sync::{Arc, RwLock};
//! use tower_pat::{store::{Lookup, StoreError, TokenRecord, TokenStore}, token::TokenId};
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
//! # let _ = tower_pat::AuthLayer::new(MapStore::default(), your_token_config());
//! ```
//!
//! See `examples/custom_store.rs` for one that loads a JSON file.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::limit::{IpAllowlist, RateLimit};
use crate::token::TokenId;

mod background;
mod error;
pub mod feed;
mod invalidation;
mod limiter;
mod lookup;
pub(crate) mod memory;
mod record;

pub use self::background::Background;
pub use self::error::{StoreError, StoreErrorKind};
pub use self::invalidation::{Change, Invalidate};
pub use self::limiter::RateLimiter;
pub(crate) use self::lookup::Found;
pub use self::lookup::Lookup;
#[allow(unused_imports)] // for unit tests and the test kit
pub(crate) use self::memory::MemoryStore;
pub(crate) use self::record::used_recently;
pub use self::record::{InvalidOwnerId, OwnerId, RevocationReason, TokenRecord, TokenStatus};

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
    /// it to the request as is (see [`crate::auth::Authenticated`]).
    fn find(&self, id: TokenId) -> Lookup;

    /// Hint that `id` was used successfully at `at`, for the "last used"
    /// time of admin listings, and `from` which client address when the
    /// layer records addresses (opt-in:
    /// [`AuthLayerBuilder::record_client_addresses`](crate::auth::AuthLayerBuilder::record_client_addresses)).
    /// The layer calls it at most about once a minute per token (when the
    /// record it found says the last use is older than that), on the
    /// request path: it must not block or do I/O inline. A store that keeps
    /// the address keeps it for a bounded time
    /// ([`TokenRecord::last_used_from`]). The default does nothing.
    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<IpAddr>) {
        let _ = (id, at, from);
    }
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn find(&self, id: TokenId) -> Lookup {
        (**self).find(id)
    }

    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<IpAddr>) {
        (**self).record_use(id, at, from)
    }
}

/// The management side of a store: what an admin panel needs. Every store
/// shipped with the crate implements it; [`crate::admin::TokenManager`]
/// builds minting, rotation and revocation on top of it.
#[async_trait]
pub trait TokenAdmin: TokenStore {
    /// Inserts a new record, with its `rotated_from` link. Fails with
    /// [`StoreErrorKind::Conflict`] if the id exists (a revoked record can
    /// never be replaced), and with [`StoreErrorKind::NameInUse`] if the
    /// record holds its name at its `created_at`
    /// ([`TokenRecord::holds_name_at`]) while another token of the same
    /// owner does too, unless that other token is the one it replaces
    /// (`record.rotated_from`). The check and the insert are one atomic
    /// step: of two concurrent inserts with one name, one fails.
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError>;

    /// Lists records, of one owner or of all, newest first.
    async fn list(&self, owner: Option<&OwnerId>) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token, permanently, keeping `reason` on its record
    /// ([`TokenRecord::revoked_reason`]). Returns `true` if this call
    /// revoked it, `false` if it already was: then nothing changes, the
    /// first time and reason stay. [`StoreErrorKind::NotFound`] for an
    /// unknown id.
    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
        reason: &RevocationReason,
    ) -> Result<bool, StoreError>;

    /// Moves a token's expiry to `at` unless it already expires earlier;
    /// never extends it. [`StoreErrorKind::NotFound`] for an unknown id.
    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError>;

    /// Replaces a token's limits ([`TokenRecord::rate_limit`],
    /// [`TokenRecord::allowed_ips`]), and tells caches as for any change of
    /// the token. An allowlist is only narrowed: fails with
    /// [`StoreErrorKind::Conflict`] if the token has one and `allowed_ips`
    /// is `None` or not [within](crate::limit::IpAllowlist::is_within) it,
    /// the check and the write being one atomic step (of two concurrent
    /// narrowings, the second is checked against the first).
    /// [`StoreErrorKind::NotFound`] for an unknown id.
    async fn set_limits(
        &self,
        id: TokenId,
        rate_limit: Option<RateLimit>,
        allowed_ips: Option<IpAllowlist>,
    ) -> Result<(), StoreError>;

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
    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
        reason: &RevocationReason,
    ) -> Result<bool, StoreError> {
        (**self).revoke(id, at, reason).await
    }
    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        (**self).cap_expiry(id, at).await
    }
    async fn set_limits(
        &self,
        id: TokenId,
        rate_limit: Option<RateLimit>,
        allowed_ips: Option<IpAllowlist>,
    ) -> Result<(), StoreError> {
        (**self).set_limits(id, rate_limit, allowed_ips).await
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

#[cfg(feature = "cache")]
mod cached;
#[cfg(feature = "cache")]
pub use cached::{CacheConfig, CacheInvalidator, CacheStats, CachedStore};
