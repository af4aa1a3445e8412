//! Scopes: atomic permissions granted to a token.
//!
//! A [`Scope`] is `resource:action` (`orders:read`, `webhooks:manage`): both
//! parts start with a lowercase letter and continue with `a-z`, `0-9`, `_`,
//! `-` or `.`. A [`ScopeSet`] is what a token holds. A [`ScopeCatalog`] lists
//! the scopes an API knows and which of them can be granted today:
//!
//! ```
//! use tower_pat::{scope::ScopeError, ScopeCatalog};
//!
//! let catalog = ScopeCatalog::new()
//!     .scope("products:read", "List products and variations.")
//!     .scope("orders:read", "Read orders and their status.")
//!     .coming_soon("customers:write", "Create and update customers.");
//! assert_eq!(catalog.len(), 3);
//! let set = catalog.grant(["orders:read", "products:read"]).unwrap();
//! assert!(set.contains("orders:read"));
//!
//! // "coming soon": known, may be required by a route, cannot be granted.
//! assert!(matches!(
//!     catalog.grant(["customers:write"]),
//!     Err(ScopeError::NotGrantable(_))
//! ));
//! // Unknown scopes are errors, never silently dropped.
//! assert!(matches!(catalog.grant(["orders:delete"]), Err(ScopeError::Unknown(_))));
//! ```

use std::fmt;
use std::sync::Arc;

pub(crate) mod catalog;

pub use self::catalog::CatalogEntry;
pub(crate) use self::catalog::ScopeCatalog;

/// One permission, `resource:action`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(Arc<str>);

/// Why a scope string or request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// Not of the form `resource:action` (the offending text is included,
    /// truncated to 64 characters).
    #[error("invalid scope {0:?}: expected resource:action in lowercase")]
    Invalid(String),
    /// Well-formed but not in the catalogue.
    #[error("unknown scope {0:?}")]
    Unknown(String),
    /// In the catalogue but not grantable yet ("coming soon").
    #[error("scope {0:?} is not available yet and cannot be granted")]
    NotGrantable(String),
    /// A token must hold at least one scope.
    #[error("a token needs at least one scope")]
    Empty,
}

const MAX_SCOPE_LEN: usize = 64;

fn valid_part(p: &str) -> bool {
    let mut bytes = p.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.'))
}

impl Scope {
    /// Validates and wraps a scope string.
    pub fn new(s: &str) -> Result<Self, ScopeError> {
        let ok = s.len() <= MAX_SCOPE_LEN
            && s.split_once(':')
                .is_some_and(|(r, a)| valid_part(r) && valid_part(a));
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(ScopeError::Invalid(s.chars().take(MAX_SCOPE_LEN).collect()))
        }
    }

    /// The scope text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the colon (`orders`).
    pub fn resource(&self) -> &str {
        self.0.split_once(':').map_or("", |(r, _)| r)
    }

    /// The part after the colon (`read`).
    pub fn action(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, a)| a)
    }
}

impl std::str::FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A sorted, de-duplicated set of scopes. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(Arc<[Scope]>);

impl ScopeSet {
    /// Parses and validates scope strings (syntax only; see
    /// [`ScopeCatalog::grant`] to check them against a catalogue).
    pub fn parse<I>(scopes: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let v = scopes
            .into_iter()
            .map(|s| Scope::new(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_scopes(v))
    }

    /// Builds a set from already-validated scopes.
    pub fn from_scopes(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Self(scopes.into())
    }

    /// Whether the set holds `scope`.
    #[inline]
    pub fn contains(&self, scope: &str) -> bool {
        self.0.binary_search_by(|s| s.as_str().cmp(scope)).is_ok()
    }

    /// Whether every scope of `other` is in `self`.
    #[inline]
    pub fn contains_all(&self, other: &ScopeSet) -> bool {
        other.iter().all(|s| self.contains(s.as_str()))
    }

    /// Whether at least one scope of `other` is in `self`.
    #[inline]
    pub fn contains_any(&self, other: &ScopeSet) -> bool {
        other.iter().any(|s| self.contains(s.as_str()))
    }

    /// The scopes, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.0.iter()
    }

    /// Number of scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes separated by single spaces, as in the OAuth `scope`
    /// attribute (`orders:read wallet:read`).
    pub fn to_space_separated(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(s.as_str());
        }
        out
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Whether a route needs all of its scopes or any one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeMatch {
    /// Every listed scope is required.
    All,
    /// One of the listed scopes is enough.
    Any,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_syntax_is_resource_colon_action() {
        for ok in [
            "orders:read",
            "webhooks:manage",
            "a:b",
            "billing.v2:read-all",
        ] {
            assert!(Scope::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "orders",
            ":read",
            "orders:",
            "Orders:read",
            "orders:read:x",
            "orders read",
            "1orders:read",
            "orders:rëad",
            "orders:\"read\"",
        ] {
            assert!(Scope::new(bad).is_err(), "{bad}");
        }
        assert!(Scope::new(&format!("a:{}", "b".repeat(80))).is_err());
    }

    #[test]
    fn grant_rejects_unknown_invalid_coming_soon_and_empty() {
        let c = crate::testing::scopes();
        assert_eq!(
            c.grant(["orders:read", "nope:read"]),
            Err(ScopeError::Unknown("nope:read".into()))
        );
        assert!(matches!(c.grant(["ORDERS"]), Err(ScopeError::Invalid(_))));
        assert_eq!(
            c.grant(["customers:write"]),
            Err(ScopeError::NotGrantable("customers:write".into()))
        );
        assert_eq!(c.grant(Vec::<String>::new()), Err(ScopeError::Empty));
    }

    #[test]
    fn scope_set_is_sorted_and_deduplicated() {
        let s = ScopeSet::parse(["wallet:read", "orders:read", "wallet:read"]).unwrap();
        assert_eq!(s.to_space_separated(), "orders:read wallet:read");
        assert!(s.contains("orders:read"));
        assert!(!s.contains("orders:write"));
        let need = ScopeSet::parse(["orders:read", "orders:write"]).unwrap();
        assert!(!s.contains_all(&need));
        assert!(s.contains_any(&need));
    }
}
