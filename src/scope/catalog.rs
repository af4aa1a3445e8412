//! [`ScopeCatalog`]: the scopes an API knows, and which may be granted.

use super::{Scope, ScopeError, ScopeSet};

/// One entry of a [`ScopeCatalog`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CatalogEntry {
    /// The scope.
    pub scope: Scope,
    /// What it allows, for documentation and admin screens.
    pub description: String,
    /// `false` for scopes announced but not available yet.
    pub grantable: bool,
}

/// The scopes an API knows, and which of them may be granted.
#[derive(Debug, Clone, Default)]
pub struct ScopeCatalog {
    entries: Vec<CatalogEntry>,
}

impl ScopeCatalog {
    /// An empty catalogue; add scopes with [`ScopeCatalog::scope`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a grantable scope.
    ///
    /// # Panics
    ///
    /// If `scope` is not `resource:action` (a programming error).
    #[must_use]
    pub fn scope(self, scope: &str, description: &str) -> Self {
        self.entry(scope, description, true)
    }

    /// Adds a scope that routes may require but no token may hold yet.
    ///
    /// # Panics
    ///
    /// If `scope` is not `resource:action` (a programming error).
    #[must_use]
    pub fn coming_soon(self, scope: &str, description: &str) -> Self {
        self.entry(scope, description, false)
    }

    fn entry(mut self, scope: &str, description: &str, grantable: bool) -> Self {
        let scope = Scope::new(scope).unwrap_or_else(|e| panic!("{e}"));
        self.entries.retain(|e| e.scope != scope);
        self.entries.push(CatalogEntry {
            scope,
            description: description.to_owned(),
            grantable,
        });
        self
    }

    /// The entries, in the order they were added.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// Number of scopes known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the catalogue is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks up a scope.
    pub fn get(&self, scope: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.scope.as_str() == scope)
    }

    /// Every grantable scope.
    pub fn grantable(&self) -> ScopeSet {
        ScopeSet::from_scopes(
            self.entries
                .iter()
                .filter(|e| e.grantable)
                .map(|e| e.scope.clone())
                .collect(),
        )
    }

    /// Validates a mint request: each scope must be well-formed, known and
    /// grantable, and there must be at least one. The first offending scope
    /// is reported.
    pub fn grant<I>(&self, scopes: I) -> Result<ScopeSet, ScopeError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut out = Vec::new();
        for s in scopes {
            let s = s.as_ref();
            Scope::new(s)?;
            match self.get(s) {
                None => return Err(ScopeError::Unknown(s.to_owned())),
                Some(e) if !e.grantable => return Err(ScopeError::NotGrantable(s.to_owned())),
                Some(e) => out.push(e.scope.clone()),
            }
        }
        if out.is_empty() {
            return Err(ScopeError::Empty);
        }
        Ok(ScopeSet::from_scopes(out))
    }

    /// Checks that every scope a stored record holds is known (a corrupted
    /// or hand-edited row fails closed).
    pub(crate) fn check_known(&self, scopes: &ScopeSet) -> Result<(), ScopeError> {
        match scopes.iter().find(|s| self.get(s.as_str()).is_none()) {
            Some(s) => Err(ScopeError::Unknown(s.to_string())),
            None => Ok(()),
        }
    }
}
