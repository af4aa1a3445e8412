//! [`Change`] and [`Invalidate`]: how caches hear of changes made through
//! other handles or processes.

use std::fmt;

use crate::{store::OwnerId, token::TokenId};

/// A change that caches must hear about: announced by stores that other
/// processes share, consumed by [`Invalidate`] implementations such as the
/// `CachedStore` handle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// One token changed (revoked, expiry shortened, created).
    Token(TokenId),
    /// An owner was suspended or reinstated.
    Owner(OwnerId),
    /// Anything may have changed (a change feed was interrupted).
    All,
}

/// Receives [`Change`]s, for example to drop cached records.
pub trait Invalidate: Send + Sync + 'static {
    /// Forgets whatever `change` makes stale.
    fn invalidate(&self, change: &Change);
}

/// Format 1 of the change feeds (see [`feed::Message`](super::feed::Message)):
/// `token:<id>`, `owner:<owner>` or `all:`.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Token(id) => write!(f, "token:{id}"),
            Change::Owner(o) => write!(f, "owner:{o}"),
            Change::All => f.write_str("all:"),
        }
    }
}
