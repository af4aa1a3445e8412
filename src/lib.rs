#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
pub mod auth;
#[cfg(feature = "axum")]
pub mod axum;
pub mod clock;
mod config;
pub mod events;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(any(doc, doctest))]
pub mod guide;
pub mod limit;
mod meter;
pub mod response;
pub mod scope;
pub mod store;
#[cfg(feature = "test-kit")]
pub mod test_kit;
#[cfg(test)]
mod testing;
pub mod token;
mod trace;
pub mod transport;

// The quick start's names; everything else lives in the module of its
// concept, under one path.
pub use crate::auth::authenticated::Authenticated;
pub use crate::auth::layer::AuthLayer;
pub use crate::config::TokenConfig;
pub use crate::scope::catalog::ScopeCatalog;
pub use crate::store::memory::MemoryStore;
pub use crate::token::format::{Environment, TokenFormat};
