#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod admin;
mod auth;
#[cfg(feature = "axum")]
pub mod axum;
mod clock;
mod config;
mod digest;
pub mod events;
#[cfg(feature = "grpc")]
pub mod grpc;
mod require;
mod response;
mod scope;
mod store;
#[cfg(feature = "test-kit")]
pub mod test_kit;
#[cfg(test)]
mod testing;
mod token;
mod trace;
pub mod transport;

#[doc(hidden)]
pub use crate::auth::bearer_token;
pub use crate::auth::{Auth, AuthLayer, AuthLayerBuilder, Authenticated, ResponseFuture};
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::config::TokenConfig;
pub use crate::digest::TokenDigest;
pub use crate::require::{RequireScopes, RequireScopesFuture, RequireScopesLayer, ScopeMatch};
pub use crate::response::{
    EmptyBody, MalformedReason, ProblemDetails, Rejection, RejectionKind, Responder,
};
pub use crate::scope::{CatalogEntry, Scope, ScopeCatalog, ScopeError, ScopeSet};
#[cfg(feature = "postgres")]
pub use crate::store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use crate::store::SqliteStore;
#[cfg(feature = "cache")]
pub use crate::store::{CacheConfig, CacheInvalidator, CachedStore};
pub use crate::store::{
    Change, InvalidOwnerId, Invalidate, Lookup, MemoryStore, OwnerId, RevocationReason, StoreError,
    StoreErrorKind, TokenAdmin, TokenRecord, TokenStatus, TokenStore,
};
#[cfg(feature = "redis")]
pub use crate::store::{RedisAnnounced, RedisChannel};
pub use crate::token::{
    Environment, FormatError, InvalidPrefix, MintedToken, ParseTokenIdError, PlaintextToken,
    TokenFormat, TokenId,
};
