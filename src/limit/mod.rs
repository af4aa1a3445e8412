//! Per-token limits: a request budget ([`RateLimit`]) and the networks a
//! token may be used from ([`IpAllowlist`]), kept on the token's record
//! ([`TokenRecord::rate_limit`], [`TokenRecord::allowed_ips`]) and enforced
//! by the [`AuthLayer`](crate::AuthLayer) after the secret is verified.
//!
//! - **Allowlist.** A verified request from outside the list is answered
//!   403 (`address_not_allowed`); so is one whose client address is not
//!   known (no peer address, or a trusted proxy's header that cannot be
//!   read), with a log line saying why. Until the secret is verified every
//!   answer is the ordinary 401, so the 403 tells only a holder of the
//!   secret that the token is live.
//! - **Budget.** Only requests that proved their secret spend it (ids are
//!   public: anything else would let anyone drain anyone's budget). Over
//!   it, the answer is 429 (`rate_limited`) with `Retry-After`. Every
//!   answer to a limited token carries the `RateLimit-Policy` and
//!   `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers-10:
//!   `RateLimit-Policy: "token";q=600;w=60` and
//!   `RateLimit: "token";r=599;t=1` (requests left now; seconds until the
//!   budget is full again).
//! - **Where budgets live.** In one process, in memory
//!   ([`MemoryRateLimiter`], the default): 16 bytes per token that spent
//!   part of its budget (its id and one time), dropped once the budget is
//!   full again. Across instances, any
//!   [`RateLimiter`](crate::store::RateLimiter) given to
//!   [`AuthLayerBuilder::rate_limiter`](crate::auth::AuthLayerBuilder::rate_limiter);
//!   the `tower-pat-redis` crate has one that takes one round trip.
//!
//! The same GCRA cell keeps the failed-authentication limit per client
//! address ([`AuthLayerBuilder::failed_auth_limit`](crate::auth::AuthLayerBuilder::failed_auth_limit)).
//!
//! [`TokenRecord::rate_limit`]: crate::store::TokenRecord::rate_limit
//! [`TokenRecord::allowed_ips`]: crate::store::TokenRecord::allowed_ips

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::token::TokenId;

mod allowlist;
pub(crate) mod gcra;
mod rate;

pub use self::allowlist::IpAllowlist;
pub use self::rate::RateLimit;
use gcra::{Keyed, Outcome};

/// A rate limit or an allowlist that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The request budget is out of range or unreadable.
    #[error("{0}")]
    Rate(&'static str),
    /// The allowlist is empty, too long, or holds something that is not a
    /// network.
    #[error("{0}")]
    Allowlist(String),
}

/// What spending one request of a token's budget gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    retry_after: Option<Duration>,
    remaining: u32,
    reset: Duration,
}

impl Budget {
    /// Accepted, with `remaining` more accepted right now and the budget
    /// full again in `reset`.
    pub fn allowed(remaining: u32, reset: Duration) -> Self {
        Self {
            retry_after: None,
            remaining,
            reset,
        }
    }

    /// Refused: one more is accepted in `retry_after`, and the budget is
    /// full again in `reset`.
    pub fn refused(retry_after: Duration, reset: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            remaining: 0,
            reset,
        }
    }

    /// Whether the request was accepted.
    pub fn is_allowed(&self) -> bool {
        self.retry_after.is_none()
    }

    /// How long to wait before the next request is accepted, when refused.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Requests accepted right now after this one.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// When the whole budget is available again.
    pub fn reset(&self) -> Duration {
        self.reset
    }

    fn of(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Allowed {
                remaining,
                reset_ns,
            } => Self::allowed(remaining, Duration::from_nanos(reset_ns)),
            Outcome::Refused { retry_ns, reset_ns } => Self::refused(
                Duration::from_nanos(retry_ns),
                Duration::from_nanos(reset_ns),
            ),
        }
    }
}

/// Token budgets in this process's memory: GCRA, one 8-byte time per token
/// that spent part of its budget, dropped once the budget is full again.
/// No global lock: the cells are sharded, and a spend is one
/// compare-and-swap under a shard's read lock. Cheap to clone (clones
/// share the budgets).
#[derive(Clone, Default)]
pub struct MemoryRateLimiter(Arc<Keyed<u64, BuildHasherDefault<IdHasher>>>);

/// Hashes a token id (8 random bytes from the OS CSPRNG, minted by the
/// server) with one multiplication: the ids that reach a budget belong to
/// tokens whose secret was verified, so nobody chooses them to collide.
/// Client addresses, which anyone chooses, are hashed with SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the high and middle bits, which pick the
        // shard and the bucket, depend on every bit of the id.
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl MemoryRateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`RateLimiter::spend`], without waiting.
    pub(crate) fn spend_now(&self, id: TokenId, limit: RateLimit, now: SystemTime) -> Budget {
        let (interval, tolerance) = limit.gcra_nanos();
        let key = u64::from_le_bytes(*id.as_bytes());
        Budget::of(self.0.spend(key, nanos(now), interval, tolerance))
    }

    /// Tokens with a partly spent budget held in memory.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimiter").finish_non_exhaustive()
    }
}

