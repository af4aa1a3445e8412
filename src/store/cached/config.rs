//! [`CacheConfig`]: the cache's bounds and lifetimes.

use std::time::Duration;

/// Item capacity for the cache (at least 1).
pub(super) fn capacity(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// Sizes and lifetimes of a [`CachedStore`](super::CachedStore): start from
/// `CacheConfig::default()` and change what you need.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    pub(super) max_entries: u64,
    pub(super) ttl: Duration,
    pub(super) max_negative_entries: u64,
    pub(super) negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl: Duration::from_secs(10),
            max_negative_entries: 10_000,
            negative_ttl: Duration::from_secs(5),
        }
    }
}

impl CacheConfig {
    /// Most records kept (default 100 000).
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// How long a record is served from the cache (default 10 s). This is
    /// the staleness bound for changes made by another process when no
    /// change feed reaches this cache.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Most "unknown id" answers kept (default 10 000): a flood of random
    /// ids cannot grow memory past this.
    #[must_use]
    pub fn max_negative_entries(mut self, n: u64) -> Self {
        self.max_negative_entries = n;
        self
    }

    /// How long an "unknown id" answer is kept (default 5 s).
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }
}
