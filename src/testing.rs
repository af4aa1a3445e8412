//! The unit tests' running example: `nvl_live_…` / `nvl_test_…` tokens and a
//! few scopes, defined as an adopter defines its own.

use crate::{config::TokenConfig, scope::ScopeCatalog, token::Environment, token::TokenFormat};

pub(crate) fn scopes() -> ScopeCatalog {
    ScopeCatalog::new()
        .scope("products:read", "List products and variations.")
        .scope("orders:read", "Read orders and their status.")
        .scope("orders:write", "Create orders on behalf of customers.")
        .coming_soon("customers:write", "Create and update customers.")
}

pub(crate) fn live() -> TokenConfig {
    TokenConfig::new(
        TokenFormat::new("nvl", Environment::Live).unwrap(),
        scopes(),
    )
}

pub(crate) fn test() -> TokenConfig {
    TokenConfig::new(
        TokenFormat::new("nvl", Environment::Test).unwrap(),
        scopes(),
    )
}
