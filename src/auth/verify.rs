//! The verification path, top to bottom: [`Config::begin`] for what can
//! be decided at once, [`Config::judge`] for what follows the lookup.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Request;
use subtle::ConstantTimeEq;

use super::{parse, Authenticated};
use crate::events::Sink;
use crate::limit::{
    Budget, FailureLimiter, IpAllowlist, MemoryRateLimiter, Policies, RateFields, RateHeaders,
    RateLimit,
};
use crate::response::{Realm, Rejection, RejectionKind};
use crate::store::RateLimiter;
use crate::store::{used_recently, Found, Lookup, StoreError, StoreErrorKind, TokenStatus};
use crate::transport::TransportPolicy;
use crate::{
    config::TokenConfig, store::TokenRecord, store::TokenStore, token::TokenDigest, token::TokenId,
};

/// Everything an [`crate::auth::AuthLayer`] was configured with, shared (in an
/// `Arc`) by the layer, its services and their pending lookups.
pub(crate) struct Config {
    pub(super) store: Arc<dyn TokenStore>,
    pub(super) tokens: TokenConfig,
    pub(super) realm: Arc<Realm>,
    pub(super) transport: TransportPolicy,
    pub(super) store_timeout: Option<Duration>,
    pub(super) retry_after: Duration,
    /// The latest time read from the clock, in whole seconds since the Unix
    /// epoch (see [`Config::now`]).
    pub(super) clock_floor: AtomicU64,
    /// Requests without credentials go through, unauthenticated.
    pub(super) optional: bool,
    /// Where live tokens seen over plain HTTP are reported, if anywhere
    /// (the WARN line of `crate::trace` is written either way).
    pub(super) events: Option<Sink>,
    /// The checks of tokens seen over plain HTTP.
    pub(super) exposures: super::exposure::Exposures,
    /// Per-token limits and the failed-attempt limit.
    pub(super) limits: Limits,
}

/// How the layer enforces limits.
pub(crate) struct Limits {
    /// Budgets of this process (the default, and what a shared limiter
    /// is not used for).
    pub(super) memory: MemoryRateLimiter,
    /// A limiter shared by instances, if one was given.
    pub(super) shared: Option<Arc<dyn RateLimiter>>,
    /// The budget of tokens that carry none.
    pub(super) default_rate: Option<RateLimit>,
    /// The allowlist of tokens that carry none.
    pub(super) default_ips: Option<IpAllowlist>,
    /// Failed attempts per client address.
    pub(super) failures: Option<FailureLimiter>,
    /// Whether last uses record the client address.
    pub(super) record_addresses: bool,
    /// The `RateLimit-Policy` values built so far.
    pub(super) policies: Policies,
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("shared", &self.shared.is_some())
            .field("default_rate", &self.default_rate)
            .field("default_ips", &self.default_ips)
            .field("failures", &self.failures)
            .field("record_addresses", &self.record_addresses)
            .finish()
    }
}

/// A request let through: who, and the `RateLimit` fields for its answer
/// when the token has a budget.
pub(crate) struct Admitted {
    pub(crate) auth: Authenticated,
    pub(crate) rate: Option<RateFields>,
}

/// The policy name in the `RateLimit` fields of token budgets.
const TOKEN_POLICY: &str = crate::limit::TOKEN_POLICY_NAME;
/// The policy name in the `RateLimit` fields of the failed-attempt limit.
const FAILURE_POLICY: &str = "failed-auth";

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("tokens", &self.tokens)
            .field("realm", &self.realm.name())
            .field("transport", &self.transport)
            .field("store_timeout", &self.store_timeout)
            .field("retry_after", &self.retry_after)
            .field("optional", &self.optional)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Where the verification of one request stands when `call` returns.
pub(crate) enum Begun {
    /// Refused without waiting: transport, header, format, or a store
    /// that answered at once.
    Refused(Rejection),
    /// No credentials, and the layer is optional.
    Anonymous,
    /// Verified without waiting (a store that answered from memory).
    Verified(Admitted),
    /// Waiting for the store.
    Pending(Verdict),
}

