//! [`Authenticated`]: who called, attached to every authenticated request.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::{scope::ScopeSet, store::OwnerId, store::TokenRecord, token::TokenId};

/// Who called: attached to the request extensions of every authenticated
/// request. Cheap to clone (it shares the store's record).
#[derive(Clone)]
pub struct Authenticated {
    pub(super) record: Arc<TokenRecord>,
}

impl Authenticated {
    /// The token's non-secret id.
    pub fn token_id(&self) -> TokenId {
        self.record.id
    }

    /// The owner (store / tenant) the token belongs to.
    pub fn owner(&self) -> &OwnerId {
        &self.record.owner
    }

    /// The token's human name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The scopes the token holds.
    pub fn scopes(&self) -> &ScopeSet {
        &self.record.scopes
    }

    /// Whether the token holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.record.scopes.contains(scope)
    }

    /// When the token expires, if ever.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.record.expires_at
    }
}

impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("token_id", &self.token_id())
            .field("owner", self.owner())
            .field("name", &self.name())
            .field("scopes", self.scopes())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

/// Marks a request let through without credentials by an optional
/// [`crate::auth::AuthLayer`], so that `require_scopes` answers it as an ordinary missing
/// token, not as a wiring mistake.
#[derive(Clone, Copy)]
pub(crate) struct Anonymous;
