//! The guide: the long form of the README, one chapter per task. Every
//! example in it compiles and runs as a doctest.
//!
//! - [`tokens`]: the token format, scopes, the answers a client gets, and
//!   how a request is verified;
//! - [`routes`]: scope checks, a route builder shared by several routers,
//!   routes that work with and without a token;
//! - [`limits`]: per-token budgets and IP allowlists, the failed-attempt
//!   limit, last used from where;
//! - [`deploying`]: behind TLS and proxies, HSTS, one crypto provider;
//! - [`stores`]: which store, many instances, PgBouncer and Redis, metrics;
//! - [`custom_store`]: writing your own store, minting into it without
//!   `TokenAdmin`, what `record_use` must do, the conformance kit;
//! - [`integrations`]: lifecycle events, OpenAPI, leak reports, gRPC;
//! - [`security`]: the security model and where its evidence is.

#[doc = include_str!("../docs/guide/tokens.md")]
pub mod tokens {}

#[doc = include_str!("../docs/guide/routes.md")]
pub mod routes {}

#[doc = include_str!("../docs/guide/limits.md")]
pub mod limits {}

#[doc = include_str!("../docs/guide/deploying.md")]
pub mod deploying {}

#[doc = include_str!("../docs/guide/stores.md")]
pub mod stores {}

#[doc = include_str!("../docs/guide/custom_store.md")]
pub mod custom_store {}

#[doc = include_str!("../docs/guide/integrations.md")]
pub mod integrations {}

#[doc = include_str!("../docs/guide/security.md")]
pub mod security {}
