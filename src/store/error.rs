//! [`StoreError`]: how a store fails, opaque but for its kind.

use std::fmt;

use crate::token::TokenDigest;

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend could not be reached or failed.
    Unavailable,
    /// The call took longer than the configured timeout.
    Timeout,
    /// A stored record could not be read back (bad digest length, unknown
    /// scope…).
    Corrupt,
    /// The store panicked while serving the call.
    Panicked,
    /// A management call named a token or owner that does not exist.
    NotFound,
    /// A management call conflicts with existing data (duplicate id).
    Conflict,
    /// The owner already has a live token with this name (see
    /// [`TokenAdmin::insert`](super::TokenAdmin::insert)).
    NameInUse,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::Unavailable => "token store unavailable",
            StoreErrorKind::Timeout => "token store timed out",
            StoreErrorKind::Corrupt => "corrupt token record",
            StoreErrorKind::Panicked => "token store panicked",
            StoreErrorKind::NotFound => "not found",
            StoreErrorKind::Conflict => "conflict",
            StoreErrorKind::NameInUse => "the owner has a live token with this name",
        })
    }
}

/// A store failure. The verification layer turns it into 503 (fail closed).
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct StoreError {
    kind: StoreErrorKind,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// For a record that could not be read back whole: its digest, when
    /// that part was readable, so the layer answers 503 only to a caller
    /// who proves the secret (anyone else gets the ordinary 401).
    digest: Option<TokenDigest>,
}

impl StoreError {
    /// An error of `kind` with no underlying cause.
    pub fn new(kind: StoreErrorKind) -> Self {
        Self {
            kind,
            source: None,
            digest: None,
        }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(
        kind: StoreErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
            digest: None,
        }
    }

    /// Shorthand for an [`StoreErrorKind::Unavailable`] error from any cause;
    /// handy with `map_err`.
    pub fn unavailable(source: impl fmt::Display) -> Self {
        Self::with_source(StoreErrorKind::Unavailable, source.to_string())
    }

    /// Shorthand for a [`StoreErrorKind::Corrupt`] error.
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::with_source(StoreErrorKind::Corrupt, what.into())
    }

    /// A [`StoreErrorKind::Corrupt`] record whose digest was readable
    /// (the rest of it was not). The layer then answers 503 only to a
    /// caller who proves the secret against `digest`; anyone else gets the
    /// ordinary 401, so a broken row tells an attacker nothing.
    pub fn corrupt_record(digest: TokenDigest, what: impl Into<String>) -> Self {
        Self {
            digest: Some(digest),
            ..Self::corrupt(what)
        }
    }

    /// The same failure for another caller of a coalesced lookup (the
    /// source is kept as text).
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) fn shared_copy(&self) -> Self {
        let source =
            std::error::Error::source(self).map_or_else(|| self.to_string(), |s| s.to_string());
        Self {
            kind: self.kind,
            source: Some(source.into()),
            digest: self.digest,
        }
    }

    /// The digest of the corrupt record, when it was readable.
    pub(crate) fn corrupt_digest(&self) -> Option<TokenDigest> {
        self.digest
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}
