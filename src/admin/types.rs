//! What goes into and comes out of [`TokenManager`](super::TokenManager):
//! [`NewToken`], [`CreatedToken`], [`AdminError`].

use std::time::Duration;

use crate::limit::{IpAllowlist, RateLimit};
use crate::scope::ScopeError;
use crate::store::{InvalidOwnerId, StoreError, TokenRecord};
use crate::token::{PlaintextToken, TokenId};

/// A request to create a token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub(super) name: String,
    pub(super) owner: String,
    pub(super) scopes: Vec<String>,
    pub(super) expires_in: Option<Duration>,
    pub(super) rate_limit: Option<RateLimit>,
    pub(super) allowed_ips: Option<IpAllowlist>,
}

impl NewToken {
    /// A request for a token that does not expire.
    ///
    /// - `name` ("order bot"): 1 to 100 characters once trimmed. Names are
    ///   shown in admin panels and terminals, so control characters,
    ///   invisible ones (zero-width spaces, the BOM) and bidirectional
    ///   formatting characters (U+202A–U+202E, U+2066–U+2069, U+200E/F,
    ///   U+061C), which can make a listing lie about what it shows, are
    ///   refused.
    /// - `owner`: the store / tenant id.
    /// - `scopes`: each must be defined in the catalog and grantable.
    pub fn new<I>(name: &str, owner: &str, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self {
            name: name.to_owned(),
            owner: owner.to_owned(),
            scopes: scopes.into_iter().map(|s| s.as_ref().to_owned()).collect(),
            expires_in: None,
            rate_limit: None,
            allowed_ips: None,
        }
    }

    /// Gives the token a request budget of its own (see [`crate::limit`]).
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Restricts the token to these networks (see [`crate::limit`]). It can
    /// be narrowed later, never widened.
    #[must_use]
    pub fn allowed_ips(mut self, allowed: IpAllowlist) -> Self {
        self.allowed_ips = Some(allowed);
        self
    }

    /// Makes the token expire `lifetime` from its creation.
    #[must_use]
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }
}

/// A token that was just created: the plaintext (shown once) and its record.
#[derive(Debug)]
#[non_exhaustive]
pub struct CreatedToken {
    /// The plaintext. Show it to the owner once; it cannot be recovered.
    pub token: PlaintextToken,
    /// What the store now holds.
    pub record: TokenRecord,
}

/// Why an administration call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A scope was invalid, unknown or not grantable.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The owner id is not usable.
    #[error(transparent)]
    Owner(#[from] InvalidOwnerId),
    /// The token name is empty, longer than 100 characters, or holds a
    /// control, invisible or bidirectional-formatting character (see
    /// [`NewToken::new`]).
    #[error("a token name is 1 to 100 characters, without control, invisible or bidirectional-formatting characters")]
    InvalidName,
    /// The expiry is zero or overflows the clock.
    #[error("the lifetime must be positive and representable")]
    InvalidLifetime,
    /// The text given is not a token of the manager's format.
    #[error("not a well-formed token: {0}")]
    MalformedToken(#[from] crate::token::FormatError),
    /// No token with that id.
    #[error("no token with id {0}")]
    UnknownToken(TokenId),
    /// The owner already has a live token with this name: rotate it, or
    /// revoke it first.
    #[error("{owner} already has a live token named {name:?}: rotate it, or revoke it first")]
    NameInUse {
        /// The owner.
        owner: String,
        /// The name.
        name: String,
    },
    /// The new allowlist would let the token be used from an address the
    /// current one refuses (or lift it): allowlists are only narrowed.
    /// Mint a new token instead.
    #[error("an allowlist can only be narrowed; mint a new token to allow other networks")]
    AllowlistWidened,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e)
    }
}
