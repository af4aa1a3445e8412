//! [`RedisRateLimiter`]: token budgets shared by every instance, one round
//! trip a request.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use tower_pat::limit::{Budget, MemoryRateLimiter, RateLimit};
use tower_pat::store::RateLimiter;
use tower_pat::store::StoreError;
use tower_pat::token::TokenId;

/// GCRA in one atomic script, on the server's clock (instances with skewed
/// clocks agree): reads the token's theoretical arrival time, decides, and
/// writes it back with an expiry, so idle tokens leave no key. Times in
/// microseconds. Returns {accepted, remaining or retry, reset}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local ahead = tat + interval - now
if ahead > tolerance then
  return {0, ahead - tolerance, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', now + ahead), 'PX', math.floor(ahead / 1000) + 1000)
return {1, math.floor((tolerance - ahead) / interval), ahead}
"#;

/// How long a call to Redis may take before the fallback answers.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, Redis is not tried again for this long (the fallback
/// answers meanwhile), so that an outage costs no time per request.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Token budgets kept in Redis, shared by every instance: give it to
/// `AuthLayerBuilder::rate_limiter`. Each request of a token with a budget
/// is one `EVALSHA` (the GCRA in a Lua script, atomic, on the server's
/// clock), and each token's key expires once its budget is full again.
///
/// **When Redis is unreachable** (or slower than 250 ms), budgets fall
/// back to this process's memory, each token getting its budget divided by
/// the number of instances given to [`RedisRateLimiter::open`] (never
/// unlimited); Redis is tried again a second later. With
/// [`RedisRateLimiter::fail_closed`], requests of limited tokens are
/// answered 503 instead.
///
/// ```no_run
/// use tower_pat::{AuthLayer, Environment, MemoryStore, ScopeCatalog, TokenConfig, TokenFormat};
/// use tower_pat_redis::RedisRateLimiter;
///
/// let config = TokenConfig::new(
///     TokenFormat::new("nvl", Environment::Live).unwrap(),
///     ScopeCatalog::new().scope("orders:read", "Read orders."),
/// );
/// let limiter = RedisRateLimiter::open("redis://127.0.0.1:6379", 4)?; // 4 instances
/// let auth = AuthLayer::builder(MemoryStore::new(), config)
///     .rate_limiter(limiter)
///     .build();
/// # let _ = auth; Ok::<(), tower_pat::store::StoreError>(())
/// ```
pub struct RedisRateLimiter {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    script: redis::Script,
    prefix: String,
    instances: NonZeroU32,
    fallback: Option<MemoryRateLimiter>,
    /// Until when (milliseconds since `epoch`) Redis is not tried.
    resting_until: AtomicU64,
    epoch: Instant,
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("instances", &self.instances)
            .field("fallback", &self.fallback.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Budgets on the Redis server at `url`, for a deployment of
    /// `instances` instances (what each gets while Redis is unreachable:
    /// its share of every budget; 0 counts as 1). No connection is made
    /// until the first request. Keys are `tower_pat:rate:<token id>`.
    pub fn open(url: &str, instances: u32) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::unavailable)?;
        Ok(Self {
            client,
            connection: tokio::sync::Mutex::new(None),
            script: redis::Script::new(GCRA),
            prefix: "tower_pat:rate:".to_owned(),
            instances: NonZeroU32::new(instances).unwrap_or(NonZeroU32::MIN),
            fallback: Some(MemoryRateLimiter::new()),
            resting_until: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Answers 503 for tokens with a budget while Redis is unreachable,
    /// instead of the per-instance share.
    #[must_use]
    pub fn fail_closed(mut self) -> Self {
        self.fallback = None;
        self
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn connection(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let c = self.client.get_multiplexed_async_connection().await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn spend_in_redis(&self, id: TokenId, limit: RateLimit) -> Result<Budget, StoreError> {
        let (interval, tolerance) = micros(limit);
        let call = async {
            let mut c = self.connection().await?;
            self.script
                .key(format!("{}{id}", self.prefix))
                .arg(interval)
                .arg(tolerance)
                .invoke_async::<(i64, i64, i64)>(&mut c)
                .await
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| StoreError::unavailable("Redis did not answer within 250 ms"))
            .and_then(|r| r.map_err(StoreError::unavailable));
        let (accepted, a, b) = match answer {
            Ok(v) => v,
            Err(e) => {
                *self.connection.lock().await = None;
                return Err(e);
            }
        };
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(if accepted == 1 {
            Budget::allowed(u32::try_from(a).unwrap_or(u32::MAX), us(b))
        } else {
            Budget::refused(us(a), us(b))
        })
    }
}

/// The GCRA's interval and tolerance in whole microseconds, rounded up.
fn micros(limit: RateLimit) -> (u64, u64) {
    let period = limit.period().as_micros() as u64;
    let interval = period.div_ceil(u64::from(limit.requests()));
    (interval, interval * u64::from(limit.burst()))
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn spend(
        &self,
        id: TokenId,
        limit: RateLimit,
        now: SystemTime,
    ) -> Result<Budget, StoreError> {
        if self.millis() >= self.resting_until.load(Ordering::Relaxed) {
            match self.spend_in_redis(id, limit).await {
                Ok(budget) => return Ok(budget),
                Err(e) => {
                    let until = self.millis() + RETRY_AFTER_FAILURE.as_millis() as u64;
                    self.resting_until.store(until, Ordering::Relaxed);
                    if self.fallback.is_none() {
                        return Err(e);
                    }
                    #[cfg(feature = "tracing")]
                    tracing::warn!(error = %e, "Redis rate limiter unreachable: each instance keeps its share of every budget until it is back");
                }
            }
        }
        match &self.fallback {
            Some(memory) => {
                memory
                    .spend(id, limit.divided_among(self.instances), now)
                    .await
            }
            None => Err(StoreError::unavailable(
                "the Redis rate limiter is unreachable",
            )),
        }
    }
}
