#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod admin;
mod auth;
#[cfg(feature = "axum")]
pub mod axum;
mod clock;
mod digest;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod require;
pub mod response;
mod scope;
pub mod store;
mod token;
mod trace;
pub mod transport;

pub use async_trait::async_trait;
/// The sqlx version the SQL stores use (their `pool()` returns its types).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sqlx;

pub use crate::auth::{
    bearer_token, Auth, AuthLayer, Authenticated, ResponseFuture, DEFAULT_RETRY_AFTER,
    DEFAULT_STORE_TIMEOUT,
};
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::digest::{TokenDigest, DIGEST_LEN};
pub use crate::require::{require_any_scope, require_scopes, RequireScopesLayer};
pub use crate::response::{Rejection, RejectionKind, Responder, ScopeMatch};
pub use crate::scope::{CatalogEntry, Scope, ScopeCatalog, ScopeError, ScopeSet};
#[cfg(feature = "postgres")]
pub use crate::store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use crate::store::SqliteStore;
#[cfg(feature = "cache")]
pub use crate::store::{CacheConfig, CachedStore};
pub use crate::store::{
    MemoryStore, OwnerId, StoreError, StoreErrorKind, TokenAdmin, TokenRecord, TokenStatus,
    TokenStore,
};
pub use crate::token::{
    Environment, FormatError, InvalidPrefix, MintedToken, ParseTokenIdError, PlaintextToken,
    TokenFormat, TokenId, BODY_HEX_LEN,
};
