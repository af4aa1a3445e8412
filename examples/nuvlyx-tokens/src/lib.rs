//! The Nuvlyx API's token format and scopes, from its authentication
//! document: `nvl_live_…` / `nvl_test_…` tokens and the eleven scopes of its
//! scopes table.
//!
//! This is what an adopter of tower-pat writes for its own API (its prefix,
//! its scopes); the demo (`nuvlyx-api`) uses it, and so do the workspace's
//! tests, benches and fuzz targets. It is not published.
//!
//! ```
//! let config = nuvlyx::live();
//! assert_eq!(config.format().prefix(), "nvl");
//! assert!(config.catalog().get("orders:read").is_some());
//! let auth = tower_pat::AuthLayer::new(tower_pat::MemoryStore::new(), config);
//! # let _ = auth;
//! ```

use tower_pat::{Environment, ScopeCatalog, TokenConfig, TokenFormat};

/// Production tokens (`nvl_live_…`) with the Nuvlyx scopes.
pub fn live() -> TokenConfig {
    TokenConfig::new(format(Environment::Live), scopes())
}

/// Test-mode tokens (`nvl_test_…`) with the Nuvlyx scopes. A layer built
/// with this refuses live tokens, and the other way round.
pub fn test() -> TokenConfig {
    TokenConfig::new(format(Environment::Test), scopes())
}

fn format(environment: Environment) -> TokenFormat {
    TokenFormat::new("nvl", environment).expect("nvl is a valid prefix")
}

/// The Nuvlyx scopes table: ten grantable scopes, and `customers:write`
/// coming soon (routes may require it; no token may hold it yet).
pub fn scopes() -> ScopeCatalog {
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_catalog_matches_the_seed_table() {
        let c = super::scopes();
        let names: Vec<_> = c.entries().iter().map(|e| e.scope.as_str()).collect();
        assert_eq!(
            names,
            [
                "products:read",
                "products:write",
                "inventory:read",
                "inventory:write",
                "orders:read",
                "orders:write",
                "customers:read",
                "customers:write",
                "wallet:read",
                "wallet:write",
                "webhooks:manage"
            ]
        );
        assert_eq!(c.grantable().len(), 10);
        assert!(!c.grantable().contains("customers:write"));
    }

    #[test]
    fn live_and_test_tokens_refuse_each_other() {
        let live = super::live().format().mint().token;
        let test = super::test().format().mint().token;
        assert!(live.expose_secret().starts_with("nvl_live_"));
        assert!(test.expose_secret().starts_with("nvl_test_"));
        assert!(super::live().format().parse(test.expose_secret()).is_err());
        assert!(super::test().format().parse(live.expose_secret()).is_err());
    }
}