/// Nanoseconds since the Unix epoch (0 before it).
pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Failed authentications per client address, checked before the store
/// is asked and spent after a refusal.
pub(crate) struct FailureLimiter {
    limit: RateLimit,
    cells: Keyed<u128, RandomState>,
}

impl fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl FailureLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            cells: Keyed::default(),
        }
    }

    /// One client: an IPv4 address, or an IPv6 /64 (what one subscriber
    /// usually holds, so that rotating addresses within it does not
    /// escape the limit).
    fn key(ip: IpAddr) -> u128 {
        match crate::transport::canonical(ip) {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6) >> 64 << 64,
        }
    }

    /// `Some(budget)` when this client may not fail again now.
    pub(crate) fn blocked(&self, ip: IpAddr, now: SystemTime) -> Option<Budget> {
        let (interval, tolerance) = self.limit.gcra_nanos();
        let b = Budget::of(
            self.cells
                .peek(Self::key(ip), nanos(now), interval, tolerance),
        );
        (!b.is_allowed()).then_some(b)
    }

    /// Counts one failure of this client.
    pub(crate) fn failed(&self, ip: IpAddr, now: SystemTime) {
        let (interval, tolerance) = self.limit.gcra_nanos();
        self.cells
            .spend(Self::key(ip), nanos(now), interval, tolerance);
    }

    pub(crate) fn limit(&self) -> RateLimit {
        self.limit
    }
}

/// The `RateLimit-Policy` values of the token budgets a layer has seen,
/// built once each (a budget's policy never changes), up to 256 of them.
#[derive(Debug, Default)]
pub(crate) struct Policies(std::sync::RwLock<std::collections::HashMap<RateLimit, HeaderValue>>);

impl Policies {
    pub(crate) fn get(&self, name: &str, limit: RateLimit) -> HeaderValue {
        use std::sync::PoisonError;
        if let Some(v) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&limit)
        {
            return v.clone();
        }
        let v = field(
            name,
            b"\";q=",
            u64::from(limit.requests()),
            b";w=",
            limit.period().as_secs(),
        );
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() < 256 {
            map.insert(limit, v.clone());
        }
        v
    }
}

/// The fields of an accepted request, kept small until the answer comes:
/// the policy (shared) and the two numbers of the `RateLimit` field.
#[derive(Debug)]
pub(crate) struct RateFields {
    policy: HeaderValue,
    remaining: u32,
    reset_secs: u32,
}

impl RateFields {
    pub(crate) fn new(policy: HeaderValue, budget: &Budget) -> Self {
        Self {
            policy,
            remaining: budget.remaining(),
            reset_secs: u32::try_from(ceil_secs(budget.reset())).unwrap_or(u32::MAX),
        }
    }

    /// Sets the fields on a response.
    pub(crate) fn apply(self, headers: &mut http::HeaderMap) {
        let state = field(
            TOKEN_POLICY_NAME,
            b"\";r=",
            u64::from(self.remaining),
            b";t=",
            u64::from(self.reset_secs),
        );
        headers.insert(RATELIMIT_POLICY.clone(), self.policy);
        headers.insert(RATELIMIT.clone(), state);
    }
}

/// The policy name of token budgets in the `RateLimit` fields.
pub(crate) const TOKEN_POLICY_NAME: &str = "token";

/// `"name"<a>x<b>y`, written by hand rather than with `format!`: this runs
/// on every answer to a limited token.
fn field(name: &str, a: &[u8], x: u64, b: &[u8], y: u64) -> HeaderValue {
    let mut line = Line::default();
    line.push(b"\"");
    line.push(name.as_bytes());
    line.push(a);
    line.number(x);
    line.push(b);
    line.number(y);
    HeaderValue::from_bytes(line.as_bytes()).expect("digits and a fixed name")
}

/// The `RateLimit-Policy` and `RateLimit` fields for one answer.
#[derive(Clone, Debug)]
pub(crate) struct RateHeaders {
    pub(crate) policy: HeaderValue,
    pub(crate) state: HeaderValue,
}

impl RateHeaders {
    /// The fields for policy `name` (a fixed token) after a spend. Written
    /// by hand rather than with `format!`: this runs on every request of a
    /// limited token.
    pub(crate) fn new(name: &str, limit: RateLimit, budget: &Budget) -> Self {
        Self {
            policy: field(
                name,
                b"\";q=",
                u64::from(limit.requests()),
                b";w=",
                limit.period().as_secs(),
            ),
            state: field(
                name,
                b"\";r=",
                u64::from(budget.remaining()),
                b";t=",
                ceil_secs(budget.reset()),
            ),
        }
    }

    /// Sets the fields on a response.
    pub(crate) fn apply(self, headers: &mut http::HeaderMap) {
        headers.insert(RATELIMIT_POLICY.clone(), self.policy);
        headers.insert(RATELIMIT.clone(), self.state);
    }
}

/// A header line under construction, on the stack.
struct Line {
    bytes: [u8; 64],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, s: &[u8]) {
        let end = (self.len + s.len()).min(self.bytes.len());
        self.bytes[self.len..end].copy_from_slice(&s[..end - self.len]);
        self.len = end;
    }

    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

static RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
static RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up: a client that waits this long is not early.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests;
