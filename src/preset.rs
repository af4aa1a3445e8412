//! The Nuvlyx API's token format and scopes, from its authentication
//! document: `nvl_live_…` / `nvl_test_…` tokens and the eleven scopes of its
//! scopes table.
//!
//! ```
//! use tower_pat::{preset, AuthLayer, MemoryStore};
//!
//! let config = preset::nuvlyx_live();
//! assert_eq!(config.format().prefix(), "nvl");
//! assert!(config.catalog().get("orders:read").is_some());
//! let auth = AuthLayer::new(MemoryStore::new(), config);
//! # let _ = auth;
//! ```

use crate::{Environment, ScopeCatalog, TokenConfig, TokenFormat};

/// Production tokens (`nvl_live_…`) with the Nuvlyx scopes.
pub fn nuvlyx_live() -> TokenConfig {
    TokenConfig::new(format(Environment::Live), nuvlyx_scopes())
}

/// Test-mode tokens (`nvl_test_…`) with the Nuvlyx scopes. A layer built
/// with this refuses live tokens, and the other way round.
pub fn nuvlyx_test() -> TokenConfig {
    TokenConfig::new(format(Environment::Test), nuvlyx_scopes())
}

fn format(environment: Environment) -> TokenFormat {
    TokenFormat::new("nvl", environment).expect("nvl is a valid prefix")
}

/// The Nuvlyx scopes table: ten grantable scopes, and `customers:write`
/// coming soon (routes may require it; no token may hold it yet).
pub fn nuvlyx_scopes() -> ScopeCatalog {
    ScopeCatalog::new()
        .scope("products:read", "List products and variations.")
        .scope("products:write", "Create and update products.")
        .scope("inventory:read", "Inspect inventory and stock.")
        .scope("inventory:write", "Upload licenses and move stock.")
        .scope("orders:read", "Read orders and their status.")
        .scope("orders:write", "Create orders on behalf of customers.")
        .scope("customers:read", "Read customers and their data.")
        .coming_soon("customers:write", "Create and update customers.")
        .scope("wallet:read", "Inspect wallet balance.")
        .scope("wallet:write", "Top up customer wallets.")
        .scope("webhooks:manage", "Manage webhook endpoints.")
}
