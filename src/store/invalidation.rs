//! [`Change`] and [`Invalidate`]: how caches hear of changes made through
//! other handles or processes.

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

/// Encodes `change` as a change-feed entry (`token:<id>`, `owner:<id>`,
/// `all:`), as [`parse_change`] reads it.
#[allow(dead_code)] // used by the PostgreSQL and Redis feeds
pub(crate) fn change_payload(change: &Change) -> String {
    match change {
        Change::Token(id) => format!("token:{id}"),
        Change::Owner(o) => format!("owner:{o}"),
        Change::All => "all:".to_owned(),
    }
}

/// Decodes a change-feed entry (`token:<id>`, `owner:<id>`); anything
/// unreadable invalidates everything.
#[allow(dead_code)] // used by the SQLite change table and the PostgreSQL and Redis feeds
pub(crate) fn parse_change(kind: &str, key: &str) -> Change {
    let change = match kind {
        "token" => key.parse::<TokenId>().ok().map(Change::Token),
        "owner" => OwnerId::new(key).ok().map(Change::Owner),
        _ => None,
    };
    change.unwrap_or(Change::All)
}