/// Loopback, private (RFC 1918, RFC 4193) or link-local.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// What [`Config::admit`] decided: done, or a spend from a shared limiter
/// to wait for.
enum Admission {
    Done(Result<Admitted, Rejection>),
    Spend(Arc<dyn RateLimiter>, Arc<TokenRecord>, RateLimit),
}

/// The rest of a verification that waits for the store.
pub(crate) type Verdict = Pin<Box<dyn Future<Output = Result<Admitted, Rejection>> + Send>>;

impl Config {
    /// The verification path of one request, top to bottom: transport,
    /// header, offline format check, lookup, then (in [`Config::judge`])
    /// digest comparison and the record's status. Everything that can be
    /// decided without waiting is decided here.
    #[inline]
    pub(crate) fn begin<B>(self: &Arc<Self>, req: &Request<B>) -> Begun {
        let refuse = |kind, id| Begun::Refused(self.rejection(kind).with_token_id(id));

        // 1. HTTPS, known from the listener or a trusted proxy, never from
        //    the request itself.
        if !self.transport.is_secure(req) {
            // Tell the host when a real-looking token travelled in clear
            // so it can be revoked.
            let seen = parse::token_and_id(req.headers(), self.tokens.format()).ok();
            if let Some((token, id)) = seen {
                let sighting = self.exposures.sighted(self, id, token);
                crate::trace::token_sighted(id, sighting, &self.realm.log);
            }
            return refuse(RejectionKind::InsecureTransport, seen.map(|(_, id)| id));
        }

        // 2. and 3. The `Authorization` header, and the token's format and
        //    checksum: no store call for junk. A client that failed too
        //    often is refused here, before the store is asked.
        let parsed = parse::token_and_id(req.headers(), self.tokens.format());
        if let Err(RejectionKind::MissingCredentials) = parsed {
            return match self.optional {
                true => Begun::Anonymous,
                false => refuse(RejectionKind::MissingCredentials, None),
            };
        }
        // The client address, when something needs it before the record is
        // known (a token's own allowlist reads it later, when there is one).
        let needed = self.limits.failures.is_some()
            || self.limits.default_ips.is_some()
            || self.limits.record_addresses;
        let client = needed.then(|| self.transport.client_ip(req)).flatten();
        // One reading of the clock serves every check of this request (a
        // malformed token from a client nobody counts needs none).
        let mut now = None;
        if let (Some(failures), Some(ip)) = (&self.limits.failures, self.counted(client)) {
            if let Some(budget) = failures.blocked(ip, *now.insert(self.now())) {
                let headers = RateHeaders::new(FAILURE_POLICY, failures.limit(), &budget);
                let r = self.rejection(RejectionKind::TooManyFailures);
                let id = parsed.as_ref().ok().map(|(_, id)| *id);
                return Begun::Refused(
                    r.with_rate(headers, budget.retry_after()).with_token_id(id),
                );
            }
        }
        let (token, id) = match parsed {
            Ok(found) => found,
            Err(kind) => return Begun::Refused(self.failed(kind, None, client, now)),
        };
        let now = now.unwrap_or_else(|| self.now());
        let digest = TokenDigest::of(token);

        // 4. The lookup by id. A store that answers from memory skips the
        //    timer and the allocation of an asynchronous lookup. A
        //    panicking store fails this request closed; the service keeps
        //    serving others.
        let lookup = catch_unwind(AssertUnwindSafe(|| self.store.find(id)))
            .unwrap_or_else(|_| Lookup::ready(Err(StoreError::new(StoreErrorKind::Panicked))));
        match lookup.now() {
            // 5. and 6., in `judge`; 7. to 9., in `admit`.
            Ok(found) => match self.judge(id, digest, found, now) {
                Ok(record) => {
                    let client = client.or_else(|| self.client_if_restricted(&record, req));
                    match self.admit(record, client, now) {
                        Admission::Done(Ok(admitted)) => Begun::Verified(admitted),
                        Admission::Done(Err(rejection)) => Begun::Refused(rejection),
                        Admission::Spend(shared, record, limit) => Begun::Pending(Box::pin(
                            self.clone().spend_shared(shared, record, limit, client),
                        )),
                    }
                }
                Err(kind) => Begun::Refused(self.failed(kind, Some(id), client, Some(now))),
            },
            Err(pending) => {
                let client = client.or_else(|| self.client_if_any_allowlist(req));
                Begun::Pending(Box::pin(self.clone().wait(id, digest, pending, client)))
            }
        }
    }

