//! [`RateLimiter`]: where token budgets are kept.

use std::time::SystemTime;

use async_trait::async_trait;

use super::StoreError;
use crate::limit::{Budget, MemoryRateLimiter, RateLimit};
use crate::token::TokenId;

/// Where token budgets are kept: [`MemoryRateLimiter`] in one process, a
/// shared one (Redis) across instances.
///
/// The layer calls [`RateLimiter::spend`] once per request of a token
/// with a budget, after its secret, its status and its allowlist were
/// checked. An `Err` is answered 503, fail closed: a limiter that can fall
/// back on something (the Redis one divides the budget among the
/// instances) does so itself and answers `Ok`.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Spends one request of token `id`'s budget `limit`, at `now` (a
    /// shared limiter may use its own clock instead, so that instances
    /// with skewed clocks agree).
    async fn spend(
        &self,
        id: TokenId,
        limit: RateLimit,
        now: SystemTime,
    ) -> Result<Budget, StoreError>;
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn spend(
        &self,
        id: TokenId,
        limit: RateLimit,
        now: SystemTime,
    ) -> Result<Budget, StoreError> {
        Ok(self.spend_now(id, limit, now))
    }
}
