//! [`TokenConfig`]: what minting and verification must agree on.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::clock::{Clock, SystemClock};
use crate::{scope::ScopeCatalog, token::TokenFormat};

/// The token format, the scope catalog and the clock, as one value.
///
/// Build it once and give clones of it to the [`TokenManager`] that mints
/// tokens and to the [`AuthLayer`] that verifies them, so the two cannot
/// disagree: a layer expecting another prefix or environment than the
/// minter would refuse every token. Cheap to clone.
///
/// The catalog is checked in three places:
/// - minting grants only known, grantable scopes;
/// - a route requiring a scope the catalog does not define is refused when
///   the route is built ([`AuthLayer::require_scopes`]), so a typo cannot
///   answer 403 to everyone;
/// - a stored record holding a scope the catalog does not define fails
///   closed (503): a corrupted or hand-edited row grants nothing. Before
///   removing a scope from the catalog, revoke or re-mint the tokens that
///   hold it.
///
/// ```
/// use tower_pat::admin::TokenManager;
/// use tower_pat::{AuthLayer, Environment, MemoryStore, ScopeCatalog, TokenConfig, TokenFormat};
///
/// let config = TokenConfig::new(
///     TokenFormat::new("acme", Environment::Live).unwrap(),
///     ScopeCatalog::new().scope("reports:read", "Read reports."),
/// );
/// let store = MemoryStore::new();
/// let tokens = TokenManager::new(store.clone(), config.clone());
/// let auth = AuthLayer::new(store, config);
/// # let _ = (tokens, auth);
/// ```
///
/// [`TokenManager`]: crate::admin::TokenManager
/// [`AuthLayer`]: crate::auth::AuthLayer
/// [`AuthLayer::require_scopes`]: crate::auth::AuthLayer::require_scopes
#[derive(Clone)]
pub struct TokenConfig {
    format: TokenFormat,
    catalog: Arc<ScopeCatalog>,
    clock: Arc<dyn Clock>,
}

impl TokenConfig {
    /// Tokens of `format`, holding scopes of `catalog`, checked against the
    /// system clock.
    pub fn new(format: TokenFormat, catalog: ScopeCatalog) -> Self {
        Self {
            format,
            catalog: Arc::new(catalog),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` instead of the system clock: expiry,
    /// creation and revocation times (tests, with [`crate::clock::ManualClock`]).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The token format (prefix and environment).
    pub fn format(&self) -> &TokenFormat {
        &self.format
    }

    /// The scope catalog.
    pub fn catalog(&self) -> &ScopeCatalog {
        &self.catalog
    }

    /// The current time, from the configured clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("format", &self.format)
            .field("scopes", &self.catalog.len())
            .field("clock", &self.clock)
            .finish()
    }
}