    /// The client address, read only now that a token with an allowlist
    /// was found (when nothing else needed it before).
    fn client_if_restricted<B>(&self, record: &TokenRecord, req: &Request<B>) -> Option<IpAddr> {
        record
            .allowed_ips
            .as_ref()
            .and_then(|_| self.transport.client_ip(req))
    }

    /// The client address for a lookup that waits: the request is gone by
    /// the time the record is known, so it is read now.
    fn client_if_any_allowlist<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        self.transport.client_ip(req)
    }

    /// A refusal, counted against the client when it is a failed attempt.
    fn failed(
        &self,
        kind: RejectionKind,
        id: Option<TokenId>,
        client: Option<IpAddr>,
        now: Option<SystemTime>,
    ) -> Rejection {
        if let (Some(failures), Some(ip), true) = (
            &self.limits.failures,
            self.counted(client),
            kind.is_failed_attempt(),
        ) {
            failures.failed(ip, now.unwrap_or_else(|| self.now()));
        }
        self.rejection(kind).with_token_id(id)
    }

    /// The client the failed-attempt limit counts, if any. Without trusted
    /// proxies, a loopback, private or link-local peer is not counted: it is
    /// most likely a proxy or a load balancer that every client comes
    /// through, and counting it would let one client lock out all.
    fn counted(&self, client: Option<IpAddr>) -> Option<IpAddr> {
        client.filter(|ip| self.transport.proxies.is_some() || !is_internal(*ip))
    }

    /// Steps 7 to 9, for a token whose secret and status were checked: its
    /// allowlist, its budget, and the last-use hint.
    fn admit(
        &self,
        record: Arc<TokenRecord>,
        client: Option<IpAddr>,
        now: SystemTime,
    ) -> Admission {
        let id = record.id;
        // 7. The allowlist. The address is unknown without a peer address,
        //    or behind a trusted proxy whose header could not be read.
        if let Some(allowed) = record
            .allowed_ips
            .as_ref()
            .or(self.limits.default_ips.as_ref())
        {
            let kind = match client {
                None => Some(RejectionKind::AddressUnknown),
                Some(ip) if !allowed.allows(ip) => Some(RejectionKind::AddressNotAllowed),
                Some(_) => None,
            };
            if let Some(kind) = kind {
                if kind == RejectionKind::AddressUnknown {
                    crate::trace::address_unknown(id, &self.realm.log);
                }
                return Admission::Done(Err(self.rejection(kind).with_token_id(Some(id))));
            }
        }
        // 8. The budget: spent only now that the secret is proven.
        match record.rate_limit.or(self.limits.default_rate) {
            None => Admission::Done(self.finish(record, client, None, now)),
            Some(limit) => match &self.limits.shared {
                Some(shared) => Admission::Spend(shared.clone(), record, limit),
                None => {
                    let budget = self.limits.memory.spend_now(id, limit, now);
                    Admission::Done(self.finish(record, client, Some((limit, budget)), now))
                }
            },
        }
    }

    /// Spends from a shared limiter (under the store timeout), then
    /// finishes.
    async fn spend_shared(
        self: Arc<Self>,
        shared: Arc<dyn RateLimiter>,
        record: Arc<TokenRecord>,
        limit: RateLimit,
        client: Option<IpAddr>,
    ) -> Result<Admitted, Rejection> {
        let id = record.id;
        let now = self.now();
        let spend = shared.spend(id, limit, now);
        let budget = match self.store_timeout {
            Some(t) => tokio::time::timeout(t, spend)
                .await
                .unwrap_or_else(|_| Err(StoreError::new(StoreErrorKind::Timeout))),
            None => spend.await,
        };
        match budget {
            Ok(budget) => self.finish(record, client, Some((limit, budget)), now),
            Err(e) => {
                let kind = self.store_failure(id, e);
                Err(self.rejection(kind).with_token_id(Some(id)))
            }
        }
    }

    /// 8. and 9.: answers a spent budget 429, and notes the use.
    fn finish(
        &self,
        record: Arc<TokenRecord>,
        client: Option<IpAddr>,
        spent: Option<(RateLimit, Budget)>,
        now: SystemTime,
    ) -> Result<Admitted, Rejection> {
        let id = record.id;
        let rate = match spent {
            None => None,
            Some((limit, budget)) => {
                if !budget.is_allowed() {
                    let headers = RateHeaders::new(TOKEN_POLICY, limit, &budget);
                    let r = self
                        .rejection(RejectionKind::RateLimited)
                        .with_token_id(Some(id));
                    return Err(r.with_rate(headers, budget.retry_after()));
                }
                let policy = self.limits.policies.get(TOKEN_POLICY, limit);
                Some(RateFields::new(policy, &budget))
            }
        };
        // 9. Last use, kept to the minute: no hint when the record already
        //    says the token was used within the last minute (the one place
        //    last use is throttled). A store that panics here fails this
        //    request closed, like one that panics in its lookup.
        if !record.last_used_at.is_some_and(|t| used_recently(t, now)) {
            let from = client.filter(|_| self.limits.record_addresses);
            let noted = catch_unwind(AssertUnwindSafe(|| self.store.record_use(id, now, from)));
            if noted.is_err() {
                let kind = self.store_failure(id, StoreError::new(StoreErrorKind::Panicked));
                return Err(self.rejection(kind).with_token_id(Some(id)));
            }
        }
        Ok(Admitted {
            auth: Authenticated { record },
            rate,
        })
    }

    pub(crate) fn rejection(&self, kind: RejectionKind) -> Rejection {
        let r = Rejection::new(kind, self.realm.clone());
        match kind {
            RejectionKind::StoreUnavailable(_) => r.with_retry_after(self.retry_after),
            _ => r,
        }
    }

    /// The time for expiry checks: the clock, but never earlier than the
    /// latest whole second it has shown. A wall clock stepped back (by NTP,
    /// or by hand) therefore cannot revive an expired token, to within a
    /// second. The floor is written at most once a second, so requests do
    /// not contend on it.
    fn now(&self) -> SystemTime {
        let now = self.tokens.now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let floor = self.clock_floor.load(Ordering::Relaxed);
        if secs < floor {
            return UNIX_EPOCH + Duration::from_secs(floor);
        }
        if secs > floor {
            self.clock_floor.fetch_max(secs, Ordering::Relaxed);
        }
        now
    }

    /// Waits for a pending lookup (under the store timeout), then judges
    /// and admits.
    async fn wait(
        self: Arc<Self>,
        id: TokenId,
        digest: TokenDigest,
        lookup: Lookup,
        client: Option<IpAddr>,
    ) -> Result<Admitted, Rejection> {
        let started = crate::meter::ON.then(std::time::Instant::now);
        let found = match self.store_timeout {
            Some(t) => tokio::time::timeout(t, lookup)
                .await
                .unwrap_or_else(|_| Err(StoreError::new(StoreErrorKind::Timeout))),
            None => lookup.await,
        };
        if let Some(started) = started {
            crate::meter::store_lookup(started.elapsed());
        }
        let now = self.now();
        let record = self
            .judge(id, digest, found, now)
            .map_err(|kind| self.failed(kind, Some(id), client, Some(now)))?;
        match self.admit(record, client, now) {
            Admission::Done(done) => done,
            Admission::Spend(shared, record, limit) => {
                self.clone()
                    .spend_shared(shared, record, limit, client)
                    .await
            }
        }
    }

    /// Everything after the lookup: digest comparison and record checks.
    fn judge(
        &self,
        id: TokenId,
        digest: TokenDigest,
        found: Found,
        now: SystemTime,
    ) -> Result<Arc<TokenRecord>, RejectionKind> {
        self.judge_with(id, digest, found, now, |a, b| a.ct_eq(b).into())
    }

    /// [`Config::judge`] with the digest comparison given, so that a test
    /// can count comparisons without a counter on the production path.
    fn judge_with(
        &self,
        id: TokenId,
        digest: TokenDigest,
        found: Found,
        now: SystemTime,
        equal: impl FnOnce(&TokenDigest, &TokenDigest) -> bool,
    ) -> Result<Arc<TokenRecord>, RejectionKind> {
        // 5. The secret: one constant-time comparison whatever was found.
        let record = self.compare(id, digest, found, equal)?;
        // 6. The record itself: sound, and active now.
        self.check_record(id, &record, now)?;
        Ok(record)
    }

    /// Compares the presented token's digest with the stored one: against
    /// a dummy digest when the id is unknown, so the work is the same
    /// either way. A record the store could not read back is the server's
    /// fault, but only a caller who proves the secret may learn that this
    /// id is special: anyone else gets the ordinary 401.
    fn compare(
        &self,
        id: TokenId,
        digest: TokenDigest,
        found: Found,
        equal: impl FnOnce(&TokenDigest, &TokenDigest) -> bool,
    ) -> Result<Arc<TokenRecord>, RejectionKind> {
        let (stored, record) = match found {
            Ok(r) => (r.as_ref().map_or(TokenDigest::DUMMY, |r| r.digest), Ok(r)),
            Err(e) if e.kind() == StoreErrorKind::Corrupt => {
                crate::trace::store_error(id, &e, &self.realm.log);
                (e.corrupt_digest().unwrap_or(TokenDigest::DUMMY), Err(e))
            }
            Err(e) => return Err(self.store_failure(id, e)),
        };
        let matches = equal(&stored, &digest);
        match record {
            Ok(Some(record)) if matches => Ok(record),
            Ok(Some(_)) => Err(RejectionKind::SecretMismatch),
            Ok(None) => Err(RejectionKind::UnknownToken),
            Err(e) => Err(match (e.corrupt_digest(), matches) {
                (Some(_), true) => RejectionKind::StoreUnavailable(StoreErrorKind::Corrupt),
                (Some(_), false) => RejectionKind::SecretMismatch,
                (None, _) => RejectionKind::UnknownToken,
            }),
        }
    }

    /// A record that proved its secret: is it the one asked for, does it
    /// hold only scopes the catalog defines, and is it active at `now`?
    fn check_record(
        &self,
        id: TokenId,
        record: &TokenRecord,
        now: SystemTime,
    ) -> Result<(), RejectionKind> {
        if record.id != id {
            // The digest covers the id, so only a broken store gets here.
            let e = StoreError::corrupt("the store answered with another token's record");
            return Err(self.store_failure(id, e));
        }
        if let Err(e) = self.tokens.catalog().check_known(&record.scopes) {
            return Err(self.store_failure(id, StoreError::with_source(StoreErrorKind::Corrupt, e)));
        }
        match record.status(now) {
            TokenStatus::Active => Ok(()),
            TokenStatus::Revoked => Err(RejectionKind::Revoked),
            TokenStatus::Expired => Err(RejectionKind::Expired),
            TokenStatus::OwnerSuspended => Err(RejectionKind::OwnerSuspended),
        }
    }

    /// Logs a store failure and answers it 503, fail closed.
    fn store_failure(&self, id: TokenId, e: StoreError) -> RejectionKind {
        crate::trace::store_error(id, &e, &self.realm.log);
        RejectionKind::StoreUnavailable(e.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{NewToken, TokenManager};
    use crate::{auth::AuthLayer, store::MemoryStore};

    /// Looks `token` up and judges it, counting digest comparisons.
    async fn comparisons_for(config: &Config, token: &str) -> (usize, Option<RejectionKind>) {
        let id = config.tokens.format().parse(token).unwrap();
        let found = config.store.find(id).await;
        let mut count = 0;
        let verdict = config.judge_with(id, TokenDigest::of(token), found, config.now(), |a, b| {
            count += 1;
            a.ct_eq(b).into()
        });
        (count, verdict.err())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unknown_id_still_compares_against_a_dummy_digest() {
        let store = MemoryStore::new();
        let admin = TokenManager::new(store.clone(), crate::testing::live());
        let known = admin
            .create(NewToken::new("t", "o", ["orders:read"]))
            .await
            .unwrap()
            .token;
        let layer = AuthLayer::new(store, crate::testing::live());
        let unknown = crate::testing::live().format().mint().token;
        assert_eq!(
            comparisons_for(&layer.config, unknown.expose_secret()).await,
            (1, Some(RejectionKind::UnknownToken))
        );
        assert_eq!(
            comparisons_for(&layer.config, known.expose_secret()).await,
            (1, None)
        );
    }
}
